/* Sandboxes from request to reply: spawn, hand to the tracer, watch the
 * reaper, the client's connection and the timeout, and report the end. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "cleanup.h"
#include "clock.h"
#include "filter.h"
#include "kcompat.h"
#include "log.h"
#include "msg.h"
#include "procfs.h"
#include "reaper.h"
#include "spawn.h"

/* Given-up set-ups still stuck that one uid may have before its runs are
 * refused. */
#define MAX_STUCK_PER_UID 32
/* A reaper told to end its run reports within this, or is SIGKILLed
 * (sandbox_kill). */
#define REAPER_KILL_MS 3000

/* A sandbox is SPAWNING until its root is ready (the request, its audit
 * fd and a set-up deadline held meanwhile), RUNNING until its reaper reports
 * the root's end, ENDING until the tracer has answered its end (which waits
 * for the run's audit sink to take its last events), and ABANDONED when its
 * set-up failed or was cut short: then only its reaper is awaited, to be
 * reaped. */
enum sandbox_state { SB_SPAWNING, SB_RUNNING, SB_ENDING, SB_ABANDONED };

struct sandbox {
        struct broker *b;
        enum sandbox_state state;
        uint64_t id;
        uint64_t token;                 /* the client's fd token: names the run */
        uid_t uid;                      /* the client's */
        gid_t gid;
        struct server_request *rq;      /* the Run request awaiting its reply */
        Seccell__Request *req;          /* while spawning: what the tracer is told */
        int audit_fd;                   /* while spawning: handed to the tracer */
        int client_conn;                /* hang-up ends the run */
        int timer_fd;                   /* the set-up deadline, then the run's timeout */
        struct spawn_result sp;
        struct watch w_reaper, w_go, w_client, w_timer, w_reaped;
        uint64_t start_ns;
        bool timed_out, ended, client_gone;
        bool reaper_stuck;              /* it did not report in time: not waited for */
        bool reaper_killed;             /* SIGKILLed: it did not end the run in time */
        const char *ended_by;           /* why seccell ended it early */
        int wait_status;
        struct sandbox *next;
};

/* Let go of everything but the reaper's pidfd (and its watch): the
 * request, the client's descriptors, the timer, the reaper's and root's
 * sockets. */
static void sandbox_release(struct sandbox *sb)
{
        struct watch *ws[] = { &sb->w_reaper, &sb->w_go, &sb->w_client, &sb->w_timer };
        for (size_t i = 0; i < ARRAY_SIZE(ws); i++)
                broker_unwatch(sb->b, ws[i]);
        spawn_result_close(&sb->sp);
        closep(&sb->client_conn);
        closep(&sb->timer_fd);
        fds_close_detached(&sb->audit_fd, 1); /* the client's file: its close may stall */
        sb->client_conn = sb->timer_fd = sb->audit_fd = -1;
        if (sb->req)
                seccell__request__free_unpacked(sb->req, NULL);
        sb->req = NULL;
        if (sb->rq)
                server_drop(sb->rq);
        sb->rq = NULL;
}

static void sandbox_free(struct sandbox *sb)
{
        struct broker *b = sb->b;
        for (struct sandbox **pp = &b->sandboxes; *pp; pp = &(*pp)->next)
                if (*pp == sb) {
                        *pp = sb->next;
                        break;
                }
        sandbox_release(sb);
        broker_unwatch(b, &sb->w_reaped);
        spawn_result_free(&sb->sp);
        sb->next = b->graveyard;
        b->graveyard = sb;
}

bool sandbox_is_reaper(struct broker *b, pid_t pid)
{
        for (struct sandbox *sb = b->sandboxes; sb; sb = sb->next)
                if (sb->sp.reaper_pid == pid)
                        return true;
        for (struct sandbox *sb = b->graveyard; sb; sb = sb->next)
                if (sb->sp.reaper_pid == pid)
                        return true;
        return false;
}

void sandbox_free_ended(struct broker *b)
{
        while (b->graveyard) {
                struct sandbox *sb = b->graveyard;
                b->graveyard = sb->next;
                free(sb);
        }
}

/* Answer the client's Run request (if it still waits) with how the run
 * ended; `stats` may be NULL. */
