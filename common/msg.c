#include "msg.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <nng/supplemental/util/platform.h>

int msg_pack(const ProtobufCMessage *m, nng_msg **out)
{
        size_t len = protobuf_c_message_get_packed_size(m);
        nng_msg *msg;

        if (nng_msg_alloc(&msg, len) != 0)
                return -ENOMEM;
        protobuf_c_message_pack(m, nng_msg_body(msg));
        *out = msg;
        return 0;
}

#define BAD(...) do { snprintf(why, whylen, __VA_ARGS__); return -EBADMSG; } while (0)

static int check_policy(const Seccell__Policy *p, char *why, size_t whylen)
{
        if (!p)
                return 0;
        if (p->max_procs > MSG_MAX_PROCS)
                BAD("max_procs %u above %u", p->max_procs, MSG_MAX_PROCS);
        if (p->timeout_ms > UINT64_MAX / 1000000)
                BAD("timeout out of range");
        return 0;
}

static int check_argv(size_t n, char *const *argv, char *why, size_t whylen)
{
        if (n == 0)
                BAD("empty command");
        if (n > MSG_MAX_ARGS)
                BAD("too many arguments (%zu)", n);
        if (!argv[0] || !argv[0][0])
                BAD("empty command name");
        return 0;
}

int msg_check_request(const Seccell__Request *r, char *why, size_t whylen)
{
        switch (r->body_case) {
        case SECCELL__REQUEST__BODY_RUN: {
                const Seccell__RunRequest *run = r->run;
                if (!run)
                        BAD("run request without body");
                if (run->fd_token == 0)
                        BAD("run request without fd token");
                int k = check_argv(run->n_argv, run->argv, why, whylen);
                if (k < 0)
                        return k;
                if (run->n_env > MSG_MAX_ENV)
                        BAD("too many environment entries (%zu)", run->n_env);
                for (size_t i = 0; i < run->n_env; i++)
                        if (!strchr(run->env[i], '='))
                                BAD("environment entry %zu has no '='", i);
                if (!run->cwd || run->cwd[0] != '/')
                        BAD("working directory is not an absolute path");
                return check_policy(run->policy, why, whylen);
        }
        case SECCELL__REQUEST__BODY_SIGNAL:
                if (!r->signal || r->signal->fd_token == 0)
                        BAD("signal request without fd token");
                if (r->signal->signo <= 0 || r->signal->signo >= NSIG)
                        BAD("signal number %d out of range", r->signal->signo);
                return 0;
        default:
                BAD("request with no known body (case %d)", (int)r->body_case);
        }
}

int msg_check_tracer_request(const Seccell__TracerRequest *r, char *why, size_t whylen)
{
        switch (r->body_case) {
        case SECCELL__TRACER_REQUEST__BODY_ADD: {
                const Seccell__AddSandbox *a = r->add;
                if (!a || a->sandbox_id == 0 || a->fd_token == 0)
                        BAD("add request without sandbox id or fd token");
                if (a->root_pid <= 0)
                        BAD("add request with root pid %d", a->root_pid);
                int k = check_argv(a->n_argv, a->argv, why, whylen);
                if (k < 0)
                        return k;
                return check_policy(a->policy, why, whylen);
        }
        case SECCELL__TRACER_REQUEST__BODY_END:
                if (!r->end || r->end->sandbox_id == 0)
                        BAD("end request without sandbox id");
                return 0;
        case SECCELL__TRACER_REQUEST__BODY_FREEZE:
                if (!r->freeze || r->freeze->sandbox_id == 0)
                        BAD("freeze request without sandbox id");
                return 0;
        default:
                BAD("tracer request with no known body (case %d)", (int)r->body_case);
        }
}

/* Unpack with protobuf-c, then run protobuf-c's own structural check. */
static void *unpack(const ProtobufCMessageDescriptor *d, const nng_msg *m, char *why, size_t whylen)
{
        nng_msg *mm = (nng_msg *)m;
        ProtobufCMessage *pm = protobuf_c_message_unpack(d, NULL, nng_msg_len(mm), nng_msg_body(mm));
        if (!pm) {
                snprintf(why, whylen, "undecodable %s (%zu bytes)", d->short_name, nng_msg_len(mm));
                return NULL;
        }
        if (!protobuf_c_message_check(pm)) {
                snprintf(why, whylen, "inconsistent %s", d->short_name);
                protobuf_c_message_free_unpacked(pm, NULL);
                return NULL;
        }
        return pm;
}

int msg_unpack_request(const nng_msg *m, Seccell__Request **out, char *why, size_t whylen)
{
        Seccell__Request *r = unpack(&seccell__request__descriptor, m, why, whylen);
        if (!r)
                return -EBADMSG;
        if (msg_check_request(r, why, whylen) < 0) {
                seccell__request__free_unpacked(r, NULL);
                return -EBADMSG;
        }
        *out = r;
        return 0;
}

int msg_unpack_tracer_request(const nng_msg *m, Seccell__TracerRequest **out, char *why, size_t whylen)
{
        Seccell__TracerRequest *r = unpack(&seccell__tracer_request__descriptor, m, why, whylen);
        if (!r)
                return -EBADMSG;
        if (msg_check_tracer_request(r, why, whylen) < 0) {
                seccell__tracer_request__free_unpacked(r, NULL);
                return -EBADMSG;
        }
        *out = r;
        return 0;
}

int msg_unpack_reply(const nng_msg *m, Seccell__Reply **out, char *why, size_t whylen)
{
        Seccell__Reply *r = unpack(&seccell__reply__descriptor, m, why, whylen);
        if (!r)
                return -EBADMSG;
        if (r->error < 0 || (r->body_case == SECCELL__REPLY__BODY_RUN && !r->run) ||
            (r->body_case == SECCELL__REPLY__BODY_STATS && !r->stats)) {
                snprintf(why, whylen, "reply with invalid error code %d", r->error);
                seccell__reply__free_unpacked(r, NULL);
                return -EBADMSG;
        }
        *out = r;
        return 0;
}

int msg_error_reply(nng_msg **out, int err, const char *fmt, ...)
{
        Seccell__Reply rep = SECCELL__REPLY__INIT;
        char text[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        rep.error = err;
        rep.message = text;
        return msg_pack(&rep.base, out);
}

int msg_dial(nng_socket sock, const char *url, int patience_ms)
{
        int waited = 0, pause = 1;
        for (;;) {
                int rv = nng_dial(sock, url, NULL, 0);
                if (rv != NNG_EAGAIN && rv != (NNG_ESYSERR | EAGAIN))
                        return rv;
                if (waited >= patience_ms)
                        return rv;
                nng_msleep(pause);
                waited += pause;
                if (pause < 50)
                        pause *= 2;
        }
}

int msg_nng_errno(int rv)
{
        if (rv & NNG_ESYSERR)
                return -(rv & ~NNG_ESYSERR);
        switch (rv) {
        case NNG_ENOMEM: return -ENOMEM;
        case NNG_EINVAL: return -EINVAL;
        case NNG_ETIMEDOUT: return -ETIMEDOUT;
        case NNG_ECONNREFUSED: return -ECONNREFUSED;
        case NNG_ECLOSED: return -EPIPE;
        case NNG_ENOENT: return -ENOENT;
        case NNG_EAGAIN: return -EAGAIN;
        case NNG_EPERM: return -EPERM;
        case NNG_EADDRINUSE: return -EADDRINUSE;
        case NNG_ECONNRESET: return -ECONNRESET;
        case NNG_ECONNSHUT: return -ECONNRESET;
        default: return -EIO;
        }
}
