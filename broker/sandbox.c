/* Sandboxes from request to reply: spawn, hand to the tracer, watch the
 * reaper, the client's connection and the timeout, and report the end. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
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
#include "log.h"
#include "msg.h"
#include "procfs.h"
#include "reaper.h"
#include "spawn.h"

struct sandbox {
        struct broker *b;
        uint64_t id;
        uint64_t token;                 /* the client's fd token: names the run */
        uid_t uid;
        struct server_request *rq;      /* the Run request awaiting its reply */
        int client_conn;                /* hang-up ends the run */
        int timer_fd;
        struct spawn_result sp;
        struct watch w_reaper, w_client, w_timer;
        uint64_t start_ns;
        bool timed_out, ended, client_gone;
        const char *ended_by;           /* why seccell ended it early */
        int wait_status;
        struct sandbox *next;
};

static void sandbox_free(struct sandbox *sb)
{
        struct broker *b = sb->b;
        for (struct sandbox **pp = &b->sandboxes; *pp; pp = &(*pp)->next)
                if (*pp == sb) {
                        *pp = sb->next;
                        break;
                }
        broker_unwatch(b, &sb->w_reaper);
        broker_unwatch(b, &sb->w_client);
        broker_unwatch(b, &sb->w_timer);
        spawn_result_close(&sb->sp);
        closep(&sb->client_conn);
        closep(&sb->timer_fd);
        if (sb->rq)
                server_drop(sb->rq);
        sb->rq = NULL;
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

/* The reaper reported the root's status and has killed everything else. */
static void sandbox_finish(struct sandbox *sb)
{
        Seccell__EndSandbox end = SECCELL__END_SANDBOX__INIT;
        end.sandbox_id = sb->id;
        end.wait_status = sb->wait_status;
        end.timed_out = sb->timed_out;
        end.duration_ns = mono_ns() - sb->start_ns;
        Seccell__SandboxStats stats = SECCELL__SANDBOX_STATS__INIT;
        bool have_stats = tracer_link_end(&sb->b->tracer, &end, &stats) == 0;
        stats.base.descriptor = &seccell__sandbox_stats__descriptor;

        /* by pidfd: the pid may already be reaped by the orphan sweep */
        siginfo_t si;
        waitid(P_PIDFD, sb->sp.reaper_pidfd, &si, WEXITED);
        if (sb->rq) {
                Seccell__Reply rep = SECCELL__REPLY__INIT;
                Seccell__RunResult res = SECCELL__RUN_RESULT__INIT;
                nng_msg *m;
                res.sandbox_id = sb->id;
                res.wait_status = sb->wait_status;
                res.timed_out = sb->timed_out;
                res.stats = have_stats ? &stats : NULL;
                res.ended_by = (char *)(sb->ended_by ? sb->ended_by : "");
                rep.body_case = SECCELL__REPLY__BODY_RUN;
                rep.run = &res;
                if (msg_pack(&rep.base, &m) == 0)
                        server_reply(steal_ptr(sb->rq), m);
        }
        log_debug("sandbox %llu ended, status 0x%x", (unsigned long long)sb->id, sb->wait_status);
        sandbox_free(sb);
}

static void sandbox_kill(struct sandbox *sb)
{
        if (sb->ended)
                return;
        sb->ended = true;
        reaper_send(sb->sp.reaper_sock, REAPER_KILL, 0);
}

static void on_reaper(void *obj, uint32_t events)
{
        struct sandbox *sb = obj;
        struct reaper_msg m;
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
                log_msg("sandbox %llu: its reaper died", (unsigned long long)sb->id);
                sb->wait_status = 125 << 8;
                sb->ended_by = "its reaper process died (killed from outside?); its other processes may live on";
                sandbox_finish(sb);
        }
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
                sandbox_kill(sb);
        }
}

static void on_timer(void *obj, uint32_t events)
{
        struct sandbox *sb = obj;
        (void)events;
        broker_unwatch(sb->b, &sb->w_timer);
        sb->timed_out = true;
        sandbox_kill(sb);
}

