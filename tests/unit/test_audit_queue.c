/* tracer/audit_queue.h: a sink's bounded queue and its writer thread.
 * What the tracer relies on: a push never waits for the sink; past the
 * bound (the sink's, or its uid's) lines are dropped and counted, never
 * silently; a closed queue's writer leaves a blocked write when a signal
 * can end it, and counts as stuck until then; a finished queue says when
 * it is idle. Sinks that take nothing are pipes nobody reads, sized to one
 * page (F_SETPIPE_SZ) so that the numbers are exact. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "audit_queue.h"
#include "clock.h"
#include "unit.h"

#define LINE 1000       /* bytes of each test line, the newline not included */
#define PAGE 4096

static int wake_fd = -1;

/* A pipe that holds one page; its read end non-blocking. */
static void small_pipe(int p[2])
{
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_true(fcntl(p[1], F_SETPIPE_SZ, PAGE) == PAGE);
        assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
}

/* Line number `i`: "<i, 6 digits> xxx...", LINE bytes. */
static void make_line(char *buf, int i)
{
        memset(buf, 'x', LINE);
        char head[16];
        int n = snprintf(head, sizeof(head), "%06d ", i);
        memcpy(buf, head, (size_t)n);
}

/* Push lines 0, 1, ... until `refusals` were refused; returns how many
 * were taken, each line's outcome in taken[]. */
static int push_until_full(struct audit_queue *q, bool *taken, int max, int refusals)
{
        char buf[LINE];
        int ok = 0, refused = 0;
        for (int i = 0; i < max && refused < refusals; i++) {
                make_line(buf, i);
                int r = audit_queue_push(q, buf, LINE);
                assert_true(r == 0 || r == -ENOBUFS);
                taken[i] = r == 0;
                ok += r == 0;
                refused += r != 0;
        }
        assert_int_equal(refused, refusals);
        return ok;
}

/* Whether the writer of `q` waits in a write to the pipe of read end `rd`
 * that is full: not idle, and the pipe has no room for a line (a write of
 * at most PIPE_BUF bytes is whole or waits). */
static bool blocked_in_write(struct audit_queue *q, int rd)
{
        int n = 0;
        return !audit_queue_idle(q, NULL) && ioctl(rd, FIONREAD, &n) == 0 && n > PAGE - (LINE + 1);
}

/* Read the pipe until the queue is idle and the pipe empty (10 s at
 * most); returns the bytes read into buf. */
static size_t read_until_idle(struct audit_queue *q, int rd, char *buf, size_t cap)
{
        size_t got = 0;
        for (int i = 0; i < 10000; i++) {
                bool idle = audit_queue_idle(q, NULL);
                ssize_t n;
                while (got < cap && (n = read(rd, buf + got, cap - got)) > 0)
                        got += (size_t)n;
                if (idle)
                        return got;
                struct pollfd p = { .fd = rd, .events = POLLIN };
                poll(&p, 1, 1);
        }
        fail_msg("the queue did not become idle");
        return got;
}

/* Wait (at most 10 s) until `owner` has no stuck writer, signalling them
 * again meanwhile (the first signal may come before the write). */
static void wait_unstuck(unsigned owner)
{
        for (int i = 0; i < 1000 && audit_queue_stuck(owner); i++) {
                audit_queue_kick_stuck();
                usleep(10000);
        }
        assert_int_equal(audit_queue_stuck(owner), 0);
}

/* Lines read: exactly those taken, in order, each whole. */
static void check_lines(const char *buf, size_t len, const bool *taken, int max)
{
        size_t off = 0;
        for (int i = 0; i < max; i++) {
                if (!taken[i])
                        continue;
                char want[LINE];
                make_line(want, i);
                assert_true(off + LINE + 1 <= len);
                assert_memory_equal(buf + off, want, LINE);
                assert_int_equal(buf[off + LINE], '\n');
                off += LINE + 1;
        }
        assert_int_equal(off, len);
}

