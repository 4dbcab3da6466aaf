/* Drives a private seccell-broker directly over its nng and fd-channel
 * endpoints (and its tracer's control endpoint) with malformed, truncated
 * and hostile input, and checks that each gets an error reply while the
 * daemons keep serving: a valid run afterwards still works. Also checks the
 * tracer's freeze/thaw control. Exits 0 when every check holds; prints one
 * line per failed check. Usage: seccell-proto-probe BROKER_BINARY */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>

#include "fdpass.h"
#include "msg.h"
#include "procfs.h"

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
                printf(__VA_ARGS__); printf("\n"); } } while (0)

static char dir[] = "/tmp/seccell-probe.XXXXXX";

static nng_socket dial(const char *path)
{
        nng_socket s;
        char url[256];
        snprintf(url, sizeof(url), "ipc://%s", path);
        if (nng_req0_open(&s) || nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE) ||
            nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 20000) || msg_dial(s, url, 20000)) {
                printf("FAIL cannot dial %s\n", url);
                exit(1);
        }
        return s;
}

/* Send raw bytes, return the decoded reply (NULL if none or undecodable). */
static Seccell__Reply *roundtrip(nng_socket s, const void *buf, size_t len)
{
        nng_msg *m;
        nng_msg_alloc(&m, len);
        if (len)
                memcpy(nng_msg_body(m), buf, len);
        if (nng_sendmsg(s, m, 0) != 0) {
                nng_msg_free(m);
                return NULL;
        }
        if (nng_recvmsg(s, &m, 0) != 0)
                return NULL;
        Seccell__Reply *r;
        char why[256];
        int k = msg_unpack_reply(m, &r, why, sizeof(why));
        nng_msg_free(m);
        return k < 0 ? NULL : r;
}

static Seccell__Reply *send_msg(nng_socket s, const ProtobufCMessage *pm)
{
        size_t len = protobuf_c_message_get_packed_size(pm);
        uint8_t *buf = malloc(len + 1);
        protobuf_c_message_pack(pm, buf);
        Seccell__Reply *r = roundtrip(s, buf, len);
        free(buf);
        return r;
}

/* A connection to `name` in the broker's directory. */
static int connect_unix(const char *name, int type)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, name);
        int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                printf("FAIL connect %s: %s\n", sa.sun_path, strerror(errno));
                exit(1);
        }
        return fd;
}

static int connect_fd(void) { return connect_unix("broker.fd", SOCK_SEQPACKET); }

static Seccell__Reply *run_with_fd(nng_socket s, char **argv, int argc, uint32_t max_procs, int *conn, int out);

/* A Run request of argv with stdio passed under a fresh token. *conn keeps
 * the client's fd connection (closing it ends the sandbox). */
static Seccell__Reply *run(nng_socket s, char **argv, int argc, uint32_t max_procs, int *conn)
{
        return run_with_fd(s, argv, argc, max_procs, conn, 1);
}

/* As run(), with `out` as the sandbox's stdout. */
static Seccell__Reply *run_with_fd(nng_socket s, char **argv, int argc, uint32_t max_procs, int *conn, int out)
{
        Seccell__Request req = SECCELL__REQUEST__INIT;
        Seccell__RunRequest rr = SECCELL__RUN_REQUEST__INIT;
        Seccell__Policy pol = SECCELL__POLICY__INIT;
        char *env[] = { "PATH=/usr/bin:/bin" };
        int fds[3] = { 0, out, 2 };
        uint64_t token = fdchan_new_token();

        *conn = connect_fd();
        fdchan_send(*conn, token, fds, 3);
        pol.max_procs = max_procs;
        rr.fd_token = token;
        rr.n_argv = argc;
        rr.argv = argv;
        rr.n_env = 1;
        rr.env = env;
        rr.cwd = "/";
        rr.policy = &pol;
        req.body_case = SECCELL__REQUEST__BODY_RUN;
        req.run = &rr;
        return send_msg(s, &req.base);
}

static void expect_error(nng_socket s, const void *buf, size_t len, const char *what)
{
        Seccell__Reply *r = roundtrip(s, buf, len);
        CHECK(r && r->error != 0, "%s: expected an error reply, got %s", what, r ? "success" : "no reply");
        if (r)
                seccell__reply__free_unpacked(r, NULL);
}

