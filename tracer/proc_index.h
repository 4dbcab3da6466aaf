/* The process index of one sandbox: every live process (thread group) it
 * has, registered at birth, with a pidfd while it runs. A process counts
 * from registration until it is reaped: zombies hold kernel pid slots, so
 * they count, as the kernel's pids controller counts them.
 *
 * Exit is seen from the pidfd (pidfd_open(2): readable when the process
 * exits). The pidfd is kept after the exit: where the kernel reports it
 * (6.18 here), it hangs up (POLLHUP) once the process is reaped - no task
 * is attached to its pid any more - which is exact and immediate. As a
 * fallback an exited entry is also dropped when /proc/<pid> no longer
 * shows a process with the same start time (proc(5), field 22): checked at
 * every fork decision and at the end. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct tsandbox;

/* Memory allowed to a thread whose call may not have run yet, so that
 * statm may not show it (mem_limit.c). */

struct mem_grant {
        pid_t tid;                /* the thread it was allowed to */
        uint64_t bytes;
        uint64_t base;            /* statm field 6 when it was allowed */
        uint64_t faults;          /* its thread's page faults then (UINT64_MAX: unknown) */
        bool shared;              /* anonymous MAP_SHARED: never in statm */
        bool stood;               /* shared: an exact re-read took an object as
                                   * its, while its call was not seen over
                                   * (mem_limit.c shared_grant_stands) */
        bool alone;               /* its thread was alone in the address space */
        uint64_t running_ns;      /* CLOCK_MONOTONIC when its thread was first
                                   * seen running since (its call may be over,
                                   * in statm already), 0: not so seen */
        struct mem_grant *next;
};

struct proc_entry {
        int kind;                 /* TW_PIDFD: first, for the epoll dispatch */
        pid_t pid;                /* tgid */
        int pidfd;                /* kept until the entry is released; -1: none */
        uint64_t starttime;       /* 0: not known yet */
        bool exited;
        bool reap_seen;           /* the pidfd hung up: reaped */
        bool watch_reap;          /* its epoll registration waits for the hang-up */
        uint64_t data;            /* bytes of private writable commitment, last
                                   * read (statm field 6) */
        struct mem_grant *grants; /* allowed since, maybe not run yet (owned) */
        uint64_t grants_kept;     /* grants that could not be recorded: counted
                                   * until the process exits */
        int statm_fd;             /* /proc/<pid>/statm, kept open for re-reads
                                   * (memory limit only); -1: not open */
        int stat_fd;              /* /proc/<pid>/task/<pid>/stat (the leader
                                   * thread's), likewise */
        bool mem_killed;          /* SIGKILLed by the memory limit: no more a
                                   * candidate; its memory counts until its
                                   * exit is seen */
        uint64_t mem_killed_ns;   /* when (CLOCK_MONOTONIC) */
        uint64_t judged;          /* bytes of statm this address space was let
                                   * have (mem_limit_sweep blames growth above) */
        uint64_t judged_brk;      /* its start_brk then: another one means an
                                   * exec since, and nothing of it judged */
        pid_t exec_tid;           /* an exec was let run by this thread, and no
                                   * call of the process seen since (0: none):
                                   * /proc/<pid>/maps and kcmp of it can wait
                                   * on the exec (a FUSE flush of a
                                   * close-on-exec file) - not looked at */
        pid_t exec_earlier[4];    /* other threads whose exec was let run
                                   * before exec_tid's, not seen over */
        unsigned n_exec_earlier;
        bool exec_lost;           /* more than those: an exec stays pending */
        int exec_maps_fd;         /* /proc/<pid>/maps opened when an exec was let
                                   * run (exec_tid), so bound to the image it
                                   * replaces: reads nothing once that image is
                                   * gone; -1: none (nothing judged is kept
                                   * across the exec) */
        uint64_t as_id;           /* its address space (memory limit): entries
                                   * with one as_id share it (CLONE_VM, vfork).
                                   * Sharing only begins at birth: a child takes
                                   * its creator's when kcmp(2) says they share;
                                   * an exec seen over gets a new one unless
                                   * kcmp says it still shares (it failed) */
        bool vfork_child;         /* made by a vfork, sharing its creator's
                                   * address space, and still traced: shares
                                   * it even once its exec has been let run,
                                   * until that exec's event says the new
                                   * image is in (mem_limit_vfork_done) */
        bool vm_dup;              /* at the last exact re-read, its address space
                                   * was counted under another entry */
        pid_t view_tid;           /* the thread whose statm was last read, when
                                   * not the leader's (its view is empty once
                                   * it has exited); 0: the leader's */
        uint64_t shared;          /* bytes of anonymous MAP_SHARED memory (not in
                                   * statm field 6), counted once per shared
                                   * object across the sandbox */
        uint64_t shared_unjudged; /* of it, in objects no creation stands for
                                   * (mem_limit.c inode_extent_add), as of the
                                   * last exact re-read */
        uint64_t shared_unjudged_new; /* of those, first met in the re-read
                                   * under way */
        struct tsandbox *sb;
        struct proc_entry *next;
};

struct proc_index {
        struct proc_entry *head;
        uint32_t count;           /* registered and not seen reaped */
        uint32_t peak;            /* most live at once (kept by the caller) */
};

/* Register `pid` (a thread-group leader) with `pidfd` (ownership passes;
 * -1 for a process already dead, which the caller marks exited). Its start
 * time comes from /proc (0, unknown, when /proc cannot be read for another
 * reason, such as a lack of descriptors: learnt at a later reap check).
 * Returns the entry, or NULL with errno ESRCH when /proc shows no such
 * process (it is gone) or ENOMEM; the pidfd is then closed. */
struct proc_entry *proc_index_add(struct proc_index *ix, struct tsandbox *sb, pid_t pid, int pidfd);

/* Find the entry of `pid`, or NULL. */
struct proc_entry *proc_index_find(struct proc_index *ix, pid_t pid);

/* The bytes of `e`'s memory grants (made and settled in mem_limit.c). */
uint64_t proc_entry_grants(const struct proc_entry *e);

/* The process exited (its pidfd was readable): close its statm and stat
 * descriptors and drop its memory grants (what other processes may still
 * hold of it - a shared address space, anonymous shared objects - goes to
 * the sandbox's mem_unsettled until the next exact re-read); the
 * pidfd stays, to see the reap. The entry still counts until reaped. */
void proc_entry_exited(struct proc_entry *e);

/* Whether the process of `e` still runs: it has a pidfd that is not
 * readable (pidfd_open(2)), so its pid is still its own. */
bool proc_entry_running(const struct proc_entry *e);

/* Drop every exited entry whose process has been reaped, calling
 * `on_reap(e, ud)` before each is unlinked; entries have their descriptors
 * closed and are handed to `release(e)` (deferred free) afterwards. With `poll_live`, exits not yet
 * seen through epoll are noticed too (each live pidfd is polled), and the
 * result is exact. Returns the count. */
uint32_t proc_index_recount(struct proc_index *ix, void (*on_reap)(struct proc_entry *e, void *ud), void *ud,
                            void (*release)(struct proc_entry *e), bool poll_live);

/* Send `sig` to every registered live process through its pidfd
 * (pidfd_send_signal(2): never a recycled pid). Returns how many. */
int proc_index_signal(struct proc_index *ix, int sig);

/* Close and release every entry. */
void proc_index_clear(struct proc_index *ix, void (*release)(struct proc_entry *e));
