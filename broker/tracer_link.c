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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/protocol/reqrep0/req.h>

#include "child.h"
#include "cleanup.h"
#include "fdpass.h"
#include "kcompat.h"
#include "log.h"
#include "msg.h"

#define TRACER_TIMEOUT_MS 10000

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
        t->pidfd = t->fdchan = t->ready_fd = -1;
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
                return log_errno(-ECHILD, "the tracer did not start");
        }
        closep(&t->ready_fd);
        t->ready_fd = -1;

        snprintf(url, sizeof(url), "ipc://%s/tracer.ipc", t->dir);
        rv = nng_req0_open(&t->req);
        if (rv == 0)
                rv = nng_socket_set_ms(t->req, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        if (rv == 0)
                rv = nng_socket_set_ms(t->req, NNG_OPT_RECVTIMEO, TRACER_TIMEOUT_MS);
        if (rv == 0)
                rv = nng_socket_set_ms(t->req, NNG_OPT_SENDTIMEO, TRACER_TIMEOUT_MS);
        if (rv == 0)
                rv = nng_dial(t->req, url, NULL, 0);
        if (rv != 0) {
                tracer_link_stop(t);
                return log_errno(msg_nng_errno(rv), "cannot connect to the tracer at %s", url);
        }
        t->open = true;
        return 0;
}

/* One request/reply round trip on the control channel. */
/* One request/reply round trip; a stats reply is copied to *stats. */
static int call(struct tracer_link *t, const Seccell__TracerRequest *req, Seccell__SandboxStats *stats,
                char *why, size_t whylen)
{
        nng_msg *m;
        int r = msg_pack(&req->base, &m);
        if (r < 0)
                return r;
        int rv = nng_sendmsg(t->req, m, 0);
        if (rv != 0) {
                nng_msg_free(m);
                snprintf(why, whylen, "cannot reach the tracer: %s", nng_strerror(rv));
                return msg_nng_errno(rv);
        }
        rv = nng_recvmsg(t->req, &m, 0);
        if (rv != 0) {
                snprintf(why, whylen, "no answer from the tracer: %s", nng_strerror(rv));
                return msg_nng_errno(rv);
        }
        Seccell__Reply *rep;
        r = msg_unpack_reply(m, &rep, why, whylen);
        nng_msg_free(m);
        if (r < 0)
                return r;
        if (rep->error) {
                snprintf(why, whylen, "%s", rep->message ? rep->message : "tracer error");
                r = -rep->error;
        } else if (stats && rep->body_case == SECCELL__REPLY__BODY_STATS) {
                *stats = *rep->stats;
        }
        seccell__reply__free_unpacked(rep, NULL);
        return r;
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
        return call(t, &req, NULL, why, whylen);
}

int tracer_link_end(struct tracer_link *t, const Seccell__EndSandbox *end, Seccell__SandboxStats *stats)
{
        Seccell__TracerRequest req = SECCELL__TRACER_REQUEST__INIT;
        char why[256];

        if (!t->open)
                return -ENOTCONN;
        req.body_case = SECCELL__TRACER_REQUEST__BODY_END;
        req.end = (Seccell__EndSandbox *)end;
        int r = call(t, &req, stats, why, sizeof(why));
        if (r < 0)
                log_msg("tracer: %s", why);
        return r;
}

void tracer_link_stop(struct tracer_link *t)
{
        if (t->open)
                nng_close(t->req);
        t->open = false;
        if (t->pid > 0) {
                kill(t->pid, SIGTERM);
                waitpid(t->pid, NULL, 0);
                t->pid = 0;
        }
        closep(&t->pidfd);
        closep(&t->fdchan);
        closep(&t->ready_fd);
        t->pidfd = t->fdchan = t->ready_fd = -1;
}
