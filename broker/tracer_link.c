#include "tracer_link.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/protocol/reqrep0/req.h>

#include "child.h"
#include "cleanup.h"
#include "clock.h"
#include "fdpass.h"
#include "kcompat.h"
#include "log.h"
#include "msg.h"

#define TRACER_TIMEOUT_MS 10000
/* An EndSandbox's answer may wait for the sandbox's audit sink. */
#define END_TIMEOUT_MS (MSG_END_AUDIT_WAIT_MS + TRACER_TIMEOUT_MS)

/* An EndSandbox sent, its answer awaited. */
struct tracer_end {
        uint32_t id;
        uint64_t deadline_ns;   /* CLOCK_MONOTONIC */
        tracer_end_fn done;
        void *arg;
        nng_msg *answer;        /* taken in, not handled yet */
        struct tracer_end *next;
};

static int prepare_dir(const char *dir, const char *user)
{
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        if (geteuid() != 0)
                return 0;
        struct passwd *pw = getpwnam(user);
        if (!pw)
                return -ESRCH;
        /* only the tracer's user (and root) can reach its control socket */
        if (chown(dir, pw->pw_uid, pw->pw_gid) < 0 || chmod(dir, 0700) < 0)
                return -errno;
        return 0;
}

int tracer_link_start(struct tracer_link *t, const char *tracer_path, const char *dir, const char *user, bool quiet,
                      bool events)
{
        int sv[2], ready[2];
        int r;

        memset(t, 0, sizeof(*t));
        t->pidfd = t->fdchan = t->ready_fd = t->recv_fd = t->timer_fd = t->wake_fd = t->epfd = -1;
        r = prepare_dir(dir, user);
        if (r < 0)
                return r == -ESRCH ? log_errno(r, "no user '%s' to run the tracer as", user)
                                   : log_errno(r, "cannot prepare %s", dir);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        if (pipe2(ready, O_CLOEXEC) < 0) {
                r = -errno;
                close(sv[0]), close(sv[1]);
                return r;
        }
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
                r = -errno;
                close(sv[0]), close(sv[1]), close(ready[0]), close(ready[1]);
                return r;
        }
        if (pid == 0) {
                /* The tracer dies with the broker: it has no one to serve. */
                prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
                /* Out of the broker's process group: a signal to the group
                 * (Ctrl-C on a foreground daemon, timeout(1), a service
                 * manager's stop) is the broker's to handle, ending every
                 * run first (found in review: the tracer died with it, and
                 * runs ended with their processes left behind). */
                setpgid(0, 0);
                if (getppid() != parent)
                        _exit(125);
                int fds[5] = { 0, 1, 2, sv[1], ready[1] };
                if (child_setup(fds, 5) < 0)
                        _exit(125);
                char *argv[8 + 4] = { (char *)tracer_path, "--dir", (char *)dir, "--fd-channel", "3",
                                      "--ready-fd", "4", "--user", (char *)user };
                int n = 9;
                if (quiet)
                        argv[n++] = "--quiet";
                if (events)
                        argv[n++] = "--events";
                argv[n] = NULL;
                execv(tracer_path, argv);
                dprintf(2, "seccell-broker: cannot run %s: %s\n", tracer_path, strerror(errno));
                _exit(125);
        }
        close(sv[1]);
        close(ready[1]);
        t->pid = pid;
        t->fdchan = sv[0];
        t->pidfd = (int)syscall(__NR_pidfd_open, pid, 0);
        t->ready_fd = ready[0];
        snprintf(t->dir, sizeof(t->dir), "%s", dir);
        return 0;
}