static void check_valid_run_works(nng_socket s, const char *when)
{
        int conn;
        char *argv[] = { "/bin/sh", "-c", "exit 7" };
        Seccell__Reply *r = run(s, argv, 3, 0, &conn);
        CHECK(r && r->error == 0 && r->body_case == SECCELL__REPLY__BODY_RUN && WIFEXITED(r->run->wait_status) &&
                      WEXITSTATUS(r->run->wait_status) == 7,
              "%s: a valid run must still work (error %d: %s)", when, r ? r->error : -1,
              r && r->message ? r->message : "");
        if (r)
                seccell__reply__free_unpacked(r, NULL);
        close(conn);
}

static void probe_broker(nng_socket s)
{
        /* empty, random, and every truncation of a valid request */
        expect_error(s, "", 0, "empty message");
        srand(12345);
        for (int i = 0; i < 300; i++) {
                uint8_t buf[64];
                size_t len = 1 + rand() % sizeof(buf);
                for (size_t k = 0; k < len; k++)
                        buf[k] = rand();
                Seccell__Reply *r = roundtrip(s, buf, len);
                /* random bytes may decode as a valid request naming fds that
                 * never arrived: either way the answer is an error */
                CHECK(r && r->error != 0, "random message %d: expected an error reply", i);
                if (r)
                        seccell__reply__free_unpacked(r, NULL);
        }
        {
                Seccell__Request req = SECCELL__REQUEST__INIT;
                Seccell__RunRequest rr = SECCELL__RUN_REQUEST__INIT;
                char *argv[] = { "/bin/true" };
                rr.fd_token = 99;
                rr.n_argv = 1;
                rr.argv = argv;
                rr.cwd = "/";
                req.body_case = SECCELL__REQUEST__BODY_RUN;
                req.run = &rr;
                size_t len = protobuf_c_message_get_packed_size(&req.base);
                uint8_t *buf = malloc(len);
                protobuf_c_message_pack(&req.base, buf);
                for (size_t cut = 0; cut < len; cut++)
                        expect_error(s, buf, cut, "truncated run request");
                /* complete, but its fds never arrived */
                expect_error(s, buf, len, "run request without descriptors");
                free(buf);
        }
        {
                /* semantically invalid requests */
                Seccell__Request req = SECCELL__REQUEST__INIT;
                Seccell__RunRequest rr = SECCELL__RUN_REQUEST__INIT;
                char *env[] = { "NOEQUALS" };
                char *argv[] = { "/bin/true" };
                req.body_case = SECCELL__REQUEST__BODY_RUN;
                req.run = &rr;
                rr.fd_token = 5;
                rr.cwd = "/";
                Seccell__Reply *r = send_msg(s, &req.base); /* no argv */
                CHECK(r && r->error == EBADMSG, "empty argv: expected EBADMSG");
                if (r)
                        seccell__reply__free_unpacked(r, NULL);
                rr.n_argv = 1;
                rr.argv = argv;
                rr.n_env = 1;
                rr.env = env;
                r = send_msg(s, &req.base);
                CHECK(r && r->error == EBADMSG, "env without '=': expected EBADMSG");
                if (r)
                        seccell__reply__free_unpacked(r, NULL);
                rr.n_env = 0;
                rr.cwd = "relative";
                r = send_msg(s, &req.base);
                CHECK(r && r->error == EBADMSG, "relative cwd: expected EBADMSG");
                if (r)
                        seccell__reply__free_unpacked(r, NULL);
                Seccell__SignalRequest sig = SECCELL__SIGNAL_REQUEST__INIT;
                sig.fd_token = 42;
                sig.signo = SIGTERM;
                req.body_case = SECCELL__REQUEST__BODY_SIGNAL;
                req.signal = &sig;
                r = send_msg(s, &req.base);
                CHECK(r && r->error == ESRCH, "signal to an unknown sandbox: expected ESRCH");
                if (r)
                        seccell__reply__free_unpacked(r, NULL);
        }
        {
                /* garbage on the fd channel: a short packet, a packet with
                 * a wrong magic, a connection that sends nothing */
                int c = connect_fd();
                send(c, "xx", 2, 0);
                close(c);
                c = connect_fd();
                uint64_t junk[2] = { 0x1111, 0x2222 };
                send(c, junk, sizeof(junk), 0);
                int idle = connect_fd();
                check_valid_run_works(s, "after fd-channel garbage");
                close(c);
                close(idle);
        }
        check_valid_run_works(s, "after malformed requests");
}

/* A raw stream connection to broker.ipc. */
static int connect_raw(void) { return connect_unix("broker.ipc", SOCK_STREAM); }

