/* The memory limit (DESIGN.md, "Memory limit"): the sandbox-wide sum of
 * each live address space's private writable commitment - the kernel's own
 * measure, field 6 of /proc/<pid>/statm (data + stack) - plus SysV shared
 * memory created in the sandbox, must stay within max_memory bytes.
 *
 * The ledger keeps, per registered process (one address space), the bytes
 * last read from statm plus the grants whose calls may not have run yet
 * (see "Grants" in mem_limit.c). A request is
 * judged on the requester's fresh statm plus the growth it asks for; at the
 * limit every entry is re-read before anything is killed. Unmapping is
 * therefore seen through the kernel's measure and needs no notification,
 * and memory that was never charged cannot launder the ledger. The
 * requesting process (its thread group, through its pidfd) is killed with
 * SIGKILL before its request takes effect; the rest of the sandbox runs on.
 *
 * A SysV segment is charged when it is created and counts while
 * /proc/sysvipc/shm lists it (after IPC_RMID, until its last detach): each
 * exact re-read finds the segments the sandbox created by creator pid, key
 * and size, and drops those that are gone. */
#pragma once
#include <json-c/json.h>
#include <linux/seccomp.h>
#include <stdint.h>

#include "tracer.h"

/* What is known of the descriptor of an mmap(MAP_SHARED) of a file (a
 * mapping of /dev/zero is new anonymous shared memory; any other file's is
 * page cache, not counted). */
enum mem_fd_look {
        MEM_FD_UNSEEN = -1,  /* not looked at yet */
        MEM_FD_NOT_ZERO = 0, /* surely not /dev/zero */
        MEM_FD_MAYBE_ZERO = 1, /* /dev/zero, or it cannot be told: counted */
};

/* Whether judging `n` looks at a descriptor: an mmap(MAP_SHARED) of a
 * file in a sandbox with a memory limit. Touches nothing mutable. */
bool mem_limit_fd_look_wanted(const struct tsandbox *sb, const struct seccomp_notif *n);

/* Look at that descriptor (of `n`'s thread, parked in its notification).
 * Reads /proc/<tid>/fdinfo, which the kernel renders whole, as long as the
 * sandbox makes it (an epoll, inotify watches, file locks listed: found in
 * review, 0.9 s for 150k inotify watches) - so it is called off
 * tracer_lock, on the sandbox's receiver thread. Returns a mem_fd_look. */
int mem_limit_fd_look(const struct seccomp_notif *n);

/* Handle an mmap/mprotect/pkey_mprotect/brk/mremap/shmget notification;
 * `fd_look`: what mem_limit_fd_look() said of its descriptor, or
 * MEM_FD_UNSEEN (then looked at here, under the lock). Returns the errno
 * to answer with (0: Continue), or NOTIF_ANSWERED when the request is
 * held for an exact re-read (mem_limit_retry answers it); the requester is
 * killed when it would cross the limit. */
int mem_limit_notify(struct tsandbox *sb, const struct seccomp_notif *n, int fd_look);

/* A fork-like request under a memory limit: the child would start with a
 * copy of the parent's commitment. Returns 0 when it fits (*copy: the
 * bytes to reserve, 0 when the child shares the address space or there is
 * no limit), or the bytes that would cross the limit (the fork is then
 * refused with ENOMEM, as the kernel refuses a fork it cannot commit).
 * *wait_ns > 0 (returning 0): undecided - only the exact ledger can tell,
 * and its user's share of the tracer's time for it (read_budget.h) is
 * spent for that long: the caller holds the fork and asks again then. */
uint64_t mem_limit_fork_growth(struct tsandbox *sb, const struct seccomp_notif *n, uint64_t *copy,
                               uint64_t *wait_ns);

/* How long until `sb`'s user may take an exact memory re-read (1 ns at
 * least). */
uint64_t mem_limit_exact_wait_ns(struct tsandbox *sb);

/* Judge again the memory requests held for an exact re-read that are due
 * (mem_limit_notify held them: NOTIF_ANSWERED) and answer them, unless
 * held again. On the main loop's settle tick, under tracer_lock. */
void mem_limit_retry(struct tsandbox *sb);