static void sandbox_reply_result(struct sandbox *sb, Seccell__SandboxStats *stats)
{
        if (!sb->rq)
                return;
        Seccell__Reply rep = SECCELL__REPLY__INIT;
        Seccell__RunResult res = SECCELL__RUN_RESULT__INIT;
        nng_msg *m;
        res.sandbox_id = sb->id;
        res.wait_status = sb->wait_status;
        res.timed_out = sb->timed_out;
        res.stats = stats;
        res.ended_by = (char *)(sb->ended_by ? sb->ended_by : "");
        rep.body_case = SECCELL__REPLY__BODY_RUN;
        rep.run = &res;
        if (msg_pack(&rep.base, &m) == 0)
                server_reply(steal_ptr(sb->rq), m);
}

/* The tracer's answer to the end of sandbox `arg`: reply to its client. */
static void sandbox_ended(void *arg, int r, const Seccell__SandboxStats *stats)
{
        struct sandbox *sb = arg;
        Seccell__SandboxStats copy = SECCELL__SANDBOX_STATS__INIT;

        if (r == 0)
                copy = *stats;
        sandbox_reply_result(sb, r == 0 ? &copy : NULL);
        log_debug("sandbox %llu ended, status 0x%x", (unsigned long long)sb->id, sb->wait_status);
        sandbox_free(sb);
}

/* Reap `sb`'s reaper by its pidfd (`flags`: WNOHANG or 0), and tell the
 * broker how it ended (broker_reaper_ended). */
static void reap_reaper(struct sandbox *sb, int flags)
{
        siginfo_t si = { 0 };
        if (waitid(P_PIDFD, sb->sp.reaper_pidfd, &si, WEXITED | flags) < 0)
                broker_reaper_ended(sb->b, NULL);
        else
                broker_reaper_ended(sb->b, &si);
}

/* The reaper reported the root's status and has killed everything else.
 * The client is answered once the tracer has answered the end, which it
 * holds until the run's audit sink has taken its last events: meanwhile the
 * broker serves on. */
static void sandbox_finish(struct sandbox *sb)
{
        Seccell__EndSandbox end = SECCELL__END_SANDBOX__INIT;
        end.sandbox_id = sb->id;
        end.wait_status = sb->wait_status;
        end.timed_out = sb->timed_out;
        end.duration_ns = mono_ns() - sb->start_ns;

        /* by pidfd: the pid may already be reaped by the orphan sweep; the
         * reaper exits right after its last report */
        reap_reaper(sb, sb->reaper_stuck ? WNOHANG : 0);
        /* nothing more of the run to watch: its client's hang-up only
         * drops the request */
        sb->state = SB_ENDING;
        sb->ended = true;
        broker_unwatch(sb->b, &sb->w_reaper);
        broker_unwatch(sb->b, &sb->w_go);
        broker_unwatch(sb->b, &sb->w_timer);
        if (tracer_link_end(&sb->b->tracer, &end, sandbox_ended, sb) < 0)
                sandbox_ended(sb, -ENOTCONN, NULL);
}

static void on_reaped(void *obj, uint32_t events)
{
        struct sandbox *sb = obj;
        (void)events;
        reap_reaper(sb, WNOHANG);
        log_debug("sandbox %llu: reaper of an abandoned set-up reaped", (unsigned long long)sb->id);
        sandbox_free(sb);
}

/* Give up a sandbox whose set-up failed or was cut short (its client was
 * answered, or is gone). Closing the reaper's socket makes it kill and reap
 * what it started; the reaper itself is reaped once its pidfd reports its
 * exit, which a root stuck in a file system call can delay: the broker
 * never waits for it. */
static void sandbox_abandon(struct sandbox *sb)
{
        struct broker *b = sb->b;
        sb->state = SB_ABANDONED;
        sb->ended = true;
        /* only the reaper's pidfd is kept: a root stuck in a file system
         * call can keep its reaper for good (found in review: 100 such
         * runs held 187 MB and 300 descriptors of the broker) */
        sandbox_release(sb);
        sb->w_reaped = (struct watch){ on_reaped, sb, sb->sp.reaper_pidfd };
        if (broker_watch(b, &sb->w_reaped, EPOLLIN) < 0) {
                /* cannot watch: the orphan sweep reaps it instead */
                log_msg("sandbox %llu: cannot watch its reaper: %m", (unsigned long long)sb->id);
                broker_reaper_ended(b, NULL);
                sandbox_free(sb);
        }
}

