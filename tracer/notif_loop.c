#include "notif_loop.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "exec_audit.h"
#include "fork_trace.h"
#include "kcompat.h"
#include "log.h"
#include "mem_limit.h"
#include "notif_rx.h"
#include "proc_limit.h"
#include "procfs.h"

/* Room for the kernel's response, which may be larger than our header's. */
#define RESP_ROOM 64

static struct seccomp_notif_sizes sizes;
static struct seccomp_notif *req;

int notif_init(void)
{
        if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0)
                return -errno;
        /* the kernel's structures may be larger than our headers' */
        size_t nsize = sizes.seccomp_notif > sizeof(*req) ? sizes.seccomp_notif : sizeof(*req);
        if (sizes.seccomp_notif_resp > RESP_ROOM)
                return -EOVERFLOW;
        req = calloc(1, nsize);
        if (!req)
                return -ENOMEM;
        return notif_rx_init(nsize);
}

void notif_listener_setup(int listener)
{
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) < 0)
                log_debug("synchronous wake-up not available: %s", strerror(errno));
}

static bool id_valid(int listener, uint64_t id)
{
        return ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

/* Record an exec read from the caller (`rec`, NULL: none) and count it.
 * Under tracer_lock. */
static void exec_record(struct tsandbox *sb, const struct seccomp_notif *n, const struct exec_record *rec)
{
        sb->execs++;
        /* Only a still-pending notification proves the bytes were the
         * caller's: its task could have died and its pid been reused. */
        if (rec && id_valid(sb->listener, n->id)) {
                json_object *f = exec_record_json(rec);
                audit_caller(f, (pid_t)n->pid);
                audit_emit(&sb->audit, "exec", f);
        }
}

/* What a receiver read of a notification off the tracer lock, and could
 * not use itself (the lock was busy): left to the main loop with the
 * notification - an exec's path and argv, or what an mmap's descriptor is.
 * Under exec_lock, which also orders a receiver's look at its sandbox
 * before the sandbox is freed (notif_forget). */
struct pre_read {
        const struct tsandbox *sb;
        uint64_t id;
        struct exec_record rec;
        bool read;                /* rec holds an exec's record */
        int fd_look;              /* an mmap's descriptor (enum mem_fd_look) */
        struct pre_read *next;
};
static pthread_mutex_t exec_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pre_read *pre_reads;

void notif_forget(const struct tsandbox *sb)
{
        pthread_mutex_lock(&exec_lock);
        for (struct pre_read **pp = &pre_reads; *pp;) {
                struct pre_read *p = *pp;
                if (p->sb == sb) {
                        *pp = p->next;
                        if (p->read)
                                exec_record_free(&p->rec);
                        free(p);
                } else {
                        pp = &p->next;
                }
        }
        pthread_mutex_unlock(&exec_lock);
}

/* Let exec notification `n` run (caller holds tracer_lock): its thread is
 * out of any fork it was seized for, the exec is recorded with what its
 * receiver read (`rec`, NULL: unread), and its address space is judged
 * anew. The caller answers. */
static void exec_let_run(struct tsandbox *sb, const struct seccomp_notif *n, const struct exec_record *rec)
{
        fork_trace_call_seen((pid_t)n->pid);
        exec_record(sb, n, rec);
        mem_limit_exec(sb, (pid_t)n->pid);
}

/* Take what a receiver read of notification `n` (NULL: nothing). */
static struct pre_read *pre_read_take(const struct tsandbox *sb, const struct seccomp_notif *n)
{
        struct pre_read *p = NULL;
        pthread_mutex_lock(&exec_lock);
        for (struct pre_read **pp = &pre_reads; *pp; pp = &(*pp)->next)
                if ((*pp)->sb == sb && (*pp)->id == n->id) {
                        p = *pp;
                        *pp = p->next;
                        break;
                }
        pthread_mutex_unlock(&exec_lock);
        return p;
}

/* Leave `p` (owned by the list from now on; NULL: out of memory, nothing
 * kept) to the main loop, unless receiver `rx` is stopping. Returns
 * whether it was kept. */
static bool pre_read_leave(struct pre_read *p, struct notif_rx *rx)
{
        bool kept = false;
        pthread_mutex_lock(&exec_lock);
        if (p && !notif_rx_stopping(rx)) {
                p->next = pre_reads;
                pre_reads = p;
                kept = true;
        }
        pthread_mutex_unlock(&exec_lock);
        return kept;
}

/* execve/execveat on the main loop: record what its receiver read (the
 * main loop never reads a sandbox's memory: a stalled file system behind it
 * would hold every sandbox), then let the kernel do it. */
static void handle_exec(struct tsandbox *sb, const struct seccomp_notif *n)
{
        struct pre_read *p = pre_read_take(sb, n);
        exec_let_run(sb, n, p && p->read ? &p->rec : NULL);
        if (p && p->read)
                exec_record_free(&p->rec);
        free(p);
}

/* One answer: CONTINUE (err 0, no value), an error, or a return value. */
static int respond(int listener, uint64_t id, int err, const long *val)
{
        union {
                struct seccomp_notif_resp r;
                unsigned char room[RESP_ROOM];
        } u;
        memset(&u, 0, sizeof(u));
        u.r.id = id;
        if (err)
                u.r.error = -err;
        else if (val)
                u.r.val = *val;
        else
                u.r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &u) < 0)
                return -errno;
        return 0;
}

