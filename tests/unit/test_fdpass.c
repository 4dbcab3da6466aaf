/* common/fdpass.h: the fd channel over AF_UNIX/SOCK_SEQPACKET. Round trips
 * of 0..FDCHAN_MAX_FDS descriptors, and every malformed packet refused with
 * -EBADMSG and not one descriptor left behind. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdpass.h"
#include "unit.h"

/* Same layout as fdpass.c's header: the wire format is what is tested. */
#define MAGIC 0x53434644u
struct wire_hdr {
        uint32_t magic;
        uint32_t nfds;
        uint64_t token;
};

struct chan {
        int s[2];
};

static int setup_chan(void **state)
{
        static struct chan c;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, c.s) < 0)
                return -1;
        *state = &c;
        return 0;
}

static int teardown_chan(void **state)
{
        struct chan *c = *state;
        for (int i = 0; i < 2; i++)
                if (c->s[i] >= 0)
                        close(c->s[i]);
        return 0;
}

/* `n` descriptors, each naming a different file (its own memfd). */
static void open_files(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                char name[32];
                snprintf(name, sizeof(name), "fdpass-%zu", i);
                fds[i] = memfd_create(name, MFD_CLOEXEC);
                assert_true(fds[i] >= 0);
        }
}

static void assert_same_file(int a, int b)
{
        struct stat sa, sb;
        assert_int_equal(fstat(a, &sa), 0);
        assert_int_equal(fstat(b, &sb), 0);
        assert_int_equal(sa.st_dev, sb.st_dev);
        assert_int_equal(sa.st_ino, sb.st_ino);
}

/* Is anything waiting on `s`? (MSG_PEEK, never blocks) */
static bool pending(int s)
{
        char b;
        return recv(s, &b, 1, MSG_PEEK | MSG_DONTWAIT) >= 0;
}

/* Send a packet built by hand: `len` bytes of `data` and `nfds` descriptors
 * in one SCM_RIGHTS message (0: no control data). */
