#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <nng/transport/ipc/ipc.h>

#include "cleanup.h"
#include "clock.h"
#include "kcompat.h"
#include "log.h"
#include "msg.h"

/* Connections that sent no descriptors yet are kept at most this many,
 * and this many of one uid. */
#define MAX_PENDING_FDS 4096
#define MAX_PENDING_FDS_PER_UID 256   /* as many as its connections */
#define PENDING_EXPIRY_MS 30000
/* How often the pending ones are looked at (server_sweep_fds). */
#define FDS_SWEEP_MS 1000

/* The request endpoint.
 *
 * Why not nng's REP socket: in nng 1.5.2 (Debian 12's) a peer that closes
 * its connection during the SP handshake makes the listener stop accepting
 * for good (nng issue #1518, fixed in 1.5.3), so one connect()+close() by
 * any local user would deny the daemon to everyone. The endpoint therefore
 * accepts nng streams itself and speaks the SP REQ/REP wire protocol on
 * them (RFC sp-tcp-mapping / sp-request-reply): an 8-byte header each way,
 * then frames of 0x01, a 64-bit big-endian length and the message, whose
 * first 32-bit words up to one with the top bit set are the request's
 * backtrace, echoed in the reply. Clients keep using nng's REQ socket. */
#define SP_PROTO_REQ 0x30
#define SP_PROTO_REP 0x31
#define SP_MAX_HOPS 8
#define SP_HANDSHAKE_MS 10000     /* for the whole header, as nng allows */
#define SP_BODY_MS 10000          /* for the rest of a message once begun */
#define MAX_REQUEST_BYTES (8u << 20)  /* argv + env: the kernel's default ARG_MAX is 2 MiB */
#define MAX_QUEUED_PER_UID 8      /* received, not yet taken by the main thread */
#define RX_CHUNK (256u << 10)     /* a body's buffer grows as it arrives */
/* Bytes of messages being received, all told and of one uid (found in
 * review: 64 connections each sending 8 MiB but a byte took the broker to
 * 541 MiB in 1.6 s, for 10 s at a time, and any local user may connect to
 * a daemon's socket). A connection whose message would pass either is
 * closed. */
#define RX_BUDGET (256u << 20)
#define RX_BUDGET_PER_UID (3 * MAX_REQUEST_BYTES)
#define MAX_CONNS 4096
#define MAX_CONNS_PER_UID 256     /* one user cannot take every slot */
#define MAX_OUTSTANDING 64        /* requests per connection not yet replied */
#define MAX_UNSENT_BYTES (1u << 20) /* replies a client does not read */

struct out_frame {
        struct out_frame *next;
        size_t len, off;
        uint8_t data[];
};

enum rx_state { RX_HANDSHAKE, RX_HEADER, RX_BODY };

/* One client connection. Its state is guarded by the server's lock; it is
 * freed on the main thread once it is closed, idle and no request refers
 * to it (an aio cannot be freed from its own callback). */
struct conn {
        struct server *srv;
        nng_stream *stream;
        nng_aio *rx_aio, *tx_aio;
        uint64_t uid, gid, pid;
        enum rx_state rx_state;
        uint8_t rx_head[9];             /* the handshake (8) or a frame header (9) */
        nng_msg *rx_msg;                /* a message being received */
        size_t rx_want, rx_got;
        nng_time rx_deadline;           /* of the handshake or a body; 0: none */
        bool rx_busy, tx_busy, closed, dead;
        bool paused;                    /* not read: its uid's queue is full */
        struct out_frame *out_head, *out_tail;
        size_t unsent;                  /* bytes in out_head.. */
        unsigned outstanding;           /* requests queued or being handled */
        struct conn *next;
};

struct server {
        nng_stream_listener *listener;
        nng_aio *accept_aio, *backoff_aio;
        bool closing;
        bool accept_failing;                  /* log once per streak */
        int wake_fd;
        int fd_listen;
        int spare_fd;                         /* /dev/null, given up to shed a
                                               * connection when out of fds */
        pthread_mutex_t lock;
        struct conn *conns;                   /* open or awaiting free */
        size_t nconns;
        struct server_request *head, *tail;   /* received, not yet handled */
        struct server_fds *fds;               /* received, not yet taken */
        size_t nfds_pending;
        uint64_t fds_swept_ms;          /* last server_sweep_fds look (CLOCK_MONOTONIC) */
        size_t rx_bytes;                /* in the buffers of messages being received */
};