int notif_respond(int listener, uint64_t id, int err)
{
        return respond(listener, id, err, NULL);
}

int notif_respond_result(int listener, uint64_t id, long result)
{
        return result < 0 ? respond(listener, id, (int)-result, NULL) : respond(listener, id, 0, &result);
}

/* Judge one notification; returns the errno to answer with (0: Continue)
 * or NOTIF_ANSWERED. */
static int judge(struct tsandbox *sb, const struct seccomp_notif *n)
{
        /* any call but a fork shows its thread out of a fork it was
         * seized for (a seized thread's next fork reuses its trace) */
        switch (n->data.nr) {
        case SYS_execve:
        case SYS_execveat:
                handle_exec(sb, n);
                return 0;
        case SYS_mmap: {
                /* what its receiver found its descriptor to be, if it looked */
                struct pre_read *p = mem_limit_fd_look_wanted(sb, n) ? pre_read_take(sb, n) : NULL;
                int look = p ? p->fd_look : MEM_FD_UNSEEN;
                free(p);
                fork_trace_call_seen((pid_t)n->pid);
                return mem_limit_notify(sb, n, look);
        }
        case SYS_mprotect:
        case SYS_pkey_mprotect:
        case SYS_brk:
        case SYS_mremap:
        case SYS_shmget:
        case SYS_shmat:
                fork_trace_call_seen((pid_t)n->pid);
                return mem_limit_notify(sb, n, MEM_FD_UNSEEN);
        case SYS_unshare:
        case SYS_setns:
                fork_trace_call_seen((pid_t)n->pid);
                return proc_limit_notify(sb, n);
        case SYS_clone:
        case SYS_fork:
        case SYS_vfork:
                return proc_limit_notify(sb, n);
        default:
                /* the filter routes nothing else here; fail closed if it
                 * ever does */
                return ENOSYS;
        }
}

static void answer(struct tsandbox *sb, uint64_t id, int err)
{
        if (err == NOTIF_ANSWERED)
                return;
        int r = notif_respond(sb->listener, id, err);
        if (r == -ENOENT)
                sb->stale++; /* the task died, or restarted its call */
        else if (r < 0)
                log_errno(r, "sandbox %llu: answering notification", (unsigned long long)sb->id);
}

pthread_mutex_t tracer_lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether the sandbox behind receiver `rx` still takes answers. Under
 * tracer_lock: a stopping receiver's sandbox may be freed already. */
static bool serving(struct tsandbox *sb, struct notif_rx *rx)
{
        return !notif_rx_stopping(rx) && sb->listener >= 0 && !sb->ended;
}

/* An exec on the receiver thread: read without the lock (see
 * notif_loop.h); recorded and answered here if the tracer lock is free at
 * once, else queued with what was read. Never waits for the lock: while
 * this thread waits nothing is received, and a fork's notification not
 * received yet can be ended by a signal (EINTR, notif_rx.h). Returns as
 * notif_inline(). */
