/* The tracer's per-sandbox state, and what its modules share. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit.h"
#include "notif_rx.h"
#include "proc_index.h"

/* What an epoll registration points at (the first member of each). */
enum { TW_LISTENER = 100, TW_PIDFD };

struct shm_seg;
struct fork_copy;

/* A fork notification held while the sandbox is frozen, or while its
 * process's exec lock is held (fork_trace_begin: -EWOULDBLOCK); or a fork
 * or memory request that needs an exact memory re-read while its user's
 * share of the tracer's time for them is spent (read_budget.h). */
struct held_notif {
        uint64_t id;
        pid_t tid;
        int nr;
        uint64_t args[6];
        uint64_t retry_ns;        /* exec lock: when to try again (0: frozen) */
        uint64_t backoff_ns;      /* exec lock: the wait before that */
        pid_t tgid;               /* exec lock: the process of `tid` */
        int fd_look;              /* memory: what its descriptor was found
                                   * to be (enum mem_fd_look) */
        struct held_notif *next;
};

/* What judging a sandbox's memory cost the tracer, all under tracer_lock
 * unless said (the `memory_work` object of sandbox_end): counts of work
 * done, so that what one sandbox can make every other one wait for is
 * measured exactly, not timed. */
struct mem_work {
        uint64_t requests;        /* memory notifications judged */
        uint64_t mappings;        /* mappings a request's own lookups examined
                                   * (brk, mremap, net growth: PROCMAP_QUERY
                                   * answers, or maps lines read) */
        uint64_t kcmp;            /* kcmp(2) KCMP_VM calls */
        uint64_t fd_looks;        /* shared file mmaps whose descriptor was
                                   * looked at (is it /dev/zero?) */
        uint64_t fd_looks_held;   /* ...of them on the main loop, not on the
                                   * sandbox's own receiver thread */
        uint64_t exact;           /* exact re-reads */
        uint64_t exact_ns;        /* their time (CLOCK_MONOTONIC) */
        uint64_t exact_max_ns;    /* the longest of them */
        uint64_t objects;         /* shared objects (mappings of them) the
                                   * re-reads met */
        uint64_t object_probes;   /* slots of the object set probed for them */
        uint64_t vfork_children;  /* vfork children followed to their exec
                                   * (fork_trace.h), sharing their creator's
                                   * address space until then */
        uint64_t vfork_let_go;    /* ...of them let go before it (a group
                                   * stop, a thread, a fork of their own):
                                   * counted alone while their exec was
                                   * pending */
};

struct tsandbox {
        int kind;                 /* TW_LISTENER */
        uint64_t id;
        int listener;             /* seccomp listener fd (owned); -1 once hung up */
        struct notif_rx *rx;      /* its receiver thread and queue */
        int rx_efd;               /* readable when notifications are queued */
        pid_t root;
        uid_t uid;
        uint32_t max_procs;       /* 0: no process limit */
        uint64_t max_memory;      /* bytes; 0: no memory limit */
        bool tracked;             /* processes registered at birth (either limit) */
        uint64_t shm_bytes;       /* SysV segments created and still there */
        struct inode_set *shared_known; /* anonymous shared objects and their
                                   * sizes, as of the last exact re-read */
        uint64_t *created;        /* sizes of the anonymous shared objects
                                   * its processes were let make since the
                                   * last exact re-read that read every
                                   * holder (owned; mem_limit.c grant_drop) */
        size_t ncreated, created_cap;
        bool created_lost;        /* one could not be kept (CREATED_MAX, or
                                   * out of memory) */
        uint64_t created_lost_max; /* the largest of those */
        bool sizes_inferred;      /* in the exact re-read under way, an object's
                                   * size could not be had from the kernel */
        bool exact_due;           /* the next sweep takes an exact re-read: a
                                   * shared file mapping was let run whose
                                   * descriptor may have become /dev/zero */
        struct shm_seg *shm_segs; /* those segments (mem_limit.c) */
        struct fork_copy *fork_copies; /* forks allowed, child not registered:
                                        * their copies, in the ledger */
        uint64_t fork_copy_bytes; /* their sum */
        uint64_t mem_peak;        /* highest ledger allowed */
        uint64_t as_ids;          /* address-space ids given (proc_entry.as_id) */
        bool vm_clones;           /* a fork sharing the address space (vfork,
                                   * CLONE_VM) was allowed: entries may share one */
        uint64_t mem_unsettled;   /* bytes that entries which exited since the
                                   * last exact re-read may have left in other
                                   * processes: such entries' address spaces,
                                   * anonymous shared objects counted under
                                   * any (proc_entry_exited) */
        uint64_t mem_kills;
        bool mem_budget_logged;   /* its user's exact re-reads were held back (said once) */
        struct mem_work mem_work;
        struct audit_sink audit;
        struct proc_index procs;  /* only with a process limit */
        uint32_t reserved;        /* forks answered, child not yet registered */
        bool frozen;
        struct held_notif *held;
        struct held_notif *mem_held; /* memory requests waiting for an exact re-read */
        uint64_t execs;           /* exec notifications handled */
        uint64_t forks_allowed, forks_denied, ns_denied, reaps;
        uint64_t stale;           /* notifications whose task died first */
        bool ended;
        struct tsandbox *next;
};

/* Add/remove a descriptor to/from the tracer's epoll set with `ptr` as its
 * data (a struct whose first member is one of the TW_* kinds).
 * Returns 0 or -errno. */
int tracer_watch(int fd, void *ptr);
void tracer_unwatch(int fd);

/* Change fd's registration to report only EPOLLHUP/EPOLLERR (which epoll
 * always reports), keeping `ptr`. Returns 0 or -errno. */
int tracer_watch_hup(int fd, void *ptr);

/* Free `p` after the current batch of epoll events (a later event of the
 * same batch may still point at it). */
void tracer_defer_free(void *p);
