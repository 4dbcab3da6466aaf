/* common/msg.h: packing and checked unpacking of the protobuf-c messages.
 * Round trips of every message, every truncation of a valid encoding,
 * 200,000 random byte strings and mutations of valid encodings (fixed
 * seeds) compared against an independent statement of the rules, and the
 * specific invalid messages the contract names. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "msg.h"
#include "unit.h"

enum kind { K_REQUEST, K_REPLY, K_TRACER };

static const char *const kind_name[] = { "Request", "Reply", "TracerRequest" };

static const ProtobufCMessageDescriptor *const kind_desc[] = {
        &seccell__request__descriptor,
        &seccell__reply__descriptor,
        &seccell__tracer_request__descriptor,
};

static nng_msg *bytes_msg(const void *p, size_t len)
{
        nng_msg *m;
        assert_int_equal(nng_msg_alloc(&m, len), 0);
        if (len)
                memcpy(nng_msg_body(m), p, len);
        return m;
}

static nng_msg *pack(const ProtobufCMessage *pm)
{
        nng_msg *m = NULL;
        assert_int_equal(msg_pack(pm, &m), 0);
        assert_non_null(m);
        assert_int_equal(nng_msg_len(m), protobuf_c_message_get_packed_size(pm));
        return m;
}

/* --- the rules, stated independently of msg.c ------------------------------ */

static bool policy_ok(const Seccell__Policy *p)
{
        return !p || (p->max_procs <= 4194304u && p->timeout_ms <= UINT64_MAX / 1000000);
}

static bool argv_ok(size_t n, char **argv)
{
        return n >= 1 && n <= MSG_MAX_ARGS && argv[0][0] != 0;
}

static bool oracle_request(const Seccell__Request *r)
{
        switch (r->body_case) {
        case SECCELL__REQUEST__BODY_RUN: {
                const Seccell__RunRequest *x = r->run;
                if (x->fd_token == 0 || !argv_ok(x->n_argv, x->argv) || x->n_env > MSG_MAX_ENV)
                        return false;
                for (size_t i = 0; i < x->n_env; i++)
                        if (!strchr(x->env[i], '='))
                                return false;
                return x->cwd[0] == '/' && policy_ok(x->policy);
        }
        case SECCELL__REQUEST__BODY_SIGNAL:
                return r->signal->fd_token != 0 && r->signal->signo >= 1 && r->signal->signo <= 64;
        default:
                return false;
        }
}

static bool oracle_tracer(const Seccell__TracerRequest *r)
{
        switch (r->body_case) {
        case SECCELL__TRACER_REQUEST__BODY_ADD: {
                const Seccell__AddSandbox *a = r->add;
                return a->sandbox_id != 0 && a->fd_token != 0 && a->root_pid > 0 &&
                       argv_ok(a->n_argv, a->argv) && policy_ok(a->policy);
        }
        case SECCELL__TRACER_REQUEST__BODY_END:
                return r->end->sandbox_id != 0;
        case SECCELL__TRACER_REQUEST__BODY_FREEZE:
                return r->freeze->sandbox_id != 0;
        default:
                return false;
        }
}

static bool oracle_reply(const Seccell__Reply *r)
{
        return r->error >= 0 && (r->body_case != SECCELL__REPLY__BODY_RUN || r->run) &&
               (r->body_case != SECCELL__REPLY__BODY_STATS || r->stats);
}

/* What msg_unpack_* must do with `len` bytes: 1 accept, 0 refuse, and
 * whether protobuf-c alone decodes them (*decodes). */
static bool oracle(enum kind k, const uint8_t *data, size_t len, bool *decodes)
{
        ProtobufCMessage *pm = protobuf_c_message_unpack(kind_desc[k], NULL, len, data);
        bool ok = false;

        *decodes = pm && protobuf_c_message_check(pm);
        if (*decodes) {
                switch (k) {
                case K_REQUEST: ok = oracle_request((Seccell__Request *)pm); break;
                case K_REPLY: ok = oracle_reply((Seccell__Reply *)pm); break;
                case K_TRACER: ok = oracle_tracer((Seccell__TracerRequest *)pm); break;
                }
        }
        if (pm)
                protobuf_c_message_free_unpacked(pm, NULL);
        return ok;
}

/* Run the msg.c unpacker of kind `k` on `m`; on success re-validate what it
 * returned with the msg_check_* function and the oracle, and free it.
 * Returns what the unpacker returned. */
