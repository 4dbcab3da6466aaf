/* seccell-broker: the privileged part. It spawns sandboxes for clients (with
 * the client's own credentials), owns their reapers, hands each listener fd
 * to the unprivileged tracer and reports exit statuses. It never parses
 * data produced by sandboxed code. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "cleanup.h"
#include "log.h"
#include "procfs.h"
#include "size.h"

int broker_watch(struct broker *b, struct watch *w, uint32_t events)
{
        struct epoll_event ev = { .events = events, .data.ptr = w };
        return epoll_ctl(b->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0 ? -errno : 0;
}

void broker_unwatch(struct broker *b, struct watch *w)
{
        if (w->fn && w->fd >= 0)
                epoll_ctl(b->epfd, EPOLL_CTL_DEL, w->fd, NULL);
        w->fn = NULL;
}

static bool getpwnam_exists(const char *name)
{
        struct passwd pw, *res;
        char buf[4096];
        return getpwnam_r(name, &pw, buf, sizeof(buf), &res) == 0 && res;
}

static void usage(FILE *f)
{
        fputs("Usage: seccell-broker [--dir DIR] [--tracer-user USER] [--socket-mode MODE]\n"
              "                      [--events] [--allow-filtered-clients] [--embedded] [--ready-fd FD]\n"
              "Serve 'seccell run' requests on DIR/broker.ipc (default /run/seccell).\n"
              "--events: publish every audit event of every sandbox on\n"
              "          ipc://DIR/tracer/events.ipc (nng PUB, seccell.AuditEvent).\n"
              "--allow-filtered-clients: serve clients that run under a seccomp filter\n"
              "          (refused by default: one may be inside another broker's\n"
              "          sandbox, whose limits a sandbox from here would shed).\n", f);
}

static struct broker broker;

/* What a broker and its tracer created in `dir`; and `dir` itself for an
 * embedded broker (a daemon's directory is its operator's). */
static void remove_runtime_dir(const char *dir, bool and_dir)
{
        static const char *const files[] = { "tracer/tracer.ipc", "tracer/events.ipc", "tracer", "broker.ipc", "broker.fd", "broker.lock", "" };
        char path[PATH_MAX + 32];
        for (size_t i = 0; i < ARRAY_SIZE(files) - !and_dir; i++) {
                snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
                if (unlink(path) < 0)
                        rmdir(path);
        }
}

/* One broker per directory: a second one must fail before it touches the
 * first one's sockets. The lock (flock, owner-only file) goes with its
 * holder, so a crashed broker's directory can be served again at once.
 * Returns the descriptor to keep, or -errno (-EADDRINUSE: held). */
static int claim_dir(const char *dir)
{
        char path[PATH_MAX + 32];
        snprintf(path, sizeof(path), "%s/broker.lock", dir);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                int r = errno == EWOULDBLOCK ? -EADDRINUSE : -errno;
                close(fd);
                return r;
        }
        return fd;
}

static void on_requests(void *obj, uint32_t ev)
{
        struct broker *b = obj;
        (void)ev;
        struct server_request *rq;
        while ((rq = server_next(b->srv)))
                sandbox_handle_request(b, rq);
}

static void on_fd_listen(void *obj, uint32_t ev)
{
        struct broker *b = obj;
        (void)ev;
        server_accept_fds(b->srv);
}

static bool stopping;
static const char *stop_reason = "the broker is stopping";

struct orphan_sweep {
        struct broker *b;
        unsigned found;
};

static void kill_orphan(pid_t pid, void *ud)
{
        struct orphan_sweep *o = ud;
        if (pid == o->b->tracer.pid || sandbox_is_reaper(o->b, pid))
                return;
        /* A sandbox process whose reaper died came to us (we are a
         * subreaper too): it must not outlive its sandbox. A reaper let
         * go unreaped is reaped here. */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, WNOHANG);
        o->found++;
}

void broker_reaper_ended(struct broker *b, const siginfo_t *si)
{
        if (!si || si->si_pid == 0 || si->si_code != CLD_EXITED || si->si_status != 0)
                b->orphan_sweep = true;
}

/* Kill and reap every child that is neither the tracer nor a reaper we
 * know: a scan of all of /proc (this kernel has no task/<tid>/children),
 * so only when one may be there (found in review: a scan at each SIGCHLD,
 * each run's end, cost 5.8 ms of the broker's time at 113 processes on
 * the host and 59 ms at 2,100). What it kills, and what they leave to us
 * as they die, is looked for again at the end of the next batch. */
