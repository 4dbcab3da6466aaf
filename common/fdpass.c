#include "fdpass.h"

#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define FDCHAN_MAGIC 0x53434644u /* "SCFD" */

struct fdchan_hdr {
        uint32_t magic;
        uint32_t nfds;
        uint64_t token;
};

int fdchan_send(int sock, uint64_t token, const int *fds, size_t nfds)
{
        struct fdchan_hdr hdr = { .magic = FDCHAN_MAGIC, .nfds = nfds, .token = token };
        struct iovec iov = { .iov_base = &hdr, .iov_len = sizeof(hdr) };
        union {
                char buf[CMSG_SPACE(sizeof(int) * FDCHAN_MAX_FDS)];
                struct cmsghdr align;
        } u;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (nfds > FDCHAN_MAX_FDS)
                return -EINVAL;
        if (nfds > 0) {
                memset(&u, 0, sizeof(u));
                mh.msg_control = u.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        for (;;) {
                ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
                if (n == (ssize_t)sizeof(hdr))
                        return 0;
                if (n >= 0)
                        return -EPROTO; /* SEQPACKET is all or nothing */
                if (errno != EINTR)
                        return -errno;
        }
}

void fds_close(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (fds[i] >= 0) {
                        close(fds[i]);
                        fds[i] = -1;
                }
}

#define MAX_CLOSERS 256
static atomic_int closers;

struct closing {
        size_t n;
        int fds[];
};

static void *closer_main(void *arg)
{
        struct closing *c = arg;
        fds_close(c->fds, c->n);
        free(c);
        atomic_fetch_sub(&closers, 1);
        return NULL;
}

int fds_close_detached(int *fds, size_t n)
{
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                k += fds[i] >= 0;
        if (!k)
                return 0;
        struct closing *c = malloc(sizeof(*c) + k * sizeof(int));
        int r = -ENOMEM;
        if (c) {
                c->n = 0;
                for (size_t i = 0; i < n; i++)
                        if (fds[i] >= 0)
                                c->fds[c->n++] = fds[i];
                r = -EAGAIN;
                if (atomic_fetch_add(&closers, 1) < MAX_CLOSERS) {
                        pthread_attr_t attr;
                        pthread_t t;
                        pthread_attr_init(&attr);
                        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                        pthread_attr_setstacksize(&attr, 64 * 1024);
                        r = -pthread_create(&t, &attr, closer_main, c);
                        pthread_attr_destroy(&attr);
                }
                if (r < 0) {
                        atomic_fetch_sub(&closers, 1);
                        free(c);
                }
        }
        for (size_t i = 0; i < n; i++)
                fds[i] = -1;
        return r;
}

int fdchan_recv(int sock, uint64_t *token, int *fds, size_t max, size_t *nfds)
{
        struct fdchan_hdr hdr;
        struct iovec iov = { .iov_base = &hdr, .iov_len = sizeof(hdr) };
        union {
                /* room for more than we accept, so an oversized packet is
                 * seen (and its fds closed) rather than silently cut */
                char buf[CMSG_SPACE(sizeof(int) * FDCHAN_MAX_FDS * 2)];
                struct cmsghdr align;
        } u;
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = u.buf, .msg_controllen = sizeof(u.buf),
        };
        int got[FDCHAN_MAX_FDS * 2];
        size_t ngot = 0;
        ssize_t n;
        bool bad = false;

        do
                n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if (n == 0 && mh.msg_controllen == 0) {
                /* SEQPACKET: a zero-length packet reads like EOF; only a
                 * hung-up peer is gone */
                struct pollfd p = { .fd = sock, .events = POLLRDHUP };
                if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP)))
                        return -ECONNRESET;
                return -EBADMSG;
        }

        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
                        bad = true;
                        continue;
                }
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k && ngot < sizeof(got) / sizeof(got[0]); i++)
                        memcpy(&got[ngot++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }
        if ((mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) || n != (ssize_t)sizeof(hdr) ||
            hdr.magic != FDCHAN_MAGIC || hdr.nfds != ngot || ngot > max)
                bad = true;
        if (bad) {
                fds_close(got, ngot);
                return -EBADMSG;
        }
        memcpy(fds, got, ngot * sizeof(int));
        *nfds = ngot;
        *token = hdr.token;
        return 0;
}

uint64_t fdchan_new_token(void)
{
        uint64_t t = 0;
        while (t == 0) {
                ssize_t n = getrandom(&t, sizeof(t), 0);
                if (n != sizeof(t))
                        t = 0;
        }
        return t;
}