static int unpack_checked(enum kind k, const nng_msg *m)
{
        char why[128] = "";
        int r;

        switch (k) {
        case K_REQUEST: {
                Seccell__Request *out = NULL;
                r = msg_unpack_request(m, &out, why, sizeof(why));
                if (r == 0) {
                        assert_non_null(out);
                        assert_int_equal(msg_check_request(out, why, sizeof(why)), 0);
                        assert_true(oracle_request(out));
                        seccell__request__free_unpacked(out, NULL);
                }
                break;
        }
        case K_REPLY: {
                Seccell__Reply *out = NULL;
                r = msg_unpack_reply(m, &out, why, sizeof(why));
                if (r == 0) {
                        assert_non_null(out);
                        assert_true(oracle_reply(out));
                        seccell__reply__free_unpacked(out, NULL);
                }
                break;
        }
        default: {
                Seccell__TracerRequest *out = NULL;
                r = msg_unpack_tracer_request(m, &out, why, sizeof(why));
                if (r == 0) {
                        assert_non_null(out);
                        assert_int_equal(msg_check_tracer_request(out, why, sizeof(why)), 0);
                        assert_true(oracle_tracer(out));
                        seccell__tracer_request__free_unpacked(out, NULL);
                }
                break;
        }
        }
        if (r != 0) {
                assert_int_equal(r, -EBADMSG);
                assert_true(why[0] != 0); /* a reason is given */
                assert_non_null(memchr(why, 0, sizeof(why)));
                assert_null(strchr(why, '\n'));
        }
        return r;
}

struct fuzz_stats {
        unsigned long decoded, accepted;
};

/* Feed `len` bytes to the unpacker of kind `k` and compare with the oracle. */
static void fuzz_one(enum kind k, const uint8_t *data, size_t len, struct fuzz_stats *st, unsigned long idx)
{
        bool decodes;
        bool want = oracle(k, data, len, &decodes);
        nng_msg *m = bytes_msg(data, len);
        int r = unpack_checked(k, m);
        nng_msg_free(m);
        if ((r == 0) != want)
                fail_msg("%s input #%lu (%zu bytes): msg_unpack returned %d, rules say %s", kind_name[k], idx,
                         len, r, want ? "accept" : "refuse");
        st->decoded += decodes;
        st->accepted += r == 0;
}

/* --- valid messages ---------------------------------------------------------- */

static char *run_argv[] = { "/bin/echo", "hello", "wörld" };
static char *run_env[] = { "PATH=/usr/bin:/bin", "EMPTY=", "A==B" };

struct run_fixture {
        Seccell__Request req;
        Seccell__RunRequest run;
        Seccell__Policy policy;
};

static void run_init(struct run_fixture *f)
{
        f->req = (Seccell__Request)SECCELL__REQUEST__INIT;
        f->run = (Seccell__RunRequest)SECCELL__RUN_REQUEST__INIT;
        f->policy = (Seccell__Policy)SECCELL__POLICY__INIT;
        f->policy.max_procs = 10;
        f->policy.max_memory = 1ULL << 30;
        f->policy.timeout_ms = 5000;
        f->run.fd_token = 0x0123456789abcdefULL;
        f->run.n_argv = 3;
        f->run.argv = run_argv;
        f->run.n_env = 3;
        f->run.env = run_env;
        f->run.cwd = "/tmp/work dir";
        f->run.policy = &f->policy;
        f->run.audit = 1;
        f->req.body_case = SECCELL__REQUEST__BODY_RUN;
        f->req.run = &f->run;
}

struct signal_fixture {
        Seccell__Request req;
        Seccell__SignalRequest sig;
};

static void signal_init(struct signal_fixture *f, int signo)
{
        f->req = (Seccell__Request)SECCELL__REQUEST__INIT;
        f->sig = (Seccell__SignalRequest)SECCELL__SIGNAL_REQUEST__INIT;
        f->sig.fd_token = 42;
        f->sig.signo = signo;
        f->req.body_case = SECCELL__REQUEST__BODY_SIGNAL;
        f->req.signal = &f->sig;
}

static char *add_argv[] = { "make", "-j8", "all" };

struct add_fixture {
        Seccell__TracerRequest req;
        Seccell__AddSandbox add;
        Seccell__Policy policy;
};

static void add_init(struct add_fixture *f)
{
        f->req = (Seccell__TracerRequest)SECCELL__TRACER_REQUEST__INIT;
        f->add = (Seccell__AddSandbox)SECCELL__ADD_SANDBOX__INIT;
        f->policy = (Seccell__Policy)SECCELL__POLICY__INIT;
        f->policy.max_procs = 4194304u;
        f->policy.max_memory = UINT64_MAX;
        f->add.sandbox_id = 77;
        f->add.fd_token = UINT64_MAX;
        f->add.root_pid = 4321;
        f->add.uid = 1000;
        f->add.gid = 100;
        f->add.policy = &f->policy;
        f->add.n_argv = 3;
        f->add.argv = add_argv;
        f->add.audit = 1;
        f->add.cwd = "/srv/build";
        f->req.body_case = SECCELL__TRACER_REQUEST__BODY_ADD;
        f->req.add = &f->add;
}

struct end_fixture {
        Seccell__TracerRequest req;
        Seccell__EndSandbox end;
};

static void end_init(struct end_fixture *f)
{
        f->req = (Seccell__TracerRequest)SECCELL__TRACER_REQUEST__INIT;
        f->end = (Seccell__EndSandbox)SECCELL__END_SANDBOX__INIT;
        f->end.sandbox_id = 77;
        f->end.wait_status = 0x8b; /* SIGSEGV, core dumped */
        f->end.timed_out = 1;
        f->end.duration_ns = 123456789012ULL;
        f->req.body_case = SECCELL__TRACER_REQUEST__BODY_END;
        f->req.end = &f->end;
}

