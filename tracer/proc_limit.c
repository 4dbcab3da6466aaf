#include "proc_limit.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "mem_limit.h"
#include "procfs.h"
#include "syscalls.h"
#include "fork_trace.h"
#include "kcompat.h"
#include "log.h"
#include "notif_loop.h"

enum fork_verdict proc_limit_judge(uint32_t live, uint32_t max_procs, bool frozen)
{
        if (frozen)
                return FORK_HOLD;
        return max_procs == 0 || live < max_procs ? FORK_ALLOW : FORK_DENY;
}

static void release_entry(struct proc_entry *e) { tracer_defer_free(e); }

static void on_reap(struct proc_entry *e, void *ud)
{
        struct tsandbox *sb = ud;
        sb->reaps++;
        if (!audit_on(&sb->audit))
                return;
        json_object *f = json_object_new_object();
        json_object_object_add(f, "pid", json_object_new_int(e->pid));
        audit_emit(&sb->audit, "reap", f);
}

/* Register `pid` (made by thread `parent_tid`, by a traced vfork if
 * `vfork`; 0: the root) with a pidfd. `copy`: the bytes of its parent's
 * memory judged at its fork (0: none judged).
 * Returns 0 (*out set), -ESRCH when it is
 * gone, or another -errno (out of descriptors or memory). */
static int register_pid(struct tsandbox *sb, pid_t pid, pid_t parent_tid, bool vfork, uint64_t copy,
                        struct proc_entry **out)
{
        int pidfd = (int)syscall(__NR_pidfd_open, pid, 0);
        if (pidfd < 0)
                return -errno;
        struct proc_entry *e = proc_index_add(&sb->procs, sb, pid, pidfd);
        if (!e)
                return -errno;
        if (tracer_watch(e->pidfd, e) < 0) {
                /* its exit is then seen by the recounts that poll every
                 * live pidfd, its reap by the /proc check */
                log_debug("cannot watch process %d: %s", pid, strerror(errno));
                e->watch_reap = true;
        }
        mem_limit_register(sb, e, parent_tid, vfork, copy);
        *out = e;
        return 0;
}

int proc_limit_start(struct tsandbox *sb)
{
        if (!sb->tracked)
                return 0;
        struct proc_entry *e = NULL;
        int r = register_pid(sb, sb->root, 0, false, 0, &e);
        if (r < 0)
                return r;
        sb->procs.peak = 1;
        /* The root has not exec'd yet: its address space is still the
         * broker's copy, about to be replaced. It is measured afresh at its
         * first request. */
        e->data = 0;
        sb->mem_peak = 0;
        return 0;
}

/* Live processes are the registered ones (a child is registered at its
 * creator's fork event, before it runs). The count is an upper bound
 * (exits not yet seen), so a new peak is checked exactly before it is
 * recorded. */
static void update_peak(struct tsandbox *sb)
{
        if (sb->procs.count <= sb->procs.peak)
                return;
        proc_index_recount(&sb->procs, on_reap, sb, release_entry, true);
        if (sb->procs.count > sb->procs.peak)
                sb->procs.peak = sb->procs.count;
}

static void audit_fork(struct tsandbox *sb, pid_t parent_tid, pid_t child)
{
        if (!audit_on(&sb->audit))
                return;
        json_object *f = json_object_new_object();
        audit_caller(f, parent_tid);
        json_object_object_add(f, "child", json_object_new_int(child));
        json_object_object_add(f, "live", json_object_new_int(sb->procs.count));
        audit_emit(&sb->audit, "fork", f);
}

void proc_limit_child_died(struct tsandbox *sb, pid_t parent_tid, pid_t child)
{
        sb->forks_allowed++;
        /* a zombie still holds its slot: an entry that has exited */
        struct proc_entry *e = proc_index_add(&sb->procs, sb, child, -1);
        if (e)
                e->exited = true;
        update_peak(sb);
        audit_fork(sb, parent_tid, child);
        if (!e) {
                /* already reaped */
                struct proc_entry gone = { .pid = child };
                on_reap(&gone, sb);
        }
}