static bool inline_exec(struct tsandbox *sb, const struct seccomp_notif *n, struct notif_rx *rx)
{
        /* the sandbox is alive while its receiver is not stopping, and
         * notif_forget() (before it is freed) takes exec_lock */
        pthread_mutex_lock(&exec_lock);
        bool ok = !notif_rx_stopping(rx), audit = ok && audit_on(&sb->audit);
        pthread_mutex_unlock(&exec_lock);
        if (!ok)
                return true; /* over: dropped */
        struct exec_record rec;
        bool read = audit && exec_read(&target_mem_process_vm, n->pid, n->data.nr,
                                       (const uint64_t *)n->data.args, &rec) == 0;
        if (pthread_mutex_trylock(&tracer_lock) == 0) {
                if (serving(sb, rx)) {
                        exec_let_run(sb, n, read ? &rec : NULL);
                        answer(sb, n->id, 0);
                }
                pthread_mutex_unlock(&tracer_lock);
                if (read)
                        exec_record_free(&rec);
                return true;
        }
        struct pre_read *p = calloc(1, sizeof(*p));
        if (p)
                *p = (struct pre_read){ .sb = sb, .id = n->id, .rec = rec, .read = read };
        if (pre_read_leave(p, rx))
                read = false; /* the main loop's now */
        else
                free(p);
        if (read)
                exec_record_free(&rec);
        return false;
}

/* An mmap(MAP_SHARED) of a file on the receiver thread: its descriptor is
 * looked at without the lock (mem_limit_fd_look(): as costly as the
 * sandbox makes it, so only this sandbox waits), then judged here if the
 * tracer lock is free at once, else left to the main loop with what was
 * found. Returns as notif_inline(). */
static bool inline_fd_mmap(struct tsandbox *sb, struct seccomp_notif *n, struct notif_rx *rx)
{
        int look = mem_limit_fd_look(n);
        if (pthread_mutex_trylock(&tracer_lock) == 0) {
                bool ok = serving(sb, rx);
                if (ok) {
                        fork_trace_call_seen((pid_t)n->pid);
                        answer(sb, n->id, mem_limit_notify(sb, n, look));
                }
                pthread_mutex_unlock(&tracer_lock);
                return ok;
        }
        struct pre_read *p = calloc(1, sizeof(*p));
        if (p)
                *p = (struct pre_read){ .sb = sb, .id = n->id, .fd_look = look };
        if (!pre_read_leave(p, rx))
                free(p); /* looked at again on the main loop */
        return false;
}

bool notif_inline(void *ctx, struct seccomp_notif *n, struct notif_rx *rx)
{
        struct tsandbox *sb = ctx;
        switch (n->data.nr) {
        case SYS_clone:
        case SYS_fork:
        case SYS_vfork:
                return false; /* birth registration: ptrace, main thread */
        case SYS_execve:
        case SYS_execveat:
                return inline_exec(sb, n, rx);
        case SYS_mmap: {
                /* the sandbox is alive while its receiver is not stopping
                 * (notif_forget, before it is freed, takes exec_lock) */
                pthread_mutex_lock(&exec_lock);
                bool look = !notif_rx_stopping(rx) && mem_limit_fd_look_wanted(sb, n);
                pthread_mutex_unlock(&exec_lock);
                if (look)
                        return inline_fd_mmap(sb, n, rx);
                break;
        }
        default:
                break;
        }
        /* never wait for the main thread: while this thread waits, nothing
         * is received, and a received notification is safe in its queue */
        if (pthread_mutex_trylock(&tracer_lock) != 0)
                return false;
        bool ok = serving(sb, rx);
        if (ok)
                answer(sb, n->id, judge(sb, n));
        pthread_mutex_unlock(&tracer_lock);
        return ok;
}

int notif_drain(struct tsandbox *sb, int budget)
{
        int handled = 0;

        while (handled < budget) {
                int k = notif_rx_pop(sb->rx, req);
                if (k == -ENOTCONN)
                        return -ENOTCONN;
                if (k == 0)
                        break;
                handled++;
                answer(sb, req->id, judge(sb, req));
        }
        return handled;
}
