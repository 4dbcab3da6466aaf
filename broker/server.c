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

#include <nng/protocol/reqrep0/rep.h>
#include <nng/transport/ipc/ipc.h>

#include "cleanup.h"
#include "clock.h"
#include "log.h"
#include "msg.h"

/* Connections that sent no descriptors yet are kept at most this many. */
#define MAX_PENDING_FDS 256
#define PENDING_EXPIRY_MS 30000

struct server {
        nng_socket sock;
        int wake_fd;
        int fd_listen;
        pthread_mutex_t lock;
        struct server_request *head, *tail;   /* received, not yet handled */
        struct server_fds *fds;               /* received, not yet taken */
        size_t nfds_pending;
};

static void recv_cb(void *arg);

static int start_recv(struct server *s)
{
        struct server_request *rq = calloc(1, sizeof(*rq));
        if (!rq)
                return -ENOMEM;
        rq->srv = s;
        int rv = nng_ctx_open(&rq->ctx, s->sock);
        if (rv == 0)
                rv = nng_aio_alloc(&rq->aio, recv_cb, rq);
        if (rv != 0) {
                nng_ctx_close(rq->ctx);
                free(rq);
                return msg_nng_errno(rv);
        }
        nng_ctx_recv(rq->ctx, rq->aio);
        return 0;
}

/* nng thread: queue the request for the main thread, arm the next receive. */
static void recv_cb(void *arg)
{
        struct server_request *rq = arg;
        struct server *s = rq->srv;
        int rv = nng_aio_result(rq->aio);

        if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
                return; /* shutting down; server_close frees */
        if (rv != 0) {
                nng_ctx_recv(rq->ctx, rq->aio);
                return;
        }
        rq->msg = nng_aio_get_msg(rq->aio);
        nng_pipe p = nng_msg_get_pipe(rq->msg);
        if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &rq->peer_uid) != 0 ||
            nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_GID, &rq->peer_gid) != 0) {
                /* no credentials, no service */
                nng_msg_free(rq->msg);
                rq->msg = NULL;
                nng_ctx_recv(rq->ctx, rq->aio);
                return;
        }
        nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_PID, &rq->peer_pid);

        pthread_mutex_lock(&s->lock);
        if (s->tail)
                s->tail->next = rq;
        else
                s->head = rq;
        s->tail = rq;
        pthread_mutex_unlock(&s->lock);
        uint64_t one = 1;
        (void)!write(s->wake_fd, &one, sizeof(one));

        if (start_recv(s) < 0)
                log_msg("cannot arm the next receive: out of memory");
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
        nng_listener l;
        int rv, r;

        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->lock, NULL);
        s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->wake_fd < 0) {
                r = -errno;
                free(s);
                return r;
        }
        snprintf(path, sizeof(path), "%s/broker.fd", dir);
        s->fd_listen = listen_fd_channel(path, mode);
        if (s->fd_listen < 0) {
                r = s->fd_listen;
                close(s->wake_fd);
                free(s);
                return r;
        }
        snprintf(url, sizeof(url), "ipc://%s/broker.ipc", dir);
        rv = nng_rep0_open(&s->sock);
        if (rv == 0)
                rv = nng_listener_create(&l, s->sock, url);
        if (rv == 0)
                rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, (int)mode);
        if (rv == 0)
                rv = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, 16 << 20);
        if (rv == 0)
                rv = nng_listener_start(l, 0);
        if (rv != 0) {
                nng_close(s->sock);
                close(s->fd_listen);
                close(s->wake_fd);
                free(s);
                return msg_nng_errno(rv);
        }
        /* a few receives armed: clients connecting at once are served at once */
        for (int i = 0; i < 4; i++)
                if ((r = start_recv(s)) < 0)
                        return r;
        *wake_fd = s->wake_fd;
        *fd_listen = s->fd_listen;
        *out = s;
        return 0;
}

struct server_request *server_next(struct server *s)
{
        uint64_t v;
        (void)!read(s->wake_fd, &v, sizeof(v));
        pthread_mutex_lock(&s->lock);
        struct server_request *rq = s->head;
        if (rq) {
                s->head = rq->next;
                if (!s->head)
                        s->tail = NULL;
                rq->next = NULL;
        }
        pthread_mutex_unlock(&s->lock);
        if (s->head) /* more queued: stay readable */
                (void)!write(s->wake_fd, &(uint64_t){ 1 }, sizeof(uint64_t));
        return rq;
}

static void request_free(struct server_request *rq)
{
        if (rq->msg)
                nng_msg_free(rq->msg);
        nng_ctx_close(rq->ctx);
        nng_aio_free(rq->aio);
        free(rq);
}

int server_reply(struct server_request *rq, nng_msg *reply)
{
        /* rq->aio belongs to the receive callback; a send on it would run
         * that callback. A REP send only queues the reply, so waiting for
         * it here is short. */
        nng_aio *aio;
        int rv = nng_aio_alloc(&aio, NULL, NULL);
        if (rv == 0) {
                nng_aio_set_msg(aio, reply);
                nng_aio_set_timeout(aio, 5000);
                nng_ctx_send(rq->ctx, aio);
                nng_aio_wait(aio);
                rv = nng_aio_result(aio);
                nng_aio_free(aio);
        }
        if (rv != 0)
                nng_msg_free(reply);
        request_free(rq);
        return rv ? msg_nng_errno(rv) : 0;
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
        fds_close(f->fds, f->nfds);
        closep(&f->conn);
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

void server_accept_fds(struct server *s)
{
        uint64_t now = mono_ns() / 1000000;

        /* Connections whose packet never came, or was never claimed by a
         * run request, are dropped after a while, so a client cannot pin
         * broker descriptors or fill the table. */
        for (struct server_fds **pp = &s->fds; *pp;) {
                struct server_fds *f = *pp;
                if (now - f->since_ms > PENDING_EXPIRY_MS) {
                        *pp = f->next;
                        s->nfds_pending--;
                        server_fds_free(f);
                } else {
                        pp = &f->next;
                }
        }
        for (;;) {
                int c = accept4(s->fd_listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (c < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        return; /* EAGAIN, or out of descriptors: retry later */
                }
                struct ucred cred;
                socklen_t len = sizeof(cred);
                struct server_fds *f = calloc(1, sizeof(*f));
                if (!f || getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
                    s->nfds_pending >= MAX_PENDING_FDS) {
                        log_msg("refusing an fd-channel connection (%s)",
                                f ? "too many pending" : "out of memory");
                        free(f);
                        close(c);
                        continue;
                }
                f->conn = c;
                f->uid = cred.uid;
                f->since_ms = now;
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
                        log_errno(r, "dropping a malformed fd-channel packet of uid %u", f->uid);
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
        nng_close(s->sock);
        while (s->fds) {
                struct server_fds *f = s->fds;
                s->fds = f->next;
                server_fds_free(f);
        }
        close(s->fd_listen);
        close(s->wake_fd);
        free(s);
}
