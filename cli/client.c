#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "cleanup.h"
#include "fdpass.h"
#include "log.h"
#include "msg.h"
#include "size.h"

/* Signals a user sends to a job, forwarded to the sandbox's process group
 * as timeout(1) does. */
static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

static int connect_fdchan(const char *dir)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/broker.fd", dir) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

struct pending_reply {
        nng_aio *aio;
        int done_fd;
};

static void reply_cb(void *arg)
{
        struct pending_reply *p = arg;
        uint64_t one = 1;
        (void)!write(p->done_fd, &one, sizeof(one));
}

/* Send `req` on a new context of `sock`; the reply completes `p`. */
static int send_request(nng_socket sock, const Seccell__Request *req, nng_ctx *ctx, struct pending_reply *p)
{
        nng_msg *m;
        int r = msg_pack(&req->base, &m);
        if (r < 0)
                return r;
        nng_aio *send_aio = NULL;
        int rv = nng_aio_alloc(&send_aio, NULL, NULL);
        if (rv == 0)
                rv = nng_ctx_open(ctx, sock);
        if (rv == 0) {
                nng_aio_set_msg(send_aio, m);
                nng_ctx_send(*ctx, send_aio);
                nng_aio_wait(send_aio);
                rv = nng_aio_result(send_aio);
        }
        nng_aio_free(send_aio);
        if (rv != 0) {
                nng_msg_free(m);
                return msg_nng_errno(rv);
        }
        nng_ctx_recv(*ctx, p->aio);
        return 0;
}

static void forward_signal(nng_socket sock, uint64_t token, int signo)
{
        Seccell__Request req = SECCELL__REQUEST__INIT;
        Seccell__SignalRequest sig = SECCELL__SIGNAL_REQUEST__INIT;
        struct pending_reply p = { .done_fd = -1 };
        nng_ctx ctx;

        sig.fd_token = token;
        sig.signo = signo;
        req.body_case = SECCELL__REQUEST__BODY_SIGNAL;
        req.signal = &sig;
        if (nng_aio_alloc(&p.aio, NULL, NULL) != 0)
                return;
        nng_aio_set_timeout(p.aio, 5000);
        if (send_request(sock, &req, &ctx, &p) == 0) {
                nng_aio_wait(p.aio);
                if (nng_aio_result(p.aio) == 0)
                        nng_msg_free(nng_aio_get_msg(p.aio));
                nng_ctx_close(ctx);
        }
        nng_aio_free(p.aio);
}

/* "1 exec", "2 execs": `one` for a count of 1, `many` otherwise. */
static const char *noun(unsigned long long count, const char *one, const char *many)
{
        return count == 1 ? one : many;
}

static void print_summary(const Seccell__RunResult *res, const struct run_options *o)
{
        const Seccell__SandboxStats *s = res->stats;
        char line[512];
        int n = 0;

        if (!s) {
                log_msg("summary: the tracer did not report counts");
                return;
        }
        if (o->max_procs)
                n += snprintf(line + n, sizeof(line) - n, "peak %u of %u processes, ", s->peak_procs, o->max_procs);
        if (o->max_memory) {
                char peak[32], max[32];
                unsigned long long kills = s->memory_kills;
                n += snprintf(line + n, sizeof(line) - n, "peak %s of %s, %llu %s, ",
                              format_size(s->peak_memory, peak, sizeof(peak)),
                              format_size(o->max_memory, max, sizeof(max)), kills,
                              noun(kills, "memory kill", "memory kills"));
        }
        if (o->max_procs || o->max_memory) {
                unsigned long long allowed = s->forks_allowed;
                n += snprintf(line + n, sizeof(line) - n, "%llu %s allowed, %llu denied, ", allowed,
                              noun(allowed, "fork", "forks"), (unsigned long long)s->forks_denied);
        }
        unsigned long long execs = s->execs, ns = s->ns_denied;
        snprintf(line + n, sizeof(line) - n, "%llu %s, %llu namespace %s denied%s%s", execs,
                 noun(execs, "exec", "execs"), ns, noun(ns, "request", "requests"),
                 o->max_procs || o->max_memory ? "" : " (forks are counted under a limit)",
                 res->timed_out ? ", timed out" : "");
        log_msg("summary: %s", line);
}

/* "N audit events could not be written to FILE: why": the first failed
 * write's error, and/or that the file did not keep up (events dropped from
 * its full queue, or still queued when the end gave up waiting). */