static void wake(struct server *s)
{
        uint64_t one = 1;
        (void)!write(s->wake_fd, &one, sizeof(one));
}

/* Locked. Close the stream (pending I/O completes with an error); once idle
 * and unreferenced the main thread frees the connection. */
static void conn_close(struct conn *c)
{
        if (!c->closed) {
                c->closed = true;
                nng_stream_close(c->stream);
        }
        if (!c->rx_busy && !c->tx_busy && c->outstanding == 0 && !c->dead) {
                c->dead = true;
                wake(c->srv);
        }
}

/* Main thread, unlocked: free the connection (its aios are idle). */
static void conn_free(struct conn *c)
{
        nng_aio_free(c->rx_aio);
        nng_aio_free(c->tx_aio);
        nng_stream_free(c->stream);
        if (c->rx_msg)
                nng_msg_free(c->rx_msg);
        while (c->out_head) {
                struct out_frame *f = c->out_head;
                c->out_head = f->next;
                free(f);
        }
        free(c);
}

/* Free connections that are done with (main thread). */
static void reap_conns(struct server *s)
{
        struct conn *dead = NULL;
        pthread_mutex_lock(&s->lock);
        for (struct conn **pp = &s->conns; *pp;) {
                struct conn *c = *pp;
                if (c->dead) {
                        *pp = c->next;
                        s->nconns--;
                        if (c->rx_msg)
                                s->rx_bytes -= nng_msg_len(c->rx_msg);
                        c->next = dead;
                        dead = c;
                } else {
                        pp = &c->next;
                }
        }
        pthread_mutex_unlock(&s->lock);
        while (dead) {
                struct conn *c = dead;
                dead = c->next;
                conn_free(c);
        }
}

/* Locked: send the next queued frame if none is in flight. */
static void tx_start(struct conn *c)
{
        struct out_frame *f = c->out_head;
        if (c->tx_busy || c->closed || !f)
                return;
        nng_iov iov = { .iov_buf = f->data + f->off, .iov_len = f->len - f->off };
        nng_aio_set_iov(c->tx_aio, 1, &iov);
        c->tx_busy = true;
        nng_stream_send(c->stream, c->tx_aio);
}

/* Locked: queue `len` bytes (head, then body) as one write. */
static int tx_queue(struct conn *c, const void *head, size_t hlen, const void *body, size_t blen)
{
        if (c->unsent + hlen + blen > MAX_UNSENT_BYTES) {
                conn_close(c); /* it does not read its replies */
                return -ENOBUFS;
        }
        struct out_frame *f = malloc(sizeof(*f) + hlen + blen);
        if (!f)
                return -ENOMEM;
        c->unsent += hlen + blen;
        f->next = NULL;
        f->len = hlen + blen;
        f->off = 0;
        memcpy(f->data, head, hlen);
        if (blen)
                memcpy(f->data + hlen, body, blen);
        if (c->out_tail)
                c->out_tail->next = f;
        else
                c->out_head = f;
        c->out_tail = f;
        tx_start(c);
        return 0;
}

static void tx_cb(void *arg)
{
        struct conn *c = arg;
        struct server *s = c->srv;
        int rv = nng_aio_result(c->tx_aio);

        pthread_mutex_lock(&s->lock);
        c->tx_busy = false;
        if (rv != 0) {
                conn_close(c);
        } else {
                struct out_frame *f = c->out_head;
                size_t n = nng_aio_count(c->tx_aio);
                f->off += n;
                c->unsent -= n;
                if (f->off == f->len) {
                        c->out_head = f->next;
                        if (!c->out_head)
                                c->out_tail = NULL;
                        free(f);
                }
                if (c->closed)
                        conn_close(c);
                else
                        tx_start(c);
        }
        pthread_mutex_unlock(&s->lock);
}

/* Locked: whether connection `c` may grow its message's buffer by `grow`
 * bytes within RX_BUDGET and its uid's RX_BUDGET_PER_UID; if so, counted. */