struct freeze_fixture {
        Seccell__TracerRequest req;
        Seccell__FreezeSandbox freeze;
};

static void freeze_init(struct freeze_fixture *f, bool frozen)
{
        f->req = (Seccell__TracerRequest)SECCELL__TRACER_REQUEST__INIT;
        f->freeze = (Seccell__FreezeSandbox)SECCELL__FREEZE_SANDBOX__INIT;
        f->freeze.sandbox_id = 12;
        f->freeze.frozen = frozen;
        f->req.body_case = SECCELL__TRACER_REQUEST__BODY_FREEZE;
        f->req.freeze = &f->freeze;
}

struct reply_fixture {
        Seccell__Reply rep;
        Seccell__RunResult res;
        Seccell__SandboxStats stats;
};

static void reply_init(struct reply_fixture *f)
{
        f->rep = (Seccell__Reply)SECCELL__REPLY__INIT;
        f->res = (Seccell__RunResult)SECCELL__RUN_RESULT__INIT;
        f->res.sandbox_id = 99;
        f->res.wait_status = 3 << 8;
        f->res.timed_out = 0;
        f->stats = (Seccell__SandboxStats)SECCELL__SANDBOX_STATS__INIT;
        f->stats.peak_procs = 5;
        f->stats.forks_allowed = 40;
        f->stats.forks_denied = 2;
        f->stats.ns_denied = 1;
        f->stats.execs = 41;
        f->stats.reaps = 39;
        f->res.stats = &f->stats;
        f->rep.message = "";
        f->rep.body_case = SECCELL__REPLY__BODY_RUN;
        f->rep.run = &f->res;
}

/* --- round trips ---------------------------------------------------------------- */

static void roundtrip_run(void **state)
{
        (void)state;
        struct run_fixture f;
        Seccell__Request *out = NULL;
        char why[128];

        run_init(&f);
        nng_msg *m = pack(&f.req.base);
        assert_int_equal(msg_unpack_request(m, &out, why, sizeof(why)), 0);
        assert_int_equal(out->body_case, SECCELL__REQUEST__BODY_RUN);
        assert_int_equal(out->run->fd_token, 0x0123456789abcdefULL);
        assert_int_equal(out->run->n_argv, 3);
        for (int i = 0; i < 3; i++)
                assert_string_equal(out->run->argv[i], run_argv[i]);
        assert_int_equal(out->run->n_env, 3);
        for (int i = 0; i < 3; i++)
                assert_string_equal(out->run->env[i], run_env[i]);
        assert_string_equal(out->run->cwd, "/tmp/work dir");
        assert_non_null(out->run->policy);
        assert_int_equal(out->run->policy->max_procs, 10);
        assert_int_equal(out->run->policy->max_memory, 1ULL << 30);
        assert_int_equal(out->run->policy->timeout_ms, 5000);
        assert_true(out->run->audit);
        seccell__request__free_unpacked(out, NULL);
        nng_msg_free(m);

        /* no policy at all: no limits, still valid */
        f.run.policy = NULL;
        f.run.n_env = 0;
        f.run.audit = 0;
        m = pack(&f.req.base);
        assert_int_equal(msg_unpack_request(m, &out, why, sizeof(why)), 0);
        assert_null(out->run->policy);
        assert_int_equal(out->run->n_env, 0);
        assert_false(out->run->audit);
        seccell__request__free_unpacked(out, NULL);
        nng_msg_free(m);
}

static void roundtrip_signal(void **state)
{
        (void)state;
        static const int signos[] = { 1, 9, 15, 34, 64 };
        for (size_t i = 0; i < sizeof(signos) / sizeof(signos[0]); i++) {
                struct signal_fixture f;
                Seccell__Request *out = NULL;
                char why[128];

                signal_init(&f, signos[i]);
                nng_msg *m = pack(&f.req.base);
                assert_int_equal(msg_unpack_request(m, &out, why, sizeof(why)), 0);
                assert_int_equal(out->body_case, SECCELL__REQUEST__BODY_SIGNAL);
                assert_int_equal(out->signal->fd_token, 42);
                assert_int_equal(out->signal->signo, signos[i]);
                seccell__request__free_unpacked(out, NULL);
                nng_msg_free(m);
        }
}

static void roundtrip_add(void **state)
{
        (void)state;
        struct add_fixture f;
        Seccell__TracerRequest *out = NULL;
        char why[128];

        add_init(&f);
        nng_msg *m = pack(&f.req.base);
        assert_int_equal(msg_unpack_tracer_request(m, &out, why, sizeof(why)), 0);
        assert_int_equal(out->body_case, SECCELL__TRACER_REQUEST__BODY_ADD);
        assert_int_equal(out->add->sandbox_id, 77);
        assert_int_equal(out->add->fd_token, UINT64_MAX);
        assert_int_equal(out->add->root_pid, 4321);
        assert_int_equal(out->add->uid, 1000);
        assert_int_equal(out->add->gid, 100);
        assert_int_equal(out->add->policy->max_procs, 4194304u);
        assert_int_equal(out->add->policy->max_memory, UINT64_MAX);
        assert_int_equal(out->add->policy->timeout_ms, 0);
        assert_int_equal(out->add->n_argv, 3);
        for (int i = 0; i < 3; i++)
                assert_string_equal(out->add->argv[i], add_argv[i]);
        assert_true(out->add->audit);
        assert_string_equal(out->add->cwd, "/srv/build");
        seccell__tracer_request__free_unpacked(out, NULL);
        nng_msg_free(m);
}

