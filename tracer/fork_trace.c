#include "fork_trace.h"

#include <errno.h>
#include <limits.h>
#include <linux/seccomp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "mem_limit.h"
#include "notif_loop.h"
#include "procfs.h"

struct trace_rec {
        pid_t tid;
        uint64_t since_ns;      /* parent: when Continue was sent */
        bool interrupted;       /* parent: PTRACE_INTERRUPT sent */
        bool is_child;          /* an auto-attached new process */
        bool stopped;           /* child: its first stop has been seen */
        struct tsandbox *sb;    /* NULL: child whose creator is not known yet */
        pid_t parent;           /* child: the creating thread, when known */
        bool registered;        /* child: counted in its sandbox already */
        bool died;              /* child: killed before its creator's event */
        bool thread;            /* child: a thread of its creator's process */
        bool vfork;             /* child: made by a vfork under a memory limit */
        bool exec_watch;        /* child (vfork): let run, still traced, until
                                 * its exec's event (fork_trace.h) */
        bool left;              /* parent: seen in another call since: out of
                                 * its fork (fork_trace_call_seen) */
        struct trace_rec *next;
};

static struct trace_rec *recs;
static bool traced_by_us(pid_t tid);
static int timer_fd = -1;

/* A parent that shows no event this long is checked: has it left the
 * fork syscall? */
#define SETTLE_NS (2 * 1000 * 1000)
/* A new task whose creator's event never comes is let go after this. */
#define ORPHAN_NS (1000 * 1000 * 1000ull)
/* How long a seize may wait for its process's exec lock. */
#define SEIZE_WAIT_NS (1000 * 1000)
/* The signal that ends such a wait (to the tracer's main thread only,
 * blocked everywhere else and at any other time). */
#define SEIZE_SIGNAL SIGRTMIN

static timer_t seize_timer;
static sigjmp_buf seize_env;
static volatile sig_atomic_t seize_waiting;

void fork_trace_arm_within(uint64_t ns)
{
        struct itimerspec cur, its = { .it_value = { .tv_sec = (time_t)(ns / 1000000000u),
                                                     .tv_nsec = (long)(ns % 1000000000u) } };
        if (timerfd_gettime(timer_fd, &cur) == 0 && (cur.it_value.tv_sec || cur.it_value.tv_nsec) &&
            (uint64_t)cur.it_value.tv_sec * 1000000000u + (uint64_t)cur.it_value.tv_nsec <= ns)
                return; /* due sooner already */
        timerfd_settime(timer_fd, 0, &its, NULL);
}

void fork_trace_arm(void)
{
        fork_trace_arm_within(SETTLE_NS);
}

static pid_t main_tid;

/* Only the seize timer's own signal, on the thread waiting in the seize:
 * SIGRTMIN sent by anyone else (kill(2) to the whole tracer reaches any
 * thread not blocking it) changes nothing. */
static void on_seize_deadline(int sig, siginfo_t *si, void *uc)
{
        (void)sig;
        (void)uc;
        if (seize_waiting && si->si_code == SI_TIMER && (pid_t)syscall(SYS_gettid) == main_tid)
                siglongjmp(seize_env, 1);
}

int fork_trace_init(void)
{
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SEIZE_SIGNAL);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        struct sigaction sa = { .sa_sigaction = on_seize_deadline, .sa_flags = SA_SIGINFO };
        sigemptyset(&sa.sa_mask);
        main_tid = (pid_t)syscall(SYS_gettid);
        struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SEIZE_SIGNAL };
        sev._sigev_un._tid = main_tid;
        if (sigaction(SEIZE_SIGNAL, &sa, NULL) < 0 || timer_create(CLOCK_MONOTONIC, &sev, &seize_timer) < 0)
                return -errno;
        timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        return timer_fd < 0 ? -errno : timer_fd;
}

/* Drop a deadline signal left pending (raised after its seize was over);
 * disarms the timer first. */
static void seize_deadline_clear(const sigset_t *set)
{
        static const struct itimerspec off;
        static const struct timespec now;
        timer_settime(seize_timer, 0, &off, NULL);
        while (sigtimedwait(set, NULL, &now) == SEIZE_SIGNAL)
                ;
}