/* A sink that takes nothing: a page in the pipe, `max_bytes` queued (the
 * line being written included), then every push refused and counted; once
 * read, the sink has exactly the lines taken. */
static void full_queue_drops_and_counts(void **state)
{
        (void)state;
        enum { MAX = 2000, QMAX = 16 * 1024 };
        static bool taken[MAX];
        static char buf[1 << 20];
        struct audit_queue *q;
        struct audit_queue_result res;
        int p[2];

        small_pipe(p);
        assert_int_equal(audit_queue_start(&q, p[1], 4000, QMAX), 0);
        int ok = push_until_full(q, taken, MAX, 21);
        /* taken: what the pipe holds plus what the queue may */
        assert_true(ok >= QMAX / (LINE + 1));
        assert_true((size_t)ok * (LINE + 1) <= PAGE + QMAX + LINE + 1);
        size_t got = read_until_idle(q, p[0], buf, sizeof(buf));
        check_lines(buf, got, taken, MAX);
        audit_queue_close(q, &res);
        assert_int_equal(res.unwritten, 21);
        assert_int_equal(res.lagged, 21);
        assert_int_equal(res.first_errno, 0);
        close(p[0]);
}

/* All sinks of one uid share AUDIT_QUEUE_MAX_PER_UID beyond each one's
 * AUDIT_QUEUE_FLOOR: a uid whose sinks are stuck cannot take the memory
 * of another uid's. */
static void per_uid_budget(void **state)
{
        (void)state;
        enum { MAX = 2000, BUDGET = 96 * 1024, QMAX = 1 << 20 };
        static bool taken[MAX];
        struct audit_queue *a, *b, *c;
        struct audit_queue_result res;
        int pa[2], pb[2], pc[2];

        audit_queue_set_max_per_uid(BUDGET);
        small_pipe(pa);
        small_pipe(pb);
        small_pipe(pc);
        assert_int_equal(audit_queue_start(&a, pa[1], 4001, QMAX), 0);
        assert_int_equal(audit_queue_start(&b, pb[1], 4001, QMAX), 0);
        assert_int_equal(audit_queue_start(&c, pc[1], 4002, QMAX), 0);
        /* a takes the uid's budget (and its pipe's page) */
        int ok = push_until_full(a, taken, MAX, 1);
        assert_true((size_t)ok * (LINE + 1) <= PAGE + BUDGET + LINE + 1);
        assert_true((size_t)ok * (LINE + 1) >= BUDGET - LINE);
        /* b, the same uid's: its floor only */
        ok = push_until_full(b, taken, MAX, 1);
        assert_true((size_t)ok * (LINE + 1) >= AUDIT_QUEUE_FLOOR - LINE);
        assert_true((size_t)ok * (LINE + 1) <= PAGE + AUDIT_QUEUE_FLOOR + LINE + 1);
        /* c, another uid's: a budget of its own */
        ok = push_until_full(c, taken, MAX, 1);
        assert_true((size_t)ok * (LINE + 1) >= BUDGET - LINE);
        struct audit_queue *qs[] = { a, b, c };
        for (int i = 0; i < 3; i++) {
                audit_queue_close(qs[i], &res);
                assert_true(res.lagged >= 2); /* the refused one, the one being written */
                assert_int_equal(res.unwritten, res.lagged);
        }
        wait_unstuck(4001);
        wait_unstuck(4002);
        audit_queue_set_max_per_uid(AUDIT_QUEUE_MAX_PER_UID);
        close(pa[0]);
        close(pb[0]);
        close(pc[0]);
}

/* Closing a queue whose writer waits in a write to a full pipe: the write
 * is interrupted, the writer counts as stuck until it is out, and then
 * closes the sink (the reader sees EOF). */
