/* seccell-tracer: the unprivileged supervisor. One epoll loop serves every
 * sandbox's seccomp listener, the broker's control requests (nng REP) and
 * the fd channel on which listener and audit descriptors arrive. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/transport/ipc/ipc.h>

#include "cleanup.h"
#include "exec_audit.h"
#include "fdpass.h"
#include "log.h"
#include "msg.h"
#include "mem_limit.h"
#include "notif_loop.h"
#include "privs.h"
#include "proc_limit.h"
#include "fork_trace.h"
#include "run_end.h"
#include "size.h"
#include "tracer.h"

#define DRAIN_BUDGET 64
#define MAX_PENDING_FDS 64
/* Receivers left stuck (notif_rx_stuck) one uid may have before its new
 * sandboxes are refused. */
#define MAX_STUCK_PER_UID 4
/* Audit writers left stuck in a write (audit_queue_stuck) one uid may have
 * before its new sandboxes with an audit sink are refused. */
#define MAX_STUCK_WRITERS_PER_UID 4

/* epoll data: a listener (the sandbox) or one of these tags. */
enum { TAG_CONTROL = 1, TAG_FDCHAN, TAG_SIGNAL, TAG_SETTLE, TAG_MEMSWEEP, TAG_RUN_END };

struct pending_fds {
        uint64_t token;
        int fds[FDCHAN_MAX_FDS];
        size_t nfds;
};

/* Where a control request came from: the header of a raw REP message
 * (the pipe's id, then the request id and any hops), to be put back on its
 * answer. */
struct backtrace {
        unsigned char b[64];
        size_t len;
};

static struct {
        int epfd;
        int fdchan;
        nng_socket rep;
        struct pending_fds pending[MAX_PENDING_FDS];
        size_t npending;
        void **deferred;          /* freed after the batch (tracer_defer_free) */
        size_t ndeferred, deferred_cap;
        int sweep_fd;             /* timerfd: the memory sweep, armed while a
                                   * sandbox has a memory limit */
        bool sweeping;
} T;

struct tsandbox *tracer_sandboxes;