static void roundtrip_end(void **state)
{
        (void)state;
        struct end_fixture f;
        Seccell__TracerRequest *out = NULL;
        char why[128];

        end_init(&f);
        nng_msg *m = pack(&f.req.base);
        assert_int_equal(msg_unpack_tracer_request(m, &out, why, sizeof(why)), 0);
        assert_int_equal(out->body_case, SECCELL__TRACER_REQUEST__BODY_END);
        assert_int_equal(out->end->sandbox_id, 77);
        assert_int_equal(out->end->wait_status, 0x8b);
        assert_true(out->end->timed_out);
        assert_int_equal(out->end->duration_ns, 123456789012ULL);
        seccell__tracer_request__free_unpacked(out, NULL);
        nng_msg_free(m);
}

static void roundtrip_freeze(void **state)
{
        (void)state;
        for (int frozen = 0; frozen < 2; frozen++) {
                struct freeze_fixture f;
                Seccell__TracerRequest *out = NULL;
                char why[128];

                freeze_init(&f, frozen);
                nng_msg *m = pack(&f.req.base);
                assert_int_equal(msg_unpack_tracer_request(m, &out, why, sizeof(why)), 0);
                assert_int_equal(out->body_case, SECCELL__TRACER_REQUEST__BODY_FREEZE);
                assert_int_equal(out->freeze->sandbox_id, 12);
                assert_int_equal(!!out->freeze->frozen, frozen);
                seccell__tracer_request__free_unpacked(out, NULL);
                nng_msg_free(m);
        }
}

static void roundtrip_reply(void **state)
{
        (void)state;
        struct reply_fixture f;
        Seccell__Reply *out = NULL;
        char why[128];

        reply_init(&f);
        nng_msg *m = pack(&f.rep.base);
        assert_int_equal(msg_unpack_reply(m, &out, why, sizeof(why)), 0);
        assert_int_equal(out->error, 0);
        assert_string_equal(out->message, "");
        assert_int_equal(out->body_case, SECCELL__REPLY__BODY_RUN);
        assert_int_equal(out->run->sandbox_id, 99);
        assert_int_equal(out->run->wait_status, 3 << 8);
        assert_false(out->run->timed_out);
        assert_non_null(out->run->stats);
        assert_int_equal(out->run->stats->peak_procs, 5);
        assert_int_equal(out->run->stats->forks_allowed, 40);
        assert_int_equal(out->run->stats->forks_denied, 2);
        assert_int_equal(out->run->stats->ns_denied, 1);
        assert_int_equal(out->run->stats->execs, 41);
        assert_int_equal(out->run->stats->reaps, 39);
        seccell__reply__free_unpacked(out, NULL);
        nng_msg_free(m);

        /* a run result without stats (the tracer could not report) */
        f.res.stats = NULL;
        m = pack(&f.rep.base);
        assert_int_equal(msg_unpack_reply(m, &out, why, sizeof(why)), 0);
        assert_null(out->run->stats);
        seccell__reply__free_unpacked(out, NULL);
        nng_msg_free(m);

        /* the tracer's answer to EndSandbox: stats as the body */
        f.rep.body_case = SECCELL__REPLY__BODY_STATS;
        f.rep.stats = &f.stats;
        m = pack(&f.rep.base);
        assert_int_equal(msg_unpack_reply(m, &out, why, sizeof(why)), 0);
        assert_int_equal(out->body_case, SECCELL__REPLY__BODY_STATS);
        assert_int_equal(out->stats->peak_procs, 5);
        assert_int_equal(out->stats->reaps, 39);
        seccell__reply__free_unpacked(out, NULL);
        nng_msg_free(m);

        /* an error reply without a body */
        f.rep.error = EACCES;
        f.rep.message = "permission denied";
        f.rep.body_case = SECCELL__REPLY__BODY__NOT_SET;
        m = pack(&f.rep.base);
        assert_int_equal(msg_unpack_reply(m, &out, why, sizeof(why)), 0);
        assert_int_equal(out->error, EACCES);
        assert_string_equal(out->message, "permission denied");
        assert_int_equal(out->body_case, SECCELL__REPLY__BODY__NOT_SET);
        seccell__reply__free_unpacked(out, NULL);
        nng_msg_free(m);
}