static int arm_timer(int fd, uint64_t ms);
static void on_timer(void *obj, uint32_t events);

/* End a running sandbox: its reaper kills and reaps all it started, then
 * reports. One that has not reported within REAPER_KILL_MS is SIGKILLed
 * (on_timer), and what it held comes to the broker's orphan sweep: the
 * sandbox can stop its reaper when they share a uid (a root client's, or
 * a broker's own user's), which then neither kills nor reports (found in
 * review: a run stopped its reaper and outlived its --timeout and its
 * client's signals). */
static void sandbox_kill(struct sandbox *sb)
{
        if (sb->ended)
                return;
        sb->ended = true;
        reaper_send(sb->sp.reaper_sock, REAPER_KILL, 0);
        if (sb->state != SB_RUNNING)
                return;
        if (sb->timer_fd < 0) {
                sb->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
                sb->w_timer = (struct watch){ on_timer, sb, sb->timer_fd };
                if (sb->timer_fd < 0 || broker_watch(sb->b, &sb->w_timer, EPOLLIN) < 0) {
                        log_msg("sandbox %llu: cannot arm the deadline of its end: %m", (unsigned long long)sb->id);
                        return;
                }
        }
        if (arm_timer(sb->timer_fd, REAPER_KILL_MS) < 0)
                log_msg("sandbox %llu: cannot arm the deadline of its end: %m", (unsigned long long)sb->id);
}

static void spawn_advance(struct sandbox *sb);

static void on_reaper(void *obj, uint32_t events)
{
        struct sandbox *sb = obj;
        struct reaper_msg m;

        if (sb->state == SB_SPAWNING) {
                spawn_advance(sb);
                return;
        }
        if (sb->state == SB_ABANDONED || sb->state == SB_ENDING)
                return; /* collected in the batch that gave it up: stale */
        int r = reaper_recv(sb->sp.reaper_sock, &m);
        if (r == -EAGAIN || r == -EINTR)
                return;
        if (r == 0 && m.type == REAPER_ROOT_EXIT) {
                sb->wait_status = m.value;
                log_debug("sandbox %llu: root exit reported", (unsigned long long)sb->id);
                sandbox_finish(sb);
                return;
        }
        if (r < 0 || (events & (EPOLLHUP | EPOLLERR))) {
                /* The reaper died without reporting: its children went to
                 * init; nothing more can be known about them. */
                sb->wait_status = 125 << 8;
                if (sb->reaper_killed) {
                        sb->wait_status = sb->timed_out ? 124 << 8 : SIGKILL;
                        if (!sb->ended_by)
                                sb->ended_by = "its reaper did not end it in time (stopped from the sandbox?): "
                                               "it was killed, and every process of the run with it";
                } else {
                        log_msg("sandbox %llu: its reaper died", (unsigned long long)sb->id);
                        sb->ended_by = "its reaper process died (killed from outside?); its other processes may "
                                       "live on";
                }
                sandbox_finish(sb);
        }
}

static void on_go(void *obj, uint32_t events)
{
        struct sandbox *sb = obj;
        (void)events;
        /* collected in the batch that saw the set-up end: stale */
        if (sb->state == SB_SPAWNING)
                spawn_advance(sb);
}

static void on_client(void *obj, uint32_t events)
{
        struct sandbox *sb = obj;
        (void)events;
        /* Whatever arrives or hangs up: the client has nothing more to say
         * on this channel, so its hang-up is the only event. */
        char c;
        if (recv(sb->client_conn, &c, 1, MSG_DONTWAIT) == 0 || (events & (EPOLLHUP | EPOLLERR))) {
                broker_unwatch(sb->b, &sb->w_client);
                sb->client_gone = true;
                if (sb->rq) {
                        server_drop(sb->rq);
                        sb->rq = NULL;
                }
                if (sb->state == SB_SPAWNING)
                        sandbox_abandon(sb);
                else
                        sandbox_kill(sb);
        }
}

