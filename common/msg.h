/* protobuf-c messages in nng messages: packing, and checked unpacking.
 * protobuf-c's unpack accepts many random byte strings (MACHINE-NOTES: ~2%
 * of random inputs decode), so every unpack here also validates ranges and
 * required combinations; callers never see a message that failed them. */
#pragma once
#include <nng/nng.h>
#include <stddef.h>

#include "seccell.pb-c.h"

/* Upper bounds on what a request may carry. */
#define MSG_MAX_ARGS (1 << 20)
#define MSG_MAX_ENV (1 << 20)
#define MSG_MAX_PROCS 4194304u /* PID_MAX_LIMIT */

/* The longest the tracer holds its answer to an EndSandbox while the
 * sandbox's audit sink takes its last events (tracer/main.c); the broker
 * waits that much longer than for any other answer. */
#define MSG_END_AUDIT_WAIT_MS 30000

/* Pack `m` into a new nng message (*out, owned by the caller).
 * Returns 0 or -ENOMEM. */
int msg_pack(const ProtobufCMessage *m, nng_msg **out);

/* Unpack and validate; *out is owned by the caller (free with the matching
 * seccell__*__free_unpacked(). On failure returns -EBADMSG and writes a
 * one-line reason into why[whylen]. */
int msg_unpack_request(const nng_msg *m, Seccell__Request **out, char *why, size_t whylen);
int msg_unpack_reply(const nng_msg *m, Seccell__Reply **out, char *why, size_t whylen);
int msg_unpack_tracer_request(const nng_msg *m, Seccell__TracerRequest **out, char *why, size_t whylen);

/* Validation alone, for messages already unpacked (exposed for tests).
 * Return 0 or -EBADMSG with a reason in why[whylen]. */
int msg_check_request(const Seccell__Request *r, char *why, size_t whylen);
int msg_check_tracer_request(const Seccell__TracerRequest *r, char *why, size_t whylen);

/* A Reply with `err` (positive errno, or 0) and a printf-style message,
 * packed into a new nng message. Returns 0 or -ENOMEM. */
int msg_error_reply(nng_msg **out, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Translate an nng error code to a negative errno for the 0/-errno
 * convention (nng's own codes for system errors carry the errno). */
int msg_nng_errno(int nng_rv);

/* nng_dial(sock, url) that waits out a full listen backlog: an AF_UNIX
 * connect(2) that finds the server's queue full fails at once (EAGAIN)
 * instead of waiting, as happens to a busy daemon's clients. Retries for
 * up to `patience_ms`. Returns nng's code of the last attempt. */
int msg_dial(nng_socket sock, const char *url, int patience_ms);