static bool rx_budget_take(struct conn *c, size_t grow)
{
        struct server *s = c->srv;
        size_t mine = grow;
        for (struct conn *o = s->conns; o; o = o->next)
                if (o->uid == c->uid && o->rx_msg)
                        mine += nng_msg_len(o->rx_msg);
        if (s->rx_bytes + grow > RX_BUDGET || mine > RX_BUDGET_PER_UID) {
                static struct log_limit limit = { .burst = 5, .window_s = 10 };
                log_limited(&limit, "closing a connection of uid %llu: its requests being received are over %s",
                            (unsigned long long)c->uid,
                            mine > RX_BUDGET_PER_UID ? "its share of the broker's memory" : "the broker's memory for them");
                return false;
        }
        s->rx_bytes += grow;
        return true;
}

/* Locked: read into the current unit from where it stands. A body's
 * buffer grows as it arrives (from RX_CHUNK, doubling), so memory follows
 * what a client sends, not what it claims. Returns false when the deadline
 * has passed, memory ran out or the budget for it did (rx_budget_take). */
static bool rx_continue(struct conn *c)
{
        uint8_t *base = c->rx_head;
        size_t room = c->rx_want - c->rx_got;
        if (c->rx_state == RX_BODY) {
                size_t have = nng_msg_len(c->rx_msg);
                if (have == c->rx_got) {
                        /* doubling: linear time in all (realloc copies) */
                        size_t step = have > RX_CHUNK ? have : RX_CHUNK;
                        size_t grow = room < step ? room : step;
                        if (!rx_budget_take(c, grow))
                                return false;
                        if (nng_msg_realloc(c->rx_msg, have + grow) != 0) {
                                c->srv->rx_bytes -= grow;
                                return false;
                        }
                        have += grow;
                }
                base = nng_msg_body(c->rx_msg);
                room = have - c->rx_got;
        }
        nng_iov iov = { .iov_buf = base + c->rx_got, .iov_len = room };
        nng_aio_set_iov(c->rx_aio, 1, &iov);
        /* a header may be awaited for as long as the client likes (it holds
         * the connection for its whole run); the handshake, and the rest of
         * a message once begun, must be whole by their deadline - however
         * slowly they trickle in */
        nng_duration left = NNG_DURATION_INFINITE;
        if (c->rx_deadline) {
                nng_time now = nng_clock();
                if (now >= c->rx_deadline)
                        return false;
                left = (nng_duration)(c->rx_deadline - now);
        }
        nng_aio_set_timeout(c->rx_aio, left);
        c->rx_busy = true;
        nng_stream_recv(c->stream, c->rx_aio);
        return true;
}

static bool rx_expect(struct conn *c, enum rx_state st, size_t want)
{
        c->rx_state = st;
        c->rx_want = want;
        c->rx_got = 0;
        c->rx_deadline = st == RX_HANDSHAKE ? nng_clock() + SP_HANDSHAKE_MS
                         : st == RX_BODY    ? nng_clock() + SP_BODY_MS
                                            : 0;
        return rx_continue(c);
}