/* An unknown-sandbox Signal request over a fresh connection: the broker
 * must still accept new clients and answer them. */
static bool check_new_client_served(const char *when)
{
        char path[256];
        snprintf(path, sizeof(path), "%s/broker.ipc", dir);
        nng_socket s = dial(path);
        Seccell__Request req = SECCELL__REQUEST__INIT;
        Seccell__SignalRequest sig = SECCELL__SIGNAL_REQUEST__INIT;
        sig.fd_token = 42;
        sig.signo = SIGTERM;
        req.body_case = SECCELL__REQUEST__BODY_SIGNAL;
        req.signal = &sig;
        Seccell__Reply *r = send_msg(s, &req.base);
        bool ok = r && r->error == ESRCH;
        CHECK(ok, "%s: a new client was not served", when);
        if (r)
                seccell__reply__free_unpacked(r, NULL);
        nng_close(s);
        return ok;
}

/* Hostile input below the messages, on the SP wire itself. nng 1.5.2's own
 * REP listener stopped accepting for good after one connect()+close(). */
static void probe_wire(void)
{
        static const uint8_t hello[8] = { 0, 'S', 'P', 0, 0, 0x30, 0, 0 };     /* REQ */
        static const uint8_t other[8] = { 0, 'S', 'P', 0, 0, 0x10, 0, 0 };     /* PAIR */
        uint8_t frame[64];
        struct {
                const char *what;
                uint8_t type;                   /* frame type after the handshake; 0: none */
                uint64_t len;                   /* claimed length */
                const void *body;
                size_t body_len;
                const void *raw;                /* or these bytes instead of a handshake */
                size_t raw_len;
        } cases[] = {
                { "connect and close", 0, 0, NULL, 0, "", 0 },
                { "half a handshake", 0, 0, NULL, 0, hello, 3 },
                { "a handshake of another protocol", 0, 0, NULL, 0, other, 8 },
                { "an HTTP request", 0, 0, NULL, 0, "GET / HTTP/1.0\r\n\r\n", 18 },
                { "a handshake alone", 0, 0, NULL, 0, hello, 8 },
                { "a frame of type 2", 2, 4, "\x80\0\0\1", 4, NULL, 0 },
                { "a 1 TiB length", 1, 1ull << 40, NULL, 0, NULL, 0 },
                { "an empty message", 1, 0, NULL, 0, NULL, 0 },
                { "a message without a request id", 1, 8, "\0\0\0\1\0\0\0\2", 8, NULL, 0 },
                { "half a message", 1, 100, "\x80\0\0\1", 4, NULL, 0 },
                { "a request, closed before its reply", 1, 4 + 4, "\x80\0\0\1\x12\x02\x08\x2a", 8, NULL, 0 },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int fd = connect_raw();
                size_t n = 0;
                if (cases[i].raw) {
                        memcpy(frame, cases[i].raw, cases[i].raw_len);
                        n = cases[i].raw_len;
                } else {
                        memcpy(frame, hello, 8);
                        frame[8] = cases[i].type;
                        for (int k = 0; k < 8; k++)
                                frame[9 + k] = (uint8_t)(cases[i].len >> (56 - 8 * k));
                        if (cases[i].body_len)
                                memcpy(frame + 17, cases[i].body, cases[i].body_len);
                        n = 17 + cases[i].body_len;
                }
                if (n && send(fd, frame, n, MSG_NOSIGNAL) != (ssize_t)n)
                        CHECK(0, "%s: cannot send", cases[i].what);
                close(fd);
                if (!check_new_client_served(cases[i].what))
                        return; /* wedged: the rest would only wait too */
        }
        /* a client that stalls mid-handshake or mid-message does not hold
         * up the others */
        int half = connect_raw(), body = connect_raw();
        (void)!send(half, hello, 5, MSG_NOSIGNAL);
        memcpy(frame, hello, 8);
        frame[8] = 1;
        for (int k = 0; k < 8; k++)
                frame[9 + k] = (uint8_t)(64ull >> (56 - 8 * k));
        (void)!send(body, frame, 17 + 2, MSG_NOSIGNAL);
        check_new_client_served("while two clients stall");
        close(half);
        close(body);
        /* many connect()+close() at once */
        for (int i = 0; i < 200; i++)
                close(connect_raw());
        check_new_client_served("after 200 connect()+close()");
}

/* The live event stream: a subscriber sees every event of a run, in
 * order, host_seq without gaps. */