/* Supplementary groups of `uid`, as login would set them. */
static int user_groups(uid_t uid, gid_t gid, gid_t *groups, int *n)
{
        struct passwd pw, *res;
        char buf[4096];
        if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res) {
                groups[0] = gid;
                *n = 1;
                return 0;
        }
        if (getgrouplist(pw.pw_name, gid, groups, n) < 0)
                return -E2BIG;
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
                struct proc_stat st;
                if (procfs_stat(pid, &st) < 0)
                        return true;
                pid = st.ppid;
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

static void handle_run(struct broker *b, struct server_request *rq, const Seccell__RunRequest *run)
{
        _cleanup_free_ struct sandbox *sb = NULL;
        struct server_fds *fds = NULL;
        struct sock_fprog prog = { 0 };
        struct filter_policy fp = { 0 };
        _cleanup_free_ char **argv = NULL, **envp = NULL;
        gid_t groups[256];
        int ngroups = ARRAY_SIZE(groups);
        const char *what;
        char why[512];
        int r;

        /* Claimed first, so that a refusal below closes them at once
         * (they may be the only holders of the client's pipes). */
        fds = server_take_fds(b->srv, run->fd_token, (uid_t)rq->peer_uid);
        if (kill((pid_t)rq->peer_pid, 0) < 0 && errno == ESRCH) {
                server_drop(rq); /* the client is gone */
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
        size_t want = run->audit ? 4 : 3;
        if (!fds || fds->nfds != want) {
                server_reply_error(rq, EBADF, "no descriptors (%zu expected) were received for this request", want);
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
        if (b->is_root && rq->peer_uid != 0 &&
            user_groups(rq->peer_uid, rq->peer_gid, groups, &ngroups) < 0) {
                server_reply_error(rq, E2BIG, "uid %llu has too many groups", (unsigned long long)rq->peer_uid);
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

        /* argv and env arrays, NULL-terminated (protobuf-c's are not) */
        argv = calloc(run->n_argv + 1, sizeof(char *));
        envp = calloc(run->n_env + 1, sizeof(char *));
        sb = calloc(1, sizeof(*sb));
        if (!argv || !envp || !sb) {
                server_reply_error(rq, ENOMEM, "out of memory");
                goto out;
        }
        /* protobuf-c leaves an empty repeated field NULL */
        if (run->n_argv)
                memcpy(argv, run->argv, run->n_argv * sizeof(char *));
        if (run->n_env)
                memcpy(envp, run->env, run->n_env * sizeof(char *));

        struct spawn_request sr = {
                .argv = argv, .envp = envp, .cwd = run->cwd,
                .uid = rq->peer_uid, .gid = rq->peer_gid,
                .groups = groups, .ngroups = b->is_root && rq->peer_uid != 0 ? (size_t)ngroups : 0,
                .switch_user = b->is_root,
                .stdio = { fds->fds[0], fds->fds[1], fds->fds[2] },
                .filter = &prog,
                .max_memory = fp.max_memory,
                .inherit = &inherit,
        };
        sb->b = b;
        sb->id = ++b->next_id;
        sb->uid = rq->peer_uid;
        sb->token = run->fd_token;
        sb->timer_fd = -1;
        sb->client_conn = -1;
        sb->start_ns = mono_ns();
        log_debug("spawning sandbox %llu", (unsigned long long)sb->id);
        r = spawn_sandbox(&sr, &sb->sp, &what);
        log_debug("sandbox %llu: listener received", (unsigned long long)sb->id);
        /* the sandbox holds its stdio now; the broker must not, or readers
         * of the sandbox's output would never see EOF */
        fds_close(fds->fds, 3);
        if (r < 0) {
                if (what && strcmp(what, "chdir") == 0)
                        server_reply_error(rq, -r, "cannot change directory to %s: %s", run->cwd, strerror(-r));
                else if (what && strcmp(what, "seccomp") == 0 && r == -EPERM)
                        /* a filter above ours forbids supervisors: seccell's
                         * own does, so this is most likely a nested run */
                        server_reply_error(rq, EPERM, "cannot start the sandbox: seccomp refused a supervised "
                                           "filter (Operation not permitted): seccell run cannot be used inside a "
                                           "seccell sandbox");
                else
                        server_reply_error(rq, -r, "cannot start the sandbox%s%s: %s", what ? ": " : "",
                                           what ? what : "", strerror(-r));
                goto out;
        }

        Seccell__AddSandbox add = SECCELL__ADD_SANDBOX__INIT;
        int handed[2] = { sb->sp.listener_fd, run->audit ? fds->fds[3] : -1 };
        add.sandbox_id = sb->id;
        add.fd_token = fdchan_new_token();
        add.root_pid = sb->sp.root_pid;
        add.uid = rq->peer_uid;
        add.gid = rq->peer_gid;
        add.policy = run->policy;
        add.n_argv = run->n_argv;
        add.argv = run->argv;
        add.audit = run->audit;
        add.cwd = run->cwd;
        r = tracer_link_add(&b->tracer, &add, handed, run->audit ? 2 : 1, why, sizeof(why));
        /* The listener lives in the tracer only. */
        closep(&sb->sp.listener_fd);
        sb->sp.listener_fd = -1;
        if (r < 0) {
                /* fail closed: no supervisor, no sandbox */
                server_reply_error(rq, -r, "cannot hand the sandbox to the tracer: %s", why);
                spawn_result_close(&sb->sp);
                waitpid(sb->sp.reaper_pid, NULL, 0);
                goto out;
        }

        if (run->policy && run->policy->timeout_ms) {
                sb->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
                struct itimerspec its = { .it_value = {
                        .tv_sec = run->policy->timeout_ms / 1000,
                        .tv_nsec = (run->policy->timeout_ms % 1000) * 1000000 } };
                if (sb->timer_fd < 0 || timerfd_settime(sb->timer_fd, 0, &its, NULL) < 0) {
                        server_reply_error(rq, errno, "cannot arm the timeout: %s", strerror(errno));
                        spawn_result_close(&sb->sp);
                        waitpid(sb->sp.reaper_pid, NULL, 0);
                        goto out;
                }
        }
        sb->client_conn = steal_fd(fds->conn);
        sb->rq = rq;
        sb->w_reaper = (struct watch){ on_reaper, sb, sb->sp.reaper_sock };
        sb->w_client = (struct watch){ on_client, sb, sb->client_conn };
        sb->w_timer = (struct watch){ on_timer, sb, sb->timer_fd };
        broker_watch(b, &sb->w_reaper, EPOLLIN);
        broker_watch(b, &sb->w_client, EPOLLIN | EPOLLRDHUP);
        if (sb->timer_fd >= 0)
                broker_watch(b, &sb->w_timer, EPOLLIN);
        sb->next = b->sandboxes;
        b->sandboxes = sb;

        log_debug("sandbox %llu: released", (unsigned long long)sb->id);
        spawn_release(&sb->sp);
        steal_ptr(sb);
out:
        free(prog.filter);
        server_fds_free(fds);
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
                handle_run(b, rq, req->run);
        else
                handle_signal(b, rq, req->signal);
        seccell__request__free_unpacked(req, NULL);
}

void sandbox_kill_all(struct broker *b, const char *why)
{
        while (b->sandboxes) {
                struct sandbox *sb = b->sandboxes;
                sb->ended_by = why;
                /* closing the reaper's socket makes it kill and reap all */
                sandbox_kill(sb);
                struct reaper_msg m = { 0 };
                int r;
                while ((r = reaper_recv(sb->sp.reaper_sock, &m)) == 0 && m.type != REAPER_ROOT_EXIT)
                        ;
                /* unknown: it was killed with the rest */
                sb->wait_status = r == 0 ? m.value : SIGKILL;
                sandbox_finish(sb);
        }
}