static uint64_t get_be64(const uint8_t *p)
{
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
                v = v << 8 | p[i];
        return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* Locked: a whole message arrived: split off its backtrace and queue it
 * for the main thread. Returns false when the message is malformed. */
static bool rx_message(struct conn *c)
{
        struct server *s = c->srv;
        nng_msg *m = c->rx_msg;
        const uint8_t *b = nng_msg_body(m);
        size_t len = nng_msg_len(m), hlen = 0;

        for (int hop = 0;; hop++) {
                if (hop == SP_MAX_HOPS || len - hlen < 4)
                        return false;
                bool last = b[hlen] & 0x80;
                hlen += 4;
                if (last)
                        break;
        }
        struct server_request *rq = calloc(1, sizeof(*rq));
        if (!rq)
                return false;
        memcpy(rq->backtrace, b, hlen);
        rq->backtrace_len = hlen;
        s->rx_bytes -= len; /* received: queued, bounded by MAX_QUEUED_PER_UID */
        nng_msg_trim(m, hlen);
        rq->msg = m;
        c->rx_msg = NULL;
        rq->conn = c;
        rq->peer_uid = c->uid;
        rq->peer_gid = c->gid;
        rq->peer_pid = c->pid;
        if (s->tail)
                s->tail->next = rq;
        else
                s->head = rq;
        s->tail = rq;
        c->outstanding++;
        wake(s);
        return true;
}

/* Locked: requests of `uid` received and not yet taken by the main thread,
 * which unpacks them one at a time: one user's flood of big requests must
 * not queue without end ahead of everyone. Past MAX_QUEUED_PER_UID its
 * connections stop being read until the queue drains (server_next). */
static size_t queued_of(struct server *s, uint64_t uid)
{
        size_t n = 0;
        for (struct server_request *q = s->head; q; q = q->next)
                n += q->peer_uid == uid;
        return n;
}

static void rx_cb(void *arg)
{
        struct conn *c = arg;
        struct server *s = c->srv;
        int rv = nng_aio_result(c->rx_aio);

        pthread_mutex_lock(&s->lock);
        c->rx_busy = false;
        if (rv != 0 || c->closed)
                goto close;
        c->rx_got += nng_aio_count(c->rx_aio);
        if (c->rx_got < c->rx_want) {
                if (!rx_continue(c))
                        goto close;
                goto out;
        }
        switch (c->rx_state) {
        case RX_HANDSHAKE: {
                const uint8_t *h = c->rx_head;
                if (h[0] != 0 || h[1] != 'S' || h[2] != 'P' || h[3] != 0 || h[4] != 0 ||
                    h[5] != SP_PROTO_REQ || h[6] != 0 || h[7] != 0)
                        goto close;
                if (!rx_expect(c, RX_HEADER, 9))
                        goto close;
                break;
        }
        case RX_HEADER: {
                uint64_t len = get_be64(c->rx_head + 1);
                if (c->rx_head[0] != 1 || len > MAX_REQUEST_BYTES || len == 0)
                        goto close;
                if (nng_msg_alloc(&c->rx_msg, 0) != 0 || !rx_expect(c, RX_BODY, (size_t)len))
                        goto close;
                break;
        }
        case RX_BODY:
                if (!rx_message(c) || c->outstanding > MAX_OUTSTANDING)
                        goto close;
                if (queued_of(s, c->uid) >= MAX_QUEUED_PER_UID)
                        c->paused = true; /* read on in server_next */
                else if (!rx_expect(c, RX_HEADER, 9))
                        goto close;
                break;
        }
out:
        pthread_mutex_unlock(&s->lock);
        return;
close:
        conn_close(c);
        pthread_mutex_unlock(&s->lock);
}

/* Connections of `uid` in the table: a closed one whose requests are still
 * being handled (a Run goes on until its fd channel hangs up) counts too. */
static size_t conns_of(struct server *s, uint64_t uid)
{
        size_t n = 0;
        for (struct conn *c = s->conns; c; c = c->next)
                n += !c->dead && c->uid == uid;
        return n;
}

/* Locked: a new connection: credentials, handshake, first read. */
static void conn_start(struct server *s, nng_stream *st)
{
        const char *why = NULL;
        struct conn *c = calloc(1, sizeof(*c));
        if (!c || nng_aio_alloc(&c->rx_aio, rx_cb, c) != 0 || nng_aio_alloc(&c->tx_aio, tx_cb, c) != 0 ||
            /* no credentials, no service */
            nng_stream_get_uint64(st, NNG_OPT_IPC_PEER_UID, &c->uid) != 0 ||
            nng_stream_get_uint64(st, NNG_OPT_IPC_PEER_GID, &c->gid) != 0)
                why = "";
        else if (s->nconns >= MAX_CONNS)
                why = "too many connections";
        else if (conns_of(s, c->uid) >= MAX_CONNS_PER_UID)
                why = "too many connections of this uid";
        if (why) {
                static struct log_limit limit = { .burst = 5, .window_s = 10 };
                if (*why)
                        log_limited(&limit, "refusing a connection of uid %llu: %s", (unsigned long long)c->uid, why);
                if (c) {
                        nng_aio_free(c->rx_aio);
                        nng_aio_free(c->tx_aio);
                }
                free(c);
                nng_stream_free(st);
                return;
        }
        nng_stream_get_uint64(st, NNG_OPT_IPC_PEER_PID, &c->pid);
        c->srv = s;
        c->stream = st;
        c->next = s->conns;
        s->conns = c;
        s->nconns++;
        static const uint8_t hello[8] = { 0, 'S', 'P', 0, 0, SP_PROTO_REP, 0, 0 };
        if (tx_queue(c, hello, sizeof(hello), NULL, 0) < 0 || !rx_expect(c, RX_HANDSHAKE, 8))
                conn_close(c);
}

static void accept_cb(void *arg)
{
        struct server *s = arg;
        int rv = nng_aio_result(s->accept_aio);

        pthread_mutex_lock(&s->lock);
        if (s->closing) {
                if (rv == 0)
                        nng_stream_free(nng_aio_get_output(s->accept_aio, 0));
        } else if (rv == 0) {
                s->accept_failing = false;
                conn_start(s, nng_aio_get_output(s->accept_aio, 0));
                nng_stream_listener_accept(s->listener, s->accept_aio);
        } else {
                /* out of descriptors or memory: let the system recover */
                if (!s->accept_failing)
                        log_msg("accepting a client failed: %s; retrying every 100 ms", nng_strerror(rv));
                s->accept_failing = true;
                nng_sleep_aio(100, s->backoff_aio);
        }
        pthread_mutex_unlock(&s->lock);
}

static void backoff_cb(void *arg)
{
        struct server *s = arg;
        pthread_mutex_lock(&s->lock);
        if (!s->closing)
                nng_stream_listener_accept(s->listener, s->accept_aio);
        pthread_mutex_unlock(&s->lock);
}

static int listen_fd_channel(const char *path, unsigned mode)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        unlink(path);
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, mode) < 0 ||
            listen(fd, 128) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

