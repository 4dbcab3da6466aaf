#include "procfs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "kcompat.h"

int procfs_read(const char *path, char *buf, size_t len)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ESRCH ? -ENOENT : -errno;
        ssize_t n = read(fd, buf, len - 1);
        if (n < 0)
                return errno == ESRCH ? -ENOENT : -errno;
        buf[n] = 0;
        return (int)n;
}

static int stat_parse(char *buf, struct proc_stat *st)
{
        char *p = strrchr(buf, ')');
        if (!p)
                return -EIO;
        /* after ") ": state(3) ppid(4) pgrp(5) session(6) tty(7) tpgid(8)
         * flags(9) minflt(10) cminflt(11) majflt(12) cmajflt(13) utime(14)
         * stime(15) cutime(16) cstime(17) priority(18) nice(19)
         * num_threads(20) itrealvalue(21) starttime(22) */
        char state;
        int ppid, pgrp, threads, end = 0;
        unsigned long long start, minflt, majflt;
        if (sscanf(p + 1, " %c %d %d %*d %*d %*d %*u %llu %*u %llu %*u %*u %*u %*d %*d %*d %*d %d %*d %llu%n",
                   &state, &ppid, &pgrp, &minflt, &majflt, &threads, &start, &end) != 7 || !end)
                return -EIO;
        st->faults = minflt + majflt;
        st->state = state;
        st->ppid = ppid;
        st->pgrp = pgrp;
        st->num_threads = threads;
        st->starttime = start;
        /* start_brk is field 47, 25 fields on */
        st->start_brk = 0;
        p += 1 + end;
        for (int field = 22; field < 47 && p; field++)
                if ((p = strchr(p, ' ')))
                        p++;
        if (p)
                st->start_brk = strtoull(p, NULL, 10);
        return 0;
}

static int stat_file(const char *path, struct proc_stat *st)
{
        char buf[1024];
        int r = procfs_read(path, buf, sizeof(buf));
        return r < 0 ? r : stat_parse(buf, st);
}

int procfs_stat(pid_t pid, struct proc_stat *st)
{
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        return stat_file(path, st);
}

int procfs_task_stat(pid_t tgid, pid_t tid, struct proc_stat *st)
{
        char path[96];
        snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)tgid, (int)tid);
        return stat_file(path, st);
}

int procfs_stat_pread(int fd, struct proc_stat *st)
{
        char buf[1024];
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        if (n <= 0)
                return n == 0 || errno == ESRCH ? -ENOENT : -errno;
        buf[n] = 0;
        return stat_parse(buf, st);
}

int procfs_for_each_child(pid_t parent, void (*fn)(pid_t pid, void *ud), void *ud)
{
        DIR *d = opendir("/proc");
        struct dirent *de;
        int count = 0, err = 0;

        if (!d)
                return -errno;
        errno = 0;
        while ((de = readdir(d))) {
                if (!isdigit((unsigned char)de->d_name[0]))
                        continue;
                pid_t pid = (pid_t)strtol(de->d_name, NULL, 10);
                /* status, not stat: stat waits for a process's exec to
                 * end, and any user's exec can be held for good in a
                 * stalled file system (a FUSE mount of theirs) */
                long ppid = procfs_status_field(pid, "PPid");
                if (ppid < 0 && ppid != -ENOENT && ppid != -ESRCH && !err)
                        err = (int)ppid; /* out of descriptors...: not looked at */
                if (ppid == parent) {
                        fn(pid, ud);
                        count++;
                }
                errno = 0;
        }
        if (errno && !err)
                err = -errno;
        closedir(d);
        return err ? err : count;
}

long procfs_status_field(pid_t tid, const char *name)
{
        char path[64], buf[2048], key[40];
        snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
        int r = procfs_read(path, buf, sizeof(buf));
        if (r < 0)
                return r;
        snprintf(key, sizeof(key), "\n%s:", name);
        char *p = strstr(buf, key);
        if (!p)
                return -EIO;
        return strtol(p + strlen(key), NULL, 10);
}

pid_t procfs_tgid(pid_t tid)
{
        /* Most callers are single-threaded: pidfd_open(2) without flags
         * accepts only a thread-group leader, at a fraction of the cost of
         * rendering /proc/<tid>/status. */
        int fd = (int)syscall(__NR_pidfd_open, tid, 0);
        if (fd >= 0) {
                close(fd);
                return tid;
        }
        if (errno == ESRCH)
                return -ENOENT;
        long v = procfs_status_field(tid, "Tgid");
        if (v < 0)
                return (pid_t)v;
        return v > 0 ? (pid_t)v : -EIO;
}

/* Go on reading `m` as text (its descriptor handed to a FILE). Returns 0
 * or -errno. */
static int maps_to_text(struct procfs_maps *m)
{
        m->f = fdopen(m->fd, "re");
        if (!m->f)
                return -errno;
        m->fd = -1;
        return 0;
}

/* The next mapping by PROCMAP_QUERY, the first to end above m->next.
 * Returns 1 (one in *v), 0 (no more), -ENOTTY (no such ioctl: read the
 * text), -ENOENT (the address space is gone) or another -errno. */