int proc_limit_child_born(struct tsandbox *sb, pid_t parent_tid, pid_t child, bool vfork)
{
        if (child <= 0)
                return -EINVAL; /* never a kill(0) or kill(-1) below */
        /* An entry with this pid is a reaped process whose pid was reused
         * (it is dropped by the exact recount), unless it is this one. */
        if (proc_index_find(&sb->procs, child)) {
                proc_index_recount(&sb->procs, on_reap, sb, release_entry, true);
                if (proc_index_find(&sb->procs, child)) {
                        log_debug("child %d of %d: already registered", child, parent_tid);
                        return 0;
                }
        }
        /* the child's own measure replaces its creator's reservation */
        uint64_t copy = mem_limit_fork_over(sb, parent_tid);
        struct proc_entry *e = NULL;
        int r = register_pid(sb, child, parent_tid, vfork, copy, &e);
        if (r == -ESRCH) {
                /* gone before we could look: nothing to count */
                log_debug("child %d of %d: gone before registration", child, parent_tid);
                return r;
        }
        if (r < 0) {
                /* Fail closed: it must not run unregistered. It is stopped
                 * under our ptrace, so its pid cannot be reused yet; it
                 * counts as a zombie until reaped. */
                log_errno(r, "sandbox %llu: cannot register child %d of %d; killing it",
                          (unsigned long long)sb->id, child, parent_tid);
                kill(child, SIGKILL);
                proc_limit_child_died(sb, parent_tid, child);
                return r;
        }
        sb->forks_allowed++;
        update_peak(sb);
        audit_fork(sb, parent_tid, child);
        return 0;
}

void proc_limit_fork_done(struct tsandbox *sb, pid_t tid)
{
        if (sb->reserved)
                sb->reserved--;
        mem_limit_fork_over(sb, tid);
}

void proc_limit_pidfd_event(struct proc_entry *e, uint32_t events)
{
        if (e->pidfd < 0)
                return; /* released earlier in this batch */
        if (!e->watch_reap) {
                /* readable stays readable: from now on only the hang-up */
                e->watch_reap = true;
                if (tracer_watch_hup(e->pidfd, e) < 0)
                        tracer_unwatch(e->pidfd); /* the /proc check remains */
        }
        if (!e->exited) {
                proc_entry_exited(e);
                e->data = 0; /* the address space went with it */
        }
        if (events & (EPOLLHUP | EPOLLERR)) {
                e->reap_seen = true;
                proc_index_recount(&e->sb->procs, on_reap, e->sb, release_entry, false);
        }
}

static const char *ns_syscall_name(int nr)
{
        switch (nr) {
        case SYS_unshare: return "unshare";
        case SYS_setns: return "setns";
        default: return "clone";
        }
}

static int deny_namespace(struct tsandbox *sb, const struct seccomp_notif *n)
{
        json_object *f = json_object_new_object();
        audit_caller(f, (pid_t)n->pid);
        json_object_object_add(f, "syscall", json_object_new_string(ns_syscall_name(n->data.nr)));
        json_object_object_add(f, "flags", json_object_new_uint64(
                n->data.nr == SYS_setns ? n->data.args[1] : n->data.args[0]));
        audit_emit(&sb->audit, "namespace_denied", f);
        sb->ns_denied++;
        return EPERM;
}

/* A fork held while its process's exec lock is: tried again after 2 ms,
 * then after twice as long each time, up to once a second (each try can
 * cost the tracer SEIZE_WAIT_NS). */
#define RETRY_FIRST_NS (2 * 1000 * 1000ull)
#define RETRY_MAX_NS (1000 * 1000 * 1000ull)

struct held_notif *held_notif_new(const struct seccomp_notif *n)
{
        struct held_notif *h = calloc(1, sizeof(*h));
        if (h) {
                h->id = n->id;
                h->tid = (pid_t)n->pid;
                h->nr = n->data.nr;
                memcpy(h->args, n->data.args, sizeof(h->args));
                h->fd_look = -1; /* MEM_FD_UNSEEN */
        }
        return h;
}