static void error_reply(void **state)
{
        (void)state;
        nng_msg *m = NULL;
        Seccell__Reply *out = NULL;
        char why[128], big[2000];

        assert_int_equal(msg_error_reply(&m, ENOENT, "no such sandbox %d in %s", 17, "/run/x"), 0);
        assert_int_equal(msg_unpack_reply(m, &out, why, sizeof(why)), 0);
        assert_int_equal(out->error, ENOENT);
        assert_string_equal(out->message, "no such sandbox 17 in /run/x");
        assert_int_equal(out->body_case, SECCELL__REPLY__BODY__NOT_SET);
        seccell__reply__free_unpacked(out, NULL);
        nng_msg_free(m);

        /* a long message is cut, not overflowed */
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = 0;
        assert_int_equal(msg_error_reply(&m, E2BIG, "%s", big), 0);
        assert_int_equal(msg_unpack_reply(m, &out, why, sizeof(why)), 0);
        assert_int_equal(out->error, E2BIG);
        assert_true(strlen(out->message) > 0 && strlen(out->message) < sizeof(big) - 1);
        assert_int_equal(strspn(out->message, "x"), strlen(out->message));
        seccell__reply__free_unpacked(out, NULL);
        nng_msg_free(m);
}

/* --- specific invalid messages --------------------------------------------------- */

/* Pack `pm`, unpack it as kind `k`: must be refused. */
static void assert_refused(enum kind k, const ProtobufCMessage *pm, const char *what)
{
        nng_msg *m = pack(pm);
        int r = unpack_checked(k, m);
        nng_msg_free(m);
        if (r != -EBADMSG)
                fail_msg("%s: accepted (%d), must be refused", what, r);
}

static void assert_accepted(enum kind k, const ProtobufCMessage *pm, const char *what)
{
        nng_msg *m = pack(pm);
        int r = unpack_checked(k, m);
        nng_msg_free(m);
        if (r != 0)
                fail_msg("%s: refused (%d), must be accepted", what, r);
}

static void invalid_run(void **state)
{
        (void)state;
        struct run_fixture f;
        char *empty_name[] = { "", "x" };
        char *bad_env[] = { "A=1", "NOEQUALS" };

        run_init(&f);
        assert_accepted(K_REQUEST, &f.req.base, "valid run");

        run_init(&f);
        f.run.fd_token = 0;
        assert_refused(K_REQUEST, &f.req.base, "run with fd_token 0");

        run_init(&f);
        f.run.n_argv = 0;
        f.run.argv = NULL;
        assert_refused(K_REQUEST, &f.req.base, "run with empty argv");

        run_init(&f);
        f.run.n_argv = 2;
        f.run.argv = empty_name;
        assert_refused(K_REQUEST, &f.req.base, "run with empty argv[0]");

        run_init(&f);
        f.run.n_env = 2;
        f.run.env = bad_env;
        assert_refused(K_REQUEST, &f.req.base, "env entry without '='");

        static const char *const bad_cwd[] = { "tmp", "", "./x", " /tmp", "~/x" };
        for (size_t i = 0; i < sizeof(bad_cwd) / sizeof(bad_cwd[0]); i++) {
                run_init(&f);
                f.run.cwd = (char *)bad_cwd[i];
                assert_refused(K_REQUEST, &f.req.base, bad_cwd[i]);
        }
        run_init(&f);
        f.run.cwd = "/";
        assert_accepted(K_REQUEST, &f.req.base, "cwd /");

        run_init(&f);
        f.policy.max_procs = MSG_MAX_PROCS + 1;
        assert_refused(K_REQUEST, &f.req.base, "max_procs above MSG_MAX_PROCS");
        f.policy.max_procs = UINT32_MAX;
        assert_refused(K_REQUEST, &f.req.base, "max_procs UINT32_MAX");
        f.policy.max_procs = MSG_MAX_PROCS;
        assert_accepted(K_REQUEST, &f.req.base, "max_procs MSG_MAX_PROCS");

        run_init(&f);
        f.policy.timeout_ms = UINT64_MAX / 1000000 + 1;
        assert_refused(K_REQUEST, &f.req.base, "timeout_ms too large");
        f.policy.timeout_ms = UINT64_MAX / 1000000;
        assert_accepted(K_REQUEST, &f.req.base, "largest timeout_ms");

        /* the body case says run but no run body: packs as an empty one */
        Seccell__RunRequest empty = SECCELL__RUN_REQUEST__INIT;
        run_init(&f);
        f.req.run = &empty;
        assert_refused(K_REQUEST, &f.req.base, "empty run body");
}

static void invalid_run_counts(void **state)
{
        (void)state;
        struct run_fixture f;
        size_t n = MSG_MAX_ARGS + 1;
        char **v = malloc(n * sizeof(char *));

        assert_non_null(v);
        for (size_t i = 0; i < n; i++)
                v[i] = "K=v";

        run_init(&f);
        f.run.argv = v;
        f.run.n_argv = MSG_MAX_ARGS;
        assert_accepted(K_REQUEST, &f.req.base, "MSG_MAX_ARGS arguments");
        f.run.n_argv = MSG_MAX_ARGS + 1;
        assert_refused(K_REQUEST, &f.req.base, "MSG_MAX_ARGS + 1 arguments");

        run_init(&f);
        f.run.env = v;
        f.run.n_env = MSG_MAX_ENV;
        assert_accepted(K_REQUEST, &f.req.base, "MSG_MAX_ENV environment entries");
        f.run.n_env = MSG_MAX_ENV + 1;
        assert_refused(K_REQUEST, &f.req.base, "MSG_MAX_ENV + 1 environment entries");
        free(v);
}