static void close_interrupts_a_blocked_write(void **state)
{
        (void)state;
        static char buf[1 << 16];
        struct audit_queue *q;
        struct audit_queue_result res;
        int p[2];

        small_pipe(p);
        assert_int_equal(audit_queue_start(&q, p[1], 4003, 1 << 20), 0);
        for (int i = 0; i < 8; i++) {
                char line[LINE];
                make_line(line, i);
                assert_int_equal(audit_queue_push(q, line, LINE), 0);
        }
        for (int i = 0; i < 10000 && !blocked_in_write(q, p[0]); i++)
                usleep(1000);
        assert_true(blocked_in_write(q, p[0]));
        audit_queue_close(q, &res);
        /* 4 lines fit the page: the 5th, being written, and 3 queued given up */
        assert_int_equal(res.lagged, 4);
        assert_int_equal(res.unwritten, res.lagged);
        /* out of its write though nobody read the pipe */
        wait_unstuck(4003);
        size_t got = 0;
        for (int i = 0; i < 10000; i++) {
                ssize_t n = read(p[0], buf + got, sizeof(buf) - got);
                if (n == 0)
                        break;
                if (n > 0)
                        got += (size_t)n;
                else
                        usleep(1000);
        }
        assert_int_equal(read(p[0], buf, 1), 0); /* EOF: the writer closed it */
        assert_int_equal(got, 4 * (LINE + 1));
        close(p[0]);
}

/* A line longer than the pipe, cut by the close: what was written of it
 * ends with a newline once the reader reads, so the next line on that
 * pipe (another run's) starts a line of its own. */
static void close_mid_line_ends_the_fragment(void **state)
{
        (void)state;
        enum { LONG = 3 * PAGE };
        static char line[LONG], buf[2 * LONG];
        struct audit_queue *q;
        struct audit_queue_result res;
        int p[2], n = 0;

        small_pipe(p);
        assert_int_equal(audit_queue_start(&q, p[1], 4004, 1 << 20), 0);
        memset(line, 'z', LONG);
        assert_int_equal(audit_queue_push(q, line, LONG), 0);
        /* a page of it in the pipe, the writer waiting for room */
        for (int i = 0; i < 10000 && !(ioctl(p[0], FIONREAD, &n) == 0 && n == PAGE); i++)
                usleep(1000);
        assert_int_equal(n, PAGE);
        audit_queue_close(q, &res);
        assert_int_equal(res.unwritten, 1);
        size_t got = 0;
        for (int i = 0; i < 10000; i++) {
                ssize_t r = read(p[0], buf + got, sizeof(buf) - got);
                if (r == 0)
                        break;
                if (r > 0)
                        got += (size_t)r;
                else
                        usleep(1000);
        }
        assert_true(got > PAGE);
        assert_int_equal(buf[got - 1], '\n');
        for (size_t i = 0; i + 1 < got; i++)
                assert_int_equal(buf[i], 'z');
        wait_unstuck(4004);
        close(p[0]);
}

/* A finished queue writes the wake fd once all is written; its progress
 * time is that of its last write, or of the finish. */
static void finish_wakes_when_idle(void **state)
{
        (void)state;
        struct audit_queue *q;
        struct audit_queue_result res;
        uint64_t v, progress;
        char line[LINE];
        int fd = memfd_create("audit-queue-test", MFD_CLOEXEC);

        assert_true(fd >= 0);
        while (read(wake_fd, &v, sizeof(v)) > 0)
                ;
        assert_int_equal(audit_queue_start(&q, dup(fd), 4004, 1 << 20), 0);
        for (int i = 0; i < 3; i++) {
                make_line(line, i);
                assert_int_equal(audit_queue_push(q, line, LINE), 0);
        }
        uint64_t before = mono_ns();
        audit_queue_finish(q);
        struct pollfd p = { .fd = wake_fd, .events = POLLIN };
        assert_int_equal(poll(&p, 1, 10000), 1);
        assert_true(audit_queue_idle(q, &progress));
        assert_true(progress >= before);
        assert_int_equal(lseek(fd, 0, SEEK_END), 3 * (LINE + 1));
        audit_queue_close(q, &res);
        assert_int_equal(res.unwritten, 0);
        close(fd);
}