static void report_audit_errors(const Seccell__SandboxStats *s, const char *path)
{
        static const char lag[] = "the file did not keep up (a reader or file system that stalled)";
        unsigned long long n = s->audit_write_errors, lagged = s->audit_lagged;
        const char *ev = n == 1 ? "" : "s";

        if (lagged >= n)
                log_msg("%llu audit event%s could not be written to %s: %s", n, ev, path, lag);
        else if (lagged)
                log_msg("%llu audit event%s could not be written to %s: %s; %llu of them: %s", n, ev, path,
                        strerror(s->audit_errno), lagged, lag);
        else
                log_msg("%llu audit event%s could not be written to %s: %s", n, ev, path, strerror(s->audit_errno));
}

static int exit_code(const Seccell__RunResult *res)
{
        if (res->timed_out)
                return 124;
        int st = res->wait_status;
        /* killed by seccell ending the run (its tracer gone, its daemon
         * stopping...), not of the command's doing: seccell failed it */
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && res->ended_by && *res->ended_by)
                return 125;
        if (WIFEXITED(st))
                return WEXITSTATUS(st);
        if (WIFSIGNALED(st))
                return 128 + WTERMSIG(st);
        return 125;
}

int client_open(struct client *c)
{
        c->open = false;
        c->sfd = -1;
        /* Signals are read from a signalfd in the wait loop; block them
         * before nng starts threads, so the threads inherit the mask. */
        sigemptyset(&c->mask);
        for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
                sigaddset(&c->mask, forwarded[i]);
        sigprocmask(SIG_BLOCK, &c->mask, NULL);
        c->sfd = signalfd(-1, &c->mask, SFD_CLOEXEC);
        if (c->sfd < 0)
                return log_errno(-errno, "cannot set up signal forwarding");
        int rv = nng_req0_open(&c->sock);
        if (rv == 0) {
                c->open = true;
                /* a Run request is answered when the run ends: never resend it */
                rv = nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        }
        if (rv != 0)
                return log_errno(msg_nng_errno(rv), "cannot open an nng socket");
        return 0;
}

void client_close(struct client *c)
{
        if (c->open)
                nng_close(c->sock);
        c->open = false;
        closep(&c->sfd);
        c->sfd = -1;
}