int tracer_link_connect(struct tracer_link *t)
{
        struct pollfd p = { .fd = t->ready_fd, .events = POLLIN };
        char c, url[PATH_MAX + 32];
        int r, rv;

        do
                r = poll(&p, 1, TRACER_TIMEOUT_MS);
        while (r < 0 && errno == EINTR);
        if (r <= 0 || read(t->ready_fd, &c, 1) != 1) {
                tracer_link_stop(t);
                log_msg("the tracer did not start (see its message above)");
                return -ECHILD;
        }
        closep(&t->ready_fd);
        t->ready_fd = -1;

        snprintf(url, sizeof(url), "ipc://%s/tracer.ipc", t->dir);
        rv = nng_req0_open_raw(&t->req);
        if (rv == 0)
                rv = nng_socket_set_ms(t->req, NNG_OPT_SENDTIMEO, TRACER_TIMEOUT_MS);
        if (rv == 0)
                rv = nng_socket_get_int(t->req, NNG_OPT_RECVFD, &t->recv_fd);
        if (rv == 0)
                rv = nng_dial(t->req, url, NULL, 0);
        if (rv != 0) {
                tracer_link_stop(t);
                return log_errno(msg_nng_errno(rv), "cannot connect to the tracer at %s", url);
        }
        t->open = true;
        t->next_id = (uint32_t)mono_ns();
        t->epfd = epoll_create1(EPOLL_CLOEXEC);
        t->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        struct epoll_event ev = { .events = EPOLLIN };
        if (t->epfd < 0 || t->timer_fd < 0 || t->wake_fd < 0 ||
            epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->recv_fd, &ev) < 0 ||
            epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->timer_fd, &ev) < 0 ||
            epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->wake_fd, &ev) < 0) {
                r = -errno;
                tracer_link_stop(t);
                return log_errno(r, "cannot watch the tracer's answers");
        }
        return 0;
}

/* The next request id: the REQ wire protocol's, with its top bit set. */
static uint32_t new_id(struct tracer_link *t)
{
        return t->next_id++ | 0x80000000u;
}

static int send_request(struct tracer_link *t, const Seccell__TracerRequest *req, uint32_t id, char *why,
                        size_t whylen)
{
        nng_msg *m;
        int rv;

        if (!t->open || t->lost) {
                snprintf(why, whylen, "the tracer is not running");
                return -ENOTCONN;
        }
        if (msg_pack(&req->base, &m) < 0) {
                snprintf(why, whylen, "out of memory");
                return -ENOMEM;
        }
        rv = nng_msg_header_append_u32(m, id);
        if (rv == 0)
                rv = nng_sendmsg(t->req, m, 0);
        if (rv != 0) {
                nng_msg_free(m);
                snprintf(why, whylen, "cannot reach the tracer: %s", nng_strerror(rv));
                return msg_nng_errno(rv);
        }
        return 0;
}

/* Take an answer off the socket without waiting, its request id in *id.
 * Returns 1, 0 when none is queued, or -errno. */
static int take_answer(struct tracer_link *t, nng_msg **m, uint32_t *id)
{
        for (;;) {
                int rv = nng_recvmsg(t->req, m, NNG_FLAG_NONBLOCK);
                if (rv == NNG_EAGAIN)
                        return 0;
                if (rv != 0)
                        return msg_nng_errno(rv);
                if (nng_msg_header_len(*m) == 4 && nng_msg_header_trim_u32(*m, id) == 0)
                        return 1;
                nng_msg_free(*m); /* not an answer to us */
        }
}

/* An answer no call waits for: an end's, kept for tracer_link_process();
 * else one that came too late, dropped. Returns whether it was kept. */
static bool set_aside(struct tracer_link *t, nng_msg *m, uint32_t id)
{
        for (struct tracer_end *e = t->ends; e; e = e->next)
                if (e->id == id && !e->answer) {
                        e->answer = m;
                        return true;
                }
        nng_msg_free(m);
        return false;
}

/* Read answer `m` (freed): its error, or 0 with its counts copied to
 * *stats (when not NULL: an answer without them is -EBADMSG). */
static int read_answer(nng_msg *m, Seccell__SandboxStats *stats, char *why, size_t whylen)
{
        Seccell__Reply *rep;
        int r = msg_unpack_reply(m, &rep, why, whylen);
        nng_msg_free(m);
        if (r < 0)
                return r;
        if (rep->error) {
                snprintf(why, whylen, "%s", rep->message ? rep->message : "tracer error");
                r = -rep->error;
        } else if (stats && rep->body_case == SECCELL__REPLY__BODY_STATS) {
                *stats = *rep->stats;
                stats->base.n_unknown_fields = 0;
                stats->base.unknown_fields = NULL;
        } else if (stats) {
                snprintf(why, whylen, "the tracer's answer has no counts");
                r = -EBADMSG;
        }
        seccell__reply__free_unpacked(rep, NULL);
        return r;
}