static void invalid_signal(void **state)
{
        (void)state;
        struct signal_fixture f;
        static const int bad[] = { 0, 65, -1, -9, 128, INT32_MAX, INT32_MIN };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char what[64];
                signal_init(&f, bad[i]);
                snprintf(what, sizeof(what), "signal %d", bad[i]);
                assert_refused(K_REQUEST, &f.req.base, what);
        }
        signal_init(&f, SIGTERM);
        f.sig.fd_token = 0;
        assert_refused(K_REQUEST, &f.req.base, "signal with fd_token 0");
}

static void body_not_set(void **state)
{
        (void)state;
        Seccell__Request req = SECCELL__REQUEST__INIT;
        Seccell__TracerRequest treq = SECCELL__TRACER_REQUEST__INIT;
        char why[64] = "";

        assert_refused(K_REQUEST, &req.base, "request without body");
        assert_refused(K_TRACER, &treq.base, "tracer request without body");
        /* the same through the validators alone */
        assert_int_equal(msg_check_request(&req, why, sizeof(why)), -EBADMSG);
        assert_true(why[0] != 0);
        why[0] = 0;
        assert_int_equal(msg_check_tracer_request(&treq, why, sizeof(why)), -EBADMSG);
        assert_true(why[0] != 0);
}

static void invalid_tracer(void **state)
{
        (void)state;
        struct add_fixture a;
        struct end_fixture e;
        char *empty_name[] = { "" };

        add_init(&a);
        assert_accepted(K_TRACER, &a.req.base, "valid add");
        a.add.root_pid = 0;
        assert_refused(K_TRACER, &a.req.base, "AddSandbox with root_pid 0");
        a.add.root_pid = -1;
        assert_refused(K_TRACER, &a.req.base, "AddSandbox with root_pid -1");
        a.add.root_pid = INT32_MIN;
        assert_refused(K_TRACER, &a.req.base, "AddSandbox with root_pid INT32_MIN");

        add_init(&a);
        a.add.sandbox_id = 0;
        assert_refused(K_TRACER, &a.req.base, "AddSandbox with sandbox_id 0");

        add_init(&a);
        a.add.fd_token = 0;
        assert_refused(K_TRACER, &a.req.base, "AddSandbox with fd_token 0");

        add_init(&a);
        a.add.n_argv = 0;
        assert_refused(K_TRACER, &a.req.base, "AddSandbox with empty argv");
        a.add.n_argv = 1;
        a.add.argv = empty_name;
        assert_refused(K_TRACER, &a.req.base, "AddSandbox with empty argv[0]");

        add_init(&a);
        a.policy.max_procs = MSG_MAX_PROCS + 1;
        assert_refused(K_TRACER, &a.req.base, "AddSandbox with max_procs too large");

        end_init(&e);
        assert_accepted(K_TRACER, &e.req.base, "valid end");
        e.end.sandbox_id = 0;
        assert_refused(K_TRACER, &e.req.base, "EndSandbox with sandbox_id 0");

        struct freeze_fixture z;
        freeze_init(&z, true);
        assert_accepted(K_TRACER, &z.req.base, "valid freeze");
        z.freeze.sandbox_id = 0;
        assert_refused(K_TRACER, &z.req.base, "FreezeSandbox with sandbox_id 0");
}

static void invalid_reply(void **state)
{
        (void)state;
        struct reply_fixture f;

        reply_init(&f);
        f.rep.error = -1;
        assert_refused(K_REPLY, &f.rep.base, "reply with error -1");
        f.rep.error = INT32_MIN;
        assert_refused(K_REPLY, &f.rep.base, "reply with error INT32_MIN");
}

/* Strings with a NUL inside: protobuf-c keeps the bytes, C sees what is
 * before the NUL, and the rules judge what C sees. */
static void embedded_nul(void **state)
{
        (void)state;
        /* Request{run{fd_token 1, argv [ARGV0], env [ENV0], cwd "/"}} */
        static const uint8_t env_nul[] = {
                0x0a, 0x0e, 0x08, 0x01, 0x12, 0x01, 'x', 0x1a, 0x04, 'A', 0x00, '=', '1', 0x22, 0x01, '/',
        };
        static const uint8_t argv0_nul[] = {
                0x0a, 0x0e, 0x08, 0x01, 0x12, 0x02, 0x00, 'x', 0x1a, 0x03, 'A', '=', '1', 0x22, 0x01, '/',
        };
        static const uint8_t cwd_nul[] = {
                0x0a, 0x0e, 0x08, 0x01, 0x12, 0x01, 'x', 0x1a, 0x03, 'A', '=', '1', 0x22, 0x02, 0x00, '/',
        };
        static const uint8_t valid[] = {
                0x0a, 0x0d, 0x08, 0x01, 0x12, 0x01, 'x', 0x1a, 0x03, 'A', '=', '1', 0x22, 0x01, '/',
        };
        nng_msg *m = bytes_msg(valid, sizeof(valid));
        assert_int_equal(unpack_checked(K_REQUEST, m), 0);
        nng_msg_free(m);
        m = bytes_msg(env_nul, sizeof(env_nul));
        assert_int_equal(unpack_checked(K_REQUEST, m), -EBADMSG);
        nng_msg_free(m);
        m = bytes_msg(argv0_nul, sizeof(argv0_nul));
        assert_int_equal(unpack_checked(K_REQUEST, m), -EBADMSG);
        nng_msg_free(m);
        m = bytes_msg(cwd_nul, sizeof(cwd_nul));
        assert_int_equal(unpack_checked(K_REQUEST, m), -EBADMSG);
        nng_msg_free(m);
}

