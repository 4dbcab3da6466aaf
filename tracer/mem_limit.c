#include "mem_limit.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kcompat.h"
#include "log.h"
#include "procfs.h"

#define PAGE 4096ull
#define PAGE_UP(x) (((x) + PAGE - 1) & ~(PAGE - 1))

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

/* statm field 6 (data + stack), in bytes; 0 if the process is gone. */
static uint64_t statm_data(pid_t pid)
{
        char path[64], buf[256];
        snprintf(path, sizeof(path), "/proc/%d/statm", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        unsigned long long f[6];
        if (sscanf(buf, "%llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5]) != 6)
                return 0;
        return f[5] * PAGE;
}

/* The current break: the end of [heap] in /proc/<pid>/maps, or start_brk
 * when there is no heap yet. 0 if unknown. */
static uint64_t read_brk(pid_t pid)
{
        char path[64], line[512];
        snprintf(path, sizeof(path), "/proc/%d/maps", pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return 0;
        uint64_t end = 0;
        while (fgets(line, sizeof(line), f))
                if (strstr(line, "[heap]")) {
                        unsigned long long a, b;
                        if (sscanf(line, "%llx-%llx", &a, &b) == 2)
                                end = b;
                        break;
                }
        fclose(f);
        if (end)
                return end;
        /* /proc/<pid>/stat field 47: start_brk */
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        char buf[1024];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        if (!p)
                return 0;
        /* fields 3.. after ") "; start_brk is field 47 */
        p += 2;
        for (int field = 3; field < 47 && p; field++) {
                p = strchr(p, ' ');
                if (p)
                        p++;
        }
        return p ? PAGE_UP(strtoull(p, NULL, 10)) : 0;
}

uint64_t mem_request_growth(int nr, const uint64_t args[6], uint64_t cur_brk, bool *need_brk)
{
        *need_brk = false;
        switch (nr) {
        case SYS_mmap:
        case SYS_mprotect:
        case SYS_pkey_mprotect:
                return PAGE_UP(args[1]);
        case SYS_brk: {
                uint64_t want = args[0];
                if (want == 0)
                        return 0; /* a query */
                if (!cur_brk) {
                        *need_brk = true;
                        return 0;
                }
                return PAGE_UP(want) > cur_brk ? PAGE_UP(want) - cur_brk : 0;
        }
        case SYS_mremap: {
                uint64_t old = PAGE_UP(args[1]), new = PAGE_UP(args[2]);
                if (args[3] & MREMAP_DONTUNMAP)
                        return new; /* the old range stays mapped */
                return new > old ? new - old : 0;
        }
        case SYS_shmget:
                /* a segment is created only with IPC_PRIVATE or IPC_CREAT */
                return ((key_t)args[0] == IPC_PRIVATE || (args[2] & IPC_CREAT)) ? PAGE_UP(args[1]) : 0;
        default:
                return 0;
        }
}

static struct proc_entry *entry_of(struct tsandbox *sb, pid_t tid)
{
        struct proc_entry *e = proc_index_find(&sb->procs, tid);
        if (e)
                return e;
        pid_t tgid = procfs_tgid(tid);
        return tgid > 0 ? proc_index_find(&sb->procs, tgid) : NULL;
}

uint64_t mem_limit_ledger(struct tsandbox *sb, bool exact)
{
        uint64_t sum = sb->shm_bytes;
        for (struct proc_entry *e = sb->procs.head; e; e = e->next) {
                if (e->exited)
                        continue; /* its address space is gone */
                if (exact)
                        e->data = statm_data(e->pid);
                sum += e->data;
        }
        return sum;
}

void mem_limit_exec(struct tsandbox *sb, pid_t tid)
{
        struct proc_entry *e = sb->tracked ? entry_of(sb, tid) : NULL;
        if (e)
                e->brk = 0; /* the new image's heap starts elsewhere */
}

static void kill_requester(struct tsandbox *sb, struct proc_entry *e, const struct seccomp_notif *n,
                           uint64_t growth, uint64_t ledger)
{
        pid_t pid = e ? e->pid : (pid_t)n->pid;
        int pidfd = e && e->pidfd >= 0 ? dup(e->pidfd) : (int)syscall(__NR_pidfd_open, pid, 0);
        /* through the pidfd: never a recycled pid, never the whole group */
        if (pidfd >= 0) {
                syscall(__NR_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
                close(pidfd);
        }
        sb->mem_kills++;
        json_object *f = json_object_new_object();
        json_object_object_add(f, "pid", json_object_new_int(pid));
        json_object_object_add(f, "tid", json_object_new_int(n->pid));
        json_object_object_add(f, "syscall", json_object_new_int(n->data.nr));
        json_object_object_add(f, "requested", json_object_new_uint64(growth));
        json_object_object_add(f, "ledger", json_object_new_uint64(ledger));
        json_object_object_add(f, "limit", json_object_new_uint64(sb->max_memory));
        audit_emit(&sb->audit, "memory_kill", f);
}

int mem_limit_notify(struct tsandbox *sb, const struct seccomp_notif *n)
{
        if (!sb->max_memory)
                return ENOSYS; /* not routed without a limit */
        struct proc_entry *e = entry_of(sb, n->pid);
        const uint64_t *args = (const uint64_t *)n->data.args;
        bool need_brk;

        if (e && n->data.nr == SYS_brk && !e->brk && args[0])
                e->brk = read_brk(e->pid);
        uint64_t growth = mem_request_growth(n->data.nr, args, e ? e->brk : 0, &need_brk);
        if (growth == 0 && !need_brk) {
                if (e && n->data.nr == SYS_brk && args[0] && e->brk && PAGE_UP(args[0]) < e->brk)
                        e->brk = PAGE_UP(args[0]); /* a shrink */
                return 0;
        }
        /* the requester's own measure is always fresh */
        if (e)
                e->data = statm_data(e->pid);
        uint64_t ledger = mem_limit_ledger(sb, false);
        if (ledger + growth > sb->max_memory) {
                /* at the limit: the exact ledger, before anything dies */
                ledger = mem_limit_ledger(sb, true);
                if (e && n->data.nr == SYS_brk) {
                        e->brk = read_brk(e->pid);
                        growth = mem_request_growth(n->data.nr, args, e->brk, &need_brk);
                }
        }
        if (ledger + growth > sb->max_memory) {
                kill_requester(sb, e, n, growth, ledger);
                return ENOMEM;
        }
        if (n->data.nr == SYS_shmget)
                sb->shm_bytes += growth;
        else if (e)
                e->data += growth;
        if (e && n->data.nr == SYS_brk)
                e->brk = PAGE_UP(args[0]);
        if (ledger + growth > sb->mem_peak)
                sb->mem_peak = ledger + growth;
        return 0;
}