/* PTRACE_SEIZE of `tid` with `opts`, waiting at most SEIZE_WAIT_NS.
 * Returns 0, -errno, or -EWOULDBLOCK when the wait ran out.
 *
 * ptrace_attach() takes the target process's cred_guard_mutex, which an
 * execve holds from before it reads the binary (and looks up a script's
 * interpreter) to its end: an exec held in a stalled file system (a FUSE
 * mount of the sandbox's user) would hold the tracer, and every sandbox,
 * for as long. The mutex is taken interruptibly (ERESTARTNOINTR): a timer
 * signal to this thread ends the wait, and its handler jumps back here
 * rather than let the call restart. An exec of the sandbox is only let run
 * under tracer_lock, which the caller holds. (The other look at a task
 * under way in an exec, /proc/<tid>/syscall in fork_trace_settle, takes
 * exec_update_lock, which an exec takes only once its other threads are
 * gone.) Main thread only (the timer signals it). */
static int seize_within(pid_t tid, long opts)
{
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SEIZE_SIGNAL);
        seize_deadline_clear(&set);
        /* volatile: read after the jump */
        volatile int r = -EWOULDBLOCK;
        if (sigsetjmp(seize_env, 1) == 0) {
                struct itimerspec its = { .it_value = { .tv_nsec = SEIZE_WAIT_NS } };
                seize_waiting = 1;
                timer_settime(seize_timer, 0, &its, NULL);
                pthread_sigmask(SIG_UNBLOCK, &set, NULL);
                r = ptrace(PTRACE_SEIZE, tid, 0, opts) < 0 ? -errno : 0;
                pthread_sigmask(SIG_BLOCK, &set, NULL);
        }
        /* here after the jump too, with the mask restored (blocked) */
        seize_waiting = 0;
        seize_deadline_clear(&set);
        if (r == -EWOULDBLOCK && traced_by_us(tid))
                r = 0; /* the deadline crossed a seize that was done */
        return r;
}

static struct trace_rec *rec_find(pid_t tid)
{
        for (struct trace_rec *r = recs; r; r = r->next)
                if (r->tid == tid)
                        return r;
        return NULL;
}

static struct trace_rec *rec_new(pid_t tid)
{
        struct trace_rec *r = calloc(1, sizeof(*r));
        if (!r)
                return NULL;
        r->tid = tid;
        r->since_ns = mono_ns();
        r->next = recs;
        recs = r;
        return r;
}

static void rec_free(struct trace_rec *r)
{
        for (struct trace_rec **pp = &recs; *pp; pp = &(*pp)->next)
                if (*pp == r) {
                        *pp = r->next;
                        break;
                }
        free(r);
}