static void on_timer(void *obj, uint32_t events)
{
        struct sandbox *sb = obj;
        uint64_t ticks;
        (void)events;
        /* none: re-armed (spawn_ready) after this event was collected */
        if (read(sb->timer_fd, &ticks, sizeof(ticks)) != sizeof(ticks))
                return;
        if (sb->state == SB_SPAWNING) {
                log_msg("sandbox %llu: its first process was not ready within %d s", (unsigned long long)sb->id,
                        SPAWN_TIMEOUT_MS / 1000);
                server_reply_error(steal_ptr(sb->rq), ETIMEDOUT, "cannot start the sandbox: its first process was not "
                                   "ready within %d s (stopped, or stalled in a file system call: chdir to %s?)",
                                   SPAWN_TIMEOUT_MS / 1000, sb->req->run->cwd);
                sandbox_abandon(sb);
                return;
        }
        if (sb->ended) {
                /* its reaper was told to end it and has not reported */
                if (sb->state == SB_RUNNING && !sb->reaper_killed) {
                        log_msg("sandbox %llu: its reaper did not end it within %d ms (stopped?); killed",
                                (unsigned long long)sb->id, REAPER_KILL_MS);
                        sb->reaper_killed = true;
                        syscall(__NR_pidfd_send_signal, sb->sp.reaper_pidfd, SIGKILL, NULL, 0);
                }
                return;
        }
        sb->timed_out = true;
        sandbox_kill(sb);
}

/* The supplementary groups of the client that connected `conn` (its fd
 * channel), as they were at connect(2): SO_PEERGROUPS (Linux 4.13). Not
 * its user's groups in /etc/group (found in review: getgrouplist gave a
 * client that had dropped a group (setpriv --clear-groups) that group
 * back in the sandbox, and took away groups a client had been given (sg,
 * a service manager)). At most *n; -E2BIG when it has more. */
