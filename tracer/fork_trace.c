#include "fork_trace.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "log.h"
#include "procfs.h"

struct trace_rec {
        pid_t tid;
        bool is_child;          /* an auto-attached new process */
        bool stopped;           /* child: its first stop has been seen */
        struct tsandbox *sb;    /* NULL: child whose creator is not known yet */
        pid_t parent;           /* child: the creating thread, when known */
        struct trace_rec *next;
};

static struct trace_rec *recs;

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
        struct seccomp_notif_resp resp = { .id = id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE };

        /* EXITKILL: should the tracer die mid-way, the traced tasks die
         * rather than run unregistered. */
        if (ptrace(PTRACE_SEIZE, tid, 0,
                   PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL) < 0)
                return -errno;
        struct trace_rec *r = rec_new(tid);
        if (!r) {
                ptrace(PTRACE_DETACH, tid, 0, 0);
                return -ENOMEM;
        }
        r->sb = sb;
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0) {
                /* ENOENT: killed while parked; its exit reaches
                 * fork_trace_collect like any other outcome */
                if (errno != ENOENT)
                        log_errno(-errno, "answering a fork notification");
        }
        /* After Continue, never before: a stop is now guaranteed, the
         * fork event first if a child is created. */
        if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 && errno != ESRCH)
                log_errno(-errno, "PTRACE_INTERRUPT %d", tid);
        return 0;
}

/* Register a stopped new child and let it run. */
static void child_register(struct trace_rec *c)
{
        proc_limit_child_born(c->sb, c->parent, c->tid);
        ptrace(PTRACE_DETACH, c->tid, 0, 0);
        rec_free(c);
}

/* A child stopped before its creator's event was collected: find its
 * sandbox through its parent process (not possible for CLONE_PARENT, whose
 * parent may be outside; the creator's event will name it). */
static void child_resolve(struct trace_rec *c)
{
        struct proc_stat st;
        if (procfs_stat(c->tid, &st) < 0)
                return;
        struct tsandbox *sb = proc_limit_owner(st.ppid);
        if (sb) {
                c->sb = sb;
                c->parent = st.ppid;
        }
}

static void on_parent(struct trace_rec *r, int status)
{
        struct tsandbox *sb = r->sb;
        pid_t tid = r->tid;

        if (WIFEXITED(status) || WIFSIGNALED(status)) {
                rec_free(r);
                proc_limit_fork_done(sb, tid);
                return;
        }
        if (!WIFSTOPPED(status))
                return;
        int event = status >> 16;
        if (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK || event == PTRACE_EVENT_CLONE) {
                unsigned long child = 0;
                ptrace(PTRACE_GETEVENTMSG, tid, 0, &child);
                /* detached at the event: a vfork parent now sleeps until
                 * its child execs, and must not hold us */
                ptrace(PTRACE_DETACH, tid, 0, 0);
                rec_free(r);
                struct trace_rec *c = rec_find((pid_t)child);
                if (!c && proc_index_find(&sb->procs, (pid_t)child)) {
                        /* already registered through its parent process */
                        proc_limit_fork_done(sb, tid);
                        return;
                }
                if (!c) {
                        c = rec_new((pid_t)child);
                        if (c)
                                c->is_child = true;
                }
                if (c) {
                        c->sb = sb;
                        c->parent = tid;
                        if (c->stopped)
                                child_register(c);
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
                /* killed before registration: it still existed, and may be
                 * a zombie holding a slot; registration sorts that out */
                if (c->sb)
                        proc_limit_child_born(c->sb, c->parent, c->tid);
                rec_free(c);
                return;
        }
        if (!WIFSTOPPED(status))
                return;
        if (c->stopped) {
                /* a later stop of a child we still hold: pass it on */
                ptrace(PTRACE_CONT, c->tid, 0, (status >> 16) == 0 ? WSTOPSIG(status) : 0);
                return;
        }
        c->stopped = true;
        if (!c->sb)
                child_resolve(c);
        if (c->sb)
                child_register(c);
}

void fork_trace_collect(void)
{
        for (;;) {
                int status;
                pid_t pid = waitpid(-1, &status, WNOHANG | __WALL);
                if (pid <= 0)
                        return;
                struct trace_rec *r = rec_find(pid);
                if (!r) {
                        /* a new child whose creator's event is still queued */
                        if (!WIFSTOPPED(status) || !(r = rec_new(pid)))
                                continue;
                        r->is_child = true;
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
