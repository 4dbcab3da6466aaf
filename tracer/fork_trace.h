/* Birth registration of new processes by ptrace (ptrace(2)).
 *
 * For a fork-like notification the tracer PTRACE_SEIZEs the calling thread
 * with TRACEFORK|TRACEVFORK|TRACECLONE *before* answering Continue (a task
 * parked in a notification cannot reach a ptrace-stop, so nothing may wait
 * on it earlier), then PTRACE_INTERRUPTs it, so a stop always follows: the
 * fork event (GETEVENTMSG names the child, which is auto-attached and stays
 * stopped until it is registered), or, when the fork created nothing, the
 * interrupt stop. The stops arrive through waitpid on SIGCHLD in the
 * tracer's one loop, never by blocking on one task: a vfork parent, parked
 * until its child execs, is detached at its event. Every ptrace request is
 * made by the tracer's only thread, the one that seized. */
#pragma once
#include <stdint.h>
#include <sys/types.h>

#include "tracer.h"

/* Seize `tid`, answer notification `id` on `listener` with Continue, and
 * interrupt. Returns 0 when the trace is under way (the outcome comes
 * through proc_limit_fork_done/proc_limit_child_born), or -errno when the
 * task could not be seized, in which case the notification is unanswered
 * and the caller answers it. */
int fork_trace_begin(struct tsandbox *sb, int listener, pid_t tid, uint64_t id);

/* Collect every pending ptrace stop (waitpid(-1, WNOHANG|__WALL)) and
 * advance the traces. Call when SIGCHLD arrives. */
void fork_trace_collect(void);

/* Forget the traces of a sandbox that is ending (its tasks are dead). */
void fork_trace_forget(struct tsandbox *sb);

/* Callbacks (proc_limit.c). */
/* A process `child` was created by `parent_tid` in `sb`: register it.
 * Returns 0 or -errno. */
int proc_limit_child_born(struct tsandbox *sb, pid_t parent_tid, pid_t child);
/* The fork by `tid` is over (a child was or was not created): release its
 * reservation. */
void proc_limit_fork_done(struct tsandbox *sb, pid_t tid);
/* The sandbox that holds `tgid` in its process index, or NULL. */
struct tsandbox *proc_limit_owner(pid_t tgid);
