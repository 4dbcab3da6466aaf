/* The broker's client-facing endpoints: a REP endpoint on ipc://dir/broker.ipc
 * (SP REQ/REP over nng streams; any number of requests in flight per
 * connection, so a long Run does not block other clients) and the
 * companion fd channel, a listening AF_UNIX SOCK_SEQPACKET socket on which a
 * client sends its descriptors under a token and keeps the connection open
 * for as long as its sandbox runs (its hang-up ends the sandbox).
 *
 * nng completes receives on its own threads; they only queue the request
 * and signal an eventfd, so every request is handled on the broker's main
 * thread. */
#pragma once
#include <nng/nng.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fdpass.h"

struct server;

struct conn;

struct server_request {
        struct conn *conn;              /* where the reply goes */
        uint8_t backtrace[32];          /* SP request id (and hops), echoed */
        size_t backtrace_len;
        nng_msg *msg;                   /* owned: the received request body */
        uint64_t peer_uid, peer_gid, peer_pid;
        struct server_request *next;
};

/* A client's descriptors, received on the fd channel. */
struct server_fds {
        uint64_t token;
        int conn;                       /* the client's connection; its HUP ends the run */
        uid_t uid;                      /* SO_PEERCRED of the connection */
        pid_t pid;                      /* ditto: the connecting process at connect(2) */
        int pidfd;                      /* SO_PEERPIDFD: that process, owned; -1 if the kernel has none */
        int pidfd_errno;                /* why not, then */
        int fds[FDCHAN_MAX_FDS];
        size_t nfds;
        bool received;                  /* the packet has been read */
        uint64_t since_ms;              /* accepted at (CLOCK_MONOTONIC) */
        struct server_fds *next;
};

/* Listen on ipc://dir/broker.ipc and dir/broker.fd, with socket mode `mode`
 * (0600 private, 0666 for a daemon serving every user). *wake_fd (owned by
 * the server) becomes readable when requests are queued.
 * Returns 0 or -errno. */
int server_open(struct server **out, const char *dir, unsigned mode, int *wake_fd, int *fd_listen);

/* Pop the next queued request (main thread), or NULL. */
struct server_request *server_next(struct server *s);

/* Queue `reply` (ownership passes) for the request's connection and free
 * the request; never blocks. Returns 0, -EPIPE when the client is gone, or
 * -ENOMEM. */
int server_reply(struct server_request *rq, nng_msg *reply);

/* Reply with an error (`err` > 0) and a formatted message; frees rq. */
void server_reply_error(struct server_request *rq, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Free a request without replying (its client is gone). */
void server_drop(struct server_request *rq);

/* Accept pending fd-channel connections and read their first packet. Call
 * when the listening socket is readable and before looking up a token. */
void server_accept_fds(struct server *s);

/* Drop the pending fd-channel connections whose client hung up or that
 * waited more than 30 s unclaimed, looking at most once a second (each
 * holds the client's descriptors: its stdio, whose readers see no EOF
 * while the broker holds them - found in review: after a run refused, a
 * `| cat` waited for unrelated traffic). Returns whether any are still
 * pending: the caller then calls again within a second. */
bool server_sweep_fds(struct server *s);

/* Take the descriptors sent under `token` by a connection of `uid`.
 * Returns NULL when there are none (or they belong to another uid).
 * The caller owns the result (server_fds_free). */
struct server_fds *server_take_fds(struct server *s, uint64_t token, uid_t uid);
void server_fds_free(struct server_fds *f);

void server_close(struct server *s);