bool held_notif_take(int listener, struct held_notif *h, struct seccomp_notif *n)
{
        uint64_t id = h->id;
        *n = (struct seccomp_notif){ .id = h->id, .pid = (uint32_t)h->tid };
        n->data.nr = h->nr;
        memcpy(n->data.args, h->args, sizeof(h->args));
        free(h);
        return ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

void held_notif_arm(const struct held_notif *list, uint64_t now_ns)
{
        uint64_t next = 0;
        for (const struct held_notif *h = list; h; h = h->next)
                if (h->retry_ns && (!next || h->retry_ns < next))
                        next = h->retry_ns;
        if (next)
                fork_trace_arm_within(next > now_ns ? next - now_ns : 1);
}

/* Hold notification `n`: until the thaw (`backoff` 0), or to be tried
 * again in `backoff` ns (its process's exec lock is held). */
static int hold(struct tsandbox *sb, const struct seccomp_notif *n, uint64_t backoff)
{
        struct held_notif *h = held_notif_new(n);
        if (!h)
                return EAGAIN;
        if (backoff) {
                h->backoff_ns = backoff;
                h->retry_ns = mono_ns() + backoff;
                h->tgid = procfs_tgid(n->pid);
                fork_trace_arm_within(backoff);
        }
        h->next = sb->held;
        sb->held = h;
        return NOTIF_ANSWERED;
}

/* Refuse a fork with `err`: count it and record a fork_denied event with
 * the caller and the members of `f` (consumed). Returns err. */
static int deny_fork(struct tsandbox *sb, const struct seccomp_notif *n, int err, const char *name, json_object *f)
{
        sb->forks_denied++;
        audit_caller(f, (pid_t)n->pid);
        json_object_object_add(f, "errno", json_object_new_string(name));
        audit_emit(&sb->audit, "fork_denied", f);
        return err;
}

/* Whether `sb` holds a fork of process `tgid` for its exec lock: a
 * process's forks wait for the same lock. */
static bool waits_for_exec(struct tsandbox *sb, pid_t tgid)
{
        for (struct held_notif *h = sb->held; h; h = h->next)
                if (h->retry_ns && h->tgid == tgid)
                        return true;
        return false;
}

/* Judge a fork request of `tid` (notification `id`): EAGAIN, Continue with
 * birth registration, or hold; `backoff`: how long to hold it if its
 * process's exec lock is held (0: RETRY_FIRST_NS). */
static int judge_fork(struct tsandbox *sb, const struct seccomp_notif *n, uint64_t backoff)
{
        /* reaps seen since the last decision leave the count (and the
         * record) now; exits not yet seen are polled only at the limit */
        uint32_t live = proc_index_recount(&sb->procs, on_reap, sb, release_entry, false) + sb->reserved;
        enum fork_verdict v = proc_limit_judge(live, sb->max_procs, sb->frozen);
        if (v == FORK_DENY) {
                /* the counter is an upper bound: recount exactly first */
                live = proc_index_recount(&sb->procs, on_reap, sb, release_entry, true) + sb->reserved;
                v = proc_limit_judge(live, sb->max_procs, sb->frozen);
        }
        if (v == FORK_HOLD)
                return hold(sb, n, 0);
        uint64_t reserve = 0, wait = 0;
        uint64_t over = v == FORK_ALLOW ? mem_limit_fork_growth(sb, n, &reserve, &wait) : 0;
        if (wait)
                return hold(sb, n, wait); /* the exact memory look decides, later */
        if (over) {
                json_object *f = json_object_new_object();
                json_object_object_add(f, "requested", json_object_new_uint64(over));
                json_object_object_add(f, "limit_memory", json_object_new_uint64(sb->max_memory));
                return deny_fork(sb, n, ENOMEM, "ENOMEM", f);
        }
        if (v == FORK_DENY) {
                json_object *f = json_object_new_object();
                json_object_object_add(f, "live", json_object_new_int(live));
                json_object_object_add(f, "limit", json_object_new_int(sb->max_procs));
                return deny_fork(sb, n, EAGAIN, "EAGAIN", f);
        }
        if (!backoff && sb->held) {
                /* a fork of a process that waits for its exec lock
                 * already waits with it, untried (each try can cost the
                 * tracer a millisecond) */
                pid_t tgid = procfs_tgid((pid_t)n->pid);
                if (tgid > 0 && waits_for_exec(sb, tgid))
                        return hold(sb, n, RETRY_FIRST_NS);
        }
        sb->reserved++;
        int r = fork_trace_begin(sb, sb->listener, n->pid, n->id);
        if (r < 0) {
                sb->reserved--;
                if (r == -EWOULDBLOCK) {
                        /* another thread's exec (held, maybe for good, in
                         * a stalled file system): not waited for */
                        log_debug("sandbox %llu: fork of task %d waits for its process's exec",
                                  (unsigned long long)sb->id, n->pid);
                        return hold(sb, n, backoff ? backoff : RETRY_FIRST_NS);
                }

                /* a task that exited (killed with its group, say) cannot
                 * be seized either (EPERM): its notification is gone */
                uint64_t id = n->id;
                if (r == -ESRCH || (r == -EPERM && ioctl(sb->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0)) {
                        log_debug("sandbox %llu: task %d vanished before fork registration",
                                  (unsigned long long)sb->id, n->pid);
                        return EAGAIN; /* the task is gone; the answer goes nowhere */
                }
                /* Fail closed: a child we cannot register would be
                 * uncounted. */
                log_errno(r, "sandbox %llu: cannot trace task %d for fork registration; refusing its fork",
                          (unsigned long long)sb->id, n->pid);
                return EPERM;
        }
        mem_limit_fork_reserve(sb, n->pid, reserve);
        return NOTIF_ANSWERED;
}

int proc_limit_notify(struct tsandbox *sb, const struct seccomp_notif *n)
{
        switch (n->data.nr) {
        case SYS_unshare:
        case SYS_setns:
                return deny_namespace(sb, n);
        case SYS_clone:
                if (n->data.args[0] & CLONE_NS_FLAGS)
                        return deny_namespace(sb, n);
                if (n->data.args[0] & (CLONE_THREAD | CLONE_UNTRACED))
                        return EPERM; /* the filter never routes these */
                /* fall through */
        case SYS_fork:
        case SYS_vfork:
                if (!sb->tracked)
                        return ENOSYS; /* not routed without a limit */
                return judge_fork(sb, n, 0);
        default:
                return ENOSYS;
        }
}

/* Judge held notification `h` again (`backoff` as judge_fork's) and
 * answer it unless it is held again; frees `h`. Returns judge_fork's
 * verdict, or -1 when its task is gone (nothing to answer). */
static int rejudge(struct tsandbox *sb, struct held_notif *h, uint64_t backoff)
{
        struct seccomp_notif n;
        if (!held_notif_take(sb->listener, h, &n))
                return -1; /* the task died (an exec went on: de_thread) */
        int err = judge_fork(sb, &n, backoff);
        if (err != NOTIF_ANSWERED)
                notif_respond(sb->listener, n.id, err);
        return err;
}

void proc_limit_freeze(struct tsandbox *sb, bool frozen)
{
        if (!sb->tracked || sb->frozen == frozen)
                return;
        sb->frozen = frozen;
        json_object *f = json_object_new_object();
        json_object_object_add(f, "live", json_object_new_int(sb->procs.count));
        audit_emit(&sb->audit, frozen ? "freeze" : "thaw", f);
        if (frozen) {
                proc_index_signal(&sb->procs, SIGSTOP);
                return;
        }
        proc_index_signal(&sb->procs, SIGCONT);
        struct held_notif *h = sb->held;
        sb->held = NULL;
        while (h) {
                struct held_notif *next = h->next;
                rejudge(sb, h, 0);
                h = next;
        }
}

void proc_limit_retry(struct tsandbox *sb)
{
        if (sb->frozen || sb->ended || sb->listener < 0)
                return;
        uint64_t now = mono_ns();
        /* A process's forks wait for one lock: when one is due, all are
         * (one try each pass; if it gets the lock, every other goes on). */
        for (struct held_notif *h = sb->held; h; h = h->next)
                if (h->retry_ns && h->retry_ns <= now && h->tgid > 0)
                        for (struct held_notif *o = sb->held; o; o = o->next)
                                if (o->retry_ns > now && o->tgid == h->tgid)
                                        o->retry_ns = now;
        struct held_notif *due = NULL, **tail = &due;
        for (struct held_notif **pp = &sb->held; *pp;) {
                struct held_notif *h = *pp;
                if (h->retry_ns && h->retry_ns <= now) {
                        *pp = h->next;
                        h->next = NULL;
                        *tail = h;
                        tail = &h->next;
                } else {
                        pp = &h->next;
                }
        }
        pid_t *busy = NULL; /* processes whose try found the lock held */
        size_t nbusy = 0;
        while (due) {
                struct held_notif *h = due;
                due = h->next;
                uint64_t backoff = h->backoff_ns * 2 < RETRY_MAX_NS ? h->backoff_ns * 2 : RETRY_MAX_NS;
                bool tried = false;
                for (size_t i = 0; i < nbusy && !tried; i++)
                        tried = busy[i] == h->tgid;
                if (tried) {
                        h->retry_ns = now + backoff;
                        h->backoff_ns = backoff;
                        h->next = sb->held;
                        sb->held = h;
                        continue;
                }
                pid_t tgid = h->tgid;
                uint64_t id = h->id;
                if (rejudge(sb, h, backoff) == NOTIF_ANSWERED && tgid > 0 && sb->held && sb->held->id == id &&
                    sb->held->retry_ns) {
                        /* held again: the lock is still held */
                        pid_t *b2 = realloc(busy, (nbusy + 1) * sizeof(*b2));
                        if (b2) {
                                busy = b2;
                                busy[nbusy++] = tgid;
                        }
                }
        }
        free(busy);
        /* the tick again at the earliest retry (new holds armed it too) */
        held_notif_arm(sb->held, now);
}

void proc_limit_end(struct tsandbox *sb)
{
        fork_trace_forget(sb);
        /* Every process is dead now (the reaper killed and reaped them):
         * the last reaps are recorded. */
        proc_index_recount(&sb->procs, on_reap, sb, release_entry, true);
        for (struct proc_entry *e = sb->procs.head; e; e = e->next)
                if (e->pidfd >= 0)
                        tracer_unwatch(e->pidfd);
        proc_index_clear(&sb->procs, release_entry);
        while (sb->held) {
                struct held_notif *h = sb->held;
                sb->held = h->next;
                free(h);
        }
}
