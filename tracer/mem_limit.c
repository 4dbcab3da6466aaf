#include "mem_limit.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "fork_trace.h"
#include "kcompat.h"
#include "log.h"
#include "notif_loop.h"
#include "proc_limit.h"
#include "privs.h"
#include "procfs.h"
#include "read_budget.h"
#include "shm_lookup.h"

#define PAGE 4096ull
#define PAGE_UP(x) (((x) + PAGE - 1) & ~(PAGE - 1))
/* A request that would cross the limit while a process the limit killed
 * is not gone yet is held, and judged again every VICTIM_RETRY_NS, for up
 * to VICTIM_WAIT_NS after the kill (victim_dying). */
#define VICTIM_RETRY_NS (2 * 1000 * 1000ull)
#define VICTIM_WAIT_NS (1000 * 1000 * 1000ull)
/* Creations kept at most (mem_limit_creation). */
#define CREATED_MAX 4096


/* statm field 6 (data + stack) in `buf`, in bytes; 0 if unparsable. */
static uint64_t statm_parse(const char *buf)
{
        unsigned long long f[6];
        if (sscanf(buf, "%llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5]) != 6)
                return 0;
        return f[5] * PAGE;
}

/* Whether a failed read of /proc says nothing about the process: the
 * tracer is short of descriptors or memory. */
static bool short_of_resources(int err)
{
        return err == -EMFILE || err == -ENFILE || err == -ENOMEM;
}

/* statm field 6 (data + stack) of `path`, in bytes: 0 if the process or
 * its address space is gone; *unknown is set when it could not be read
 * for lack of resources. */
static uint64_t statm_file(const char *path, bool *unknown)
{
        char buf[256];
        int r = procfs_read(path, buf, sizeof(buf));
        if (short_of_resources(r))
                *unknown = true;
        return r > 0 ? statm_parse(buf) : 0;
}

/* A fork allowed whose child is not registered yet: its copy. */
struct fork_copy {
        pid_t tid;
        uint64_t bytes;
        struct fork_copy *next;
};

/* Where a blocked thread waits (proc(5), /proc/<tid>/wchan: the kernel
 * function it sleeps in) when it can only be inside a system call that
 * maps nothing: wait4/waitid, a vfork parent's wait (in kernel_clone where
 * wait_for_vfork_done is inlined), futex, nanosleep, pipe and unix-socket
 * reads and writes, poll/select/epoll, sigtimedwait/sigsuspend/pause,
 * accept, file locks, or a signal/ptrace stop (reached after a call
 * returns, or at its entry before seccomp). Names as of Linux 5.10 to 6.18 (the suffix of
 * a compiler clone such as ".isra.0" is ignored); a name not listed only
 * means "not sure". */
static const char *const waits_outside_mm[] = {
        "do_wait", "wait_for_vfork_done", "kernel_clone", "futex_do_wait", "futex_wait_queue", "futex_wait_queue_me",
        "hrtimer_nanosleep", "do_nanosleep", "pipe_read", "pipe_write", "anon_pipe_read", "anon_pipe_write",
        "unix_stream_read_generic", "unix_stream_data_wait", "do_select", "do_sys_poll",
        "poll_schedule_timeout", "ep_poll", "do_epoll_wait", "do_sigtimedwait", "sigsuspend",
        "do_signal_stop", "ptrace_stop", "__do_sys_pause", "inet_csk_accept", "locks_lock_inode_wait",
};

/* CAP_DAC_READ_SEARCH is effective in the thread of the re-read under way
 * (each re-read runs under the tracer lock, on one thread). */
static _Thread_local bool search_raised;

/* Whether thread `tid` of `tgid` is surely past every call the tracer has
 * allowed it, the last one when it had taken `faults` page faults (read
 * while it was parked in that call's notification; UINT64_MAX: unknown).
 * A thread makes one call at a time, and once answered, its call runs
 * before the thread does anything else; so it is past them when:
 *  - it is gone, or dead (a zombie leader whose process lives on);
 *  - it has taken a page fault since: a memory call takes none before its
 *    growth is in the measure (MAP_POPULATE and mlock fault pages in only
 *    after the mapping is accounted), so the fault was after that, inside
 *    the call or in user space after it - this covers a thread that runs
 *    on, which no wait shows;
 *  - it sleeps in a wait that no memory call reaches (above; wchan needs
 *    ptrace read access, which the tracer has), a stop included: a
 *    thread stopped on its way out of a call still shows that call's
 *    number in /proc/<tid>/syscall (found in review: a thread stopped as
 *    its mmap returned kept its grant counted on top of the measure, and
 *    every request near the limit was killed while it stayed stopped);
 *  - else, it sleeps in a call that is no memory call, or outside any
 *    call (/proc/<tid>/syscall: the number of the call it is blocked in,
 *    -1 for none; found in review: a thread blocked reading an eventfd,
 *    or a socket, after its mmap had its grant counted again on top of
 *    the measure that showed it, and another thread's request that
 *    fitted was killed, 9 runs of 10). A thread held on its way out of a
 *    memory call shows that call: taken as in it (over-counts).
 * Anything else (running without a fault, asleep inside mmap on mmap_lock
 * or page I/O, still parked in its notification) is not sure: its grant
 * keeps counting, which at worst over-counts for a while. `stat_only`:
 * the first two alone (see grant_thread_past). *state: the thread's state
 * as read (0: not read). */
static bool thread_past_calls(pid_t tgid, pid_t tid, uint64_t faults, bool stat_only, char *state)
{
        struct proc_stat st;
        int r = procfs_task_stat(tgid, tid, &st);
        *state = r < 0 ? 0 : st.state;
        if (r < 0)
                return r == -ENOENT;
        if (st.state == 'Z' || st.state == 'X' || (faults != UINT64_MAX && st.faults > faults))
                return true;
        if (st.state == 'R' || stat_only)
                return false;
        char path[96], buf[128];
        snprintf(path, sizeof(path), "/proc/%d/task/%d/wchan", tgid, tid);
        if (procfs_read(path, buf, sizeof(buf)) > 0) {
                buf[strcspn(buf, ".")] = 0; /* "poll_schedule_timeout.constprop.0" */
                for (size_t i = 0; i < ARRAY_SIZE(waits_outside_mm); i++)
                        if (!strcmp(buf, waits_outside_mm[i]))
                                return true;
        }
        /* "NR args... sp pc" blocked in call NR, "-1 sp pc" outside any,
         * "running" (it woke since the stat) */
        snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", tgid, tid);
        /* mode 0400, of the thread's uid: read with CAP_DAC_READ_SEARCH
         * raised for the read where the tracer holds it (ptrace access,
         * the file's own check, it has) */
        bool raised = !search_raised && privs_search(true) == 0;
        int n = procfs_read(path, buf, sizeof(buf));
        if (raised)
                privs_search(false);
        if (n <= 0 || !strncmp(buf, "running", 7))
                return false;
        char *end;
        long nr = strtol(buf, &end, 10);
        return end != buf && nr != SYS_mmap && nr != SYS_mprotect && nr != SYS_pkey_mprotect && nr != SYS_brk &&
               nr != SYS_mremap && nr != SYS_shmget && nr != SYS_shmat;
}

/* A SysV segment the sandbox created: pending (shmid -1) from the allowed
 * shmget until an exact re-read finds it in /proc/sysvipc/shm. */
struct shm_seg {
        int shmid;
        key_t key;        /* IPC_PRIVATE shows as 0 */
        uint64_t size;    /* as asked: /proc/sysvipc/shm shows it unrounded */
        uint64_t charge;  /* what it takes (shm_segment_bytes) */
        pid_t tgid, tid;  /* the creator */
        uint64_t faults;  /* its thread's page faults when allowed */
        bool seen;        /* listed in this refresh */
        bool over;        /* its shmget was surely over before the listing was read */
        struct shm_seg *next;
};

/* Record a segment charged `charge` bytes: one being created (shmid -1),
 * or one made outside the sandbox and attached (its shmid). */
static void shm_add(struct tsandbox *sb, int shmid, key_t key, uint64_t size, uint64_t charge, pid_t tgid,
                    pid_t tid, uint64_t faults)
{
        struct shm_seg *g = calloc(1, sizeof(*g));
        if (!g)
                return; /* charged anyway (shm_bytes), never credited */
        *g = (struct shm_seg){ .shmid = shmid, .key = key, .size = size, .charge = charge, .tgid = tgid, .tid = tid,
                               .faults = faults, .next = sb->shm_segs };
        sb->shm_segs = g;
}

/* What shmat(shmid) by thread `tid` adds to the ledger: nothing for a
 * segment the sandbox is charged for already (made by one of its
 * processes, or attached before), else the whole segment: one made outside
 * the sandbox (by the host, an earlier run, another sandbox) is memory its
 * touches allocate, which no statm shows (found in review: a 100 MiB
 * segment made outside, touched in full, plus 48 MiB held at 64M). Its
 * size, from the kernel, in *size. UINT64_MAX / 4 when the segment cannot
 * be looked at (fails closed: killed at any limit). */
static uint64_t shm_attach_growth(struct tsandbox *sb, pid_t tid, int shmid, uint64_t *size)
{
        *size = 0;
        for (struct shm_seg *g = sb->shm_segs; g; g = g->next)
                if (g->shmid >= 0 && g->shmid == shmid)
                        return 0;
        struct shm_listing seg;
        int r = shm_find(tid, shmid, &seg);
        if (r == -ENOENT)
                return 0; /* none such: the call fails (EINVAL) */
        if (r < 0)
                return UINT64_MAX / 4;
        /* made by a process of the sandbox, its shmget not yet matched to
         * its id: charged at that shmget */
        for (struct shm_seg *g = sb->shm_segs; g; g = g->next)
                if (g->shmid < 0 && g->tgid == seg.cpid && g->size == seg.size)
                        return 0;
        *size = seg.size;
        return shm_segment_bytes(seg.size, 0);
}

/* One line of /proc/sysvipc/shm (proc(5)). */
struct shm_line {
        key_t key;
        int shmid;
        uint64_t size;
        pid_t cpid;
        bool claimed;
};

static struct shm_line *shm_read_lines(size_t *n)
{
        char line[512];
        struct shm_line *v = NULL;
        size_t cap = 0;
        *n = 0;
        FILE *f = fopen("/proc/sysvipc/shm", "re");
        if (!f)
                return NULL;
        if (fgets(line, sizeof(line), f)) /* header */
                while (fgets(line, sizeof(line), f)) {
                        struct shm_listing sl;
                        if (!shm_listing_parse(line, &sl))
                                continue;
                        if (*n == cap) {
                                size_t c2 = cap ? 2 * cap : 64;
                                struct shm_line *v2 = realloc(v, c2 * sizeof(*v2));
                                if (!v2) {
                                        free(v);
                                        fclose(f);
                                        *n = 0;
                                        return NULL;
                                }
                                v = v2;
                                cap = c2;
                        }
                        v[(*n)++] = (struct shm_line){ (key_t)sl.key, sl.shmid, sl.size, sl.cpid, false };
                }
        fclose(f);
        if (!v)
                v = calloc(1, sizeof(*v)); /* empty but read */
        return v;
}

/* Bind unresolved records to unclaimed lines of the same creator and size:
 * with the record's own key, or (any_key) to a line showing key 0, which
 * is how a removed segment (IPC_RMID) lists. */
static void shm_bind(struct tsandbox *sb, struct shm_line *l, size_t n, bool any_key)
{
        for (size_t i = 0; i < n; i++) {
                if (l[i].claimed || (any_key && l[i].key != IPC_PRIVATE))
                        continue;
                for (struct shm_seg *g = sb->shm_segs; g; g = g->next)
                        if (g->shmid < 0 && g->tgid == l[i].cpid && g->size == l[i].size &&
                            (any_key || g->key == l[i].key)) {
                                g->shmid = l[i].shmid;
                                g->seen = l[i].claimed = true;
                                break;
                        }
        }
}

/* Match the records against /proc/sysvipc/shm and recompute shm_bytes.
 * A resolved record counts while its shmid is listed. Unresolved records
 * are bound to unclaimed segments of their creator and size (own key
 * first, then removed ones), so every listed segment the sandbox created
 * is charged to some record. An unresolved record is dropped only when no
 * unclaimed segment of its creator and size is left and its shmget is
 * surely over (its thread is past it, or a later request of its thread
 * triggered this re-read): the shmget failed, or the segment is gone
 * already. When unsure it keeps charging. `tid`: the triggering thread (0: none). */
static void shm_refresh(struct tsandbox *sb, pid_t tid)
{
        if (!sb->shm_segs)
                return;
        /* decided before the listing is read: a segment created after the
         * read by a thread that exits at once is no proof of failure */
        for (struct shm_seg *g = sb->shm_segs; g; g = g->next) {
                /* not a process in an exec let run: its stat can wait on it */
                struct proc_entry *e = proc_index_find(&sb->procs, g->tgid);
                char state;
                g->over = g->shmid < 0 && (g->tid == tid || ((!e || !e->exec_tid) &&
                                                             thread_past_calls(g->tgid, g->tid, g->faults, false,
                                                                               &state)));
        }
        size_t n;
        struct shm_line *l = shm_read_lines(&n);
        if (!l)
                return; /* keep what is known */
        for (struct shm_seg *g = sb->shm_segs; g; g = g->next) {
                g->seen = false;
                for (size_t i = 0; g->shmid >= 0 && i < n; i++)
                        if (!l[i].claimed && l[i].shmid == g->shmid)
                                g->seen = l[i].claimed = true;
        }
        shm_bind(sb, l, n, false);
        shm_bind(sb, l, n, true);
        sb->shm_bytes = 0;
        for (struct shm_seg **pp = &sb->shm_segs; *pp;) {
                struct shm_seg *g = *pp;
                bool drop = false;
                if (!g->seen && g->shmid >= 0) {
                        drop = true; /* destroyed */
                } else if (!g->seen) {
                        bool open_match = false;
                        for (size_t i = 0; !open_match && i < n; i++)
                                open_match = !l[i].claimed && l[i].cpid == g->tgid && l[i].size == g->size;
                        drop = !open_match && g->over;
                }
                if (drop) {
                        *pp = g->next;
                        free(g);
                        continue;
                }
                sb->shm_bytes += g->charge;
                pp = &g->next;
        }
        free(l);
}

static void shared_known_free(struct tsandbox *sb);

void mem_limit_end(struct tsandbox *sb)
{
        while (sb->mem_held) {
                struct held_notif *h = sb->mem_held;
                sb->mem_held = h->next;
                free(h); /* its task is dead: the sandbox is over */
        }
        while (sb->fork_copies)
                mem_limit_fork_over(sb, sb->fork_copies->tid);
        sb->fork_copy_bytes = 0;
        while (sb->shm_segs) {
                struct shm_seg *g = sb->shm_segs;
                sb->shm_segs = g->next;
                free(g);
        }
        sb->shm_bytes = 0;
        shared_known_free(sb);
        free(sb->created);
        sb->created = NULL;
        sb->ncreated = sb->created_cap = 0;
}

/* The address space's measure through thread `tid` of `tgid` (any live
 * thread when tid is 0): /proc/<tgid>/statm reads zero once the leader
 * thread has exited, while the other threads still share the memory.
 * *unknown as for statm_file; *via (may be NULL): the thread read through
 * when not the leader, else 0. */
static uint64_t statm_data(pid_t tgid, pid_t tid, bool *unknown, pid_t *via)
{
        char path[96];
        if (via)
                *via = tid;
        if (tid > 0) {
                snprintf(path, sizeof(path), "/proc/%d/task/%d/statm", tgid, tid);
                return statm_file(path, unknown);
        }
        snprintf(path, sizeof(path), "/proc/%d/statm", tgid);
        uint64_t v = statm_file(path, unknown);
        if (v)
                return v;
        snprintf(path, sizeof(path), "/proc/%d/task", tgid);
        DIR *d = opendir(path);
        if (!d) {
                if (short_of_resources(-errno))
                        *unknown = true;
                return 0;
        }
        for (struct dirent *de; !v && (de = readdir(d));) {
                if (de->d_name[0] == '.')
                        continue;
                char p2[320];
                snprintf(p2, sizeof(p2), "/proc/%d/task/%.255s/statm", tgid, de->d_name);
                v = statm_file(p2, unknown);
                if (v && via)
                        *via = (pid_t)atoi(de->d_name);
        }
        closedir(d);
        return v;
}

/* Keep /proc/<pid>/statm and the leader thread's stat open for `e`. A
 * descriptor is bound to the process it was opened for; that is `e`'s only
 * if `e` had not exited by then (its pidfd not readable): a pid is reused
 * once reaped. */
static void statm_open(struct proc_entry *e)
{
        char path[64];
        if (e->statm_fd >= 0 || !proc_entry_running(e))
                return;
        snprintf(path, sizeof(path), "/proc/%d/statm", e->pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", e->pid, e->pid);
        int sfd = fd >= 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        if (sfd < 0 || !proc_entry_running(e)) {
                /* it exited meanwhile: the pid may be another's */
                if (fd >= 0)
                        close(fd);
                if (sfd >= 0)
                        close(sfd);
                fd = sfd = -1;
        }
        e->statm_fd = fd;
        e->stat_fd = sfd;
}

/* The thread through which `e`'s address space was last read: its leader,
 * or once the leader has exited (a zombie's stat shows start_brk 0) the
 * thread entry_statm found. Found in review: start_brk judged through the
 * requesting thread and compared through the zombie leader never matched,
 * so the process was taken as a new image and all its memory as unjudged -
 * the sweep killed it in place of a stack grower. */
static pid_t view_of(const struct proc_entry *e) { return e->view_tid ? e->view_tid : e->pid; }

/* /proc stat of thread `tid` of `e`, through the kept descriptor when it
 * is the leader. 0 or -errno (-ENOENT: gone). */
static int thread_stat(struct proc_entry *e, pid_t tid, struct proc_stat *st)
{
        statm_open(e);
        if (tid == e->pid && e->stat_fd >= 0)
                return procfs_stat_pread(e->stat_fd, st);
        return procfs_task_stat(e->pid, tid, st);
}

/* The measure of `e`'s address space, through the requesting thread `tid`
 * when the leader's view is empty (0: any thread). statm is a seq_file: a
 * read at offset 0 renders it afresh, so the kept descriptor is re-read
 * without a path walk. 0 when the address space is gone (a zombie); the
 * last known value when it cannot be read for lack of descriptors.
 * e->view_tid: the thread whose view it was (0: the leader's). */
static uint64_t entry_statm(struct proc_entry *e, pid_t tid)
{
        char buf[256];
        e->view_tid = 0;
        statm_open(e);
        if (e->statm_fd >= 0) {
                ssize_t n = pread(e->statm_fd, buf, sizeof(buf) - 1, 0);
                if (n > 0) {
                        buf[n] = 0;
                        uint64_t v = statm_parse(buf);
                        if (v)
                                return v;
                }
        }
        bool unknown = false;
        uint64_t v = statm_data(e->pid, tid, &unknown, &e->view_tid); /* the leader has exited */
        return unknown && !v ? e->data : v;
}

/* What `e` was let have is never above its last reading (the invariant
 * the sweep's blame rests on: ledger_sum); a reading of 0 is none. */
static void judged_within_reading(struct proc_entry *e)
{
        if (e->data && e->data < e->judged)
                e->judged = e->data;
}

/* A fresh reading of `e`'s measure into e->data (entry_statm). What it was
 * let have comes down with it: memory it gave back (munmap, which is not
 * notified) is no longer its to grow into unjudged, once the ledger has
 * seen the room (found in review: children judged with 8 MiB each
 * unmapped it, a fork's exact re-read showed the room, the parent was let
 * have it, and the children grew their stacks back into their old
 * judgement: 101 MiB held at 64M, the sweep blaming no one). Growth past
 * it is blamed by the sweep; its grants still count on top. */
static void entry_read(struct proc_entry *e, pid_t tid)
{
        e->data = entry_statm(e, tid);
        judged_within_reading(e);
}

/* Anonymous shared memory (MAP_SHARED|MAP_ANONYMOUS, or /dev/zero mapped
 * shared): a shmem file that maps list as "/dev/zero (deleted)". */
static bool vma_anon_shared(const struct proc_vma *v)
{
        return v->perms[3] == 's' && strncmp(v->name, "/dev/zero", 9) == 0;
}

/* The mount id of descriptor `fd` of thread `tid` (/proc/<tid>/fdinfo,
 * open to a ptracer), or -1. Whole lines (getline): a line cut in two
 * would parse its tail as a line of its own. */
static int fd_mount_id(pid_t tid, int fd)
{
        char path[64];
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        int id = -1;
        snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", tid, fd);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        while (id < 0 && getline(&line, &cap, f) > 0)
                if (sscanf(line, "mnt_id: %d", &id) != 1)
                        id = -1;
        fclose(f);
        return id;
}

/* Whether mount `id` is mounted nodev (its per-mount options, field 6 of
 * /proc/self/mountinfo: the sandbox shares the tracer's mount namespace,
 * as it may make none of its own). Whole lines (getline): a mount point
 * is a path of a user's choosing (a FUSE mount's), and the tail of a
 * line cut in two could pose as another mount. */
static bool mount_nodev(int id)
{
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        bool nodev = false, found = false;
        FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return false;
        while (!found && getline(&line, &cap, f) > 0) {
                int mid, off = 0;
                if (sscanf(line, "%d %*d %*s %*s %*s %n", &mid, &off) != 1 || !off || mid != id)
                        continue;
                found = true;
                char *opts = line + off;
                opts[strcspn(opts, " \n")] = 0;
                for (char *save, *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save))
                        nodev |= strcmp(o, "nodev") == 0;
        }
        fclose(f);
        return nodev;
}

/* Whether descriptor `fd` of thread `tid` is not /dev/zero (character
 * device 1:5, wherever its node is): false when it is, or cannot be told
 * (fail closed: counted). A file on a nodev mount is no device; any other
 * is fetched with pidfd_getfd(2) (PTRACE_MODE_ATTACH: CAP_SYS_PTRACE, or
 * the same uid) from the thread's own table (a clone without CLONE_FILES
 * has its own) and looked at, as /proc/<tid>/fd is closed to another uid
 * even with CAP_SYS_PTRACE. Closing that copy runs the file's flush: on a
 * FUSE mount (users' are nodev: never fetched) it would wait for the FUSE
 * daemon. Another thread may dup2(2) over the descriptor before the call
 * runs; what that maps is counted at the next exact re-read. */
static bool fd_not_dev_zero(pid_t tid, int fd)
{
        struct statx stx;
        if (fd < 0)
                return false;
        int mnt = fd_mount_id(tid, fd);
        if (mnt >= 0 && mount_nodev(mnt))
                return true;
        _cleanup_close_ int pidfd = (int)syscall(__NR_pidfd_open, tid, PIDFD_THREAD);
        if (pidfd < 0)
                return false;
        _cleanup_close_ int copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
        /* cached attributes: no round trip to a remote or FUSE server */
        if (copy < 0 || statx(copy, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE, &stx) < 0)
                return false;
        return !(S_ISCHR(stx.stx_mode) && stx.stx_rdev_major == 1 && stx.stx_rdev_minor == 5);
}

/* Close maps reader `m` of a request's own lookup, adding the mappings it
 * examined to `w`. Returns procfs_maps_close()'s result. */
static int lookup_close(struct procfs_maps *m, struct mem_work *w)
{
        int r = procfs_maps_close(m);
        w->mappings += m->examined;
        return r;
}

/* Heap pieces read_brk() follows at most: each is one PROCMAP_QUERY. */
#define HEAP_PIECES_MAX 1024

/* The current break of `tgid`'s address space, seen through thread `tid`
 * (its own stat: the leader's shows start_brk 0 once it has exited, found
 * in review): the end of the last [heap] mapping from start_brk - the
 * kernel names so every mapping that holds any of [start_brk, brk], and an
 * mprotect of part of the heap splits it (found in review: the first
 * piece's end, taken for the break, charged the heap again at each brk) -
 * or start_brk when there is no heap yet. Every piece, writable or not
 * (found in review: taking the last writable one, a heap made PROT_NONE
 * was charged again at the next brk, and a fitting request killed). Older
 * kernels also name "[heap]" a mapping that starts at the break
 * (show_map_vma's test was inclusive; 6.18's is not): there a PROT_NONE
 * one (never judged) would make a brk into its room look like no growth,
 * and a thread unmapping it before the call would let the heap grow
 * unjudged, for the sweep to blame. 0 if unknown, or past
 * HEAP_PIECES_MAX pieces. */
static uint64_t read_brk(pid_t tgid, pid_t tid, struct mem_work *w)
{
        struct proc_stat st;
        if (procfs_task_stat(tgid, tid, &st) < 0)
                return 0;
        struct procfs_maps m;
        struct proc_vma v;
        uint64_t end = 0;
        int pieces = 0;
        procfs_maps_open(&m, tgid, tid, st.start_brk, 0);
        while (pieces <= HEAP_PIECES_MAX && procfs_maps_next(&m, &v) && !strcmp(v.name, "[heap]")) {
                end = v.end;
                pieces++;
        }
        if (lookup_close(&m, w) < 0 || pieces > HEAP_PIECES_MAX)
                return 0; /* not read: unknown */
        return end ? end : PAGE_UP(st.start_brk);
}

/* The bytes of mapping `v` within [addr, end), which it meets. */
static uint64_t vma_overlap(const struct proc_vma *v, uint64_t addr, uint64_t end)
{
        return (v->end < end ? v->end : end) - (v->start > addr ? v->start : addr);
}

/* What an mremap of [addr, addr+len) of `tgid` (seen through thread `tid`)
 * may add to the measure, from its mappings there. */
struct remap_look {
        bool refused;        /* the main stack, or maps unreadable */
        bool first_counts;   /* the mapping at addr grows the measure */
        uint64_t private_rw; /* private writable bytes in the range */
};

/* Mappings a move-only mremap's range is looked at, at most: a range of
 * more is refused (EPERM), as one whose maps cannot be read (found in
 * review: counted whole past them, it let a main stack further on through
 * unrefused). */
#define REMAP_SPAN_MAX 1024

/* Found in review: every mremap was charged as private growth, and
 * growing a file mapped shared, or duplicating or growing anonymous shared
 * or SysV memory, was killed with data_vm at 0.3 MiB. A shared mapping
 * adds nothing to data_vm, and its object no page: an object's size is
 * its file's, and past it a fault is SIGBUS. Except where the tracer
 * infers an anonymous shared object's size from its mappings (it cannot
 * ask the kernel: privs_size_objects), which then count the new extent.
 * A private mapping not writable is not in data_vm either (write
 * permission is judged at its mprotect). Growth works on the one mapping
 * at addr; a move-only call (MREMAP_FIXED or MREMAP_DONTUNMAP, old and new
 * lengths equal) may span several since 6.17 (up to REMAP_SPAN_MAX here),
 * and with MREMAP_DONTUNMAP adds the private writable bytes of them all
 * (found in review: a read-only page first, then 16 MiB writable, was let
 * through as the page: 96.7 MiB held at 64M until the sweep). A copy or move of (part of)
 * the main stack would be a second mapping that grows down by page
 * faults, up to RLIMIT_STACK, never notified: refused, as MAP_GROWSDOWN
 * is; so is a call on maps that cannot be read (fail closed). Another
 * thread may remap the range between this look and the call: growth it
 * lets through so is unjudged, which the sweep blames. */
static struct remap_look remap_source(pid_t tgid, pid_t tid, uint64_t addr, uint64_t len, struct mem_work *w)
{
        struct remap_look r = { 0 };
        struct procfs_maps m;
        struct proc_vma v;
        uint64_t end = addr + len < addr ? UINT64_MAX : addr + len;
        int k = 0;
        procfs_maps_open(&m, tgid, tid, addr, 0);
        while (procfs_maps_next(&m, &v) && (v.start < end || (k == 0 && v.start <= addr))) {
                if (++k > REMAP_SPAN_MAX) {
                        r.refused = true;
                        break;
                }
                if (!strcmp(v.name, "[stack]"))
                        r.refused = true;
                bool private_rw = v.perms[3] == 'p' && v.perms[1] == 'w';
                if (v.start <= addr)
                        r.first_counts = private_rw || (vma_anon_shared(&v) && !privs_size_objects());
                if (private_rw && v.start < end)
                        r.private_rw += vma_overlap(&v, addr, end);
        }
        if (lookup_close(&m, w) < 0)
                r.refused = true;
        return r;
}

/* Whether mmap flags ask for a shared mapping: MAP_SHARED or
 * MAP_SHARED_VALIDATE. MAP_DROPPABLE (found in review: taken for shared,
 * its memory was never judged as private and its calls banked creations
 * of objects that never were) is private; other types fail (EINVAL). */
static bool map_shared(uint64_t flags)
{
        return (flags & MAP_TYPE) == MAP_SHARED || (flags & MAP_TYPE) == MAP_SHARED_VALIDATE;
}

uint64_t mem_request_growth(int nr, const uint64_t args[6], uint64_t cur_brk, bool *need_brk)
{
        *need_brk = false;
        switch (nr) {
        case SYS_mmap:
                /* /dev/zero mapped shared (a file mapping, not
                 * MAP_ANONYMOUS) keeps its file offset, and an object
                 * counts to the furthest byte its mappings reach
                 * (inode_extent_add): charged so (found in review: 4 KiB
                 * mapped at offset 1 GiB, charged 4 KiB, counted 1 GiB at
                 * the next exact re-read, and innocent requests were
                 * killed). Past the end the kernel fails it (EOVERFLOW). */
                if (map_shared(args[3]) && !(args[3] & MAP_ANONYMOUS))
                        return PAGE_UP(args[1]) + args[5] < args[5] ? UINT64_MAX / 4 : PAGE_UP(args[1]) + args[5];
                return PAGE_UP(args[1]);
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
                /* of a private writable mapping (remap_source) */
                uint64_t old = PAGE_UP(args[1]), new = PAGE_UP(args[2]);
                if (args[3] & MREMAP_DONTUNMAP)
                        return new; /* the old range stays mapped */
                return new > old ? new - old : 0;
        }
        case SYS_shmget:
                /* a segment is created only with IPC_PRIVATE or IPC_CREAT
                 * (in 4 KiB pages here; a SHM_HUGETLB one takes whole huge
                 * pages: mem_limit_notify rounds it, shm_segment_bytes) */
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

/* Whether threads `a` and `b` share one address space now: kcmp(2)
 * KCMP_VM, never asked of a process whose exec may be under way (kcmp
 * waits for the exec, which a stalled file system can hold). Live threads:
 * a leader that has exited has no address space (found in review: asked
 * of it, a CLONE_VM child looked unshared and was counted twice). */
static bool kcmp_vm(struct tsandbox *sb, pid_t a, pid_t b)
{
        sb->mem_work.kcmp++;
        return syscall(SYS_kcmp, a, b, KCMP_VM, 0, 0) == 0;
}

/* Whether processes `a` and `b` share one address space: the same as_id,
 * kept at birth and exec (no syscall: found in review, a kcmp with every
 * other process, 2 us each, made each request of a sandbox of 3,000
 * processes cost 55 ms under the tracer's one lock, and each exact
 * re-read a kcmp of every pair). A process whose exec is pending stands
 * alone - unless it is a vfork child still traced to its exec's event
 * (until then the address space is its creator's: found in review,
 * counted alone it counted its creator's memory a second time, and
 * programs spawning from threads were killed near twice their size). */
static bool same_address_space(const struct proc_entry *a, const struct proc_entry *b)
{
        return (!a->exec_tid || a->vfork_child) && (!b->exec_tid || b->vfork_child) && a->as_id == b->as_id;
}

/* After an exec of `e` is over (it may have failed; `tid`: its thread seen
 * again, alive): it keeps its as_id only if it still shares the address
 * space of another live process of that id whose exec is not pending
 * (whose as_id is current: kept at its own execs; one whose exec is
 * pending is not asked, kcmp would wait for it) - one kcmp, through the
 * thread last read of that one (view_tid: its leader may have exited).
 * A vfork child whose exec failed so keeps sharing, and its mark (found in
 * review: a PATH search - posix_spawnp, execvp - fails an exec per
 * directory before one runs, and the child was counted on its own from
 * the second, its creator's memory twice). Else, or when none can be
 * asked, a new id (alone: counted on its own, the safe side). */
static void as_refresh(struct tsandbox *sb, struct proc_entry *e, pid_t tid)
{
        for (struct proc_entry *o = sb->procs.head; o; o = o->next)
                if (o != e && !o->exited && !o->exec_tid && o->as_id == e->as_id) {
                        if (kcmp_vm(sb, view_of(o), tid))
                                return;
                        break;
                }
        e->as_id = ++sb->as_ids;
        e->vfork_child = false;
}

/* Whether `e` shares its address space with another live entry (clone(2)
 * CLONE_VM without CLONE_THREAD, a vfork child before its exec). */
static bool shares_vm(struct tsandbox *sb, struct proc_entry *e)
{
        if (!sb->vm_clones)
                return false; /* every entry has an address space of its own */
        for (struct proc_entry *o = sb->procs.head; o; o = o->next)
                if (o != e && !o->exited && same_address_space(o, e))
                        return true;
        return false;
}

/* Whether another entry counts `e`'s address space in its place, at an
 * exact re-read (every e->data just read): the sharer that read the most
 * of it, the first of them on a tie. A sharer whose exit is not seen yet
 * reads nothing (found in review: counted in place of its live sharer
 * because it came first, it let a vfork child's 48 MiB go uncounted, so
 * that another child got 40 MiB at 64M). */
static bool counted_elsewhere(struct tsandbox *sb, const struct proc_entry *e)
{
        if (!sb->vm_clones)
                return false;
        bool before = true;
        for (struct proc_entry *o = sb->procs.head; o; o = o->next) {
                if (o == e) {
                        before = false;
                        continue;
                }
                if (!o->exited && same_address_space(o, e) && (o->data > e->data || (o->data == e->data && before)))
                        return true;
        }
        return false;
}

/* Whether the image `e` had when its pending exec was let run is gone:
 * its maps descriptor, opened then, holds that address space (proc(5):
 * proc_mem_open() pins the mm) and reads nothing once the address space
 * has no users - the exec replaced it, or the process is gone. A read
 * takes neither exec_update_lock nor, once the address space is gone,
 * its mmap lock: it never waits for an exec under way. */
static bool exec_image_gone(const struct proc_entry *e)
{
        char c;
        return pread(e->exec_maps_fd, &c, 1, 0) != 1;
}

/* Look at `e`'s pending exec: once it has replaced the image, nothing of
 * the new one is judged. `over`: the exec is over (its thread was seen
 * again); a failed one leaves the judgement as it was. */
static void exec_settle(struct proc_entry *e, bool over)
{
        if (e->exec_maps_fd < 0)
                return;
        bool gone = exec_image_gone(e);
        if (gone)
                e->judged = 0;
        if (gone || over) {
                close(e->exec_maps_fd);
                e->exec_maps_fd = -1;
        }
}

/* Anonymous shared memory is not in statm field 6: it is read from
 * /proc/<pid>/maps ("s" mappings of "/dev/zero (deleted)", one shmem
 * object per MAP_SHARED|MAP_ANONYMOUS mapping). An object counts once
 * across the sandbox (a forked child maps the same memory), by the
 * furthest byte any of its mappings reaches (offset + length): the part
 * of a mapping unmapped from its middle is still the object's, and even a
 * read-only mapping allocates its pages when read. */
struct inode_set {
        struct {
                unsigned long ino;
                uint64_t extent;
                bool used;
                bool exact; /* extent is the object's size, from the kernel (object_real_size) */
                bool unjudged; /* no creation the sandbox was let make stands for it */
                bool fresh;    /* so found in the re-read under way */
        } *v;
        size_t n, cap; /* cap: 0 or a power of two, at most half full */
        uint64_t lookups, probes; /* objects looked up, slots probed (mem_work) */
};

/* Where object `ino` is, or would go, in the set's open-addressed table
 * (found in review: a linear search per mapping made one exact re-read of
 * 60,000 shared objects take 6.4 s). */
static size_t inode_slot(struct inode_set *s, unsigned long ino)
{
        size_t i = (size_t)(ino * 0x9e3779b97f4a7c15ull) & (s->cap - 1);
        s->probes++;
        while (s->v[i].used && s->v[i].ino != ino) {
                i = (i + 1) & (s->cap - 1);
                s->probes++;
        }
        return i;
}

/* Make room for one more object. Returns false out of memory. */
static bool inode_set_grow(struct inode_set *s)
{
        if (2 * (s->n + 1) <= s->cap)
                return true;
        struct inode_set t = { .cap = s->cap ? s->cap * 2 : 64 };
        t.v = calloc(t.cap, sizeof(*t.v));
        if (!t.v)
                return false;
        for (size_t i = 0; i < s->cap; i++)
                if (s->v[i].used)
                        t.v[inode_slot(&t, s->v[i].ino)] = s->v[i];
        t.n = s->n;
        free(s->v);
        *s = t;
        return true;
}

static void shared_known_free(struct tsandbox *sb)
{
        if (sb->shared_known) {
                free(sb->shared_known->v);
                free(sb->shared_known);
                sb->shared_known = NULL;
        }
}

/* Add to `s` the objects of `old` it does not hold, at their extents in
 * `old` (remembered sizes: nothing is counted). Out of memory, some are
 * left out. */
static void inode_set_keep(struct inode_set *s, const struct inode_set *old)
{
        for (size_t i = 0; i < old->cap; i++) {
                if (!old->v[i].used || !inode_set_grow(s))
                        continue;
                size_t j = inode_slot(s, old->v[i].ino);
                if (!s->v[j].used) {
                        s->v[j] = old->v[i];
                        s->n++;
                }
        }
}

/* The extent the set holds for object `ino`, or 0 when it has none;
 * *exact (may be NULL) says whether it is the object's size. */
static uint64_t inode_extent_of(struct inode_set *s, unsigned long ino, bool *exact)
{
        if (exact)
                *exact = false;
        if (!s || !s->cap)
                return 0;
        size_t i = inode_slot(s, ino);
        if (!s->v[i].used)
                return 0;
        if (exact)
                *exact = s->v[i].exact;
        return s->v[i].extent;
}

/* Whether the set holds object `ino` as one no creation stands for. */
static bool inode_unjudged(struct inode_set *s, unsigned long ino)
{
        if (!s || !s->cap)
                return false;
        size_t i = inode_slot(s, ino);
        return s->v[i].used && s->v[i].unjudged;
}

/* Whether /proc/<pid>/map_files cannot be followed (no
 * CAP_CHECKPOINT_RESTORE: an unprivileged tracer): not tried again. */
static bool map_files_denied;
/* Objects an exact re-read may size through map_files (each a path walk
 * through /proc and the holder's mmap lock, about 10 us): past them,
 * sizes are inferred and the objects looked at again by the next re-read
 * (found in CI: 60,000 objects met at once held the tracer lock for 0.7 s,
 * and several seconds under ASan, and another run's start timed out). */
#define MAP_FILES_PER_REREAD 2048
static _Thread_local unsigned stat_budget;

static void search_lower(void)
{
        if (search_raised)
                privs_search(false);
        search_raised = false;
}

/* The size of the anonymous shared object mapped at `v` in the address
 * space of thread `view` (a shmem file's i_size: the length it was made
 * with, which no mapping of it can change; its pages lie within it), from
 * stat(2) through /proc/<view>/map_files/<start>-<end> (proc(5): following
 * the link needs CAP_CHECKPOINT_RESTORE and ptrace read access). 0 when it
 * cannot be told: no such capability, the mapping changed since the maps
 * were read (another inode there), or it is gone. */
static uint64_t object_real_size(pid_t view, const struct proc_vma *v)
{
        if (map_files_denied || !stat_budget)
                return 0;
        stat_budget--;
        char path[96];
        struct stat st;
        snprintf(path, sizeof(path), "/proc/%d/map_files/%lx-%lx", (int)view, (unsigned long)v->start,
                 (unsigned long)v->end);
        /* the directory is 0500, its process's uid: entered with
         * CAP_DAC_READ_SEARCH, which the tracer holds for such looks (an
         * unprivileged tracer, of the sandbox's uid, needs none); raised
         * once a re-read, lowered at its end (search_lower) */
        if (!search_raised)
                search_raised = privs_search(true) == 0;
        if (stat(path, &st) < 0) {
                if (errno == EPERM || errno == EACCES) {
                        map_files_denied = true;
                        log_debug("anonymous shared objects are sized by their mappings: %s: %s", path,
                                  strerror(errno));
                }
                return 0;
        }
        if (st.st_ino != v->inode || st.st_size <= 0)
                return 0;
        return PAGE_UP((uint64_t)st.st_size);
}

/* Keep `bytes`, the size of an anonymous shared object `sb` was let make,
 * until an exact re-read that reads every holder (sandbox-wide: the object
 * may first be seen in another process, its creator gone). Found in
 * review: 8 kept a process, the rest counted a page each once cut short
 * (240 MiB held at 64M). */
void mem_limit_creation(struct tsandbox *sb, uint64_t bytes)
{
        if (sb->ncreated == sb->created_cap) {
                size_t cap = sb->created_cap ? 2 * sb->created_cap : 16;
                uint64_t *v = sb->ncreated < CREATED_MAX ? realloc(sb->created, cap * sizeof(*v)) : NULL;
                if (!v) {
                        /* full (found in review: with no re-read reading
                         * every holder - a failed exec's thread that makes
                         * no further call - it grew without end, and each
                         * object met scanned it): objects no request made
                         * are not told from others until it is cleared;
                         * the size is kept for inference, the largest */
                        sb->created_lost = true;
                        if (bytes > sb->created_lost_max)
                                sb->created_lost_max = bytes;
                        return;
                }
                sb->created = v;
                sb->created_cap = cap;
        }
        sb->created[sb->ncreated++] = bytes;
}

/* Take from `sb`'s creations the one to stand for an object: the largest
 * (largest), else the smallest at least `at_least` - and only one of
 * exactly that size when `same`. Returns its size, or 0 when there is
 * none such. */
static uint64_t created_take(struct tsandbox *sb, uint64_t at_least, bool largest, bool same)
{
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < sb->ncreated; i++)
                if (sb->created[i] >= at_least &&
                    (best == SIZE_MAX || (largest ? sb->created[i] > sb->created[best]
                                                  : sb->created[i] < sb->created[best])))
                        best = i;
        if (best == SIZE_MAX)
                return largest && sb->created_lost_max >= at_least ? sb->created_lost_max : 0;
        uint64_t size = sb->created[best];
        if (same && size != at_least)
                return 0;
        sb->created[best] = sb->created[--sb->ncreated];
        return size;
}

/* The size to count for object `ino`, first met in this exact re-read at
 * `extent`: an object never shrinks (its pages stay while any mapping of
 * it lives, however little of it is still mapped), so at least what the
 * last exact re-read counted for it, or - new since then - the size of the
 * largest object a process of the sandbox was let create since then
 * (taken; any process's: the creator's address space may be read through
 * a sharer, the object through a fork child). Found in review: objects
 * touched and then unmapped but for their first page counted 4 KiB each,
 * 192 MiB held at 64M. Which creation made which object cannot be told
 * from the maps, and the smallest one as large as the extent was the
 * size of a tiny object already gone (found in review: 252 MiB held at
 * 64M): the largest errs towards more, never less. */
static uint64_t object_size(struct tsandbox *sb, unsigned long ino, uint64_t extent, bool *exact)
{
        uint64_t k = inode_extent_of(sb->shared_known, ino, exact);
        if (k)
                return *exact || k > extent ? k : extent;
        uint64_t size = created_take(sb, extent, true, false);
        return size ? size : extent;
}

/* Whether a grant of anonymous shared memory of `sb` (a creation whose
 * call is not seen over) of at least `bytes` can stand for an object
 * found: the smallest such, which then stands for no other (found in
 * review: one grant asleep in its call stood for any number of objects no
 * request made, 96 MiB at 64M) and, once over, adds no creation. */
static bool shared_grant_stands(struct tsandbox *sb, uint64_t bytes, bool same)
{
        struct mem_grant *best = NULL;
        for (struct proc_entry *e = sb->procs.head; e; e = e->next)
                for (struct mem_grant *g = e->grants; g; g = g->next)
                        if (g->shared && !g->stood && (same ? g->bytes == bytes : g->bytes >= bytes) &&
                            (!best || g->bytes < best->bytes))
                                best = g;
        if (best)
                best->stood = true;
        return best != NULL;
}

/* Whether a creation of `sb` (over, or a call in flight) stands for an
 * object of `bytes` found by an exact re-read, taken: one of that very
 * size first (an anonymous shared object's size is the length it was made
 * with), then the smallest larger one (/dev/zero mapped at an offset is
 * charged offset and length). Found in review: matched smallest-larger in
 * the order the maps list objects, a 1 MiB object whose call was in flight
 * took the creation of an 8 MiB one, which was then taken for an object no
 * request made and its holder killed in place of the asker. */
static bool creation_stands(struct tsandbox *sb, uint64_t bytes)
{
        return created_take(sb, bytes, false, true) || shared_grant_stands(sb, bytes, true) ||
               created_take(sb, bytes, false, false) || shared_grant_stands(sb, bytes, false);
}

/* What `extent` bytes of object `ino`, mapped at `v` in the address space
 * of process `holder`, add to what the set has seen: an object first met
 * counts its size from the kernel (object_real_size) where that can be
 * had, else its object_size() in `sb`; once its size is known, nothing
 * more. An object first met, sized by the kernel, that no creation the
 * sandbox was let make stands for (one since the last exact re-read, or
 * one whose call is not seen over) was never judged: its size goes to
 * holder->shared_unjudged (found in review: /dev/zero dup2()'d over a
 * descriptor after the tracer had found it a regular file made objects no
 * request was charged for - 120 MiB held at 64M, and innocent requests
 * killed while the holder never was). */
static uint64_t inode_extent_add(struct inode_set *s, unsigned long ino, uint64_t extent, struct tsandbox *sb,
                                 struct proc_entry *holder, const struct proc_vma *v)
{
        bool room = inode_set_grow(s);
        s->lookups++;
        size_t i = s->cap ? inode_slot(s, ino) : 0;
        if (!s->cap || !s->v[i].used) {
                bool exact = false;
                uint64_t known = inode_extent_of(sb->shared_known, ino, &exact);
                uint64_t real = known && exact ? known : object_real_size(view_of(holder), v);
                bool unjudged = known && inode_unjudged(sb->shared_known, ino), fresh = false;
                if (real) {
                        if (!known && !creation_stands(sb, real) && !sb->created_lost)
                                unjudged = fresh = true;
                        exact = true;
                        extent = real;
                } else {
                        sb->sizes_inferred = true;
                        extent = object_size(sb, ino, extent, &exact);
                }
                if (fresh)
                        holder->shared_unjudged_new += extent;
                else if (unjudged)
                        holder->shared_unjudged += extent;
                if (!room)
                        return extent; /* out of memory: may count twice, never less */
                s->v[i].used = true;
                s->v[i].ino = ino;
                s->v[i].extent = extent;
                s->v[i].exact = exact;
                s->v[i].unjudged = unjudged;
                s->v[i].fresh = fresh;
                s->n++;
                return extent;
        }
        if (s->v[i].exact)
                return 0;
        uint64_t more = extent > s->v[i].extent ? extent - s->v[i].extent : 0;
        s->v[i].extent += more;
        return more;
}

/* The anonymous shared memory of process `e` of `sb` not seen yet, each
 * object at its object_size(), through its thread e->view_tid (0: the
 * leader; once the leader has exited its view has no address space -
 * found in review: its shared memory was never counted); at least
 * e->shared when its maps cannot be read whole (out of descriptors...:
 * *whole is then cleared), but none once its address space is gone (an
 * exit not seen yet: what it mapped is counted through its sharers, if
 * any). */
static uint64_t shared_anon(struct tsandbox *sb, struct proc_entry *e, struct inode_set *seen, bool *whole)
{
        struct procfs_maps m;
        struct proc_vma v;
        uint64_t sum = 0;
        procfs_maps_open(&m, e->pid, e->view_tid, 0, PROCFS_MAPS_SHARED);
        while (procfs_maps_next(&m, &v))
                if (vma_anon_shared(&v))
                        sum += inode_extent_add(seen, v.inode, v.offset + (v.end - v.start), sb, e, &v);
        int r = procfs_maps_close(&m);
        /* -ENOENT through the leader (entry_statm found no other thread
         * with an address space): none left to read */
        if (r < 0 && (r != -ENOENT || e->view_tid)) {
                *whole = false;
                if (sum < e->shared)
                        return e->shared; /* not read whole: never less than before */
        }
        return sum;
}

/* What [addr, addr+len) of thread `tid`'s address space holds, from
 * /proc/<tgid>/task/<tid>/maps: *counted, the bytes already in the measure
 * (private writable mappings, statm field 6, and writable anonymous shared
 * ones), *private of them the private writable ones; *convertible, the
 * bytes that write permission would bring into it (private or anonymous
 * shared mappings not yet writable). Holes and file-backed shared mappings
 * are none of these. Returns false if unreadable. */
static bool range_counts(pid_t tgid, pid_t tid, uint64_t addr, uint64_t len, uint64_t *counted,
                         uint64_t *private, uint64_t *convertible, struct mem_work *w)
{
        struct procfs_maps m;
        struct proc_vma v;
        uint64_t end = addr + len;
        *counted = *private = *convertible = 0;
        if (end < addr)
                return false;
        bool any = false; /* none at all: the address space is gone */
        procfs_maps_open(&m, tgid, tid, addr, 0);
        while (procfs_maps_next(&m, &v)) {
                any = true;
                if (v.start >= end)
                        break; /* maps is sorted by address */
                uint64_t ov = vma_overlap(&v, addr, end);
                bool priv = v.perms[3] == 'p';
                if (!priv && !vma_anon_shared(&v))
                        continue;
                if (v.perms[1] == 'w' || !priv) { /* anonymous shared memory counts unwritable too */
                        *counted += ov;
                        if (priv)
                                *private += ov;
                } else
                        *convertible += ov;
        }
        return lookup_close(&m, w) == 0 && any;
}

/* The growth of an mprotect, a MAP_FIXED mmap or an MREMAP_FIXED mremap,
 * net of what the range already counts: re-protecting writable memory
 * adds nothing, and a fixed mapping (a fixed mremap's destination, of its
 * new length: found in review, a move onto 24 MiB of private memory was
 * charged as if none left, and killed) replaces the private memory it
 * lands on (not shared memory, which lives on while another process maps
 * it). Others keep `growth`. The net is what the measure gains: a fixed
 * anonymous shared mapping still brings a whole shared object, which the
 * caller records in full. */
static uint64_t net_growth(pid_t tgid, pid_t tid, int nr, const uint64_t args[6], uint64_t growth,
                           struct mem_work *w)
{
        uint64_t counted, private, convertible;
        bool fixed = nr == SYS_mmap && (args[3] & MAP_FIXED) && !(args[3] & MAP_FIXED_NOREPLACE);
        bool remap_fixed = nr == SYS_mremap && (args[3] & MREMAP_FIXED);
        if (nr != SYS_mprotect && nr != SYS_pkey_mprotect && !fixed && !remap_fixed)
                return growth;
        if (!range_counts(tgid, tid, remap_fixed ? args[4] : args[0], PAGE_UP(remap_fixed ? args[2] : args[1]),
                          &counted, &private, &convertible, w))
                return growth;
        if (fixed || remap_fixed)
                return growth > private ? growth - private : 0;
        return convertible < growth ? convertible : growth;
}

/* Grants. An allowed request runs only after the tracer's answer, so a
 * statm read in between does not show it yet: until its call is surely
 * over, its growth counts on top of the measure, or a request judged
 * meanwhile (another thread's, another process's) could count on the same
 * room. Over-counting is the worst a grant does. */
static void grant_add(struct proc_entry *e, pid_t tid, uint64_t bytes, uint64_t faults, bool shared, bool alone)
{
        struct mem_grant *g = malloc(sizeof(*g));
        if (!g) {
                e->grants_kept += bytes; /* safe side: counted until the process exits */
                return;
        }
        *g = (struct mem_grant){ .tid = tid, .bytes = bytes, .base = e->data, .faults = faults,
                                 .shared = shared, .alone = alone, .next = e->grants };
        e->grants = g;
}

static void grant_drop(struct proc_entry *e, struct mem_grant **pp)
{
        struct mem_grant *g = *pp;
        if (g->shared) {
                e->shared += g->bytes; /* see grants_settle */
                /* the object it made, for the next exact re-read - unless
                 * one already stood for it */
                if (e->sb && !g->stood)
                        mem_limit_creation(e->sb, g->bytes);
        }
        else
                e->judged += g->bytes; /* what it let in was judged */
        *pp = g->next;
        free(g);
}

/* What `e` was let have on top of its judgement, in its statm (data): its
 * private grants. Anonymous shared grants never show in statm: counted as
 * room for private growth they would let a stack grow that far unjudged. */
static uint64_t grants_allowed(const struct proc_entry *e)
{
        uint64_t sum = e->grants_kept;
        for (const struct mem_grant *g = e->grants; g; g = g->next)
                if (!g->shared)
                        sum += g->bytes;
        return sum;
}

/* Whether thread `tid` of `e` has an exec pending. */
static bool exec_thread(const struct proc_entry *e, pid_t tid)
{
        if (tid == e->exec_tid)
                return true;
        for (unsigned i = 0; i < e->n_exec_earlier; i++)
                if (e->exec_earlier[i] == tid)
                        return true;
        return false;
}

/* Whether grant `g`'s thread is past its calls (thread_past_calls), as
 * far as can be told without waiting: a process with an exec under way
 * holds its exec_update_lock from exec_mmap() on, which /proc/<tid>/stat,
 * wchan and syscall take, and once it does no thread but the exec's is
 * left, under its own tid or the leader's. So with an exec pending, only
 * another thread's stat is read (found in review: a thread's failed exec
 * kept another thread's grant counted, touched and all, and fitting
 * requests - another process's too - were killed, 5 of 5). */
static bool grant_thread_past(const struct proc_entry *e, struct mem_grant *g)
{
        char state = 0;
        bool past = !e->exec_tid ? thread_past_calls(e->pid, g->tid, g->faults, false, &state)
                                 : g->tid != e->pid && !exec_thread(e, g->tid) &&
                                           thread_past_calls(e->pid, g->tid, g->faults, true, &state);
        if (state != 'R')
                g->running_ns = 0;
        else if (!g->running_ns)
                g->running_ns = mono_ns();
        return past;
}

/* Drop the grants of `e` that are surely over: thread `tid`'s, which asks
 * again (0: none), and, when `look`, those whose thread is past its calls.
 * Their private memory is in any statm read after this; anonymous shared
 * memory is only re-read from the maps on the exact path, so it moves into
 * e->shared (counted twice at worst until that re-read). */
static void grants_settle(struct proc_entry *e, pid_t tid, bool look)
{
        for (struct mem_grant **pp = &e->grants; *pp;)
                if ((*pp)->tid == tid || (look && grant_thread_past(e, *pp)))
                        grant_drop(e, pp);
                else
                        pp = &(*pp)->next;
}

/* With e->data just read: drop the private grants made while their thread
 * was alone in its address space whose growth the measure now shows.
 * Nothing but that thread's own call could change the address space
 * between the answer and the end of the call, so growth by the grant
 * means the call has done its part, even while its thread still runs
 * (where thread_past_calls cannot tell). */
static void grants_settle_grown(struct proc_entry *e)
{
        for (struct mem_grant **pp = &e->grants; *pp;)
                if ((*pp)->alone && !(*pp)->shared && e->data >= (*pp)->base + (*pp)->bytes)
                        grant_drop(e, pp);
                else
                        pp = &(*pp)->next;
}

/* `e`'s statm as it is now was let in: judged (with the ledger within the
 * limit). `brk`: its start_brk now (from a stat read anyway; 0: read it).
 * Not while an exec it was let run is not seen over. */
static void bless(struct proc_entry *e, uint64_t brk)
{
        /* its stat can wait on the exec, and the statm may be the new
         * image's: nothing is raised until the exec is seen over, only
         * lowered by each reading (entry_read) - else each grant that
         * ends, adding its bytes (grant_drop), raised it for good (found
         * in review: a failed exec whose thread slept on, then 20 x (map,
         * unmap 8 MiB): judged 160 MiB, and its stack growth never
         * blamed, 294 MiB held at 64M) */
        if (e->exec_tid)
                return;
        if (!brk) {
                struct proc_stat st;
                if (thread_stat(e, view_of(e), &st) == 0)
                        brk = st.start_brk;
        }
        e->judged = e->data;
        e->judged_brk = brk;
}

/* After an exact re-read that kept the ledger within the limit: every
 * live address space's measure was judged. */
static void bless_all(struct tsandbox *sb)
{
        for (struct proc_entry *e = sb->procs.head; e; e = e->next)
                if (!e->exited && !e->mem_killed)
                        bless(e, 0);
}

static void kill_process(struct proc_entry *e, pid_t pid, bool parked);
static void memory_killed(struct tsandbox *sb, struct proc_entry *e, pid_t pid, const struct seccomp_notif *n,
                          uint64_t requested, uint64_t unjudged, uint64_t ledger);

/* After an exact re-read that finds the sandbox over its limit (`ledger`:
 * with what is asked, if a request is judged): a process holding anonymous shared objects that no
 * request of the sandbox made (shared_unjudged) is killed, as a stack
 * grower is by the sweep - it holds memory nobody judged, and requests
 * that fit would otherwise be killed for it. Returns whether any was. */
static bool blame_unjudged_objects(struct tsandbox *sb, uint64_t ledger)
{
        bool any = false;
        for (struct proc_entry *e = sb->procs.head; e; e = e->next)
                if (e->shared_unjudged && !e->exited && !e->mem_killed) {
                        log_debug("sandbox %llu: process %d holds %llu bytes of shared objects no request made; killed",
                                  (unsigned long long)sb->id, e->pid, (unsigned long long)e->shared_unjudged);
                        kill_process(e, e->pid, false);
                        memory_killed(sb, e, e->pid, NULL, 0, e->shared_unjudged, ledger);
                        any = true;
                }
        return any;
}

/* The sum of the ledger (bytes), re-reading every live entry and the SysV
 * segments first when `exact`; `tid` is the requesting thread (0: none). */
static uint64_t ledger_sum(struct tsandbox *sb, bool exact, pid_t tid)
{
        struct inode_set seen = { 0 };
        bool whole = true; /* every holder's maps were read */
        if (exact) {
                stat_budget = MAP_FILES_PER_REREAD;
                shm_refresh(sb, tid);
                sb->mem_unsettled = 0; /* what it stood for is re-read below */
                for (struct proc_entry *e = sb->procs.head; e; e = e->next) {
                        if (e->exited)
                                continue;
                        /* grants first: one that ends after the re-read
                         * must still count */
                        grants_settle(e, tid, true);
                        /* before its measure: a statm that shows the new
                         * image is never held against the old judgement */
                        if (e->exec_tid)
                                exec_settle(e, false);
                        entry_read(e, 0);
                }
        }
        uint64_t sum = sb->shm_bytes + sb->fork_copy_bytes + sb->mem_unsettled;
        for (struct proc_entry *e = sb->procs.head; e; e = e->next) {
                if (e->exited)
                        continue; /* its address space is gone */
                bool dup = false;
                if (exact) {
                        /* one address space counts once (here; between
                         * exact re-reads each entry counts its own last
                         * reading, since a sharer's exec or exit ends the
                         * sharing unseen) */
                        dup = e->vm_dup = counted_elsewhere(sb, e);
                        /* every sharer's maps: an object counts once
                         * (seen), and one whose exit is not seen yet
                         * reads none */
                        if (!e->exec_tid) { /* else as last read */
                                e->shared_unjudged = e->shared_unjudged_new = 0;
                                e->shared = shared_anon(sb, e, &seen, &whole);
                        } else {
                                whole = false;
                        }
                        grants_settle_grown(e);
                        /* never above this reading. The invariant: after
                         * every reading judged <= data, and a grant is in
                         * the ledger until it ends - so what the sweep lets
                         * a process have is never more than the ledger's
                         * share for it, and a measure over the limit always
                         * finds someone grown past it. A grant taken as
                         * grown here may already be in a judgement taken
                         * from a reading that held it (another thread's
                         * request: 72 MiB held at 64M, found in review), or
                         * have failed while another thread grew the stack
                         * (91 MiB held at 64M): added on top, each let that
                         * much grow unblamed. */
                        judged_within_reading(e);
                }
                sum += (dup ? 0 : e->data) + e->shared + proc_entry_grants(e);
        }
        search_lower();
        sb->mem_work.objects += seen.lookups;
        sb->mem_work.object_probes += seen.probes;
        if (!exact) {
                free(seen.v);
                return sum;
        }
        /* the objects and sizes seen are what the next re-read holds them
         * to; an object made since this one and not seen in it is gone -
         * when every holder was read. Else (a process whose exec is not
         * seen over is not read: its maps may wait on the exec) the known
         * sizes and the creations stay too (found in review: an object
         * held only by such a process, cut to a page, was forgotten and
         * counted 4 KiB at the next re-read, 292 MiB held at 64M). */
        if (!whole && sb->shared_known)
                inode_set_keep(&seen, sb->shared_known);
        struct inode_set *known = sb->shared_known ? sb->shared_known : calloc(1, sizeof(*known));
        if (known) {
                free(known->v);
                *known = seen;
                sb->shared_known = known;
        } else {
                free(seen.v);
        }
        if (whole) {
                sb->ncreated = 0;
                sb->created_lost = false;
                sb->created_lost_max = 0;
        }
        /* objects found that no creation stands for count as unjudged -
         * unless another object of this re-read had its size inferred (its
         * mapping changed under the look): it may have taken the creation
         * that stood for one of them */
        for (size_t i = 0; sb->sizes_inferred && known && i < known->cap; i++)
                known->v[i].unjudged &= !known->v[i].fresh;
        for (struct proc_entry *e = sb->procs.head; e; e = e->next) {
                if (!sb->sizes_inferred)
                        e->shared_unjudged += e->shared_unjudged_new;
                e->shared_unjudged_new = 0;
        }
        sb->sizes_inferred = false;
        return sum;
}

/* Exact re-reads cost what a sandbox makes them cost, under tracer_lock:
 * each user's are held to a share of the tracer's time (read_budget.h). */
static struct read_budget *exact_budgets;

/* Whether `sb`'s user may start an exact look now; logged once a sandbox
 * when not. *start_ns: now, for exact_spent(). */
static bool exact_allowed(struct tsandbox *sb, uint64_t *start_ns)
{
        *start_ns = mono_ns();
        if (read_budget_allows(&exact_budgets, sb->uid, *start_ns))
                return true;
        if (!sb->mem_budget_logged) {
                sb->mem_budget_logged = true;
                log_msg("sandbox %llu: uid %u's exact memory re-reads are over their share of the tracer's time; "
                        "requests that need one wait for it", (unsigned long long)sb->id, (unsigned)sb->uid);
        }
        return false;
}

static void exact_spent(struct tsandbox *sb, uint64_t start_ns)
{
        uint64_t end = mono_ns();
        read_budget_spend(&exact_budgets, sb->uid, start_ns, end);
        uint64_t ns = end > start_ns ? end - start_ns : 0;
        sb->mem_work.exact++;
        sb->mem_work.exact_ns += ns;
        if (ns > sb->mem_work.exact_max_ns)
                sb->mem_work.exact_max_ns = ns;
}

uint64_t mem_limit_exact_wait_ns(struct tsandbox *sb)
{
        uint64_t w = read_budget_wait_ns(&exact_budgets, sb->uid, mono_ns());
        return w ? w : 1;
}

/* Hold memory request `n` for `wait` ns, then judge it again: until its
 * user may take the exact look again (last readings say it would cross
 * the limit, and only the exact ledger may kill for that: grants of memory
 * already unmapped, shared memory already gone, count in the last
 * readings - found in review, a program mapping and unmapping 1 MiB in a
 * loop was killed at 1 GiB), or until a process the limit killed is gone
 * (victim_dying). The sandbox waits, no other. Returns NOTIF_ANSWERED, or
 * ENOMEM out of memory. */
static int mem_hold(struct tsandbox *sb, const struct seccomp_notif *n, int fd_look, uint64_t wait)
{
        struct held_notif *h = held_notif_new(n);
        if (!h)
                return ENOMEM;
        h->fd_look = fd_look;
        h->retry_ns = mono_ns() + wait;
        h->next = sb->mem_held;
        sb->mem_held = h;
        fork_trace_arm_within(wait);
        return NOTIF_ANSWERED;
}

void mem_limit_retry(struct tsandbox *sb)
{
        if (sb->ended || sb->listener < 0 || !sb->mem_held)
                return;
        uint64_t now = mono_ns();
        struct held_notif *due = NULL;
        for (struct held_notif **pp = &sb->mem_held; *pp;) {
                struct held_notif *h = *pp;
                if (h->retry_ns <= now) {
                        *pp = h->next;
                        h->next = due;
                        due = h;
                } else {
                        pp = &h->next;
                }
        }
        while (due) {
                struct held_notif *h = due;
                due = h->next;
                struct seccomp_notif n;
                int fd_look = h->fd_look;
                if (!held_notif_take(sb->listener, h, &n))
                        continue; /* its task died */
                int err = mem_limit_notify(sb, &n, fd_look);
                if (err != NOTIF_ANSWERED)
                        notif_respond(sb->listener, n.id, err);
        }
        held_notif_arm(sb->mem_held, now);
}

/* The exact ledger (every process re-read, and what `tid`'s call needs)
 * if `sb`'s user has time left for it; else the ledger on last readings,
 * which errs towards more where address spaces are shared. *exact says
 * which it is. */
static uint64_t ledger_exact(struct tsandbox *sb, pid_t tid, bool *exact)
{
        uint64_t start;
        *exact = exact_allowed(sb, &start);
        if (!*exact)
                return ledger_sum(sb, false, 0);
        uint64_t sum = ledger_sum(sb, true, tid);
        exact_spent(sb, start);
        return sum;
}

void mem_limit_fork_reserve(struct tsandbox *sb, pid_t tid, uint64_t copy)
{
        if (!copy)
                return;
        struct fork_copy *c = calloc(1, sizeof(*c));
        if (c) {
                *c = (struct fork_copy){ .tid = tid, .bytes = copy, .next = sb->fork_copies };
                sb->fork_copies = c;
        } else {
                /* cannot track its end: keep the bytes reserved for good */
                log_msg("out of memory: %llu bytes stay reserved", (unsigned long long)copy);
        }
        sb->fork_copy_bytes += copy;
}

uint64_t mem_limit_fork_over(struct tsandbox *sb, pid_t tid)
{
        for (struct fork_copy **pp = &sb->fork_copies; *pp; pp = &(*pp)->next)
                if ((*pp)->tid == tid) {
                        struct fork_copy *c = *pp;
                        uint64_t bytes = c->bytes;
                        *pp = c->next;
                        sb->fork_copy_bytes -= bytes;
                        free(c);
                        return bytes;
                }
        return 0;
}

/* A call of thread `tid` of `e` is parked in its notification: an exec let
 * run before by the same thread is over; so is one by another thread once
 * the leader calls and that thread's tid is gone (an exec by a non-leader
 * takes the leader's tid). A leader's call while the exec'ing thread is
 * still there proves nothing: the exec may not have reached de_thread yet
 * (held in a stalled file system before it, say), and the locks it takes
 * after it would then hold the tracer's reads of /proc/<pid>/stat. */
static bool exec_thread_over(const struct proc_entry *e, pid_t exec_tid, pid_t tid)
{
        return tid == exec_tid ||
               (tid == e->pid && syscall(SYS_tgkill, e->pid, exec_tid, 0) < 0 && errno == ESRCH);
}

/* Each thread's exec is told over so; an exec stays pending while any is
 * not (found in review: a second thread's exec overwrote the first's
 * thread, failed, and that thread exited; the leader's next call then
 * took every exec as over while the first was still under way, and the
 * tracer's read of the leader's stat waited on its lock - every sandbox
 * held for as long as a FUSE flush of its close-on-exec file was). */
static void exec_over(struct proc_entry *e, pid_t tid)
{
        if (!e || !e->exec_tid)
                return;
        for (unsigned i = 0; i < e->n_exec_earlier;)
                if (exec_thread_over(e, e->exec_earlier[i], tid))
                        e->exec_earlier[i] = e->exec_earlier[--e->n_exec_earlier];
                else
                        i++;
        if (!exec_thread_over(e, e->exec_tid, tid))
                return;
        if (e->n_exec_earlier) {
                e->exec_tid = e->exec_earlier[--e->n_exec_earlier];
                return;
        }
        if (e->exec_lost)
                return; /* pending for good: never looked at under an exec */
        e->exec_tid = 0;
        exec_settle(e, true);
        if (e->sb && e->sb->vm_clones)
                as_refresh(e->sb, e, tid);
}

/* Whether another live process has an exec pending: its address space is
 * not looked at (kcmp waits for the exec), so it could be `e`'s. */
static bool exec_pending_elsewhere(struct tsandbox *sb, const struct proc_entry *e)
{
        for (struct proc_entry *o = sb->procs.head; o; o = o->next)
                if (o != e && !o->exited && o->exec_tid)
                        return true;
        return false;
}

/* Open `e`'s maps to watch the image an exec is about to replace: only
 * when no exec is under way in the process (the open takes
 * exec_update_lock, which an exec held in a stalled file system keeps),
 * and only when its address space is its own: one shared with another
 * process outlives the exec. -1 when it cannot be watched. */
static int exec_watch_open(struct tsandbox *sb, struct proc_entry *e)
{
        char path[64];
        if (e->exec_tid || (sb->vm_clones && (shares_vm(sb, e) || exec_pending_elsewhere(sb, e))))
                return -1;
        snprintf(path, sizeof(path), "/proc/%d/maps", e->pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        e->exec_maps_fd = fd;
        if (exec_image_gone(e)) { /* a zombie leader's: no address space */
                close(fd);
                fd = e->exec_maps_fd = -1;
        }
        return fd;
}

void mem_limit_exec(struct tsandbox *sb, pid_t tid)
{
        struct proc_entry *e = sb->max_memory ? entry_of(sb, tid) : NULL;
        if (!e)
                return;
        exec_over(e, tid); /* the thread's last exec, if any, is over */
        /* The exec runs after the answer, and may fail (ENOENT...): what
         * the image was judged to have holds until it is seen replaced.
         * When that cannot be watched, nothing is judged from now on (the
         * safe side: a failed exec's process is then blamed for its image). */
        if (e->exec_maps_fd < 0 && (!e->judged || exec_watch_open(sb, e) < 0))
                e->judged = 0;
        if (e->exec_tid && e->exec_tid != tid) {
                if (e->n_exec_earlier < ARRAY_SIZE(e->exec_earlier))
                        e->exec_earlier[e->n_exec_earlier++] = e->exec_tid;
                else
                        e->exec_lost = true;
        }
        e->exec_tid = tid;
}

void mem_limit_vfork_done(struct tsandbox *sb, pid_t child, bool replaced)
{
        struct proc_entry *e = sb && sb->max_memory ? proc_index_find(&sb->procs, child) : NULL;
        if (!e || !e->vfork_child)
                return;
        e->vfork_child = false;
        if (replaced) {
                /* its exec is over: the address space is its new image's */
                e->as_id = ++sb->as_ids;
                e->judged = 0;
                entry_read(e, 0);
                return;
        }
        sb->mem_work.vfork_let_go++;
        if (e->exec_tid)
                e->as_id = ++sb->as_ids; /* cannot be told: alone, the safe side */
}

uint64_t mem_limit_fork_growth(struct tsandbox *sb, const struct seccomp_notif *n, uint64_t *copy_out,
                               uint64_t *wait_ns)
{
        *copy_out = 0;
        *wait_ns = 0;
        if (!sb->max_memory)
                return 0;
        struct proc_entry *e = entry_of(sb, n->pid);
        exec_over(e, (pid_t)n->pid);
        if (n->data.nr == SYS_vfork || (n->data.nr == SYS_clone && (n->data.args[0] & CLONE_VM))) {
                sb->vm_clones = true;
                /* an image watched for another thread's pending exec would
                 * outlive that exec in the child, and so seem kept: it is
                 * judged no more (as when it cannot be watched) */
                if (e && e->exec_maps_fd >= 0) {
                        close(e->exec_maps_fd);
                        e->exec_maps_fd = -1;
                        e->judged = 0;
                }
                return 0; /* the child shares the address space */
        }
        bool unknown = false;
        uint64_t copy;
        if (e) {
                grants_settle(e, (pid_t)n->pid, false); /* its last call is over */
                entry_read(e, n->pid);
                /* the child copies what other threads' calls add first */
                copy = e->data + proc_entry_grants(e);
        } else {
                copy = statm_data((pid_t)n->pid, n->pid, &unknown, NULL);
        }
        uint64_t ledger = ledger_sum(sb, false, 0);
        bool exact = ledger + copy > sb->max_memory;
        if (exact) {
                ledger = ledger_exact(sb, (pid_t)n->pid, &exact); /* settles grants */
                if (!exact) {
                        /* last readings say over, which only the exact
                         * look may hold against it: the fork waits */
                        *wait_ns = mem_limit_exact_wait_ns(sb);
                        return 0;
                }
                if (e)
                        copy = e->data + proc_entry_grants(e);
        }
        if (ledger + copy > sb->max_memory)
                return copy; /* nothing judged: a refusal blesses no growth */
        if (exact)
                bless_all(sb);
        else if (e)
                bless(e, 0);
        *copy_out = copy;
        return 0;
}

/* What `e` was judged to have, in statm bytes (its grants aside): nothing
 * when its image has changed since it was judged (an exec; a changed
 * start_brk shows it). */
static uint64_t judged_now(struct proc_entry *e)
{
        struct proc_stat st;
        /* an exec let run and not seen over: its stat can wait on it, and
         * judged holds while its image is not seen replaced (exec_settle).
         * A start_brk of 0 is unknown, not a new image: the stat hides it
         * without ptrace read access - a process made non-dumpable, seen
         * by an unprivileged tracer (found in review: taken as a new
         * image, it was killed in place of a stack grower) - and a thread
         * that has exited shows none */
        bool same_image = e->exec_tid || thread_stat(e, view_of(e), &st) != 0 || !st.start_brk || !e->judged_brk ||
                          st.start_brk == e->judged_brk;
        return same_image ? e->judged : 0;
}

/* A child registered sharing its address space with other processes (its
 * parent and theirs, found with kcmp) takes the most any of them is judged
 * to have, at most its reading, with its start_brk now. Returns false when
 * it shares with none. */
static bool inherit_judgement(struct tsandbox *sb, struct proc_entry *e)
{
        bool shared = false;
        uint64_t judged = 0;
        if (!sb->vm_clones)
                return false;
        for (struct proc_entry *o = sb->procs.head; o; o = o->next) {
                if (o == e || o->exited || !same_address_space(o, e))
                        continue;
                uint64_t j = judged_now(o);
                shared = true;
                if (j > judged)
                        judged = j;
        }
        if (!shared)
                return false;
        /* no more than the address space holds now (its fresh reading):
         * a sharer not re-read since it gave memory back still holds its
         * old judgement (found in review: a CLONE_VM child took over its
         * parent's 40 MiB, unmapped, the parent exec'd, and the child grew
         * the old main stack into it: 82 MiB held at 64M) */
        if (e->data && judged > e->data)
                judged = e->data;
        struct proc_stat st;
        e->judged = judged;
        e->judged_brk = thread_stat(e, view_of(e), &st) == 0 ? st.start_brk : 0;
        return true;
}

void mem_limit_register(struct tsandbox *sb, struct proc_entry *e, pid_t parent_tid, bool vfork, uint64_t copy)
{
        /* a forked child starts with a copy of its parent's commitment */
        if (!sb->max_memory || e->exited)
                return;
        /* its address space: its creator's (asked of the creating thread,
         * stopped in its fork event, so alive and not exec'ing itself; one
         * whose sibling's exec is pending is not asked, and the child
         * stands alone), or its own */
        struct proc_entry *p = sb->vm_clones && parent_tid > 0 ? entry_of(sb, parent_tid) : NULL;
        if (p && p != e && !p->exited && !p->exec_tid && kcmp_vm(sb, parent_tid, e->pid)) {
                e->as_id = p->as_id;
                e->vfork_child = vfork;
                sb->mem_work.vfork_children += vfork;
        } else {
                e->as_id = ++sb->as_ids;
        }
        entry_read(e, 0);
        /* its copy was judged at the fork; a child sharing its parent's
         * address space (CLONE_VM, vfork) brought nothing of its own and
         * nothing was judged at its fork: it takes over its sharers'
         * judgement (blessing what the address space holds now would pass
         * their unjudged growth as judged; mem_limit_sweep judges a shared
         * address space by the most any of its processes was let have) */
        bool copied_more = false;
        if (!inherit_judgement(sb, e)) {
                bless(e, 0);
                /* found in review: a thread of the parent let map X after
                 * the fork was judged, before the kernel copied the parent
                 * - judged on the child having `copy` - gave the child X
                 * too, blessed here: 2x the limit held, no kill */
                if (copy && e->judged > copy) {
                        e->judged = copy;
                        copied_more = true;
                }
        }
        uint64_t ledger = ledger_sum(sb, false, 0);
        /* the peak is the highest ledger judged within the limit; growth
         * past it that nobody asked for is the sweep's (memory_kill with
         * "unjudged") */
        bool exact = false;
        if (ledger > sb->mem_peak && (ledger = ledger_exact(sb, 0, &exact)) > sb->mem_peak &&
            ledger <= sb->max_memory && exact) {
                bless_all(sb);
                sb->mem_peak = ledger;
        }
        /* what it copied past its judgement, over the limit: the sweep
         * kills it (the most unjudged first) while it is still stopped at
         * birth, before it runs */
        if (copied_more && ledger > sb->max_memory)
                mem_limit_sweep(sb);
}

json_object *mem_work_json(const struct mem_work *w)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, "requests", json_object_new_uint64(w->requests));
        json_object_object_add(o, "mappings_examined", json_object_new_uint64(w->mappings));
        json_object_object_add(o, "kcmp", json_object_new_uint64(w->kcmp));
        json_object_object_add(o, "fd_looks", json_object_new_uint64(w->fd_looks));
        json_object_object_add(o, "fd_looks_on_main_loop", json_object_new_uint64(w->fd_looks_held));
        json_object_object_add(o, "exact_rereads", json_object_new_uint64(w->exact));
        json_object_object_add(o, "exact_ns", json_object_new_uint64(w->exact_ns));
        json_object_object_add(o, "exact_max_ns", json_object_new_uint64(w->exact_max_ns));
        json_object_object_add(o, "shared_objects", json_object_new_uint64(w->objects));
        json_object_object_add(o, "shared_object_probes", json_object_new_uint64(w->object_probes));
        json_object_object_add(o, "vfork_children", json_object_new_uint64(w->vfork_children));
        json_object_object_add(o, "vfork_let_go", json_object_new_uint64(w->vfork_let_go));
        return o;
}

/* Record the memory kill of process `pid` (`e`: its entry, or NULL): the
 * memory_kill event. `n`: the request it is killed for - its thread,
 * syscall and `requested` bytes; NULL for the sweep, which records the
 * `unjudged` bytes instead. */
static void memory_killed(struct tsandbox *sb, struct proc_entry *e, pid_t pid, const struct seccomp_notif *n,
                          uint64_t requested, uint64_t unjudged, uint64_t ledger)
{
        if (e) {
                e->mem_killed = true;
                e->mem_killed_ns = mono_ns();
        }
        sb->mem_kills++;
        json_object *f = json_object_new_object();
        json_object_object_add(f, "pid", json_object_new_int(pid));
        if (n) {
                json_object_object_add(f, "tid", json_object_new_int(n->pid));
                json_object_object_add(f, "syscall", json_object_new_int(n->data.nr));
        }
        json_object_object_add(f, "requested", json_object_new_uint64(requested));
        if (!n)
                json_object_object_add(f, "unjudged", json_object_new_uint64(unjudged));
        json_object_object_add(f, "ledger", json_object_new_uint64(ledger));
        json_object_object_add(f, "limit", json_object_new_uint64(sb->max_memory));
        audit_emit(&sb->audit, "memory_kill", f);
}

/* Whether a process the limit killed in the last VICTIM_WAIT_NS is not
 * seen gone yet. Its memory counts until its exit (which frees it: the
 * kernel drops the address space before it makes the pidfd readable), so
 * a request judged meanwhile would be judged on memory about to go: held
 * instead, as the kernel's OOM killer waits for its victim (found in
 * review: of two Python programs growing to 45 MiB side by side at 64M,
 * both were killed in 13 runs of 40, the second 0.2-0.5 ms after the first
 * on the same ledger). A victim that does not go (stuck in a stalled file
 * system) holds no one past VICTIM_WAIT_NS. */
static bool victim_dying(struct tsandbox *sb)
{
        uint64_t now = mono_ns();
        for (struct proc_entry *e = sb->procs.head; e; e = e->next)
                if (e->mem_killed && !e->exited && now - e->mem_killed_ns < VICTIM_WAIT_NS)
                        return true;
        return false;
}

/* How long a request over the limit only by grants whose thread runs is
 * held, from when that thread was first seen running. */
#define GRANT_RUNNING_WAIT_NS (100 * 1000 * 1000ull)

/* Whether private grants of `sb` whose thread was first seen running (its
 * call may be over and in statm already, counted twice: thread_past_calls
 * cannot tell) less than GRANT_RUNNING_WAIT_NS ago make up `over` bytes.
 * A request over the limit by no more is held, as for a dying victim, and
 * judged again once they are told over (found in CI: a thread whose mmap
 * had waited for mmap_lock ran on from it to its first touch as another
 * thread's 4 KiB request came, and the process was killed on its own
 * mapping counted twice). A thread that runs on longer holds no one. */
static bool grants_running_cover(struct tsandbox *sb, uint64_t over)
{
        uint64_t now = mono_ns(), sum = 0;
        for (struct proc_entry *e = sb->procs.head; e; e = e->next)
                for (const struct mem_grant *g = e->grants; g; g = g->next)
                        if (!g->shared && g->running_ns && now - g->running_ns < GRANT_RUNNING_WAIT_NS)
                                sum += g->bytes;
        return sum >= over;
}

/* SIGKILL process `pid` (`e`: its entry, or NULL) through a pidfd: never a
 * recycled pid, never the whole group. `parked`: `pid` is known alive and
 * its own (its thread is parked in a notification), so that out of
 * descriptors it may be signalled by pid. */
static void kill_process(struct proc_entry *e, pid_t pid, bool parked)
{
        if (e && e->pidfd >= 0) {
                syscall(__NR_pidfd_send_signal, e->pidfd, SIGKILL, NULL, 0);
                return;
        }
        int pidfd = (int)syscall(__NR_pidfd_open, pid, 0);
        if (pidfd >= 0) {
                syscall(__NR_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
                close(pidfd);
        } else if (parked) {
                kill(pid, SIGKILL);
        }
}

/* Kill the requester of notification `n` for the memory limit, through a
 * pidfd of its very thread (PIDFD_THREAD; SIGKILL ends its whole process),
 * opened and then checked still parked in `n` (ID_VALID) - so the tid was
 * not reused in between. A thread gone by then, or before the signal, is
 * not avenged on its process: its call never runs, and the process may
 * already be a new image - a sibling thread's exec kills every other
 * thread first (found in review: a thread's brk, judged after a sibling's
 * exec had ended it, killed the new image in 4 runs of 10, since its maps
 * could no longer be read). Without a thread pidfd (before 6.9, or out of
 * descriptors) the process is killed as the sweep kills. Returns whether
 * it was killed. */
static bool kill_requester(struct tsandbox *sb, struct proc_entry *e, const struct seccomp_notif *n,
                           uint64_t growth, uint64_t ledger)
{
        pid_t pid = e ? e->pid : (pid_t)n->pid;
        int tfd = (int)syscall(__NR_pidfd_open, (pid_t)n->pid, PIDFD_THREAD);
        bool gone = tfd < 0 && errno == ESRCH;
        uint64_t id = n->id;
        if (!gone && ioctl(sb->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0)
                gone = true;
        if (!gone && tfd >= 0)
                gone = syscall(__NR_pidfd_send_signal, tfd, SIGKILL, NULL, 0) < 0 && errno == ESRCH;
        else if (!gone)
                kill_process(e, pid, true);
        if (tfd >= 0)
                close(tfd);
        if (gone) { /* answered to no one: counted stale then */
                log_debug("sandbox %llu: memory request of thread %d not avenged: the thread is gone",
                          (unsigned long long)sb->id, n->pid);
                return false;
        }
        memory_killed(sb, e, pid, n, growth, 0, ledger);
        return true;
}

/* With the exact ledger just taken (`ledger`): while the kernel's own
 * measure is over the limit, kill who grew past what it was let have, the
 * most first. An address space shared by several processes (CLONE_VM, a
 * vfork child before its exec) is one candidate: it was let have the most
 * any of them was judged to have, plus all their grants, and what grew
 * past that is blamed on all of them together - killing one would free
 * nothing (the kernel's OOM killer, too, kills every process that shares
 * its victim's address space). A process whose exec is pending is not
 * compared (kcmp waits for the exec): it stands alone. What is left, if
 * it fits and `bless`, is judged. Returns whether any was killed. */
static bool sweep_growers(struct tsandbox *sb, uint64_t ledger, bool bless)
{
        size_t n = 0;
        for (struct proc_entry *e = sb->procs.head; e; e = e->next)
                n += !e->exited && !e->mem_killed && e->pidfd >= 0;
        struct cand {
                struct proc_entry *e;
                uint64_t counted, unjudged;
                uint64_t judged, grants; /* of its address space, so far */
                struct cand *as;         /* the first candidate of its address space */
        } *c = n ? calloc(n, sizeof(*c)) : NULL;
        if (!c)
                return false; /* the next sweep tries again */
        bool killed = false;
        size_t k = 0;
        uint64_t measure = sb->shm_bytes;
        for (struct proc_entry *e = sb->procs.head; e && k < n; e = e->next) {
                if (e->exited || e->mem_killed || e->pidfd < 0)
                        continue;
                struct cand *x = &c[k++];
                *x = (struct cand){ e, (e->vm_dup ? 0 : e->data) + e->shared, 0, judged_now(e),
                                    grants_allowed(e), x };
                for (size_t i = 0; sb->vm_clones && !e->exec_tid && i + 1 < k && x->as == x; i++)
                        if (c[i].as == &c[i] && same_address_space(c[i].e, e))
                                x->as = &c[i];
                if (x->as != x) {
                        if (x->judged > x->as->judged)
                                x->as->judged = x->judged;
                        x->as->grants += x->grants;
                }
                measure += x->counted;
        }
        for (size_t i = 0; i < k; i++) {
                uint64_t allowed = c[i].judged + c[i].grants;
                if (c[i].as == &c[i] && c[i].e->data > allowed)
                        c[i].unjudged = c[i].e->data - allowed;
        }
        /* the kernel's measure alone over the limit: what grew unjudged
         * goes, the most first */
        while (measure > sb->max_memory) {
                struct cand *worst = NULL;
                for (size_t i = 0; i < k; i++)
                        if (!c[i].e->mem_killed && c[i].unjudged && (!worst || c[i].unjudged > worst->unjudged))
                                worst = &c[i];
                if (!worst)
                        break; /* nothing grew past its judgement: no one to blame */
                for (size_t i = 0; i < k; i++) {
                        if (c[i].as != worst || c[i].e->mem_killed)
                                continue;
                        log_debug("sandbox %llu: process %d grew %llu bytes unjudged; killed",
                                  (unsigned long long)sb->id, c[i].e->pid, (unsigned long long)worst->unjudged);
                        kill_process(c[i].e, c[i].e->pid, false);
                        memory_killed(sb, c[i].e, c[i].e->pid, NULL, 0, worst->unjudged, ledger);
                        measure -= c[i].counted;
                        killed = true;
                }
        }
        /* what is left fits: judged */
        if (bless && measure <= sb->max_memory)
                bless_all(sb);
        free(c);
        return killed;
}

void mem_limit_sweep(struct tsandbox *sb)
{
        if (!sb->max_memory || sb->ended)
                return;
        /* The cheap look: statm afresh, shared memory and segments as last
         * read, and what exited processes may have left in others since.
         * Address spaces shared by CLONE_VM count twice here, which only
         * sends more sweeps to the exact look. */
        uint64_t measure = sb->shm_bytes + sb->mem_unsettled;
        size_t n = 0;
        for (struct proc_entry *e = sb->procs.head; e; e = e->next) {
                if (e->exited || e->mem_killed || e->pidfd < 0)
                        continue;
                measure += entry_statm(e, 0) + e->shared;
                n++;
        }
        uint64_t start;
        if ((measure <= sb->max_memory && !sb->exact_due) || n == 0 || !exact_allowed(sb, &start))
                return; /* fits, or a later sweep looks */
        sb->exact_due = false;
        /* Over: the exact ledger, then who holds what no request made,
         * and who grew past what it was let have */
        uint64_t ledger = ledger_sum(sb, true, 0);
        if (ledger > sb->max_memory)
                blame_unjudged_objects(sb, ledger);
        sweep_growers(sb, ledger, true);
        exact_spent(sb, start);
}

/* Whether nothing but the parked requester can change `e`'s mappings
 * before its request runs: one thread (`st`: the requester's stat, whose
 * num_threads is its process's), and no other registered process shares
 * the address space (CLONE_VM, a vfork child). Only then does a look at
 * its maps still hold when the call runs. */
static bool alone_in_its_address_space(struct tsandbox *sb, struct proc_entry *e, const struct proc_stat *st)
{
        return st->num_threads == 1 && !shares_vm(sb, e);
}

bool mem_limit_fd_look_wanted(const struct tsandbox *sb, const struct seccomp_notif *n)
{
        const uint64_t *args = (const uint64_t *)n->data.args;
        return sb->max_memory && n->data.nr == SYS_mmap && map_shared(args[3]) && !(args[3] & MAP_ANONYMOUS);
}

int mem_limit_fd_look(const struct seccomp_notif *n)
{
        return fd_not_dev_zero((pid_t)n->pid, (int)n->data.args[4]) ? MEM_FD_NOT_ZERO : MEM_FD_MAYBE_ZERO;
}

int mem_limit_notify(struct tsandbox *sb, const struct seccomp_notif *n, int fd_look)
{
        if (!sb->max_memory)
                return ENOSYS; /* not routed without a limit */
        struct proc_entry *e = entry_of(sb, n->pid);
        const uint64_t *args = (const uint64_t *)n->data.args;
        bool need_brk;

        exec_over(e, (pid_t)n->pid);
        sb->mem_work.requests++;

        if (n->data.nr == SYS_brk && !args[0])
                return 0; /* a query */
        /* a file mapped shared is page cache, except /dev/zero */
        bool shared_map = n->data.nr == SYS_mmap && map_shared(args[3]);
        if (mem_limit_fd_look_wanted(sb, n)) {
                sb->mem_work.fd_looks++;
                if (fd_look == MEM_FD_UNSEEN) {
                        sb->mem_work.fd_looks_held++;
                        fd_look = mem_limit_fd_look(n);
                }
                if (fd_look == MEM_FD_NOT_ZERO) {
                        /* another thread may dup2() /dev/zero over the
                         * descriptor before the call takes it: an object
                         * no request made, which only an exact re-read
                         * finds (blame_unjudged_objects) - the next sweep
                         * takes one */
                        sb->exact_due = true;
                        return 0;
                }
        }
        struct remap_look remap = { .first_counts = true };
        if (n->data.nr == SYS_mremap)
                remap = remap_source(e ? e->pid : (pid_t)n->pid, (pid_t)n->pid, args[0], PAGE_UP(args[1]),
                                     &sb->mem_work);
        if (remap.refused)
                return EPERM;
        if (!e) {
                /* Every process is registered at birth: an unknown requester
                 * means the tracer could not look (out of descriptors) or
                 * something escaped registration. Fail closed. */
                if (kill_requester(sb, NULL, n, 0, ledger_sum(sb, false, 0)))
                        log_msg("sandbox %llu: memory request of unregistered task %d; killed it",
                                (unsigned long long)sb->id, n->pid);
                return ENOMEM;
        }
        if (e->mem_killed)
                return ENOMEM; /* killed already (a request queued before it died) */
        /* The break is read afresh: a brk the tracer allowed may have been
         * refused by the kernel (a mapping in the way), so a remembered one
         * could let later growth pass as none. Unknown: fail closed. */
        uint64_t cur_brk = n->data.nr == SYS_brk ? read_brk(e->pid, n->pid, &sb->mem_work) : 0;
        uint64_t growth = mem_request_growth(n->data.nr, args, cur_brk, &need_brk);
        if (n->data.nr == SYS_mremap)
                growth = args[3] & MREMAP_DONTUNMAP ? remap.private_rw : remap.first_counts ? growth : 0;
        if (need_brk)
                growth = UINT64_MAX / 4;
        /* a huge-page segment takes whole huge pages */
        if (n->data.nr == SYS_shmget && growth)
                growth = shm_segment_bytes(args[1], shm_huge_page_size((int)args[2]));
        uint64_t attach_size = 0;
        if (n->data.nr == SYS_shmat)
                growth = shm_attach_growth(sb, (pid_t)n->pid, (int)args[0], &attach_size);
        if (n->data.nr == SYS_shmget && (key_t)args[0] != IPC_PRIVATE && (args[2] & IPC_CREAT)) {
                /* a lookup if the key exists (the segment was charged when
                 * created), answered here: continued, it could create a
                 * segment uncharged (shm_lookup.h) */
                long res;
                int r = shm_lookup((pid_t)n->pid, (int)args[0], args[1], (int)args[2], &res);
                if (r > 0) {
                        r = notif_respond_result(sb->listener, n->id, res);
                        if (r < 0 && r != -ENOENT)
                                log_errno(r, "sandbox %llu: answering shmget", (unsigned long long)sb->id);
                        return NOTIF_ANSWERED;
                }
                /* no such key, or unknown: judged as the creation it may be */
        }
        if (growth == 0)
                return 0;
        /* the requester's own measure is always fresh, and its last call
         * is over (a thread makes one call at a time) */
        grants_settle(e, (pid_t)n->pid, false);
        entry_read(e, n->pid);
        /* the requester's faults so far (see thread_past_calls), and
         * whether it is alone - which stays true until this call is over:
         * only its thread could end it */
        struct proc_stat st;
        bool known = thread_stat(e, (pid_t)n->pid, &st) == 0;
        uint64_t faults = known ? st.faults : UINT64_MAX;
        /* ...except for mremap: a move first unmerges KSM pages of the old
         * range, page faults of the caller taken before the new range is
         * accounted (found in review) */
        if (n->data.nr == SYS_mremap)
                faults = UINT64_MAX;
        bool alone = known && alone_in_its_address_space(sb, e, &st);
        uint64_t ledger = ledger_sum(sb, false, 0);
        bool exact = ledger + growth > sb->max_memory || ledger + growth > sb->mem_peak;
        /* what the call adds once it has run, to count until then: an
         * anonymous shared object is in no statm, so it is all of it even
         * where it replaces private memory (which leaves statm itself) */
        uint64_t grant = growth;
        if (exact) {
                /* at the limit, or at a new peak: the exact ledger (before
                 * anything dies, and so the peak is the real one) */
                uint64_t start;
                exact = exact_allowed(sb, &start);
                if (exact) {
                        ledger = ledger_sum(sb, true, (pid_t)n->pid);
                        if (ledger + growth > sb->max_memory) {
                                /* over already, without this request: who
                                 * grew past what it was let have goes first,
                                 * as the sweep would have it (found in CI:
                                 * a request of P, within what it was let
                                 * have, killed while Q's stack had grown
                                 * unjudged past the limit, before the sweep
                                 * came); then this request waits for them */
                                bool blamed = blame_unjudged_objects(sb, ledger + growth);
                                if (ledger > sb->max_memory)
                                        blamed |= sweep_growers(sb, ledger, false);
                                if (blamed) {
                                        exact_spent(sb, start);
                                        if (e->mem_killed)
                                                return ENOMEM; /* it was the one */
                                        return mem_hold(sb, n, fd_look, VICTIM_RETRY_NS);
                                }
                        }
                        if (alone)
                                growth = net_growth(e->pid, n->pid, n->data.nr, args, growth, &sb->mem_work);
                        exact_spent(sb, start);
                } else if (ledger + growth > sb->max_memory) {
                        /* only the exact look may kill */
                        return mem_hold(sb, n, fd_look, mem_limit_exact_wait_ns(sb));
                }
                if (!shared_map)
                        grant = growth;
        }
        if (ledger + growth > sb->max_memory) {
                if (victim_dying(sb) || (exact && grants_running_cover(sb, ledger + growth - sb->max_memory)))
                        return mem_hold(sb, n, fd_look, VICTIM_RETRY_NS);
                kill_requester(sb, e, n, growth, ledger);
                return ENOMEM;
        }
        /* within the limit: what the measure showed was judged - every
         * process's when all were re-read, else the requester's */
        if (exact)
                bless_all(sb);
        else
                bless(e, known ? st.start_brk : 0);
        if (n->data.nr == SYS_shmget) {
                sb->shm_bytes += growth;
                shm_add(sb, -1, (key_t)args[0], args[1], growth, e->pid, n->pid, faults);
        } else if (n->data.nr == SYS_shmat) {
                sb->shm_bytes += growth;
                shm_add(sb, (int)args[0], 0, attach_size, growth, e->pid, n->pid, faults);
        } else {
                /* MAP_SHARED(_VALIDATE) anonymous memory is not in statm */
                grant_add(e, (pid_t)n->pid, grant, faults, shared_map, alone);
        }
        /* a new peak only on the exact ledger (last readings can hold
         * grants of memory already gone) */
        if (exact && ledger + growth > sb->mem_peak)
                sb->mem_peak = ledger + growth;
        return 0;
}