static void probe_events(nng_socket broker)
{
        char url[300];
        nng_socket sub;
        snprintf(url, sizeof(url), "ipc://%s/tracer/events.ipc", dir);
        if (nng_sub0_open(&sub) || nng_socket_set(sub, NNG_OPT_SUB_SUBSCRIBE, "", 0) ||
            nng_socket_set_ms(sub, NNG_OPT_RECVTIMEO, 10000) || nng_dial(sub, url, NULL, 0)) {
                CHECK(0, "cannot subscribe to %s", url);
                return;
        }
        /* nng connects in the background: wait until a published event
         * would reach us, by running until one does */
        const char *want[] = { "sandbox_start", "exec", "exit", "sandbox_end" };
        uint64_t last = 0;
        size_t got = 0;
        for (int attempt = 0; attempt < 50 && got == 0; attempt++) {
                check_valid_run_works(broker, "with a subscriber");
                nng_msg *m;
                while (got < 4 && nng_recvmsg(sub, &m, attempt ? NNG_FLAG_NONBLOCK : 0) == 0) {
                        Seccell__AuditEvent *ev = seccell__audit_event__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
                        nng_msg_free(m);
                        CHECK(ev != NULL, "undecodable AuditEvent");
                        if (!ev)
                                break;
                        if (got == 0 && strcmp(ev->event, "sandbox_start") != 0) {
                                /* joined mid-run: wait for the next run */
                                seccell__audit_event__free_unpacked(ev, NULL);
                                continue;
                        }
                        CHECK(strcmp(ev->event, want[got]) == 0, "event %zu is %s, expected %s", got, ev->event,
                              want[got]);
                        CHECK(got == 0 || ev->host_seq == last + 1, "host_seq %llu after %llu",
                              (unsigned long long)ev->host_seq, (unsigned long long)last);
                        CHECK(ev->seq == got + 1, "seq %llu for event %zu", (unsigned long long)ev->seq, got);
                        CHECK(ev->json && ev->json[0] == '{' && strstr(ev->json, ev->event),
                              "the json of event %s", ev->event);
                        last = ev->host_seq;
                        got++;
                        seccell__audit_event__free_unpacked(ev, NULL);
                }
        }
        CHECK(got == 4, "the subscriber saw %zu of the 4 events of a run", got);
        nng_close(sub);
}

static char state_of(pid_t pid)
{
        struct proc_stat st;
        return procfs_stat(pid, &st) == 0 ? st.state : '?';
}

/* Whether `pid` is held without being in state T: it waits in a seccomp
 * notification (a fork held by the freeze) or for its vfork child (which
 * the freeze stopped before it exec'd: dash vforks). Both sleep killable,
 * so SIGSTOP cannot stop them, and neither runs code until the thaw. */
static bool parked_in_notification(pid_t pid)
{
        char path[64], wchan[128] = "";
        snprintf(path, sizeof(path), "/proc/%d/wchan", pid);
        return procfs_read(path, wchan, sizeof(wchan)) > 0 &&
               (strstr(wchan, "seccomp") || strstr(wchan, "kernel_clone"));
}

/* Wait (at most 10 s) until `pid` is stopped (state T, or parked in a held
 * notification, seen so for 200 samples in a row: a sandbox that is not
 * frozen passes through notifications in microseconds), or until it runs
 * again. */
static bool wait_state(pid_t pid, bool stopped)
{
        int run = 0;
        for (int i = 0; i < 10000; i++) {
                char s = state_of(pid);
                bool parked = stopped && s != 'T' && parked_in_notification(pid);
                bool halted = s == 'T' || parked;
                run = parked ? run + 1 : 0;
                if (halted == stopped && (!parked || run >= 200))
                        return true;
                usleep(1000);
        }
        fprintf(stderr, "pid %d: state %c%s\n", pid, state_of(pid),
                parked_in_notification(pid) ? ", parked in a notification or a vfork" : "");
        return false;
}

struct runner {
        nng_socket broker;
        int pipe[2];
        bool ok;
};

static void *runner_main(void *arg)
{
        struct runner *rn = arg;
        char fdarg[64];
        /* the shell reports its pid on the pipe's write end */
        snprintf(fdarg, sizeof(fdarg), "echo $$; exec >/dev/null; while :; do sleep 0.01; done");
        char *argv[] = { "/bin/sh", "-c", fdarg };
        int conn;
        Seccell__Reply *r = run_with_fd(rn->broker, argv, 3, 8, &conn, rn->pipe[1]);
        rn->ok = r && r->error == 0 && r->body_case == SECCELL__REPLY__BODY_RUN &&
                 WIFSIGNALED(r->run->wait_status) && WTERMSIG(r->run->wait_status) == SIGKILL;
        if (r)
                seccell__reply__free_unpacked(r, NULL);
        close(conn);
        return NULL;
}