/* One request and its answer, waited for (10 s at most). Answers to
 * pending ends that arrive meanwhile are set aside for
 * tracer_link_process(), which the wake fd calls in. */
static int call(struct tracer_link *t, const Seccell__TracerRequest *req, char *why, size_t whylen)
{
        uint32_t id = new_id(t);
        int r = send_request(t, req, id, why, whylen);
        if (r < 0)
                return r;
        uint64_t deadline = mono_ns() + TRACER_TIMEOUT_MS * 1000000ull;
        for (;;) {
                nng_msg *m;
                uint32_t got;
                r = take_answer(t, &m, &got);
                if (r < 0) {
                        snprintf(why, whylen, "no answer from the tracer: %s", strerror(-r));
                        return r;
                }
                if (r == 1 && got == id)
                        return read_answer(m, NULL, why, whylen);
                if (r == 1) {
                        uint64_t one = 1;
                        if (set_aside(t, m, got))
                                (void)!write(t->wake_fd, &one, sizeof(one));
                        continue;
                }
                uint64_t now = mono_ns();
                if (now >= deadline) {
                        snprintf(why, whylen, "no answer from the tracer: %s", nng_strerror(NNG_ETIMEDOUT));
                        return -ETIMEDOUT;
                }
                struct pollfd p = { .fd = t->recv_fd, .events = POLLIN };
                poll(&p, 1, (int)((deadline - now) / 1000000) + 1);
        }
}

int tracer_link_add(struct tracer_link *t, const Seccell__AddSandbox *add, const int *fds, size_t nfds,
                    char *why, size_t whylen)
{
        Seccell__TracerRequest req = SECCELL__TRACER_REQUEST__INIT;

        if (!t->open) {
                snprintf(why, whylen, "the tracer is not running");
                return -ENOTCONN;
        }
        /* The fds are queued before the request is sent, so the tracer finds
         * them when it handles the request. */
        int r = fdchan_send(t->fdchan, add->fd_token, fds, nfds);
        if (r < 0) {
                snprintf(why, whylen, "cannot pass descriptors to the tracer: %s", strerror(-r));
                return r;
        }
        req.body_case = SECCELL__TRACER_REQUEST__BODY_ADD;
        req.add = (Seccell__AddSandbox *)add;
        return call(t, &req, why, whylen);
}