int client_run(struct client *c, const char *dir, const struct run_options *o, int broker_pidfd)
{
        Seccell__Request req = SECCELL__REQUEST__INIT;
        Seccell__RunRequest run = SECCELL__RUN_REQUEST__INIT;
        Seccell__Policy pol = SECCELL__POLICY__INIT;
        struct pending_reply p = { .done_fd = -1 };
        char cwd[PATH_MAX], url[PATH_MAX + 32];
        int fds[4], status = 125, r, rv;
        nng_socket sock = c->sock;
        int sfd = c->sfd;
        nng_ctx ctx;
        bool ctx_open = false;
        extern char **environ;

        if (!getcwd(cwd, sizeof(cwd))) {
                log_errno(-errno, "cannot determine the working directory");
                return 125;
        }
        /* our stdio as the sandbox's (main() has put /dev/null in place
         * of a closed one) */
        for (int i = 0; i < 3; i++)
                fds[i] = i;
        fds[3] = o->audit_fd;
        _cleanup_close_ int conn = connect_fdchan(dir);
        if (conn < 0) {
                if (conn == -ENOENT || conn == -ECONNREFUSED)
                        log_msg("no broker is running in %s (%s)", dir, strerror(-conn));
                else
                        log_errno(conn, "cannot reach the broker's fd channel in %s", dir);
                return 125;
        }
        uint64_t token = fdchan_new_token();
        r = fdchan_send(conn, token, fds, o->audit_fd >= 0 ? 4 : 3);
        if (r < 0) {
                log_errno(r, "cannot pass descriptors to the broker");
                return 125;
        }

        p.done_fd = eventfd(0, EFD_CLOEXEC);
        if (p.done_fd < 0 || nng_aio_alloc(&p.aio, reply_cb, &p) != 0) {
                log_errno(-errno, "cannot set up the wait");
                goto out;
        }
        snprintf(url, sizeof(url), "ipc://%s/broker.ipc", dir);
        rv = msg_dial(sock, url, 10000);
        if (rv != 0) {
                log_msg("cannot reach the broker at %s: %s%s", url, nng_strerror(rv),
                        rv == NNG_ECONNSHUT || rv == NNG_ECLOSED || rv == NNG_ECONNRESET
                                ? " (it closed the connection: it is stopping, or has as many connections of this "
                                  "user as it takes - 256 - and says so in its log)"
                                : "");
                goto out;
        }

        size_t argc = 0;
        while (o->argv[argc])
                argc++;
        size_t envc = 0;
        while (environ[envc])
                envc++;
        pol.max_procs = o->max_procs;
        pol.max_memory = o->max_memory;
        pol.timeout_ms = o->timeout_ms;
        run.fd_token = token;
        run.n_argv = argc;
        run.argv = o->argv;
        run.n_env = envc;
        run.env = environ;
        run.cwd = cwd;
        run.policy = &pol;
        run.audit = o->audit_fd >= 0;
        req.body_case = SECCELL__REQUEST__BODY_RUN;
        req.run = &run;
        log_debug("sending the run request");
        if ((r = send_request(sock, &req, &ctx, &p)) < 0) {
                log_errno(r, "cannot send the request to the broker");
                goto out;
        }
        ctx_open = true;

        for (;;) {
                struct pollfd pf[4] = {
                        { .fd = p.done_fd, .events = POLLIN },
                        { .fd = sfd, .events = POLLIN },
                        { .fd = conn, .events = POLLRDHUP },
                        { .fd = broker_pidfd, .events = POLLIN },
                };
                if (poll(pf, broker_pidfd >= 0 ? 4 : 3, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        log_errno(-errno, "poll");
                        goto out;
                }
                if (pf[0].revents)
                        break;
                if (pf[1].revents) {
                        struct signalfd_siginfo si;
                        if (read(sfd, &si, sizeof(si)) == sizeof(si))
                                forward_signal(sock, token, (int)si.ssi_signo);
                }
                if (pf[2].revents & (POLLRDHUP | POLLHUP | POLLERR) ||
                    (broker_pidfd >= 0 && pf[3].revents)) {
                        /* The broker hangs up when a run ends, right after
                         * queuing its reply, which a busy broker may send
                         * a good while later (found under load: 200 ms was
                         * too little): give it its chance. A daemon that
                         * died costs this wait; a private broker that
                         * exited has sent all it will. */
                        bool exited = broker_pidfd >= 0 && pf[3].revents;
                        struct pollfd last = { .fd = p.done_fd, .events = POLLIN };
                        if (poll(&last, 1, exited ? 200 : 5000) == 1)
                                break;
                        log_msg("the broker went away during the run");
                        goto out;
                }
        }

        log_debug("reply received");
        rv = nng_aio_result(p.aio);
        if (rv != 0) {
                log_msg("no answer from the broker: %s%s", nng_strerror(rv),
                        rv == NNG_ECONNSHUT || rv == NNG_ECLOSED || rv == NNG_ECONNRESET
                                ? " (it closed the connection: it stopped, or serves no more runs of this "
                                  "user at once - 256)"
                                : "");
                goto out;
        }
        nng_msg *m = nng_aio_get_msg(p.aio);
        Seccell__Reply *rep;
        char why[256];
        r = msg_unpack_reply(m, &rep, why, sizeof(why));
        nng_msg_free(m);
        if (r < 0) {
                log_msg("bad answer from the broker: %s", why);
                goto out;
        }
        if (rep->error)
                log_msg("%s", rep->message && *rep->message ? rep->message : strerror(rep->error));
        else if (rep->body_case != SECCELL__REPLY__BODY_RUN)
                log_msg("the broker's answer has no result");
        else {
                status = exit_code(rep->run);
                if (rep->run->ended_by && *rep->run->ended_by)
                        log_msg("the run was ended early: %s", rep->run->ended_by);
                const Seccell__SandboxStats *s = rep->run->stats;
                char max[32];
                if (s && s->memory_kills)
                        log_msg("%llu process%s killed by the memory limit (--max-memory %s)",
                                (unsigned long long)s->memory_kills, s->memory_kills == 1 ? "" : "es",
                                format_size(o->max_memory, max, sizeof(max)));
                if (s && s->audit_write_errors)
                        report_audit_errors(s, o->audit_path ? o->audit_path : "the audit file");
                if (o->summary)
                        print_summary(rep->run, o);
        }
        seccell__reply__free_unpacked(rep, NULL);
out:
        if (ctx_open)
                nng_ctx_close(ctx);
        if (p.aio) {
                nng_aio_stop(p.aio);
                nng_aio_free(p.aio);
        }
        closep(&p.done_fd);
        return status;
}