static void orphan_sweep(struct broker *b)
{
        if (!b->orphan_sweep)
                return;
        struct orphan_sweep o = { .b = b };
        /* a scan that could not look at every process (out of
         * descriptors...) is done again (found in review: cleared after
         * such a scan, the flag left a dead reaper's processes running) */
        if (procfs_for_each_child(getpid(), kill_orphan, &o) >= 0)
                b->orphan_sweep = o.found > 0;
}

static void on_signal(void *obj, uint32_t ev)
{
        struct watch *w = obj;
        struct signalfd_siginfo si;
        (void)ev;
        while (read(w->fd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGCHLD) {
                        /* reapers are reaped by their pidfds; anything
                         * else is swept (orphan_sweep) when one may be */
                } else {
                        stopping = true;
                        stop_reason = si.ssi_signo == SIGTERM ? "the broker is stopping (SIGTERM)"
                                      : si.ssi_signo == SIGINT ? "the broker is stopping (SIGINT)"
                                                               : "the broker is stopping (SIGHUP)";
                }
        }
}

static void on_tracer_answer(void *obj, uint32_t ev)
{
        struct broker *b = obj;
        (void)ev;
        tracer_link_process(&b->tracer);
}

static void on_tracer_exit(void *obj, uint32_t ev)
{
        struct broker *b = obj;
        (void)ev;
        /* ends it has not answered never will be */
        tracer_link_lost(&b->tracer);
        /* Fail closed: sandboxes without a supervisor end now. */
        log_msg("the tracer exited; ending every sandbox");
        stop_reason = "the tracer exited: no sandbox runs unsupervised";
        broker_unwatch(b, &(struct watch){ .fn = on_tracer_exit, .fd = b->tracer.pidfd });
        stopping = true;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "dir", required_argument, NULL, 'd' },
                { "tracer-user", required_argument, NULL, 'u' },
                { "socket-mode", required_argument, NULL, 'm' },
                { "embedded", no_argument, NULL, 'e' },
                { "ready-fd", required_argument, NULL, 'r' },
                { "events", no_argument, NULL, 'E' },
                { "allow-filtered-clients", no_argument, NULL, 'F' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *dir = "/run/seccell", *user = NULL;
        unsigned mode = 0666;
        int ready_fd = -1, c, r;
        bool embedded = false, events = false, allow_filtered = false;
        uint64_t v;

        log_set_prog("seccell-broker");
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'd': dir = optarg; break;
                case 'u': user = optarg; break;
                case 'm':
                        mode = strtoul(optarg, NULL, 8);
                        break;
                case 'e': embedded = true; break;
                case 'E': events = true; break;
                case 'F': allow_filtered = true; break;
                case 'r':
                        if (parse_uint_range(optarg, 0, INT_MAX, &v) < 0) {
                                log_msg("bad --ready-fd '%s'", optarg);
                                return 125;
                        }
                        ready_fd = (int)v;
                        break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 125;
                }
        }
        if (optind != argc) {
                usage(stderr);
                return 125;
        }

        log_debug("start");
        broker.is_root = geteuid() == 0;
        /* A daemon's socket is reachable from other brokers' sandboxes;
         * an embedded broker serves only its CLI, its parent. */
        broker.refuse_filtered = !embedded && !allow_filtered;
        broker.tracer_uid = (uid_t)-1;
        if (!user) {
                /* a dedicated account if the host has one, else nobody */
                user = getenv("SECCELL_TRACER_USER");
                if (!user)
                        user = getpwnam_exists("seccell") ? "seccell" : "nobody";
        }
        if (broker.is_root) {
                struct passwd *pw = getpwnam(user);
                if (!pw || pw->pw_uid == 0) {
                        log_msg("cannot run the tracer as '%s': %s", user,
                                pw ? "it is root" : "no such user");
                        return 125;
                }
                broker.tracer_uid = pw->pw_uid;
        }
        /* Orphans of a sandbox whose reaper was killed come here, not to
         * init, so they can still be ended. */
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        /* Why: the broker briefly holds listener fds and runs as root; no
         * same-uid process may read its memory or descriptors. */
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (embedded)
                setsid(); /* terminal signals go to the CLI, which forwards them */

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

        /* a DIR made here goes again if it cannot be served (found in
         * review: a refused one was left behind, empty) */
        bool made_dir = mkdir(dir, 0755) == 0;
        if (!made_dir && errno != EEXIST) {
                log_errno(-errno, "cannot create %s", dir);
                return 125;
        }
        /* the tracer, another uid, must traverse into its own subdirectory */
        if (broker.is_root && chmod(dir, embedded ? 0711 : 0755) < 0) {
                log_errno(-errno, "cannot set the mode of %s", dir);
                if (made_dir)
                        rmdir(dir);
                return 125;
        }
        /* a descriptor per client connection and several per sandbox: take
         * all we may (a command gets its client's limits) */
        struct rlimit nofile;
        if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
                nofile.rlim_cur = nofile.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
                        log_debug("cannot raise the descriptor limit: %s", strerror(errno));
        }
        int lock_fd = claim_dir(dir);
        if (lock_fd < 0) {
                if (lock_fd == -EADDRINUSE)
                        log_msg("another broker serves %s", dir);
                else
                        log_errno(lock_fd, "cannot lock %s/broker.lock", dir);
                if (made_dir)
                        rmdir(dir); /* not ours if another broker is in it */
                return 125;
        }
        char exe[PATH_MAX], tracer_path[PATH_MAX + 32], tdir[PATH_MAX + 32];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n < 0) {
                log_errno(-errno, "cannot find my own binary");
                remove_runtime_dir(dir, embedded || made_dir);
                return 125;
        }
        exe[n] = 0;
        snprintf(tracer_path, sizeof(tracer_path), "%s/seccell-tracer", dirname(exe));
        snprintf(tdir, sizeof(tdir), "%s/tracer", dir);

        broker.epfd = epoll_create1(EPOLL_CLOEXEC);
        r = tracer_link_start(&broker.tracer, tracer_path, tdir, user, embedded, events);
        if (r < 0) {
                remove_runtime_dir(dir, embedded || made_dir);
                return 125;
        }
        /* the tracer starts while we open our endpoints */
        int wake_fd, fd_listen;
        r = server_open(&broker.srv, dir, embedded ? 0600 : mode, &wake_fd, &fd_listen);
        if (r < 0)
                log_errno(r, "cannot listen in %s", dir);
        if (r < 0 || tracer_link_connect(&broker.tracer) < 0) {
                /* found in review: a broker whose tracer could not start
                 * left its sockets, lock and tracer/ behind */
                if (r == 0)
                        server_close(broker.srv);
                tracer_link_stop(&broker.tracer);
                remove_runtime_dir(dir, embedded || made_dir);
                return 125;
        }
        log_debug("tracer ready");
        struct watch w_req = { on_requests, &broker, wake_fd };
        struct watch w_fd = { on_fd_listen, &broker, fd_listen };
        struct watch w_sig = { on_signal, NULL, sfd };
        struct watch w_tr = { on_tracer_exit, &broker, broker.tracer.pidfd };
        struct watch w_answer = { on_tracer_answer, &broker, tracer_link_fd(&broker.tracer) };
        w_sig.obj = &w_sig;
        broker_watch(&broker, &w_answer, EPOLLIN);
        broker_watch(&broker, &w_req, EPOLLIN);
        broker_watch(&broker, &w_fd, EPOLLIN);
        broker_watch(&broker, &w_sig, EPOLLIN);
        if (broker.tracer.pidfd >= 0)
                broker_watch(&broker, &w_tr, EPOLLIN);

        if (ready_fd >= 0) {
                (void)!write(ready_fd, "r", 1);
                close(ready_fd);
        }
        log_debug("serving on %s (tracer as %s)", dir, broker.is_root ? user : "my own uid");

        while (!stopping) {
                struct epoll_event evs[32];
                /* pending fd-channel descriptors are looked at each second */
                int k = epoll_wait(broker.epfd, evs, 32, server_sweep_fds(broker.srv) ? 1000 : -1);
                if (k < 0 && errno != EINTR) {
                        log_errno(-errno, "epoll_wait");
                        break;
                }
                for (int i = 0; i < k; i++) {
                        struct watch *w = evs[i].data.ptr;
                        if (w->fn)
                                w->fn(w->obj, evs[i].events);
                }
                sandbox_free_ended(&broker);
                orphan_sweep(&broker);
        }
        sandbox_kill_all(&broker, stop_reason);
        sandbox_free_ended(&broker);
        /* what reapers that died or stuck left to us goes too (found in
         * review: flagged, never swept, it outlived the daemon) */
        for (int i = 0; i < 50 && broker.orphan_sweep; i++) {
                orphan_sweep(&broker);
                if (broker.orphan_sweep) /* what it killed leaves its own to us */
                        nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
        }
        log_debug("stopping");
        if (embedded) {
                /* the CLI removes the directory too, unless it was killed */
                remove_runtime_dir(dir, true);
                /* Nothing outlives this run: skip the orderly nng teardown,
                 * which would only make the CLI wait. */
                tracer_link_kill(&broker.tracer, SIGKILL);
                _exit(0);
        }
        server_close(broker.srv);
        tracer_link_stop(&broker.tracer);
        remove_runtime_dir(dir, false);
        close(lock_fd);
        return 0;
}