/* A reason that does not fit is cut, never written past `whylen`. */
static void short_why_buffer(void **state)
{
        (void)state;
        struct run_fixture f;
        char *why = malloc(5); /* heap, so ASan sees an overflow */
        Seccell__Request *out = NULL;

        assert_non_null(why);
        run_init(&f);
        f.run.cwd = "relative";
        nng_msg *m = pack(&f.req.base);
        assert_int_equal(msg_unpack_request(m, &out, why, 5), -EBADMSG);
        assert_int_equal(strlen(why), 4);
        nng_msg_free(m);
        free(why);
}

/* Bytes of one message type given to the unpacker of another never get
 * past the rules. */
static void cross_type(void **state)
{
        (void)state;
        struct run_fixture r;
        struct add_fixture a;
        struct end_fixture e;
        struct reply_fixture p;
        struct freeze_fixture z;

        run_init(&r);
        add_init(&a);
        end_init(&e);
        reply_init(&p);
        freeze_init(&z, true);
        const ProtobufCMessage *msgs[] = { &r.req.base, &a.req.base, &e.req.base, &p.rep.base, &z.req.base };
        for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
                nng_msg *m = pack(msgs[i]);
                for (int k = K_REQUEST; k <= K_TRACER; k++) {
                        bool decodes;
                        bool want = oracle(k, nng_msg_body(m), nng_msg_len(m), &decodes);
                        assert_int_equal(unpack_checked(k, m) == 0, want);
                }
                nng_msg_free(m);
        }
}

/* --- truncation and fuzzing ------------------------------------------------------- */

/* Every prefix of a valid encoding is either refused with -EBADMSG or is a
 * message that passes validation (and agrees with the oracle). */
static void truncate_all(enum kind k, const ProtobufCMessage *pm, unsigned long *refused)
{
        nng_msg *full = pack(pm);
        size_t len = nng_msg_len(full);
        const uint8_t *body = nng_msg_body(full);
        struct fuzz_stats st = { 0 };

        assert_true(len > 4);
        for (size_t n = 0; n < len; n++)
                fuzz_one(k, body, n, &st, n);
        *refused += len - st.accepted;
        nng_msg_free(full);
}

static void truncations(void **state)
{
        (void)state;
        struct run_fixture r;
        struct signal_fixture s;
        struct add_fixture a;
        struct end_fixture e;
        struct reply_fixture p;
        struct freeze_fixture z;
        unsigned long refused = 0;

        run_init(&r);
        signal_init(&s, SIGKILL);
        add_init(&a);
        end_init(&e);
        reply_init(&p);
        p.rep.message = "a message long enough to be cut in many places";
        freeze_init(&z, true);

        truncate_all(K_REQUEST, &r.req.base, &refused);
        truncate_all(K_REQUEST, &s.req.base, &refused);
        truncate_all(K_TRACER, &a.req.base, &refused);
        truncate_all(K_TRACER, &e.req.base, &refused);
        truncate_all(K_REPLY, &p.rep.base, &refused);
        truncate_all(K_TRACER, &z.req.base, &refused);
        /* most cuts land inside a field: refused */
        assert_true(refused > 100);

        /* the empty prefix is an empty Request: no body, refused */
        Seccell__Request *out = NULL;
        char why[64];
        nng_msg *full = pack(&r.req.base);
        nng_msg *m = bytes_msg(nng_msg_body(full), 0);
        assert_int_equal(msg_unpack_request(m, &out, why, sizeof(why)), -EBADMSG);
        nng_msg_free(m);
        nng_msg_free(full);
}

#define FUZZ_RANDOM 200000

static void random_bytes(void **state)
{
        (void)state;
        uint64_t seed = 0x5ecce11ULL;
        uint8_t buf[96];
        struct fuzz_stats st[3] = { { 0 } };

        for (unsigned long i = 0; i < FUZZ_RANDOM; i++) {
                size_t len = unit_rand(&seed) % sizeof(buf);
                for (size_t j = 0; j < len; j++)
                        buf[j] = (uint8_t)unit_rand(&seed);
                /* bias some toward the field tags of these messages */
                if (len && i % 4 == 0)
                        buf[0] = (uint8_t)((1 + unit_rand(&seed) % 3) << 3 | (unit_rand(&seed) % 3));
                for (int k = K_REQUEST; k <= K_TRACER; k++)
                        fuzz_one(k, buf, len, &st[k], i);
        }
        /* the run is not vacuous: protobuf-c decodes some of these */
        for (int k = K_REQUEST; k <= K_TRACER; k++) {
                print_message("%s: %lu of %d random inputs decode, %lu accepted\n", kind_name[k], st[k].decoded,
                              FUZZ_RANDOM, st[k].accepted);
                assert_true(st[k].decoded > 0);
        }
}