/* A line larger than the bound is taken when the queue holds nothing:
 * an event is never too big for an idle sink. */
static void oversize_line_taken_when_empty(void **state)
{
        (void)state;
        struct audit_queue *q;
        struct audit_queue_result res;
        char line[LINE];
        int fd = memfd_create("audit-queue-test", MFD_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(audit_queue_start(&q, dup(fd), 4005, 100), 0);
        make_line(line, 7);
        assert_int_equal(audit_queue_push(q, line, LINE), 0);
        for (int i = 0; i < 10000 && !audit_queue_idle(q, NULL); i++)
                usleep(1000);
        assert_int_equal(lseek(fd, 0, SEEK_END), LINE + 1);
        audit_queue_close(q, &res);
        assert_int_equal(res.unwritten, 0);
        close(fd);
}

/* Two sinks on one pipe (two runs' --audit on one FIFO), lines longer than
 * PIPE_BUF, a reader slower than the writers: every line read is whole,
 * one writer's (found in review: 13 of 40 lines came mixed). */
static void writers_of_one_pipe_take_turns(void **state)
{
        (void)state;
        enum { LONG = 20000, PER = 20 };
        static char line[LONG], buf[2 * PER * (LONG + 1)];
        struct audit_queue *q[2];
        struct audit_queue_result res;
        int p[2];

        small_pipe(p);
        for (int k = 0; k < 2; k++) {
                int w = dup(p[1]);
                assert_true(w >= 0);
                assert_int_equal(audit_queue_start(&q[k], w, 4100, 4 << 20), 0);
        }
        close(p[1]);
        for (int i = 0; i < PER; i++)
                for (int k = 0; k < 2; k++) {
                        memset(line, 'a' + k, LONG);
                        assert_int_equal(audit_queue_push(q[k], line, LONG), 0);
                }
        /* a small read at a time, so that each long write is taken in parts */
        size_t got = 0;
        for (int spins = 0; got < sizeof(buf) && spins < 100000; spins++) {
                ssize_t n = read(p[0], buf + got, 1000);
                if (n > 0)
                        got += (size_t)n;
                else
                        usleep(100);
        }
        assert_int_equal(got, sizeof(buf));
        int seen[2] = { 0, 0 };
        for (size_t off = 0; off < got; off += LONG + 1) {
                char c = buf[off];
                assert_true(c == 'a' || c == 'b');
                for (size_t j = 0; j < LONG; j++)
                        if (buf[off + j] != c)
                                fail_msg("line at %zu mixed: byte %zu is '%c', not '%c'", off, j, buf[off + j], c);
                assert_int_equal(buf[off + LONG], '\n');
                seen[c - 'a']++;
        }
        assert_int_equal(seen[0], PER);
        assert_int_equal(seen[1], PER);
        for (int k = 0; k < 2; k++) {
                audit_queue_close(q[k], &res);
                assert_int_equal(res.unwritten, 0);
        }
        close(p[0]);
}

static const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_queue_drops_and_counts),
        cmocka_unit_test(per_uid_budget),
        cmocka_unit_test(close_interrupts_a_blocked_write),
        cmocka_unit_test(finish_wakes_when_idle),
        cmocka_unit_test(oversize_line_taken_when_empty),
        cmocka_unit_test(writers_of_one_pipe_take_turns),
        cmocka_unit_test(close_mid_line_ends_the_fragment),
};

int main(int argc, char **argv)
{
        wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wake_fd < 0 || audit_queue_init(wake_fd) < 0)
                return 2;
        return unit_main(argc, argv, "tests", tests, sizeof(tests) / sizeof(tests[0]), NULL, 0);
}