int fork_trace_begin(struct tsandbox *sb, int listener, pid_t tid, uint64_t id)
{
        struct trace_rec *r = rec_find(tid);

        if (r && !r->is_child && !traced_by_us(tid)) {
                /* a trace let go unseen: its thread was a leader killed by
                 * a sibling's exec, which took over its tid (ptrace(2)
                 * reports no death for it) - and the caller is that
                 * sibling, not traced */
                proc_limit_fork_done(r->sb, tid);
                rec_free(r);
                r = NULL;
        }
        if (r && !r->is_child) {
                /* Still seized from its last fork, which therefore created
                 * nothing (a fork event would have stopped it): that one is
                 * over, this one reuses the trace. */
                proc_limit_fork_done(r->sb, tid);
        } else {
                /* EXITKILL: should the tracer die mid-way, the traced tasks
                 * die rather than run unregistered. */
                /* TRACEEXEC: an exec by a non-leader changes its tid
                 * (fork_trace_collect) */
                int sr = seize_within(tid, PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |
                                                   PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
                /* EPERM when already traced: fine if by us (an
                 * auto-attached task let go without a detach) */
                if (sr < 0 && (sr != -EPERM || !traced_by_us(tid)))
                        return sr;
                if (r && r->exec_watch) { /* a vfork child forking: traced as a parent now */
                        log_debug("vfork child %d: forks before its exec", tid);
                        mem_limit_vfork_done(r->sb, tid, false);
                }
                if (r)
                        rec_free(r); /* a stale record of a new child */
                r = rec_new(tid);
                if (!r) {
                        ptrace(PTRACE_INTERRUPT, tid, 0, 0); /* detached at its stop */
                        return -ENOMEM;
                }
        }
        r->sb = sb;
        r->since_ns = mono_ns();
        r->interrupted = false;
        r->left = false;
        int rr = notif_respond(listener, id, 0);
        /* ENOENT: killed while parked; its exit reaches fork_trace_collect
         * like any other outcome */
        if (rr < 0 && rr != -ENOENT)
                log_errno(rr, "answering a fork notification");
        /* No interrupt now: a stop pending while the fork runs makes the
         * kernel abort it (copy_process sees a pending signal and returns
         * ERESTARTNOINTR). A fork that creates a child stops at its event;
         * one that does not is found by fork_trace_settle(). */
        fork_trace_arm();
        return 0;
}

void fork_trace_call_seen(pid_t tid)
{
        struct trace_rec *r = rec_find(tid);
        if (r && !r->is_child)
                r->left = true;
}

/* Whether /proc/<tid>/status names us as its tracer. */
static bool traced_by_us(pid_t tid)
{
        return procfs_status_field(tid, "TracerPid") == getpid();
}

/* The fork-like syscall numbers a parent can be inside. */
static bool in_fork_syscall(pid_t tid)
{
        char path[64], buf[64];
        snprintf(path, sizeof(path), "/proc/%d/syscall", tid);
        if (procfs_read(path, buf, sizeof(buf)) <= 0)
                return false;
        long nr = strtol(buf, NULL, 10); /* "running" parses as 0: not a fork */
        return nr == SYS_clone || nr == SYS_fork || nr == SYS_vfork || nr == SYS_clone3;
}

void fork_trace_settle(void)
{
        uint64_t v, now;
        bool pending = false;

        (void)!read(timer_fd, &v, sizeof(v));
        /* stops already queued decide first */
        fork_trace_collect();
        now = mono_ns();
        for (struct trace_rec *r = recs, *next; r; r = next) {
                next = r->next;
                if (r->is_child && !r->sb) {
                        /* a new task whose creator never reported (it was
                         * killed first), so it cannot be placed in a
                         * sandbox: fail closed - it has run no code of its
                         * own, and it must not run uncounted */
                        if (now - r->since_ns < ORPHAN_NS) {
                                pending = true;
                                continue;
                        }
                        if (r->stopped && !r->died)
                                kill(r->tid, SIGKILL);
                        rec_free(r);
                        continue;
                }
                if (r->is_child || r->interrupted)
                        continue;
                /* (a parent seen in another call has left the fork; and
                 * its /proc/<tid>/syscall could wait for an exec it made:
                 * see fork_trace_call_seen) */
                if (now - r->since_ns < SETTLE_NS) {
                        pending = true;
                        continue;
                }
                if (!traced_by_us(r->tid)) {
                        /* let go unseen (see fork_trace_begin), or gone */
                        proc_limit_fork_done(r->sb, r->tid);
                        rec_free(r);
                        continue;
                }
                if (!r->left && in_fork_syscall(r->tid)) {
                        pending = true;
                        continue;
                }
                /* Out of the fork with no event: it created nothing. Now
                 * an interrupt aborts nothing; its stop lets us detach. */
                if (ptrace(PTRACE_INTERRUPT, r->tid, 0, 0) == 0)
                        r->interrupted = true;
                else
                        pending = true; /* looked at again */
        }
        if (pending)
                fork_trace_arm();
}

/* Let go of watched vfork child `c` before its exec's event: whether its
 * address space is still its creator's can no longer be told. `sig`: a
 * signal to deliver with the detach. */
static void exec_watch_end(struct trace_rec *c, int sig)
{
        log_debug("vfork child %d: let go before its exec", c->tid);
        mem_limit_vfork_done(c->sb, c->tid, false);
        ptrace(PTRACE_DETACH, c->tid, 0, sig);
        rec_free(c);
}

/* Count a new child in its sandbox (it exists from its creator's fork
 * event on, stopped before running code of its own), and let it run once
 * it has reached its first stop: detached, or - a vfork child under a
 * memory limit - still traced, to its exec's event. */
static void child_register(struct trace_rec *c)
{
        if (!c->registered) {
                proc_limit_child_born(c->sb, c->parent, c->tid, c->vfork);
                c->registered = true;
        }
        if (!c->stopped)
                return;
        if (c->vfork && ptrace(PTRACE_CONT, c->tid, 0, 0) == 0) {
                c->exec_watch = true;
                return;
        }
        if (c->vfork)
                exec_watch_end(c, 0);
        else {
                ptrace(PTRACE_DETACH, c->tid, 0, 0);
                rec_free(c);
        }
}

/* New task `c`, reported by a fork, vfork or clone event of a thread of
 * `sb`: whether it is a thread (CLONE_THREAD: of its creator's process;
 * the event names a clone with exit signal SIGCHLD or CLONE_VFORK as a
 * fork or a vfork - found in review) - no new process, and never to be
 * killed as an unregistered one (a SIGKILL to a thread kills its process);
 * then it is let go at its first stop. A new process is its own leader. */
static bool thread_born(struct tsandbox *sb, struct trace_rec *c)
{
        pid_t ctg = procfs_tgid(c->tid);
        if (ctg <= 0 || ctg == c->tid)
                return false;
        c->thread = true;
        c->sb = sb;
        if (c->stopped || c->died) {
                if (c->stopped)
                        ptrace(PTRACE_DETACH, c->tid, 0, 0);
                rec_free(c);
        }
        return true;
}

/* The record of new task `child` reported by a creator's event (made when
 * its own first stop has not come yet); NULL out of memory. */
static struct trace_rec *child_rec(pid_t child)
{
        struct trace_rec *c = rec_find(child);
        if (!c && (c = rec_new(child)))
                c->is_child = true;
        return c;
}

/* The creator `tid` in `sb` died without reporting an event: new children
 * still waiting for a creator are its (it was stopped in the fork). */
static void adopt_waiting_children(struct tsandbox *sb, pid_t tid)
{
        for (struct trace_rec *c = recs, *next; c; c = next) {
                next = c->next;
                if (!c->is_child || c->sb)
                        continue;
                if (c->died) {
                        proc_limit_child_died(sb, tid, c->tid);
                        rec_free(c);
                } else if (c->stopped) {
                        c->sb = sb;
                        c->parent = tid;
                        child_register(c);
                }
        }
}

static void on_parent(struct trace_rec *r, int status)
{
        struct tsandbox *sb = r->sb;
        pid_t tid = r->tid;

        if (WIFEXITED(status) || WIFSIGNALED(status)) {
                rec_free(r);
                proc_limit_fork_done(sb, tid);
                adopt_waiting_children(sb, tid);
                return;
        }
        if (!WIFSTOPPED(status))
                return;
        int event = status >> 16;
        if (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK || event == PTRACE_EVENT_CLONE) {
                unsigned long child = 0;
                bool known = ptrace(PTRACE_GETEVENTMSG, tid, 0, &child) == 0 && child > 0 && child <= INT_MAX;
                int err = errno;
                /* detached at the event: a vfork parent now sleeps until
                 * its child execs, and must not hold us */
                ptrace(PTRACE_DETACH, tid, 0, 0);
                rec_free(r);
                if (!known) {
                        /* SIGKILLed at its event stop before we could ask:
                         * its new task, if any, stops as one whose creator
                         * never reported, and is killed (fork_trace_settle) */
                        log_debug("fork event of %d: no child pid (%s)", tid, strerror(err));
                        proc_limit_fork_done(sb, tid);
                        return;
                }
                struct trace_rec *c = child_rec((pid_t)child);
                /* A thread made by a parent still seized after a fork the
                 * kernel refused (the filter lets thread clones run
                 * unseen; TRACECLONE reports them all the same). */
                if (c && thread_born(sb, c)) {
                        proc_limit_fork_done(sb, tid);
                        return;
                }
                if (c) {
                        c->sb = sb;
                        c->parent = tid;
                        c->vfork = event == PTRACE_EVENT_VFORK && sb->max_memory;
                        if (c->died) {
                                /* killed before its first stop */
                                proc_limit_child_died(sb, tid, c->tid);
                                rec_free(c);
                        } else {
                                /* it exists: it counts from now on, so the
                                 * creator's reservation can go */
                                child_register(c);
                        }
                }
                proc_limit_fork_done(sb, tid);
                return;
        }
        /* The interrupt stop, a group stop, or a signal: no fork event came
         * first, so no child was created (the fork failed or will restart).
         * A signal is delivered by the detach, never lost. */
        int sig = event == 0 ? WSTOPSIG(status) : 0;
        ptrace(PTRACE_DETACH, tid, 0, sig);
        rec_free(r);
        proc_limit_fork_done(sb, tid);
}

static void on_child(struct trace_rec *c, int status)
{
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
                /* killed (SIGKILL) before its first stop, so before running
                 * any code of its own: it existed all the same */
                if (c->registered || c->thread) {
                        rec_free(c); /* counted (its pidfd tells the rest), or no process */
                } else if (c->sb) {
                        proc_limit_child_died(c->sb, c->parent, c->tid);
                        rec_free(c);
                } else {
                        c->died = true; /* its creator's event will say where */
                }
                return;
        }
        if (!WIFSTOPPED(status))
                return;
        if (c->stopped) {
                /* a later stop of a vfork child traced to its exec (whose
                 * event fork_trace_collect takes): a signal is passed on,
                 * and so is SIGCONT's trap; anything else ends the trace -
                 * a group stop (the detach leaves it stopped), a thread it
                 * made (unseen by the filter: let go too), a clone no
                 * notification announced (its new task, never registered,
                 * is killed as one whose creator never reported) */
                int event = status >> 16;
                if (event == 0 && ptrace(PTRACE_CONT, c->tid, 0, WSTOPSIG(status)) == 0)
                        return;
                /* the trap a SIGCONT sends a seized task (found in review:
                 * taken for a group stop, it let the child go) - no
                 * interrupt is ever sent to a child */
                if (event == PTRACE_EVENT_STOP && WSTOPSIG(status) == SIGTRAP && ptrace(PTRACE_CONT, c->tid, 0, 0) == 0)
                        return;
                unsigned long child = 0;
                struct trace_rec *n;
                if ((event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK) &&
                    ptrace(PTRACE_GETEVENTMSG, c->tid, 0, &child) == 0 && child > 0 && child <= INT_MAX &&
                    (n = child_rec((pid_t)child)))
                        thread_born(c->sb, n);
                exec_watch_end(c, event == 0 ? WSTOPSIG(status) : 0);
                return;
        }
        /* its first stop; until its creator's event names its sandbox, it
         * waits here, stopped, before running any code of its own */
        c->stopped = true;
        if (c->thread) {
                ptrace(PTRACE_DETACH, c->tid, 0, 0);
                rec_free(c);
        } else if (c->sb) {
                child_register(c);
        }
}