/* Mutations of valid encodings reach the rules far more often than random
 * bytes do. */
static void mutations(void **state)
{
        (void)state;
        struct run_fixture r;
        struct signal_fixture s;
        struct add_fixture a;
        struct end_fixture e;
        struct reply_fixture p, q;
        struct freeze_fixture z;
        uint64_t seed = 0xfeedface;

        run_init(&r);
        signal_init(&s, SIGINT);
        add_init(&a);
        end_init(&e);
        reply_init(&p);
        reply_init(&q);
        q.rep.body_case = SECCELL__REPLY__BODY_STATS;
        q.rep.stats = &q.stats;
        freeze_init(&z, false);
        const struct {
                enum kind k;
                const ProtobufCMessage *pm;
        } seeds[] = {
                { K_REQUEST, &r.req.base }, { K_REQUEST, &s.req.base }, { K_TRACER, &a.req.base },
                { K_TRACER, &e.req.base },  { K_REPLY, &p.rep.base },   { K_REPLY, &q.rep.base },
                { K_TRACER, &z.req.base },
        };

        for (size_t si = 0; si < sizeof(seeds) / sizeof(seeds[0]); si++) {
                nng_msg *full = pack(seeds[si].pm);
                size_t len = nng_msg_len(full);
                uint8_t buf[512];
                struct fuzz_stats st = { 0 };

                assert_true(len + 8 <= sizeof(buf));
                for (unsigned long i = 0; i < 10000; i++) {
                        size_t n = len;
                        memcpy(buf, nng_msg_body(full), len);
                        int edits = 1 + unit_rand(&seed) % 3;
                        for (int j = 0; j < edits; j++) {
                                size_t at = unit_rand(&seed) % n;
                                switch (unit_rand(&seed) % 4) {
                                case 0: buf[at] ^= (uint8_t)(1u << (unit_rand(&seed) % 8)); break;
                                case 1: buf[at] = (uint8_t)unit_rand(&seed); break;
                                case 2: buf[at] = (uint8_t)(unit_rand(&seed) % 2 ? 0 : 0xff); break;
                                default:
                                        if (n > 1) {
                                                memmove(buf + at, buf + at + 1, n - at - 1);
                                                n--;
                                        }
                                }
                        }
                        fuzz_one(seeds[si].k, buf, n, &st, i);
                }
                /* both outcomes happen */
                assert_true(st.accepted > 0);
                assert_true(st.accepted < 10000);
                nng_msg_free(full);
        }
}

static void nng_errno(void **state)
{
        (void)state;
        assert_int_equal(msg_nng_errno(NNG_ESYSERR | EACCES), -EACCES);
        assert_int_equal(msg_nng_errno(NNG_ESYSERR | EMFILE), -EMFILE);
        assert_int_equal(msg_nng_errno(NNG_ENOMEM), -ENOMEM);
        assert_int_equal(msg_nng_errno(NNG_ETIMEDOUT), -ETIMEDOUT);
        assert_int_equal(msg_nng_errno(NNG_ECONNREFUSED), -ECONNREFUSED);
        assert_int_equal(msg_nng_errno(NNG_ECLOSED), -EPIPE);
        assert_int_equal(msg_nng_errno(NNG_ENOENT), -ENOENT);
        assert_int_equal(msg_nng_errno(NNG_EAGAIN), -EAGAIN);
        assert_int_equal(msg_nng_errno(NNG_ECONNSHUT), -ECONNRESET);
        assert_int_equal(msg_nng_errno(NNG_EPROTO), -EIO);
}

static const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip_run),
        cmocka_unit_test(roundtrip_signal),
        cmocka_unit_test(roundtrip_add),
        cmocka_unit_test(roundtrip_end),
        cmocka_unit_test(roundtrip_freeze),
        cmocka_unit_test(roundtrip_reply),
        cmocka_unit_test(error_reply),
        cmocka_unit_test(invalid_run),
        cmocka_unit_test(invalid_run_counts),
        cmocka_unit_test(invalid_signal),
        cmocka_unit_test(body_not_set),
        cmocka_unit_test(invalid_tracer),
        cmocka_unit_test(invalid_reply),
        cmocka_unit_test(embedded_nul),
        cmocka_unit_test(short_why_buffer),
        cmocka_unit_test(cross_type),
        cmocka_unit_test(truncations),
        cmocka_unit_test(random_bytes),
        cmocka_unit_test(mutations),
        cmocka_unit_test(nng_errno),
};

UNIT_MAIN_NO_BUGS(tests)