static void raw_send(int sock, const void *data, size_t len, const int *fds, size_t nfds)
{
        struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        char *cbuf = NULL;

        if (nfds) {
                size_t clen = CMSG_SPACE(sizeof(int) * nfds);
                cbuf = calloc(1, clen);
                assert_non_null(cbuf);
                mh.msg_control = cbuf;
                mh.msg_controllen = clen;
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        free(cbuf);
        assert_int_equal(n, (ssize_t)len);
}

static void roundtrip_0_to_max(void **state)
{
        struct chan *c = *state;
        int before = unit_count_fds();

        for (size_t k = 0; k <= FDCHAN_MAX_FDS; k++) {
                int fds[FDCHAN_MAX_FDS], got[FDCHAN_MAX_FDS];
                uint64_t token = 0x1122334455667700ULL + k, rtoken = 0;
                size_t n = 99;

                memset(got, -1, sizeof(got));
                open_files(fds, k);
                assert_int_equal(fdchan_send(c->s[0], token, fds, k), 0);
                assert_int_equal(fdchan_recv(c->s[1], &rtoken, got, FDCHAN_MAX_FDS, &n), 0);
                assert_int_equal(rtoken, token);
                assert_int_equal(n, k);
                for (size_t i = 0; i < k; i++) {
                        /* a new descriptor for the same file, in order */
                        assert_true(got[i] >= 0);
                        assert_int_not_equal(got[i], fds[i]);
                        assert_same_file(got[i], fds[i]);
                        for (size_t j = 0; j < k; j++)
                                if (j != i) {
                                        struct stat a, b;
                                        assert_int_equal(fstat(got[i], &a), 0);
                                        assert_int_equal(fstat(fds[j], &b), 0);
                                        assert_false(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
                                }
                        assert_true(fcntl(got[i], F_GETFD) & FD_CLOEXEC);
                }
                fds_close(got, k);
                fds_close(fds, k);
        }
        assert_int_equal(unit_count_fds(), before);
}

/* The descriptors work: bytes written through the received copy are seen
 * through the original. */
static void received_fd_is_usable(void **state)
{
        struct chan *c = *state;
        int p[2], got[FDCHAN_MAX_FDS];
        uint64_t token;
        size_t n;
        char buf[8] = { 0 };

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(fdchan_send(c->s[0], 7, &p[1], 1), 0);
        assert_int_equal(fdchan_recv(c->s[1], &token, got, 1, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(write(got[0], "hello", 5), 5);
        assert_int_equal(read(p[0], buf, sizeof(buf)), 5);
        assert_string_equal(buf, "hello");
        close(got[0]);
        close(p[0]);
        close(p[1]);
}

static void send_too_many_is_einval(void **state)
{
        struct chan *c = *state;
        int fds[FDCHAN_MAX_FDS + 1];
        int before = unit_count_fds();

        open_files(fds, FDCHAN_MAX_FDS + 1);
        assert_int_equal(fdchan_send(c->s[0], 1, fds, FDCHAN_MAX_FDS + 1), -EINVAL);
        assert_false(pending(c->s[1]));
        fds_close(fds, FDCHAN_MAX_FDS + 1);
        assert_int_equal(unit_count_fds(), before);
}

/* Descriptors travel whatever the receiver's limit; more than `max` of them
 * is a malformed packet whose descriptors are all closed. */
static void recv_more_than_max(void **state)
{
        struct chan *c = *state;
        int fds[3], got[3] = { -1, -1, -1 };
        uint64_t token;
        size_t n = 0;

        open_files(fds, 3);
        int before = unit_count_fds();
        assert_int_equal(fdchan_send(c->s[0], 5, fds, 3), 0);
        assert_int_equal(fdchan_recv(c->s[1], &token, got, 2, &n), -EBADMSG);
        assert_int_equal(unit_count_fds(), before);
        assert_int_equal(got[0], -1); /* nothing handed out */
        fds_close(fds, 3);
}

/* A packet carrying `nsend` descriptors under a correct header that says
 * `nhdr`, sent with a raw sendmsg: refused, nothing leaked, and the channel
 * still delivers the next good packet. */
static void check_raw_rejected(struct chan *c, const void *data, size_t len, size_t nsend)
{
        int fds[64], got[FDCHAN_MAX_FDS];
        uint64_t token = 0;
        size_t n = 0;

        assert_true(nsend <= 64);
        for (size_t i = 0; i < nsend; i++)
                fds[i] = i % 2 ? STDERR_FILENO : STDOUT_FILENO;
        int before = unit_count_fds();
        raw_send(c->s[0], data, len, fds, nsend);
        assert_int_equal(fdchan_recv(c->s[1], &token, got, FDCHAN_MAX_FDS, &n), -EBADMSG);
        assert_int_equal(unit_count_fds(), before);
        assert_false(pending(c->s[1]));

        /* the channel survives a bad packet */
        int one = STDIN_FILENO;
        assert_int_equal(fdchan_send(c->s[0], 77, &one, 1), 0);
        assert_int_equal(fdchan_recv(c->s[1], &token, got, FDCHAN_MAX_FDS, &n), 0);
        assert_int_equal(token, 77);
        assert_int_equal(n, 1);
        close(got[0]);
        assert_int_equal(unit_count_fds(), before);
}

static void oversize_packets(void **state)
{
        struct chan *c = *state;
        /* 9 (one more than the maximum), 16 (all the receiver has room for),
         * 17 and 64 (more than fits: the kernel cuts the control data) */
        static const size_t counts[] = { FDCHAN_MAX_FDS + 1, 2 * FDCHAN_MAX_FDS, 2 * FDCHAN_MAX_FDS + 1, 64 };
        for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
                struct wire_hdr h = { .magic = MAGIC, .nfds = (uint32_t)counts[i], .token = 3 };
                check_raw_rejected(c, &h, sizeof(h), counts[i]);
        }
}

static void bad_magic(void **state)
{
        struct wire_hdr h = { .magic = MAGIC ^ 1, .nfds = 2, .token = 3 };
        check_raw_rejected(*state, &h, sizeof(h), 2);
        h.magic = 0;
        h.nfds = 0;
        check_raw_rejected(*state, &h, sizeof(h), 0);
}

static void count_mismatch(void **state)
{
        struct wire_hdr h = { .magic = MAGIC, .nfds = 2, .token = 3 };
        check_raw_rejected(*state, &h, sizeof(h), 3);  /* says 2, carries 3 */
        check_raw_rejected(*state, &h, sizeof(h), 1);  /* says 2, carries 1 */
        check_raw_rejected(*state, &h, sizeof(h), 0);  /* says 2, carries none */
        h.nfds = 0;
        check_raw_rejected(*state, &h, sizeof(h), 1);  /* says 0, carries 1 */
}

static void wrong_size(void **state)
{
        struct wire_hdr h = { .magic = MAGIC, .nfds = 1, .token = 3 };
        char big[sizeof(h) + 8];
        memset(big, 0, sizeof(big));
        memcpy(big, &h, sizeof(h));

        check_raw_rejected(*state, &h, sizeof(h) - 1, 1);  /* short */
        check_raw_rejected(*state, &h, 8, 1);              /* magic and count only */
        check_raw_rejected(*state, big, sizeof(big), 1);   /* long: cut by the kernel */
        check_raw_rejected(*state, "x", 1, 0);
}

/* A packet with no payload but descriptors is not EOF: it is refused and
 * its descriptors are closed. */
static void empty_payload_with_fds(void **state)
{
        check_raw_rejected(*state, "", 0, 2);
}

/* Control data that is not SCM_RIGHTS (here SCM_CREDENTIALS, which the
 * kernel attaches when the receiver asks for it) makes the packet
 * malformed; its descriptors are closed all the same. */
static void non_fd_control_message(void **state)
{
        struct chan *c = *state;
        int on = 1, fds[2] = { STDOUT_FILENO, STDERR_FILENO }, got[FDCHAN_MAX_FDS];
        uint64_t token;
        size_t n;

        assert_int_equal(setsockopt(c->s[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
        int before = unit_count_fds();
        assert_int_equal(fdchan_send(c->s[0], 9, fds, 2), 0);
        assert_int_equal(fdchan_recv(c->s[1], &token, got, FDCHAN_MAX_FDS, &n), -EBADMSG);
        assert_int_equal(unit_count_fds(), before);
}

static void eof_is_econnreset(void **state)
{
        struct chan *c = *state;
        int fd = STDIN_FILENO, got[FDCHAN_MAX_FDS];
        uint64_t token;
        size_t n;

        /* what was sent before the close is still delivered, then EOF */
        assert_int_equal(fdchan_send(c->s[0], 11, &fd, 1), 0);
        close(c->s[0]);
        c->s[0] = -1;
        assert_int_equal(fdchan_recv(c->s[1], &token, got, FDCHAN_MAX_FDS, &n), 0);
        assert_int_equal(token, 11);
        assert_int_equal(n, 1);
        close(got[0]);
        assert_int_equal(fdchan_recv(c->s[1], &token, got, FDCHAN_MAX_FDS, &n), -ECONNRESET);
        assert_int_equal(fdchan_recv(c->s[1], &token, got, FDCHAN_MAX_FDS, &n), -ECONNRESET);
}

static void send_to_closed_peer(void **state)
{
        struct chan *c = *state;
        close(c->s[1]);
        c->s[1] = -1;
        /* MSG_NOSIGNAL: an error, not SIGPIPE */
        assert_int_equal(fdchan_send(c->s[0], 1, NULL, 0), -EPIPE);
}

static void nonblocking_empty_is_eagain(void **state)
{
        int s[2], got[FDCHAN_MAX_FDS];
        uint64_t token = 0xabc;
        size_t n = 0xdef;

        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s), 0);
        assert_int_equal(fdchan_recv(s[1], &token, got, FDCHAN_MAX_FDS, &n), -EAGAIN);
        assert_int_equal(token, 0xabc); /* untouched */
        assert_int_equal(n, 0xdef);
        assert_int_equal(fdchan_send(s[0], 4, NULL, 0), 0);
        assert_int_equal(fdchan_recv(s[1], &token, got, FDCHAN_MAX_FDS, &n), 0);
        assert_int_equal(token, 4);
        assert_int_equal(n, 0);
        assert_int_equal(fdchan_recv(s[1], &token, got, FDCHAN_MAX_FDS, &n), -EAGAIN);
        close(s[0]);
        close(s[1]);
        (void)state;
}

/* Tokens are random, 64-bit and never 0. */
static void new_token(void **state)
{
        (void)state;
        uint64_t first = fdchan_new_token(), or_all = 0, and_all = ~0ULL;
        bool differ = false;

        for (int i = 0; i < 10000; i++) {
                uint64_t t = fdchan_new_token();
                assert_int_not_equal(t, 0);
                differ |= t != first;
                or_all |= t;
                and_all &= t;
        }
        assert_true(differ);
        /* every one of the 64 bits is seen both set and clear */
        assert_int_equal(or_all, ~0ULL);
        assert_int_equal(and_all, 0);
}

static void close_helper(void **state)
{
        (void)state;
        int fds[4] = { -1, -1, -1, -1 };
        int before = unit_count_fds();

        fds[0] = dup(STDOUT_FILENO);
        fds[2] = dup(STDOUT_FILENO);
        assert_true(fds[0] >= 0 && fds[2] >= 0);
        fds_close(fds, 4);
        for (int i = 0; i < 4; i++)
                assert_int_equal(fds[i], -1);
        assert_int_equal(unit_count_fds(), before);
}

/* fdpass.h: "-ECONNRESET on EOF (peer gone)" and "-EBADMSG" for a packet
 * of the wrong size. A zero-length packet from a live peer is the latter;
 * fdchan_recv reports the peer gone (and the tracer exits on that). */
static void bug_empty_packet_is_not_eof(void **state)
{
        struct chan *c = *state;
        int got[FDCHAN_MAX_FDS], fd = STDIN_FILENO;
        uint64_t token;
        size_t n;

        assert_int_equal(send(c->s[0], "", 0, 0), 0);
        assert_int_equal(fdchan_send(c->s[0], 12, &fd, 1), 0);
        assert_int_equal(fdchan_recv(c->s[1], &token, got, FDCHAN_MAX_FDS, &n), -EBADMSG);
        /* the peer is still there, and so is its next packet */
        assert_int_equal(fdchan_recv(c->s[1], &token, got, FDCHAN_MAX_FDS, &n), 0);
        assert_int_equal(token, 12);
        close(got[0]);
}

#define CHAN_TEST(f) cmocka_unit_test_setup_teardown(f, setup_chan, teardown_chan)

static const struct CMUnitTest tests[] = {
        CHAN_TEST(roundtrip_0_to_max),
        CHAN_TEST(received_fd_is_usable),
        CHAN_TEST(send_too_many_is_einval),
        CHAN_TEST(recv_more_than_max),
        CHAN_TEST(oversize_packets),
        CHAN_TEST(bad_magic),
        CHAN_TEST(count_mismatch),
        CHAN_TEST(wrong_size),
        CHAN_TEST(empty_payload_with_fds),
        CHAN_TEST(non_fd_control_message),
        CHAN_TEST(eof_is_econnreset),
        CHAN_TEST(send_to_closed_peer),
        cmocka_unit_test(nonblocking_empty_is_eagain),
        cmocka_unit_test(new_token),
        cmocka_unit_test(close_helper),
        /* regressions: bugs found by these tests, now fixed */
        CHAN_TEST(bug_empty_packet_is_not_eof),
};

UNIT_MAIN_NO_BUGS(tests)