static void probe_tracer(nng_socket broker)
{
        char path[256];
        snprintf(path, sizeof(path), "%s/tracer/tracer.ipc", dir);
        nng_socket t = dial(path);

        /* malformed control requests */
        expect_error(t, "\x08", 1, "truncated tracer request");
        expect_error(t, "", 0, "empty tracer request");
        Seccell__TracerRequest tr = SECCELL__TRACER_REQUEST__INIT;
        Seccell__FreezeSandbox fz = SECCELL__FREEZE_SANDBOX__INIT;
        tr.body_case = SECCELL__TRACER_REQUEST__BODY_FREEZE;
        tr.freeze = &fz;
        fz.sandbox_id = 999999;
        fz.frozen = true;
        Seccell__Reply *r = send_msg(t, &tr.base);
        CHECK(r && r->error == ESRCH, "freeze of an unknown sandbox: expected ESRCH");
        if (r)
                seccell__reply__free_unpacked(r, NULL);

        /* freeze a running sandbox: its processes stop; thaw: they run.
         * The Run request is answered only at the sandbox's end, so it is
         * made from a thread (nng must not be used in a forked child). */
        struct runner rn = { .broker = broker };
        if (pipe(rn.pipe) < 0)
                return;
        pthread_t th;
        pthread_create(&th, NULL, runner_main, &rn);
        char buf[32] = "";
        struct pollfd pp = { .fd = rn.pipe[0], .events = POLLIN };
        ssize_t n = poll(&pp, 1, 20000) == 1 ? read(rn.pipe[0], buf, sizeof(buf) - 1) : -1;
        pid_t root = n > 0 ? atoi(buf) : 0;
        CHECK(root > 0, "the frozen-sandbox probe did not start");
        if (root > 0) {
                /* find the sandbox id: the broker numbers them from 1, and
                 * this is the only one running */
                for (uint64_t id = 1; id < 4096; id++) {
                        fz.sandbox_id = id;
                        fz.frozen = true;
                        r = send_msg(t, &tr.base);
                        int err = r ? r->error : -1;
                        if (r)
                                seccell__reply__free_unpacked(r, NULL);
                        if (err == 0)
                                break;
                }
                CHECK(wait_state(root, true), "freeze: the sandbox root (pid %d) did not stop", root);
                fz.frozen = false;
                r = send_msg(t, &tr.base);
                CHECK(r && r->error == 0, "thaw failed");
                if (r)
                        seccell__reply__free_unpacked(r, NULL);
                CHECK(wait_state(root, false), "thaw: the sandbox root (pid %d) did not resume", root);
                kill(root, SIGKILL);
        }
        pthread_join(th, NULL);
        CHECK(rn.ok, "the frozen sandbox's run did not end with its root killed");
        close(rn.pipe[0]);
        close(rn.pipe[1]);
        nng_close(t);
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: %s BROKER_BINARY\n", argv[0]);
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        if (!mkdtemp(dir))
                return 2;
        int ready[2];
        if (pipe(ready) < 0)
                return 2;
        pid_t b = fork();
        if (b == 0) {
                /* a probe that dies must not leave the broker holding
                 * ctest's output pipe */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                dup2(ready[1], 3);
                execl(argv[1], argv[1], "--embedded", "--events", "--dir", dir, "--ready-fd", "3", (char *)NULL);
                _exit(127);
        }
        close(ready[1]);
        char c;
        struct pollfd p = { .fd = ready[0], .events = POLLIN };
        if (poll(&p, 1, 20000) != 1 || read(ready[0], &c, 1) != 1) {
                printf("FAIL the broker did not start\n");
                kill(b, SIGKILL);
                return 1;
        }
        char path[256];
        snprintf(path, sizeof(path), "%s/broker.ipc", dir);
        nng_socket s = dial(path);
        probe_events(s);
        probe_broker(s);
        probe_wire();
        probe_tracer(s);
        nng_close(s);
        kill(b, SIGTERM);
        int st;
        waitpid(b, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the broker did not exit cleanly (status 0x%x)", st);
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0)
                printf("warning: could not remove %s\n", dir);
        printf("%d passed, %d failed\n", failures ? 0 : 1, failures ? 1 : 0);
        return failures ? 1 : 0;
}