/* Arm the timer for the earliest pending deadline (or disarm it). */
static void arm_timer(struct tracer_link *t)
{
        uint64_t next = UINT64_MAX;
        for (struct tracer_end *e = t->ends; e; e = e->next)
                if (e->deadline_ns < next)
                        next = e->deadline_ns;
        struct itimerspec its = { 0 };
        if (next != UINT64_MAX)
                its.it_value = (struct timespec){ .tv_sec = next / 1000000000, .tv_nsec = next % 1000000000 };
        if (t->timer_fd >= 0)
                timerfd_settime(t->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void end_complete(struct tracer_end *e, bool lost)
{
        Seccell__SandboxStats stats = SECCELL__SANDBOX_STATS__INIT;
        char why[256] = "";
        int r;

        if (e->answer) {
                r = read_answer(e->answer, &stats, why, sizeof(why));
        } else if (lost) {
                r = -ECONNRESET;
                snprintf(why, sizeof(why), "the tracer exited before it answered");
        } else {
                r = -ETIMEDOUT;
                snprintf(why, sizeof(why), "no answer from the tracer: %s", nng_strerror(NNG_ETIMEDOUT));
        }
        if (r < 0)
                log_msg("tracer: %s", why);
        e->done(e->arg, r, r == 0 ? &stats : NULL);
        free(e);
}

/* Run the completions of the ends answered, overdue, or lost. */
static void complete_ready(struct tracer_link *t)
{
        uint64_t now = mono_ns();
        struct tracer_end *ready = NULL, **tail = &ready;

        for (struct tracer_end **pp = &t->ends; *pp;) {
                struct tracer_end *e = *pp;
                if (e->answer || t->lost || now >= e->deadline_ns) {
                        *pp = e->next;
                        e->next = NULL;
                        *tail = e;
                        tail = &e->next;
                } else {
                        pp = &e->next;
                }
        }
        arm_timer(t);
        /* off the list first: a completion may start another end */
        while (ready) {
                struct tracer_end *e = ready;
                ready = e->next;
                end_complete(e, t->lost);
        }
}

int tracer_link_end(struct tracer_link *t, const Seccell__EndSandbox *end, tracer_end_fn done, void *arg)
{
        Seccell__TracerRequest req = SECCELL__TRACER_REQUEST__INIT;
        char why[256];

        struct tracer_end *e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        req.body_case = SECCELL__TRACER_REQUEST__BODY_END;
        req.end = (Seccell__EndSandbox *)end;
        e->id = new_id(t);
        int r = send_request(t, &req, e->id, why, sizeof(why));
        if (r < 0) {
                log_msg("tracer: %s", why);
                free(e);
                return r;
        }
        e->deadline_ns = mono_ns() + END_TIMEOUT_MS * 1000000ull;
        e->done = done;
        e->arg = arg;
        e->next = t->ends;
        t->ends = e;
        arm_timer(t);
        return 0;
}

int tracer_link_fd(const struct tracer_link *t)
{
        return t->epfd;
}

void tracer_link_process(struct tracer_link *t)
{
        nng_msg *m;
        uint32_t id;
        uint64_t v;

        if (t->wake_fd >= 0)
                (void)!read(t->wake_fd, &v, sizeof(v));
        if (t->timer_fd >= 0)
                (void)!read(t->timer_fd, &v, sizeof(v));
        while (t->open && take_answer(t, &m, &id) == 1)
                set_aside(t, m, id);
        complete_ready(t);
}

void tracer_link_finish(struct tracer_link *t, int ms)
{
        uint64_t deadline = mono_ns() + (uint64_t)ms * 1000000;

        for (struct tracer_end *e = t->ends; e; e = e->next)
                if (e->deadline_ns > deadline)
                        e->deadline_ns = deadline;
        for (;;) {
                tracer_link_process(t);
                if (!t->ends)
                        return;
                /* the timer is armed for the earliest deadline; a tracer
                 * gone answers no more (found in review: a broker stopped
                 * as its tracer died waited out the whole 35 s) */
                struct pollfd p[2] = { { .fd = t->epfd, .events = POLLIN }, { .fd = t->pidfd, .events = POLLIN } };
                if (poll(p, 2, ms) < 0 && errno != EINTR)
                        return;
                if (p[1].revents) {
                        tracer_link_process(t); /* what it sent before */
                        tracer_link_lost(t);
                        return;
                }
        }
}

void tracer_link_lost(struct tracer_link *t)
{
        t->lost = true;
        complete_ready(t);
}

void tracer_link_kill(struct tracer_link *t, int sig)
{
        if (t->pid <= 0)
                return;
        kill(t->pid, sig);
        /* Its pidfd is readable once every thread is gone: a thread held
         * in a call that no signal ends (an audit write to a stalled FUSE
         * mount) keeps the process until the call returns. */
        struct pollfd p = { .fd = t->pidfd, .events = POLLIN };
        int r = 0;
        if (t->pidfd >= 0) {
                do
                        r = poll(&p, 1, TRACER_TIMEOUT_MS / 2);
                while (r < 0 && errno == EINTR);
                if (r > 0)
                        waitpid(t->pid, NULL, 0);
        } else {
                /* no pidfd (found in review: a blocking waitpid here could
                 * wait for ever): looked at every 10 ms, as long */
                for (int i = 0; i < TRACER_TIMEOUT_MS / 2 / 10 && r == 0; i++)
                        if ((r = (int)waitpid(t->pid, NULL, WNOHANG)) == 0)
                                usleep(10 * 1000);
        }
        if (r == 0)
                log_msg("the tracer did not exit within %d s (a thread held in a stalled file system?); "
                        "not waiting for it", TRACER_TIMEOUT_MS / 2000);
        t->pid = 0;
}

void tracer_link_stop(struct tracer_link *t)
{
        tracer_link_lost(t);
        if (t->open)
                nng_close(t->req);
        t->open = false;
        tracer_link_kill(t, SIGTERM);
        closep(&t->pidfd);
        closep(&t->fdchan);
        closep(&t->ready_fd);
        closep(&t->epfd);
        closep(&t->timer_fd);
        closep(&t->wake_fd);
        t->pidfd = t->fdchan = t->ready_fd = t->epfd = t->timer_fd = t->wake_fd = t->recv_fd = -1;
}