int server_open(struct server **out, const char *dir, unsigned mode, int *wake_fd, int *fd_listen)
{
        struct server *s = calloc(1, sizeof(*s));
        char url[4200], path[4200];
        int rv, r;

        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->lock, NULL);
        s->wake_fd = s->fd_listen = -1;
        s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->wake_fd < 0) {
                r = -errno;
                goto fail;
        }
        /* The request socket first: if another broker serves `dir`, this
         * fails (EADDRINUSE) before the fd channel is touched. */
        snprintf(url, sizeof(url), "ipc://%s/broker.ipc", dir);
        rv = nng_stream_listener_alloc(&s->listener, url);
        if (rv == 0)
                rv = nng_stream_listener_set_int(s->listener, NNG_OPT_IPC_PERMISSIONS, (int)mode);
        if (rv == 0)
                rv = nng_stream_listener_listen(s->listener);
        if (rv == 0)
                rv = nng_aio_alloc(&s->accept_aio, accept_cb, s);
        if (rv == 0)
                rv = nng_aio_alloc(&s->backoff_aio, backoff_cb, s);
        if (rv != 0) {
                r = msg_nng_errno(rv);
                goto fail;
        }
        snprintf(path, sizeof(path), "%s/broker.fd", dir);
        s->fd_listen = listen_fd_channel(path, mode);
        if (s->fd_listen < 0) {
                r = s->fd_listen;
                goto fail;
        }
        nng_stream_listener_accept(s->listener, s->accept_aio);
        *wake_fd = s->wake_fd;
        *fd_listen = s->fd_listen;
        *out = s;
        return 0;
fail:
        server_close(s);
        return r;
}

struct server_request *server_next(struct server *s)
{
        uint64_t v;
        (void)!read(s->wake_fd, &v, sizeof(v));
        reap_conns(s);
        pthread_mutex_lock(&s->lock);
        struct server_request *rq = s->head;
        if (rq) {
                s->head = rq->next;
                if (!s->head)
                        s->tail = NULL;
                rq->next = NULL;
        }
        bool more = s->head != NULL;
        /* its uid's queue shrank: its paused connections read on */
        if (rq && queued_of(s, rq->peer_uid) < MAX_QUEUED_PER_UID)
                for (struct conn *c = s->conns; c; c = c->next)
                        if (c->paused && c->uid == rq->peer_uid && !c->closed) {
                                c->paused = false;
                                if (!rx_expect(c, RX_HEADER, 9))
                                        conn_close(c);
                        }
        pthread_mutex_unlock(&s->lock);
        if (more) /* stay readable */
                wake(s);
        return rq;
}

/* Free a request; its connection may be freed once no request needs it. */
static void request_free(struct server_request *rq)
{
        struct conn *c = rq->conn;
        pthread_mutex_lock(&c->srv->lock);
        c->outstanding--;
        if (c->closed)
                conn_close(c);
        pthread_mutex_unlock(&c->srv->lock);
        if (rq->msg)
                nng_msg_free(rq->msg);
        free(rq);
}