static int maps_query(struct procfs_maps *m, struct proc_vma *v)
{
        if (!m->line) {
                m->line = malloc(PATH_MAX);
                if (!m->line)
                        return -ENOMEM;
                m->cap = PATH_MAX;
        }
        struct procmap_query q = {
                .size = sizeof(q),
                .query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA |
                               (m->flags & PROCFS_MAPS_SHARED ? PROCMAP_QUERY_VMA_SHARED : 0),
                .query_addr = m->next,
                .vma_name_addr = (uintptr_t)m->line,
                .vma_name_size = (uint32_t)m->cap,
        };
        const char *name = m->line;
        m->examined++;
        int r = ioctl(m->fd, PROCMAP_QUERY, &q);
        if (r < 0 && errno == ENAMETOOLONG) {
                /* a path past PATH_MAX (d_path()): asked again without it */
                q.vma_name_addr = 0;
                q.vma_name_size = 0;
                r = ioctl(m->fd, PROCMAP_QUERY, &q);
                name = "(long)";
        } else if (r == 0 && q.vma_name_size == 0) {
                name = "";
        }
        if (r < 0)
                return errno == ENOENT ? 0 : errno == ESRCH ? -ENOENT : -errno;
        if (q.vma_end <= m->next || q.vma_start > q.vma_end)
                return -EIO; /* never the kernel's: no progress */
        v->start = q.vma_start;
        v->end = q.vma_end;
        v->perms[0] = q.vma_flags & PROCMAP_QUERY_VMA_READABLE ? 'r' : '-';
        v->perms[1] = q.vma_flags & PROCMAP_QUERY_VMA_WRITABLE ? 'w' : '-';
        v->perms[2] = q.vma_flags & PROCMAP_QUERY_VMA_EXECUTABLE ? 'x' : '-';
        v->perms[3] = q.vma_flags & PROCMAP_QUERY_VMA_SHARED ? 's' : 'p';
        v->perms[4] = 0;
        v->offset = q.vma_offset;
        v->inode = q.inode;
        v->name = name;
        m->next = q.vma_end;
        return 1;
}

void procfs_maps_from(struct procfs_maps *m, FILE *f)
{
        *m = (struct procfs_maps){ .fd = -1, .f = f, .err = f ? 0 : -EIO };
}

int procfs_maps_open(struct procfs_maps *m, pid_t tgid, pid_t tid, uint64_t from, unsigned flags)
{
        char path[96];
        if (tid > 0)
                snprintf(path, sizeof(path), "/proc/%d/task/%d/maps", (int)tgid, (int)tid);
        else
                snprintf(path, sizeof(path), "/proc/%d/maps", (int)tgid);
        *m = (struct procfs_maps){ .fd = open(path, O_RDONLY | O_CLOEXEC), .next = from, .flags = flags };
        if (m->fd < 0)
                m->err = errno == ESRCH ? -ENOENT : -errno;
        else if (flags & PROCFS_MAPS_TEXT)
                m->err = maps_to_text(m);
        return m->err;
}

/* The fixed-format start of a maps line (show_map_vma(): "%08lx-%08lx
 * %c%c%c%c %08llx %02x:%02x %lu ", padding, the name), which the kernel
 * writes whatever the mapping's name is. */
static bool vma_parse(char *line, struct proc_vma *v)
{
        unsigned long long a, b, o;
        unsigned int maj, min;
        int perm_at = 0, perm_end = 0, off = 0;
        if (sscanf(line, "%llx-%llx %n%*4[-rwxps]%n %llx %x:%x %lu %n", &a, &b, &perm_at, &perm_end, &o, &maj, &min,
                   &v->inode, &off) != 6 ||
            !off || perm_end - perm_at != 4 || a > b)
                return false;
        memcpy(v->perms, line + perm_at, 4);
        v->perms[4] = 0;
        v->start = a;
        v->end = b;
        v->offset = o;
        v->name = line + off;
        return true;
}

/* The next line of the text into *v; false at its end or on an error. */
static bool maps_line(struct procfs_maps *m, struct proc_vma *v)
{
        if (!m->f || m->err)
                return false;
        errno = 0;
        m->examined++;
        ssize_t n = getline(&m->line, &m->cap, m->f);
        if (n < 0) {
                if (!feof(m->f))
                        m->err = errno ? -errno : -EIO;
                return false;
        }
        /* only the last line can lack its '\n', and the kernel ends every
         * line with one: a line cut short is not the whole */
        if (n == 0 || m->line[n - 1] != '\n' || (size_t)n != strlen(m->line) || !vma_parse(m->line, v)) {
                m->err = -EIO;
                return false;
        }
        m->line[n - 1] = 0;
        return true;
}

bool procfs_maps_next(struct procfs_maps *m, struct proc_vma *v)
{
        if (m->err)
                return false;
        if (m->fd >= 0) {
                int r = maps_query(m, v);
                if (r != -ENOTTY) {
                        m->err = r < 0 ? r : 0;
                        return r > 0;
                }
                m->err = maps_to_text(m); /* a kernel before 6.11 */
        }
        while (maps_line(m, v))
                if (v->end > m->next && (!(m->flags & PROCFS_MAPS_SHARED) || v->perms[3] == 's'))
                        return true;
        return false;
}

int procfs_maps_close(struct procfs_maps *m)
{
        int err = m->err;
        if (m->fd >= 0)
                close(m->fd);
        if (m->f)
                fclose(m->f);
        free(m->line);
        *m = (struct procfs_maps){ .fd = -1, .err = err, .examined = m->examined };
        return err;
}