int tracer_watch(int fd, void *ptr)
{
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = ptr };
        return epoll_ctl(T.epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int tracer_watch_hup(int fd, void *ptr)
{
        struct epoll_event ev = { .events = 0, .data.ptr = ptr };
        return epoll_ctl(T.epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void tracer_unwatch(int fd)
{
        if (fd >= 0)
                epoll_ctl(T.epfd, EPOLL_CTL_DEL, fd, NULL);
}

static void free_deferred(void)
{
        for (size_t i = 0; i < T.ndeferred; i++)
                free(T.deferred[i]);
        T.ndeferred = 0;
}

void tracer_defer_free(void *p)
{
        /* Never free within a batch: a later event of it may point at p.
         * One recount can release any number of entries, so the list
         * grows; should that fail, p is leaked rather than freed early. */
        if (T.ndeferred == T.deferred_cap) {
                size_t cap = T.deferred_cap ? 2 * T.deferred_cap : 256;
                void **v = realloc(T.deferred, cap * sizeof(*v));
                if (!v) {
                        log_msg("out of memory: leaking %p", p);
                        return;
                }
                T.deferred = v;
                T.deferred_cap = cap;
        }
        T.deferred[T.ndeferred++] = p;
}

static nng_socket events_sock;

/* The live stream: each event as an AuditEvent on a PUB socket. A slow
 * subscriber may miss events (nng PUB does not block the tracer); it sees
 * the gap in host_seq, and the audit file remains the record. */
static void publish_event(const struct audit_sink *s, const char *event, uint64_t seq, uint64_t host_seq,
                          const char *line, size_t len)
{
        Seccell__AuditEvent ev = SECCELL__AUDIT_EVENT__INIT;
        char *json = strndup(line, len);
        nng_msg *m;
        if (!json)
                return;
        ev.sandbox_id = s->sandbox_id;
        ev.seq = seq;
        ev.host_seq = host_seq;
        ev.event = (char *)event;
        ev.json = json;
        if (msg_pack(&ev.base, &m) == 0 && nng_sendmsg(events_sock, m, NNG_FLAG_NONBLOCK) != 0)
                nng_msg_free(m);
        free(json);
}

static int events_open(const char *dir)
{
        char url[PATH_MAX + 32];
        nng_listener l;
        snprintf(url, sizeof(url), "ipc://%s/events.ipc", dir);
        int rv = nng_pub0_open(&events_sock);
        if (rv == 0)
                rv = nng_listener_create(&l, events_sock, url);
        /* every sandbox's argv flows here: the tracer's user and root only */
        if (rv == 0)
                rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, 0600);
        if (rv == 0)
                rv = nng_listener_start(l, 0);
        if (rv != 0)
                return msg_nng_errno(rv);
        audit_set_publisher(publish_event);
        return 0;
}

static void drain_fdchan(void)
{
        for (;;) {
                struct pending_fds p;
                int r = fdchan_recv(T.fdchan, &p.token, p.fds, FDCHAN_MAX_FDS, &p.nfds);
                if (r == -EAGAIN)
                        return;
                if (r == -ECONNRESET) {
                        /* the broker is gone; so is our reason to run */
                        log_debug("fd channel closed; exiting");
                        exit(0);
                }
                if (r < 0) {
                        log_errno(r, "fd channel");
                        return;
                }
                if (T.npending == MAX_PENDING_FDS) {
                        log_msg("too many unclaimed descriptor packets; dropping one");
                        fds_close_detached(p.fds, p.nfds);
                        continue;
                }
                T.pending[T.npending++] = p;
        }
}

static void tracer_defer_free_entry(struct proc_entry *e);

static bool take_fds(uint64_t token, struct pending_fds *out)
{
        drain_fdchan();
        for (size_t i = 0; i < T.npending; i++)
                if (T.pending[i].token == token) {
                        *out = T.pending[i];
                        T.pending[i] = T.pending[--T.npending];
                        return true;
                }
        return false;
}

static struct tsandbox *find(uint64_t id)
{
        for (struct tsandbox *sb = tracer_sandboxes; sb; sb = sb->next)
                if (sb->id == id)
                        return sb;
        return NULL;
}

static void listener_close(struct tsandbox *sb)
{
        if (sb->listener < 0)
                return;
        tracer_unwatch(sb->rx_efd);
        /* a receiver stuck reading the sandbox's memory closes the
         * listener itself when it gets out */
        if (notif_rx_stop(sb->rx))
                close(sb->listener);
        notif_forget(sb);
        sb->rx = NULL;
        sb->rx_efd = -1;
        sb->listener = -1;
}

static json_object *policy_json(const Seccell__Policy *p)
{
        json_object *o = json_object_new_object();
        json_object_object_add(o, "max_procs", json_object_new_uint64(p ? p->max_procs : 0));
        json_object_object_add(o, "max_memory", json_object_new_uint64(p ? p->max_memory : 0));
        json_object_object_add(o, "timeout_ms", json_object_new_uint64(p ? p->timeout_ms : 0));
        return o;
}

/* Start or stop the periodic memory sweep (mem_limit.h). */
static void sweep_arm(bool on)
{
        if (on == T.sweeping)
                return;
        long ns = on ? MEM_SWEEP_MS * 1000000L : 0;
        struct itimerspec its = { .it_interval = { 0, ns }, .it_value = { 0, ns } };
        if (timerfd_settime(T.sweep_fd, 0, &its, NULL) == 0)
                T.sweeping = on;
}

/* The sweep's tick: every sandbox with a memory limit; stops when none
 * is left. */
static void sweep(void)
{
        uint64_t ticks;
        bool any = false;
        (void)!read(T.sweep_fd, &ticks, sizeof(ticks));
        for (struct tsandbox *sb = tracer_sandboxes; sb; sb = sb->next)
                if (sb->max_memory && !sb->ended) {
                        any = true;
                        mem_limit_sweep(sb);
                }
        if (!any)
                sweep_arm(false);
}

/* Refusals close the descriptors in a thread of their own
 * (fds_close_detached): the audit file is the client's, maybe on a stalled
 * file system, whose close would hold the main loop and every sandbox. */
static int add_sandbox(const Seccell__AddSandbox *a, char *why, size_t whylen)
{
        struct pending_fds p;
        size_t want = a->audit ? 2 : 1;

        if (find(a->sandbox_id)) {
                snprintf(why, whylen, "sandbox %llu exists", (unsigned long long)a->sandbox_id);
                return -EEXIST;
        }
        if (!take_fds(a->fd_token, &p)) {
                snprintf(why, whylen, "no descriptors arrived for sandbox %llu", (unsigned long long)a->sandbox_id);
                return -EBADF;
        }
        if (p.nfds != want) {
                fds_close_detached(p.fds, p.nfds);
                snprintf(why, whylen, "%zu descriptors arrived, %zu expected", p.nfds, want);
                return -EBADF;
        }
        /* each such receiver holds an ended run's address space */
        unsigned stuck = notif_rx_stuck((unsigned)a->uid);
        if (stuck >= MAX_STUCK_PER_UID) {
                fds_close_detached(p.fds, p.nfds);
                snprintf(why, whylen, "uid %llu has %u ended runs whose exec arguments are still being read "
                         "(memory a stalled file system holds)", (unsigned long long)a->uid, stuck);
                return -EAGAIN;
        }
        /* each such writer holds a thread, in a write that a stalled file
         * system (a FUSE or hard NFS mount) does not let end */
        if (a->audit) {
                audit_queue_kick_stuck();
                stuck = audit_queue_stuck((unsigned)a->uid);
        }
        if (a->audit && stuck >= MAX_STUCK_WRITERS_PER_UID) {
                fds_close_detached(p.fds, p.nfds);
                snprintf(why, whylen, "uid %llu has %u ended runs whose audit file does not take their last "
                         "events (a stalled file system?)", (unsigned long long)a->uid, stuck);
                return -EAGAIN;
        }
        struct tsandbox *sb = calloc(1, sizeof(*sb));
        if (!sb) {
                fds_close_detached(p.fds, p.nfds);
                snprintf(why, whylen, "out of memory");
                return -ENOMEM;
        }
        sb->kind = TW_LISTENER;
        sb->id = a->sandbox_id;
        sb->listener = p.fds[0];
        sb->root = a->root_pid;
        sb->uid = a->uid;
        sb->max_procs = a->policy ? a->policy->max_procs : 0;
        sb->max_memory = a->policy ? a->policy->max_memory : 0;
        sb->tracked = sb->max_procs || sb->max_memory;
        int r = audit_init(&sb->audit, a->audit ? p.fds[1] : -1, sb->id, (unsigned)sb->uid);
        notif_listener_setup(sb->listener);
        if (r == 0)
                r = proc_limit_start(sb);
        if (r == 0)
                r = notif_rx_start(&sb->rx, sb->listener, &sb->rx_efd, notif_inline, sb);
        if (r == 0) {
                notif_rx_set_owner(sb->rx, (unsigned)sb->uid);
                if ((r = tracer_watch(sb->rx_efd, sb)) < 0 && !notif_rx_stop(sb->rx))
                        sb->listener = -1; /* the receiver closes it */
        }
        if (r < 0) {
                snprintf(why, whylen, "cannot take over the sandbox: %s", strerror(-r));
                proc_index_clear(&sb->procs, tracer_defer_free_entry);
                if (sb->listener >= 0)
                        close(sb->listener);
                audit_close(&sb->audit, NULL);
                free(sb);
                return r;
        }
        sb->next = tracer_sandboxes;
        tracer_sandboxes = sb;
        if (sb->max_memory)
                sweep_arm(true);

        json_object *f = json_object_new_object();
        bool cut;
        json_object_object_add(f, "argv", audit_string_array(a->argv, a->n_argv, EXEC_MAX_ARGS, EXEC_MAX_ARG,
                                                             EXEC_MAX_TOTAL, &cut));
        json_object_object_add(f, "truncated", json_object_new_boolean(cut));
        json_object_object_add(f, "cwd", audit_string(a->cwd));
        json_object_object_add(f, "uid", json_object_new_uint64(a->uid));
        json_object_object_add(f, "gid", json_object_new_uint64(a->gid));
        json_object_object_add(f, "root_pid", json_object_new_int(a->root_pid));
        json_object_object_add(f, "policy", policy_json(a->policy));
        audit_emit(&sb->audit, "sandbox_start", f);
        return 0;
}

static void tracer_defer_free_entry(struct proc_entry *e) { tracer_defer_free(e); }

/* Send answer `m` back the way of a request's header `bt` (len bytes). */
static void control_send(const void *bt, size_t len, nng_msg *m)
{
        int rv = nng_msg_header_append(m, bt, len);
        if (rv == 0)
                rv = nng_sendmsg(T.rep, m, 0);
        if (rv != 0) {
                log_msg("control reply: %s", nng_strerror(rv));
                nng_msg_free(m);
        }
}

/* The answer to an EndSandbox (run_end_answer_fn). */
static void answer_end(const void *bt, size_t len, Seccell__SandboxStats *stats)
{
        Seccell__Reply rep = SECCELL__REPLY__INIT;
        nng_msg *m;
        rep.body_case = SECCELL__REPLY__BODY_STATS;
        rep.stats = stats;
        if (msg_pack(&rep.base, &m) == 0)
                control_send(bt, len, m);
}

/* End sandbox e->sandbox_id: record its end, and answer the request (`bt`)
 * with its counts once its audit sink has taken its last events
 * (run_end.h), never waiting here. Returns 0 (answered, or to be), or
 * -errno with why[whylen] for an error answer. */
static int end_sandbox(const Seccell__EndSandbox *e, const struct backtrace *bt, char *why, size_t whylen)
{
        struct tsandbox *sb = find(e->sandbox_id), **pp;
        if (!sb) {
                snprintf(why, whylen, "no sandbox %llu", (unsigned long long)e->sandbox_id);
                return -ESRCH;
        }
        /* Answer whatever is still pending before the record closes. */
        if (sb->listener >= 0)
                notif_drain(sb, INT_MAX);
        listener_close(sb);
        sb->ended = true;
        proc_limit_end(sb);
        mem_limit_end(sb);

        json_object *f = json_object_new_object();
        json_object_object_add(f, "pid", json_object_new_int(sb->root));
        json_object_object_add(f, "status", audit_wait_status(e->wait_status));
        audit_emit(&sb->audit, "exit", f);

        f = json_object_new_object();
        json_object_object_add(f, "status", audit_wait_status(e->wait_status));
        json_object_object_add(f, "timed_out", json_object_new_boolean(e->timed_out));
        json_object_object_add(f, "duration_ns", json_object_new_uint64(e->duration_ns));
        json_object_object_add(f, "execs", json_object_new_uint64(sb->execs));
        json_object_object_add(f, "namespace_denied", json_object_new_uint64(sb->ns_denied));
        if (sb->max_memory) {
                json_object_object_add(f, "peak_memory", json_object_new_uint64(sb->mem_peak));
                json_object_object_add(f, "memory_kills", json_object_new_uint64(sb->mem_kills));
                json_object_object_add(f, "memory_work", mem_work_json(&sb->mem_work));
        }
        if (sb->tracked) {
                json_object_object_add(f, "peak_procs", json_object_new_int(sb->procs.peak));
                json_object_object_add(f, "forks_allowed", json_object_new_uint64(sb->forks_allowed));
                json_object_object_add(f, "forks_denied", json_object_new_uint64(sb->forks_denied));
                json_object_object_add(f, "reaps", json_object_new_uint64(sb->reaps));
        }
        audit_emit(&sb->audit, "sandbox_end", f);

        Seccell__SandboxStats stats = SECCELL__SANDBOX_STATS__INIT;
        stats.peak_procs = sb->procs.peak;
        stats.forks_allowed = sb->forks_allowed;
        stats.forks_denied = sb->forks_denied;
        stats.ns_denied = sb->ns_denied;
        stats.execs = sb->execs;
        stats.reaps = sb->reaps;
        stats.peak_memory = sb->mem_peak;
        stats.memory_kills = sb->mem_kills;
        run_end_start(sb->id, &sb->audit, &stats, bt->b, bt->len, answer_end);

        for (pp = &tracer_sandboxes; *pp != sb; pp = &(*pp)->next)
                ;
        *pp = sb->next;
        tracer_defer_free(sb);
        return 0;
}

static int freeze_sandbox(const Seccell__FreezeSandbox *f, char *why, size_t whylen)
{
        struct tsandbox *sb = find(f->sandbox_id);
        if (!sb) {
                snprintf(why, whylen, "no sandbox %llu", (unsigned long long)f->sandbox_id);
                return -ESRCH;
        }
        if (!sb->tracked) {
                snprintf(why, whylen, "sandbox %llu has no limit to hold forks against",
                         (unsigned long long)f->sandbox_id);
                return -EINVAL;
        }
        proc_limit_freeze(sb, f->frozen);
        return 0;
}

/* Control requests, on a raw REP socket: an EndSandbox is answered once
 * its sandbox's audit sink has drained (run_end.h), while the requests
 * after it are served. */
static void serve_control(void)
{
        for (;;) {
                nng_msg *m;
                struct backtrace bt;
                int rv = nng_recvmsg(T.rep, &m, NNG_FLAG_NONBLOCK);
                if (rv == NNG_EAGAIN)
                        return;
                if (rv != 0) {
                        log_msg("control receive: %s", nng_strerror(rv));
                        return;
                }
                bt.len = nng_msg_header_len(m);
                if (bt.len > sizeof(bt.b)) {
                        /* more hops than a broker's direct connection has */
                        log_msg("dropping a control request with a %zu-byte header", bt.len);
                        nng_msg_free(m);
                        continue;
                }
                memcpy(bt.b, nng_msg_header(m), bt.len);
                Seccell__TracerRequest *req;
                char why[256] = "";
                uint64_t peer = (uint64_t)-1;
                nng_pipe_get_uint64(nng_msg_get_pipe(m), NNG_OPT_IPC_PEER_UID, &peer);
                /* only the broker: root, or our own uid when unprivileged */
                if (peer != 0 && peer != getuid()) {
                        log_msg("refusing a control request from uid %llu", (unsigned long long)peer);
                        nng_msg_free(m);
                        if (msg_error_reply(&m, EPERM, "not the broker") == 0)
                                control_send(bt.b, bt.len, m);
                        continue;
                }
                int r = msg_unpack_tracer_request(m, &req, why, sizeof(why));
                nng_msg_free(m);
                if (r < 0) {
                        log_msg("malformed control request: %s", why);
                } else {
                        switch (req->body_case) {
                        case SECCELL__TRACER_REQUEST__BODY_ADD:
                                r = add_sandbox(req->add, why, sizeof(why));
                                break;
                        case SECCELL__TRACER_REQUEST__BODY_END:
                                r = end_sandbox(req->end, &bt, why, sizeof(why));
                                break;
                        default:
                                r = freeze_sandbox(req->freeze, why, sizeof(why));
                                break;
                        }
                        if (r == 0 && req->body_case == SECCELL__TRACER_REQUEST__BODY_END) {
                                seccell__tracer_request__free_unpacked(req, NULL);
                                continue; /* answered by run_end */
                        }
                        seccell__tracer_request__free_unpacked(req, NULL);
                }
                if (msg_error_reply(&m, r < 0 ? -r : 0, "%s", why) == 0)
                        control_send(bt.b, bt.len, m);
        }
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "dir", required_argument, NULL, 'd' },
                { "fd-channel", required_argument, NULL, 'f' },
                { "ready-fd", required_argument, NULL, 'r' },
                { "user", required_argument, NULL, 'u' },
                { "quiet", no_argument, NULL, 'q' },
                { "events", no_argument, NULL, 'e' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *dir = NULL, *user = "nobody";
        int ready_fd = -1, c, rv;
        bool quiet = false, events = false;
        uint64_t v;

        log_set_prog("seccell-tracer");
        log_debug("start");
        T.fdchan = -1;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'd': dir = optarg; break;
                case 'u': user = optarg; break;
                case 'q': quiet = true; break;
                case 'e': events = true; break;
                case 'f':
                case 'r':
                        if (parse_uint_range(optarg, 0, INT_MAX, &v) < 0) {
                                log_msg("bad descriptor number '%s'", optarg);
                                return 125;
                        }
                        *(c == 'f' ? &T.fdchan : &ready_fd) = (int)v;
                        break;
                case 'h':
                        puts("Usage: seccell-tracer --dir DIR --fd-channel FD [--ready-fd FD] [--user USER]\n"
                             "Started by seccell-broker; not meant to be run by hand.");
                        return 0;
                default:
                        return 125;
                }
        }
        if (!dir || T.fdchan < 0) {
                log_msg("--dir and --fd-channel are required (the broker starts the tracer)");
                return 125;
        }

        char desc[256];
        int r = privs_drop(user, desc, sizeof(desc));
        if (r < 0) {
                log_errno(r, "cannot drop privileges to user '%s'", user);
                return 125;
        }
        if (!quiet)
                log_msg("running as %s", desc);
        else
                log_debug("running as %s", desc);
        /* A pidfd per live process of every sandbox, and a statm descriptor
         * under a memory limit: take all the descriptors we may. */
        struct rlimit nofile;
        if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
                nofile.rlim_cur = nofile.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
                        log_debug("cannot raise the descriptor limit: %s", strerror(errno));
        }
        if ((r = notif_init()) < 0) {
                log_errno(r, "seccomp user notification is not available");
                return 125;
        }

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGCHLD); /* ptrace stops of fork registration */
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        /* before any thread starts (nng's too): they inherit its mask */
        int end_wake_fd, end_timer_fd;
        if ((r = run_end_init(&end_wake_fd, &end_timer_fd)) < 0) {
                log_errno(r, "cannot set up the audit writers");
                return 125;
        }

        char url[PATH_MAX + 32];
        nng_listener l;
        int recv_fd;
        snprintf(url, sizeof(url), "ipc://%s/tracer.ipc", dir);
        rv = nng_rep0_open_raw(&T.rep);
        if (rv == 0)
                rv = nng_listener_create(&l, T.rep, url);
        if (rv == 0)
                rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, 0600);
        if (rv == 0)
                rv = nng_listener_start(l, 0);
        if (rv == 0)
                rv = nng_socket_get_int(T.rep, NNG_OPT_RECVFD, &recv_fd);
        if (rv != 0) {
                /* found in review: a --dir under a 0700 directory (mktemp
                 * -d) that root made, which this user cannot traverse */
                if (access(dir, W_OK | X_OK) < 0 && errno == EACCES)
                        log_msg("cannot listen on %s: %s: uid %u (the tracer's user) cannot reach %s; each "
                                "directory above it must be searchable by that user (mktemp -d makes 0700 ones)",
                                url, nng_strerror(rv), getuid(), dir);
                else
                        log_msg("cannot listen on %s: %s", url, nng_strerror(rv));
                return 125;
        }

        if (events && (r = events_open(dir)) < 0) {
                log_errno(r, "cannot open the live event stream in %s", dir);
                return 125;
        }

        int fl = fcntl(T.fdchan, F_GETFL);
        fcntl(T.fdchan, F_SETFL, fl | O_NONBLOCK);
        fcntl(T.fdchan, F_SETFD, FD_CLOEXEC);
        T.epfd = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = { .events = EPOLLIN };
        ev.data.u64 = TAG_CONTROL;
        epoll_ctl(T.epfd, EPOLL_CTL_ADD, recv_fd, &ev);
        ev.data.u64 = TAG_FDCHAN;
        epoll_ctl(T.epfd, EPOLL_CTL_ADD, T.fdchan, &ev);
        ev.data.u64 = TAG_SIGNAL;
        epoll_ctl(T.epfd, EPOLL_CTL_ADD, sfd, &ev);
        int settle_fd = fork_trace_init();
        if (settle_fd < 0) {
                log_errno(settle_fd, "cannot create a timer");
                return 125;
        }
        ev.data.u64 = TAG_SETTLE;
        epoll_ctl(T.epfd, EPOLL_CTL_ADD, settle_fd, &ev);
        T.sweep_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (T.sweep_fd < 0) {
                log_errno(-errno, "cannot create a timer");
                return 125;
        }
        ev.data.u64 = TAG_MEMSWEEP;
        epoll_ctl(T.epfd, EPOLL_CTL_ADD, T.sweep_fd, &ev);
        ev.data.u64 = TAG_RUN_END;
        epoll_ctl(T.epfd, EPOLL_CTL_ADD, end_wake_fd, &ev);
        epoll_ctl(T.epfd, EPOLL_CTL_ADD, end_timer_fd, &ev);

        if (ready_fd >= 0) {
                (void)!write(ready_fd, "r", 1);
                close(ready_fd);
        }

        /* the main loop owns the tracer's state but while it sleeps */
        pthread_mutex_lock(&tracer_lock);
        for (;;) {
                struct epoll_event evs[64];
                pthread_mutex_unlock(&tracer_lock);
                int k = epoll_wait(T.epfd, evs, 64, -1);
                pthread_mutex_lock(&tracer_lock);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        log_errno(-errno, "epoll_wait");
                        return 1;
                }
                for (int i = 0; i < k; i++) {
                        uint64_t tag = evs[i].data.u64;
                        if (tag == TAG_CONTROL) {
                                serve_control();
                        } else if (tag == TAG_FDCHAN) {
                                drain_fdchan();
                        } else if (tag == TAG_SIGNAL) {
                                struct signalfd_siginfo si;
                                bool stop = false;
                                while (read(sfd, &si, sizeof(si)) == sizeof(si))
                                        stop |= si.ssi_signo != SIGCHLD;
                                if (stop)
                                        return 0;
                                fork_trace_collect();
                        } else if (tag == TAG_SETTLE) {
                                fork_trace_settle();
                                for (struct tsandbox *sb = tracer_sandboxes; sb; sb = sb->next) {
                                        proc_limit_retry(sb);
                                        mem_limit_retry(sb);
                                }
                        } else if (tag == TAG_MEMSWEEP) {
                                sweep();
                        } else if (tag == TAG_RUN_END) {
                                run_end_check();
                        } else if (*(int *)evs[i].data.ptr == TW_LISTENER) {
                                /* ended sandboxes stay allocated until the
                                 * batch is over, with listener -1 */
                                struct tsandbox *sb = evs[i].data.ptr;
                                if (sb->listener >= 0 && notif_drain(sb, DRAIN_BUDGET) == -ENOTCONN)
                                        listener_close(sb);
                        } else {
                                proc_limit_pidfd_event(evs[i].data.ptr, evs[i].events);
                        }
                }
                free_deferred();
        }
}