static int peer_groups(int conn, gid_t *groups, int *n)
{
        socklen_t len = (socklen_t)(*n * sizeof(gid_t));
        if (getsockopt(conn, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                return errno == ERANGE ? -E2BIG : -errno;
        *n = (int)(len / sizeof(gid_t));
        return 0;
}

/* Whether `pid` runs inside one of our sandboxes: every sandboxed process
 * descends from the broker (through its reaper, or directly once a reaper
 * is gone: the broker is a subreaper too). A process that cannot be looked
 * up is treated as inside. */
static bool inside_sandbox(pid_t pid)
{
        pid_t self = getpid();
        for (int depth = 0; depth < 65536; depth++) {
                if (pid == self)
                        return true;
                if (pid <= 1)
                        return false;
                /* status, not stat: see procfs_for_each_child */
                long ppid = procfs_status_field(pid, "PPid");
                if (ppid < 0)
                        return true;
                pid = (pid_t)ppid;
        }
        return true;
}

/* Whether `pid` runs under a seccomp filter (proc(5), "Seccomp: 2"), as
 * every process of a seccell sandbox does - of this broker or another
 * one. Unreadable: treated as filtered. */
static bool under_seccomp_filter(pid_t pid)
{
        return procfs_status_field(pid, "Seccomp") != 0;
}

/* Whether the process that sent `f` is gone: reaped, its pid free for
 * another. (A zombie keeps its pid, and /proc/<pid>/status its PPid and
 * Seccomp mode.) Kernel contract: pidfd_send_signal(2) with signal 0 fails
 * with ESRCH once the process is reaped. */
static bool client_gone(const struct server_fds *f)
{
        return syscall(__NR_pidfd_send_signal, f->pidfd, 0, NULL, 0) < 0 && errno == ESRCH;
}

/* Arm the one-shot timer `fd` to fire in `ms` milliseconds.
 * Returns 0 or -1 with errno set. */
static int arm_timer(int fd, uint64_t ms)
{
        struct itimerspec its = { .it_value = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 } };
        return timerfd_settime(fd, 0, &its, NULL);
}

/* Start a Run: check the client, fork the sandbox and watch its set-up.
 * Takes *req (the unpacked request) when the sandbox starts. */
static void handle_run(struct broker *b, struct server_request *rq, Seccell__Request **req)
{
        const Seccell__RunRequest *run = (*req)->run;
        _cleanup_free_ struct sandbox *sb = NULL;
        struct server_fds *fds = NULL;
        struct sock_fprog prog = { 0 };
        struct filter_policy fp = { 0 };
        _cleanup_free_ char **argv = NULL, **envp = NULL;
        gid_t groups[256];
        int ngroups = ARRAY_SIZE(groups);
        int r;

        /* Claimed first, so that a refusal below closes them at once
         * (they may be the only holders of the client's pipes). */
        fds = server_take_fds(b->srv, run->fd_token, (uid_t)rq->peer_uid);
        size_t want = run->audit ? 4 : 3;
        if (!fds || fds->nfds != want) {
                server_reply_error(rq, EBADF, "no descriptors (%zu expected) were received for this request", want);
                server_fds_free(fds);
                return;
        }
        /* Every check below looks at the client by its pid: the process
         * that connected the fd channel, held by its pidfd, so that the pid
         * stays its own while it lives. A pid alone could be another's: a
         * sandboxed process can connect, leave its connections to a child
         * and exit, and ask once its pid names an unconfined process
         * (found in review). */
        if (fds->pidfd < 0) {
                server_reply_error(rq, EPERM, "cannot tell which process is asking (SO_PEERPIDFD: %s; Linux 6.5 or "
                                   "later is needed)", strerror(fds->pidfd_errno));
                server_fds_free(fds);
                return;
        }
        if (fds->pid != (pid_t)rq->peer_pid) {
                server_reply_error(rq, EPERM, "the request and its descriptors came from different processes");
                server_fds_free(fds);
                return;
        }
        if (client_gone(fds)) {
                server_reply_error(rq, ESRCH, "the process that asked has exited");
                server_fds_free(fds);
                return;
        }
        /* A sandboxed process asking for a sandbox of its own would get one
         * without its limits: refused. */
        if (inside_sandbox((pid_t)rq->peer_pid)) {
                log_msg("refusing a run requested from inside a sandbox (pid %llu)",
                        (unsigned long long)rq->peer_pid);
                server_reply_error(rq, EPERM, "seccell run cannot be used inside a seccell sandbox");
                server_fds_free(fds);
                return;
        }
        /* One of another broker's sandboxes (an embedded one's, say) could
         * reach this daemon's socket and get a sandbox without its own
         * limits. Its processes all run under that sandbox's filter. */
        if (b->refuse_filtered && under_seccomp_filter((pid_t)rq->peer_pid)) {
                log_msg("refusing a run requested under a seccomp filter (pid %llu)",
                        (unsigned long long)rq->peer_pid);
                server_reply_error(rq, EPERM, "this client runs under a seccomp filter, maybe inside another seccell "
                                   "sandbox whose limits a new sandbox would shed (seccell-broker "
                                   "--allow-filtered-clients serves such clients)");
                server_fds_free(fds);
                return;
        }
        if (b->is_root && rq->peer_uid == b->tracer_uid) {
                server_reply_error(rq, EPERM, "uid %llu is the tracer's own user; its sandboxes could signal the "
                                   "tracer (create a dedicated 'seccell' user for the tracer)",
                                   (unsigned long long)rq->peer_uid);
                server_fds_free(fds);
                return;
        }
        if (!b->is_root && rq->peer_uid != geteuid()) {
                server_reply_error(rq, EPERM, "this broker runs as uid %u and cannot start sandboxes for uid %llu",
                                   geteuid(), (unsigned long long)rq->peer_uid);
                server_fds_free(fds);
                return;
        }
        /* set-ups given up but stuck (a root in a stalled file system
         * call) hold a reaper each: bounded per user */
        size_t stuck = 0;
        for (struct sandbox *o = b->sandboxes; o; o = o->next)
                stuck += o->state == SB_ABANDONED && o->uid == (uid_t)rq->peer_uid;
        if (stuck >= MAX_STUCK_PER_UID) {
                server_reply_error(rq, EAGAIN, "uid %llu has %zu sandboxes whose set-up was given up and is still "
                                   "stuck (a stalled file system under their working directory?)",
                                   (unsigned long long)rq->peer_uid, stuck);
                server_fds_free(fds);
                return;
        }
        if (run->policy) {
                fp.max_procs = run->policy->max_procs;
                fp.max_memory = run->policy->max_memory;
        }
        r = filter_export(&fp, &prog);
        if (r < 0) {
                server_reply_error(rq, -r, "cannot build the seccomp filter: %s", strerror(-r));
                server_fds_free(fds);
                return;
        }
        if (b->is_root && (r = peer_groups(fds->conn, groups, &ngroups)) < 0) {
                if (r == -E2BIG)
                        server_reply_error(rq, E2BIG, "the client has more than %zu supplementary groups",
                                           ARRAY_SIZE(groups));
                else
                        server_reply_error(rq, -r, "cannot read the client's supplementary groups: %s", strerror(-r));
                goto out;
        }

        /* the command starts as it would bare: with the client's umask,
         * nice value and limits (a daemon is no ancestor of the client) */
        struct spawn_inherit inherit;
        r = spawn_read_inherit((pid_t)rq->peer_pid, (uid_t)rq->peer_uid, &inherit);
        if (r < 0) {
                server_reply_error(rq, -r, "cannot read the client's umask and limits: %s", strerror(-r));
                goto out;
        }
        /* alive after every read of its /proc: they were all of it */
        if (client_gone(fds)) {
                server_reply_error(rq, ESRCH, "the process that asked has exited");
                goto out;
        }

        /* argv and env arrays, NULL-terminated (protobuf-c's are not) */
        argv = calloc(run->n_argv + 1, sizeof(char *));
        envp = calloc(run->n_env + 1, sizeof(char *));
        sb = calloc(1, sizeof(*sb));
        if (!argv || !envp || !sb) {
                server_reply_error(rq, ENOMEM, "out of memory");
                goto out;
        }
        sb->timer_fd = -1;
        /* protobuf-c leaves an empty repeated field NULL */
        if (run->n_argv)
                memcpy(argv, run->argv, run->n_argv * sizeof(char *));
        if (run->n_env)
                memcpy(envp, run->env, run->n_env * sizeof(char *));

        struct spawn_request sr = {
                .argv = argv, .envp = envp, .cwd = run->cwd,
                .uid = rq->peer_uid, .gid = rq->peer_gid,
                .groups = groups, .ngroups = b->is_root ? (size_t)ngroups : 0,
                .switch_user = b->is_root,
                .stdio = { fds->fds[0], fds->fds[1], fds->fds[2] },
                .filter = &prog,
                .max_memory = fp.max_memory,
                .inherit = &inherit,
        };
        sb->b = b;
        sb->state = SB_SPAWNING;
        sb->id = ++b->next_id;
        sb->uid = rq->peer_uid;
        sb->gid = rq->peer_gid;
        sb->token = run->fd_token;
        sb->audit_fd = -1;
        sb->client_conn = -1;
        sb->start_ns = mono_ns();
        sb->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (sb->timer_fd < 0 || arm_timer(sb->timer_fd, SPAWN_TIMEOUT_MS) < 0) {
                server_reply_error(rq, errno, "cannot arm a timer: %s", strerror(errno));
                goto out;
        }
        log_debug("spawning sandbox %llu", (unsigned long long)sb->id);
        r = spawn_start(&sr, &sb->sp);
        /* the sandbox holds its stdio now; the broker must not, or readers
         * of the sandbox's output would never see EOF */
        fds_close_detached(fds->fds, 3);
        if (r < 0) {
                server_reply_error(rq, -r, "cannot start the sandbox: %s", strerror(-r));
                goto out;
        }
        /* From here the set-up goes on without the broker waiting: a root
         * runs as the client's user, who can stop it, and its chdir can
         * stall on a file system (found in review: one such client held
         * every other client's runs). */
        if (run->audit)
                sb->audit_fd = steal_fd(fds->fds[3]);
        sb->client_conn = steal_fd(fds->conn);
        sb->rq = rq;
        sb->req = steal_ptr(*req);
        sb->w_reaper = (struct watch){ on_reaper, sb, sb->sp.reaper_sock };
        sb->w_go = (struct watch){ on_go, sb, sb->sp.go_sock };
        sb->w_client = (struct watch){ on_client, sb, sb->client_conn };
        sb->w_timer = (struct watch){ on_timer, sb, sb->timer_fd };
        sb->next = b->sandboxes;
        b->sandboxes = sb;
        struct sandbox *started = steal_ptr(sb);
        if (broker_watch(b, &started->w_reaper, EPOLLIN) < 0 || broker_watch(b, &started->w_go, EPOLLIN) < 0 ||
            broker_watch(b, &started->w_client, EPOLLIN | EPOLLRDHUP) < 0 ||
            broker_watch(b, &started->w_timer, EPOLLIN) < 0) {
                server_reply_error(steal_ptr(started->rq), errno, "cannot watch the sandbox: %s", strerror(errno));
                sandbox_abandon(started);
        }
out:
        if (sb)
                closep(&sb->timer_fd);
        free(prog.filter);
        server_fds_free(fds);
}

/* The root is ready: hand its listener to the tracer, arm the run's
 * timeout and let the root exec. */
static void spawn_ready(struct sandbox *sb)
{
        struct broker *b = sb->b;
        const Seccell__RunRequest *run = sb->req->run;
        char why[512];

        broker_unwatch(b, &sb->w_go);
        Seccell__AddSandbox add = SECCELL__ADD_SANDBOX__INIT;
        int handed[2] = { sb->sp.listener_fd, sb->audit_fd };
        add.sandbox_id = sb->id;
        add.fd_token = fdchan_new_token();
        add.root_pid = sb->sp.root_pid;
        add.uid = sb->uid;
        add.gid = sb->gid;
        add.policy = run->policy;
        add.n_argv = run->n_argv;
        add.argv = run->argv;
        add.audit = run->audit;
        add.cwd = run->cwd;
        int r = tracer_link_add(&b->tracer, &add, handed, run->audit ? 2 : 1, why, sizeof(why));
        /* The listener lives in the tracer only. */
        closep(&sb->sp.listener_fd);
        sb->sp.listener_fd = -1;
        if (r < 0) {
                /* fail closed: no supervisor, no sandbox */
                server_reply_error(steal_ptr(sb->rq), -r, "cannot hand the sandbox to the tracer: %s", why);
                sandbox_abandon(sb);
                return;
        }
        uint64_t timeout_ms = run->policy ? run->policy->timeout_ms : 0;
        if (timeout_ms == 0) {
                broker_unwatch(b, &sb->w_timer);
                closep(&sb->timer_fd);
                sb->timer_fd = -1;
        } else if (arm_timer(sb->timer_fd, timeout_ms) < 0) {
                /* the tracer has the sandbox: end it the ordinary way */
                log_msg("sandbox %llu: cannot arm its timeout: %m", (unsigned long long)sb->id);
                sb->ended_by = "its timeout could not be armed";
                sandbox_kill(sb);
        }
        fds_close_detached(&sb->audit_fd, 1); /* the tracer has it; ours may stall a close */
        seccell__request__free_unpacked(steal_ptr(sb->req), NULL);
        sb->state = SB_RUNNING;
        log_debug("sandbox %llu: released", (unsigned long long)sb->id);
        spawn_release(&sb->sp);
}

/* The reaper or the root of a sandbox being set up sent something. */
static void spawn_advance(struct sandbox *sb)
{
        const char *what;
        int r = spawn_progress(&sb->sp, &what);

        if (sb->sp.go_done)
                broker_unwatch(sb->b, &sb->w_go);
        if (r == 0)
                return;
        if (r > 0) {
                spawn_ready(sb);
                return;
        }
        struct server_request *rq = steal_ptr(sb->rq);
        const char *cwd = sb->req->run->cwd;
        if (!rq)
                ;
        else if (r == -ECHILD && WIFSIGNALED(sb->sp.root_status)) {
                /* killed before it could exec: by a signal the client
                 * forwarded, or by its user - a run that ended so */
                sb->rq = rq;
                sb->wait_status = sb->sp.root_status;
                sb->ended_by = "its first process was killed before the command started";
                sandbox_reply_result(sb, NULL);
        } else if (r == -ECHILD)
                server_reply_error(rq, EIO, "cannot start the sandbox: its first process exited during set-up "
                                   "(wait status 0x%x)", (unsigned)sb->sp.root_status);
        else if (what && strcmp(what, "chdir") == 0)
                server_reply_error(rq, -r, "cannot change directory to %s: %s", cwd, strerror(-r));
        else if (what && strcmp(what, "seccomp") == 0 && r == -EPERM)
                /* a filter above ours forbids supervisors: seccell's own
                 * does, so this is most likely a nested run */
                server_reply_error(rq, EPERM, "cannot start the sandbox: seccomp refused a supervised filter "
                                   "(Operation not permitted): seccell run cannot be used inside a seccell "
                                   "sandbox");
        else
                server_reply_error(rq, -r, "cannot start the sandbox%s%s: %s", what ? ": " : "", what ? what : "",
                                   strerror(-r));
        sandbox_abandon(sb);
}

static void handle_signal(struct broker *b, struct server_request *rq, const Seccell__SignalRequest *sig)
{
        for (struct sandbox *sb = b->sandboxes; sb; sb = sb->next) {
                if (sb->token != sig->fd_token || sb->uid != rq->peer_uid)
                        continue;
                if (!sb->ended)
                        reaper_send(sb->sp.reaper_sock, REAPER_SIGNAL, sig->signo);
                nng_msg *m;
                if (msg_error_reply(&m, 0, "ok") == 0)
                        server_reply(rq, m);
                else
                        server_drop(rq);
                return;
        }
        server_reply_error(rq, ESRCH, "no such sandbox");
}

void sandbox_handle_request(struct broker *b, struct server_request *rq)
{
        Seccell__Request *req;
        char why[256];

        int unpacked = msg_unpack_request(rq->msg, &req, why, sizeof(why));
        /* a Run's request stays until the run ends: not its message (up
         * to 8 MiB) */
        nng_msg_free(rq->msg);
        rq->msg = NULL;
        if (unpacked < 0) {
                static struct log_limit limit = { .burst = 20, .window_s = 10 };
                log_limited(&limit, "malformed request from pid %llu (uid %llu): %s", (unsigned long long)rq->peer_pid,
                        (unsigned long long)rq->peer_uid, why);
                server_reply_error(rq, EBADMSG, "malformed request: %s", why);
                return;
        }
        if (req->body_case == SECCELL__REQUEST__BODY_RUN)
                handle_run(b, rq, &req);
        else
                handle_signal(b, rq, req->signal);
        if (req)
                seccell__request__free_unpacked(req, NULL);
}

void sandbox_kill_all(struct broker *b, const char *why)
{
        for (struct sandbox *sb = b->sandboxes, *next; sb; sb = next) {
                next = sb->next;
                if (sb->state == SB_ENDING)
                        continue; /* the tracer's answer is awaited below */
                if (sb->state != SB_RUNNING) {
                        /* not started yet, or given up: its reaper kills
                         * what it started once its socket closes */
                        if (sb->rq)
                                server_reply_error(steal_ptr(sb->rq), ECANCELED, "cannot start the sandbox: %s", why);
                        broker_reaper_ended(b, NULL);
                        sandbox_free(sb);
                        continue;
                }
                sb->ended_by = why;
                /* closing the reaper's socket makes it kill and reap all */
                sandbox_kill(sb);
                struct reaper_msg m = { 0 };
                int r;
                for (;;) {
                        /* bounded: a process stuck in a stalled file system
                         * call keeps its reaper from reporting */
                        struct pollfd p = { .fd = sb->sp.reaper_sock, .events = POLLIN };
                        if (poll(&p, 1, 5000) <= 0) {
                                r = -ETIMEDOUT;
                                sb->reaper_stuck = true;
                                break;
                        }
                        r = reaper_recv(sb->sp.reaper_sock, &m);
                        if (r == -EAGAIN || r == -EINTR)
                                continue;
                        if (r < 0 || m.type == REAPER_ROOT_EXIT)
                                break;
                }
                /* unknown: it was killed with the rest */
                sb->wait_status = r == 0 ? m.value : SIGKILL;
                sandbox_finish(sb);
        }
        /* every end together: each may wait for its audit sink */
        tracer_link_finish(&b->tracer, MSG_END_AUDIT_WAIT_MS + 5000);
}