/* The fork of thread `tid` was allowed with `copy` from
 * mem_limit_fork_growth: the copy stays in the ledger until
 * mem_limit_fork_over(tid), so forks judged at the same time cannot each
 * count on the same room. */
void mem_limit_fork_reserve(struct tsandbox *sb, pid_t tid, uint64_t copy);

/* The fork of `tid` is over (its child registered, or none was created):
 * drop its reservation. Returns the bytes it reserved (0: none). */
uint64_t mem_limit_fork_over(struct tsandbox *sb, pid_t tid);

/* A process was registered (the root, or a child at birth, made by thread
 * `parent_tid`, stopped in its fork event; 0 for the root): read what its
 * address space already holds, and whose it is (one kcmp(2) KCMP_VM with
 * its creator). `vfork`: made by a vfork, and kept traced until its exec
 * (mem_limit_vfork_done() follows). `copy`: the bytes judged for it at its
 * fork (mem_limit_fork_over(); 0: none), all it is let have of what it
 * copied - another thread of its parent may have been let map more before
 * the kernel copied the parent, counting on the child having `copy` only;
 * what it has above that, over the limit, kills it before it runs. */
void mem_limit_register(struct tsandbox *sb, struct proc_entry *e, pid_t parent_tid, bool vfork, uint64_t copy);

/* The address space `child` shared with its creator since its vfork
 * (mem_limit_register with `vfork`) is known to be its own now or no longer
 * followed. `replaced`: its exec's PTRACE_EVENT_EXEC stop was seen - the
 * exec has installed the new image, which is read now and judged from
 * here on. Else the trace that would tell was let go (a group stop, a
 * thread, a fork of its own): while its exec is pending it stands alone
 * (counted on its own, the safe side), as any other process. */
void mem_limit_vfork_done(struct tsandbox *sb, pid_t child, bool replaced);

/* The sweep, every MEM_SWEEP_MS while a sandbox has a memory limit: memory
 * can grow without a request - a main stack by page faults, the image an
 * exec maps - and the ledger sees it only at its next exact re-read. Each
 * live process's statm is read (a pread each); when the kernel's measure
 * of the sandbox is over the limit, the exact ledger is taken and the
 * processes that grew past what was judged for them are killed (SIGKILL
 * through the pidfd; an address space shared by several processes is
 * judged by the most any of them was let have, and its processes are
 * killed together), the one that grew most first, until the measure fits;
 * each kill is a memory_kill audit event with "unjudged" bytes and no
 * syscall. Runs on the main loop, under tracer_lock. */
#define MEM_SWEEP_MS 100
void mem_limit_sweep(struct tsandbox *sb);

/* Thread `tid` is let exec: nothing of the new image is judged, but the
 * exec runs after the answer and may fail, so what the process was judged
 * to have holds until its image is seen replaced (its maps, opened now,
 * read nothing once the exec has run) - or, where that cannot be watched
 * (an exec already pending in the process, an address space shared with
 * another process), is dropped now. Until a call of its process is seen
 * again the tracer neither reads its stat or current maps nor kcmp()s it
 * (all wait for an exec that a stalled file system holds, under the
 * tracer lock). Under tracer_lock. */
void mem_limit_exec(struct tsandbox *sb, pid_t tid);

/* The sandbox is over: drop its SysV records. */
void mem_limit_end(struct tsandbox *sb);

/* Growth in bytes of private writable commitment that a request asks for,
 * from its syscall number and arguments alone; `cur_brk` is the current
 * break for brk (0: unknown, then the growth is unknown too and *need_brk
 * is set). An mremap's as if of one private writable mapping (the caller
 * looks at the mappings it works on). A pure function, for tests. */
uint64_t mem_request_growth(int nr, const uint64_t args[6], uint64_t cur_brk, bool *need_brk);

/* `w` as the `memory_work` object of sandbox_end (README, "Audit"): a new
 * json object, owned by the caller. NULL out of memory. */
json_object *mem_work_json(const struct mem_work *w);

/* An anonymous shared object of `bytes` a request of `sb` made (its call
 * over): kept until an exact re-read stands it for an object it finds (at
 * most CREATED_MAX at once; past that, objects no request made are not
 * told from others until the next re-read that reads every process). */
void mem_limit_creation(struct tsandbox *sb, uint64_t bytes);