int server_reply(struct server_request *rq, nng_msg *reply)
{
        struct conn *c = rq->conn;
        size_t blen = nng_msg_len(reply);
        uint8_t head[9 + sizeof(rq->backtrace)];
        uint64_t len = rq->backtrace_len + blen;
        int r = -EPIPE;

        head[0] = 1;
        put_be64(head + 1, len);
        memcpy(head + 9, rq->backtrace, rq->backtrace_len);
        /* queued, not awaited: a client that does not read its replies
         * cannot stall the main thread */
        pthread_mutex_lock(&c->srv->lock);
        if (!c->closed)
                r = tx_queue(c, head, 9 + rq->backtrace_len, nng_msg_body(reply), blen);
        pthread_mutex_unlock(&c->srv->lock);
        nng_msg_free(reply);
        request_free(rq);
        return r;
}

void server_reply_error(struct server_request *rq, int err, const char *fmt, ...)
{
        char text[512];
        va_list ap;
        nng_msg *m;

        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        if (msg_error_reply(&m, err, "%s", text) == 0)
                server_reply(rq, m);
        else
                request_free(rq);
}

void server_drop(struct server_request *rq) { request_free(rq); }

void server_fds_free(struct server_fds *f)
{
        if (!f)
                return;
        fds_close_detached(f->fds, f->nfds); /* the client's files: their close may stall */
        closep(&f->conn);
        closep(&f->pidfd);
        free(f);
}

/* Read the descriptor packet of a pending connection if it has arrived.
 * Returns 1 when read, 0 when not yet, -errno when the connection is bad. */
static int pending_try_recv(struct server_fds *f)
{
        if (f->received)
                return 1;
        int r = fdchan_recv(f->conn, &f->token, f->fds, FDCHAN_MAX_FDS, &f->nfds);
        if (r == -EAGAIN)
                return 0;
        if (r < 0)
                return r;
        f->received = true;
        return 1;
}

static size_t pending_of(struct server *s, uid_t uid)
{
        size_t n = 0;
        for (struct server_fds *f = s->fds; f; f = f->next)
                n += f->uid == uid;
        return n;
}

