/* The process limit (DESIGN.md, "Process limit"): at most max_procs live
 * processes per sandbox, root included, counted from birth registration
 * (fork_trace.h) to reaping (proc_index.h). A fork-like syscall over the
 * limit fails in the caller with EAGAIN, as RLIMIT_NPROC does; nothing is
 * killed. Namespace requests are answered EPERM here too, so each is an
 * audit event. */
#pragma once
#include <linux/seccomp.h>
#include <stdbool.h>

#include "tracer.h"

/* Returned by proc_limit_notify when it answered (or holds) the
 * notification itself. */
#define NOTIF_ANSWERED (-1)

/* The verdict on a fork-like request, a pure function for testing:
 * `live` counts registered processes plus forks in flight; max_procs 0 is
 * no limit (processes are still registered for the memory limit). */
enum fork_verdict { FORK_ALLOW, FORK_DENY, FORK_HOLD };
enum fork_verdict proc_limit_judge(uint32_t live, uint32_t max_procs, bool frozen);

/* Register the sandbox root (at AddSandbox). Returns 0 or -errno. */
int proc_limit_start(struct tsandbox *sb);

/* Handle a clone/fork/vfork/unshare/setns notification. Returns the errno
 * to answer with (0: Continue) or NOTIF_ANSWERED. */
int proc_limit_notify(struct tsandbox *sb, const struct seccomp_notif *n);

/* A copy of notification `n` to hold (calloc'd, its other members 0; the
 * caller links it). NULL out of memory. */
struct held_notif *held_notif_new(const struct seccomp_notif *n);

/* Take held notification `h` (freed): its notification into *n. False
 * when its task is gone - the listener no longer knows its id - and there
 * is nothing to answer. */
bool held_notif_take(int listener, struct held_notif *h, struct seccomp_notif *n);

/* Arm the settle tick (fork_trace_arm_within) for the earliest retry of
 * the held notifications in `list` (those with none, frozen ones, aside);
 * `now_ns`: CLOCK_MONOTONIC. */
void held_notif_arm(const struct held_notif *list, uint64_t now_ns);

/* Epoll reported `events` on a registered process's pidfd: readable, it
 * exited (the registration then waits for the hang-up only); hung up, it
 * was reaped, and leaves the count at once with a reap event. */
void proc_limit_pidfd_event(struct proc_entry *e, uint32_t events);

/* Freeze (hold fork notifications, SIGSTOP every process) or thaw
 * (SIGCONT, then judge the held notifications again). */
void proc_limit_freeze(struct tsandbox *sb, bool frozen);

/* The settle tick: judge again the forks held for their process's exec
 * lock whose time has come (fork_trace_begin: -EWOULDBLOCK); keeps the
 * tick armed while any is held. */
void proc_limit_retry(struct tsandbox *sb);

/* The sandbox is over: account the last reaps, drop everything. */
void proc_limit_end(struct tsandbox *sb);

/* All sandboxes, for proc_limit_owner (tracer main owns the list). */
extern struct tsandbox *tracer_sandboxes;
