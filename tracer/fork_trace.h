/* Birth registration of new processes by ptrace (ptrace(2)).
 *
 * For a fork-like notification the tracer PTRACE_SEIZEs the calling thread
 * with TRACEFORK|TRACEVFORK|TRACECLONE *before* answering Continue (a task
 * parked in a notification cannot reach a ptrace-stop, so nothing may wait
 * on it earlier). A fork that creates a child stops at its event
 * (GETEVENTMSG names the child, which is auto-attached and stays stopped
 * until it is registered). One that creates nothing (refused by the
 * kernel, or restarted by a signal) is found when the thread is seen out of
 * the fork syscall (/proc/<tid>/syscall), then interrupted and detached at
 * that stop. A seize waits for the process's cred_guard_mutex, which a
 * sibling thread's exec holds: it gives up after a millisecond and is
 * tried again later, so an exec held in a stalled file system holds only
 * its own process's forks. A seized thread that execs is detached at its
 * exec event (TRACEEXEC: an exec by a non-leader takes the leader's tid);
 * a seized leader killed by a sibling's exec goes unreported, and its
 * record is dropped once /proc no longer names us its tracer. The stops arrive through waitpid on SIGCHLD in the
 * tracer's one loop, never by blocking on one task: a vfork parent, parked
 * until its child execs, is detached at its event.
 *
 * Under a memory limit, a vfork child (which shares its creator's address
 * space until its exec has installed a new image) is kept traced from its
 * first stop to its exec's PTRACE_EVENT_EXEC, which the kernel reports
 * once the new image is in, before it runs: until then it counts as
 * sharing (mem_limit_vfork_done). Neither its creator's VFORK_DONE (sent
 * before the exec switches address spaces) nor kcmp(2) (which waits for an
 * exec's exec_update_lock, held across a close-on-exec flush that a stalled
 * file system can hold) tells as much without waiting. A signal stop is
 * passed on, and so is SIGCONT's trap; a group stop, a thread, or a fork
 * of its own ends that trace (the child then stands alone while its exec
 * is pending: the safe side). Every ptrace
 * request is made by the tracer's only thread, the one that seized. */
#pragma once
#include <stdint.h>
#include <sys/types.h>

#include "tracer.h"

/* Create the settle timer. Returns its descriptor (readable when
 * fork_trace_settle() is due; owned by this module) or -errno. */
int fork_trace_init(void);

/* Seize `tid` and answer notification `id` on `listener` with Continue.
 * Returns 0 when the trace is under way (the outcome comes
 * through proc_limit_fork_done/proc_limit_child_born), or -errno when the
 * task could not be seized, in which case the notification is unanswered
 * and the caller answers it: -EWOULDBLOCK when its process's exec lock
 * stayed held (an exec of another of its threads is under way; try again
 * later). Caller holds tracer_lock (no exec of the sandbox is let run
 * meanwhile); main thread only. */
int fork_trace_begin(struct tsandbox *sb, int listener, pid_t tid, uint64_t id);

/* Arm the settle timer (fork_trace_settle() in a few milliseconds), or
 * within `ns` nanoseconds - unless it is due sooner already. */
void fork_trace_arm(void);
void fork_trace_arm_within(uint64_t ns);

/* A notification of thread `tid` other than a fork's is being answered
 * (caller holds tracer_lock): if it is seized for a fork, it has left
 * that fork. The settle then interrupts it without reading its
 * /proc/<tid>/syscall, which takes its process's exec_update_lock - held,
 * maybe for good, by an exec it makes at once (a close-on-exec file whose
 * FUSE flush never returns): answered only under tracer_lock, after this
 * call. */
void fork_trace_call_seen(pid_t tid);

/* The settle timer fired: a traced parent that has left its fork syscall
 * without a fork event created nothing; interrupt it (harmless now), so
 * its stop detaches it. Bounded: a failed fork is found in milliseconds. */
void fork_trace_settle(void);

/* Collect every pending ptrace stop (waitpid(-1, WNOHANG|__WALL)) and
 * advance the traces. Call when SIGCHLD arrives. */
void fork_trace_collect(void);

/* Forget the traces of a sandbox that is ending (its tasks are dead). */
void fork_trace_forget(struct tsandbox *sb);

/* Callbacks (proc_limit.c). */
/* A process `child` was created by `parent_tid` in `sb` (`vfork`: by a
 * vfork, and kept traced to its exec - mem_limit_vfork_done() follows): register
 * it. Returns 0, -ESRCH when it is gone, or another -errno when it could
 * not be registered (then it has been killed, and counts until reaped). */
int proc_limit_child_born(struct tsandbox *sb, pid_t parent_tid, pid_t child, bool vfork);
/* `child`, created by `parent_tid`, died (SIGKILL) before it could be
 * registered: it is recorded as a fork, and counts while it is a zombie. */
void proc_limit_child_died(struct tsandbox *sb, pid_t parent_tid, pid_t child);
/* The fork by `tid` is over (a child was or was not created): release its
 * reservation. */
void proc_limit_fork_done(struct tsandbox *sb, pid_t tid);