/* Whether the client of pending connection `f` hung up. */
static bool fds_hung_up(const struct server_fds *f, uint64_t now_ms)
{
        (void)now_ms;
        struct pollfd p = { .fd = f->conn, .events = POLLRDHUP };
        return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

/* Whether pending connection `f` has waited too long to be claimed. */
static bool fds_expired(const struct server_fds *f, uint64_t now_ms)
{
        return now_ms - f->since_ms > PENDING_EXPIRY_MS;
}

/* Drop the pending fd-channel connections for which `drop` holds: each
 * holds a descriptor (and perhaps the client's stdio). Returns how many. */
static int drop_fds_if(struct server *s, bool (*drop)(const struct server_fds *, uint64_t))
{
        uint64_t now = mono_ns() / 1000000;
        int dropped = 0;
        for (struct server_fds **pp = &s->fds; *pp;) {
                struct server_fds *f = *pp;
                if (drop(f, now)) {
                        *pp = f->next;
                        s->nfds_pending--;
                        server_fds_free(f);
                        dropped++;
                } else {
                        pp = &f->next;
                }
        }
        return dropped;
}

/* Whether pending connection `f` is to go: its client hung up (it keeps
 * the connection open until its run request has claimed it) or it waited
 * too long. */
static bool fds_gone(const struct server_fds *f, uint64_t now_ms)
{
        return fds_expired(f, now_ms) || fds_hung_up(f, now_ms);
}

bool server_sweep_fds(struct server *s)
{
        if (!s->nfds_pending)
                return false;
        uint64_t now = mono_ns() / 1000000;
        if (now - s->fds_swept_ms >= FDS_SWEEP_MS) {
                s->fds_swept_ms = now;
                drop_fds_if(s, fds_gone);
        }
        return s->nfds_pending > 0;
}

void server_accept_fds(struct server *s)
{
        /* Connections whose packet never came, or was never claimed by a
         * run request, are dropped after a while, so a client cannot pin
         * broker descriptors or fill the table. */
        drop_fds_if(s, fds_expired);
        for (;;) {
                int c = accept4(s->fd_listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (c < 0) {
                        int e = errno;
                        if (e == EINTR || e == ECONNABORTED)
                                continue;
                        if ((e == EMFILE || e == ENFILE) && drop_fds_if(s, fds_hung_up) > 0)
                                continue;
                        if ((e == EMFILE || e == ENFILE) && s->spare_fd >= 0) {
                                /* Out of descriptors: the connection would
                                 * stay queued and the (level-triggered)
                                 * listener readable, spinning the main
                                 * loop. Shed it with the spare descriptor;
                                 * its client sees the hang-up. */
                                close(s->spare_fd);
                                c = accept4(s->fd_listen, NULL, NULL, SOCK_CLOEXEC);
                                if (c >= 0) {
                                        static struct log_limit limit = { .burst = 5, .window_s = 60 };
                                        log_limited(&limit, "out of descriptors: refusing an fd-channel connection");
                                        close(c);
                                }
                                s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                                /* EMFILE comes before the queue is looked
                                 * at: done once nothing was queued */
                                if (c >= 0)
                                        continue;
                        }
                        return; /* EAGAIN */
                }
                struct ucred cred;
                socklen_t len = sizeof(cred);
                const char *why = NULL;
                struct server_fds *f = calloc(1, sizeof(*f));
                if (!f || getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                        why = "out of memory";
                else if (s->nfds_pending >= MAX_PENDING_FDS)
                        why = "too many pending";
                else if (pending_of(s, cred.uid) >= MAX_PENDING_FDS_PER_UID)
                        why = "too many pending of this uid";
                if (why) {
                        static struct log_limit limit = { .burst = 5, .window_s = 10 };
                        log_limited(&limit, "refusing an fd-channel connection (%s)", why);
                        free(f);
                        close(c);
                        continue;
                }
                f->conn = c;
                f->uid = cred.uid;
                f->pid = cred.pid;
                len = sizeof(f->pidfd);
                if (getsockopt(c, SOL_SOCKET, SO_PEERPIDFD, &f->pidfd, &len) < 0) {
                        f->pidfd = -1;
                        f->pidfd_errno = errno;
                }
                f->since_ms = mono_ns() / 1000000;
                f->next = s->fds;
                s->fds = f;
                s->nfds_pending++;
        }
}

struct server_fds *server_take_fds(struct server *s, uint64_t token, uid_t uid)
{
        server_accept_fds(s);
        for (struct server_fds **pp = &s->fds; *pp;) {
                struct server_fds *f = *pp;
                int r = pending_try_recv(f);
                if (r < 0) {
                        static struct log_limit limit = { .burst = 20, .window_s = 10 };
                        if (r != -ECONNRESET) /* a peer that hung up is no news */
                                log_limited(&limit, "dropping a malformed fd-channel packet of uid %u: %s", f->uid,
                                            strerror(-r));
                        *pp = f->next;
                        s->nfds_pending--;
                        server_fds_free(f);
                        continue;
                }
                if (r == 1 && f->token == token && f->uid == uid) {
                        *pp = f->next;
                        f->next = NULL;
                        s->nfds_pending--;
                        return f;
                }
                pp = &f->next;
        }
        return NULL;
}

void server_close(struct server *s)
{
        if (!s)
                return;
        pthread_mutex_lock(&s->lock);
        s->closing = true;
        for (struct conn *c = s->conns; c; c = c->next)
                conn_close(c);
        pthread_mutex_unlock(&s->lock);
        if (s->listener)
                nng_stream_listener_close(s->listener);
        /* no callback runs once its aio is stopped */
        if (s->accept_aio)
                nng_aio_stop(s->accept_aio);
        if (s->backoff_aio)
                nng_aio_stop(s->backoff_aio);
        for (struct conn *c = s->conns; c; c = c->next) {
                nng_aio_stop(c->rx_aio);
                nng_aio_stop(c->tx_aio);
        }
        while (s->head) {
                struct server_request *rq = s->head;
                s->head = rq->next;
                nng_msg_free(rq->msg);
                free(rq);
        }
        while (s->conns) {
                struct conn *c = s->conns;
                s->conns = c->next;
                conn_free(c);
        }
        nng_aio_free(s->accept_aio);
        nng_aio_free(s->backoff_aio);
        if (s->listener)
                nng_stream_listener_free(s->listener);
        while (s->fds) {
                struct server_fds *f = s->fds;
                s->fds = f->next;
                server_fds_free(f);
        }
        if (s->fd_listen >= 0)
                close(s->fd_listen);
        if (s->wake_fd >= 0)
                close(s->wake_fd);
        if (s->spare_fd >= 0)
                close(s->spare_fd);
        pthread_mutex_destroy(&s->lock);
        free(s);
}