void fork_trace_collect(void)
{
        for (;;) {
                int status;
                pid_t pid = waitpid(-1, &status, WNOHANG | __WALL);
                if (pid <= 0)
                        return;
                if (WIFSTOPPED(status) && status >> 16 == PTRACE_EVENT_EXEC) {
                        /* a parent out of its fork, in an exec, or a vfork
                         * child traced to it; `pid` is its tid now, the one
                         * it had is the event's */
                        unsigned long former = 0;
                        ptrace(PTRACE_GETEVENTMSG, pid, 0, &former);
                        struct trace_rec *x = rec_find((pid_t)former);
                        ptrace(PTRACE_DETACH, pid, 0, 0);
                        if (x && x->exec_watch) {
                                /* a vfork child's: its new image is in */
                                log_debug("vfork child %d: exec over", x->tid);
                                mem_limit_vfork_done(x->sb, x->tid, true);
                                rec_free(x);
                        } else if (x && !x->is_child) {
                                proc_limit_fork_done(x->sb, x->tid);
                                rec_free(x);
                        }
                        continue;
                }
                struct trace_rec *r = rec_find(pid);
                if (!r) {
                        /* a new child whose creator's event is still queued
                         * (stopped, or already killed) */
                        if (!(r = rec_new(pid)))
                                continue;
                        r->is_child = true;
                        fork_trace_arm();
                }
                if (r->is_child)
                        on_child(r, status);
                else
                        on_parent(r, status);
        }
}

void fork_trace_forget(struct tsandbox *sb)
{
        for (struct trace_rec *r = recs, *next; r; r = next) {
                next = r->next;
                if (r->sb == sb) {
                        ptrace(PTRACE_DETACH, r->tid, 0, 0);
                        rec_free(r);
                }
        }
}
