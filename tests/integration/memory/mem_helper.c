/* seccell-mem-helper: programs run inside `seccell run --max-memory M` by
 * test_memory.py. Each subcommand makes exact memory syscalls and prints
 * what it did on stdout, one line at a time, written with write(2) from a
 * stack buffer (stdio would malloc, and malloc moves the break).
 *
 * Every request that can be charged is announced first:
 *
 *     req <step> <syscall> data <D> grow <G>
 *
 * where D is this process's /proc/self/statm field 6 (data + stack, the
 * kernel's data_vm) in bytes just before the call and G the growth the
 * call asks for by the defined measure; then, if the process was not
 * killed, `ok <step>`. Nothing charged happens between the `req` line and
 * the call, so for a one-process sandbox a memory_kill event's ledger must
 * equal the last D, and the kill must happen exactly at the first request
 * with D + G > M.
 *
 * Exit status: 0 when the subcommand ran to its end, 2 on a usage error,
 * 3 when a call failed unexpectedly (the line says which).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08 /* Linux 6.11: private memory the kernel may drop */
#endif


#define MIB (1024ull * 1024ull)
#define PAGE 4096ull
#define PAGE_UP(x) (((x) + PAGE - 1) & ~(PAGE - 1))

/* Deadline for any condition the helper waits for. */
#define DEADLINE_MS 60000

static const char *self_path;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t)n > sizeof(buf) - 2)
                n = sizeof(buf) - 2;
        buf[n++] = '\n';
        for (int off = 0; off < n;) {
                ssize_t w = write(1, buf + off, (size_t)(n - off));
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return;
                off += (int)w;
        }
}

static _Noreturn void fail(const char *what)
{
        say("error %s: %s", what, strerror(errno));
        _exit(3);
}

static _Noreturn void usage(void)
{
        say("usage error");
        _exit(2);
}

static uint64_t num(const char *s)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 0);
        if (errno || *end || end == s)
                usage();
        return v;
}

static int64_t snum(const char *s)
{
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 0);
        if (errno || *end || end == s)
                usage();
        return v;
}

/* /proc/<pid>/statm field 6 in bytes; 0 when unreadable (gone, zombie). */
static uint64_t statm_data_of(const char *pid)
{
        char path[64], buf[256];
        snprintf(path, sizeof(path), "/proc/%s/statm", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        unsigned long long f[6];
        if (sscanf(buf, "%llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5]) != 6)
                return 0;
        return f[5] * PAGE;
}

/* thread-self: /proc/self/statm (the thread-group leader's) reads zeros
 * once the leader has exited, whatever its live threads hold. */
static uint64_t data_now(void) { return statm_data_of("thread-self"); }

static int step_no;

/* Announce a request of `grow` bytes by `call`; returns the step number. */
static int announce(const char *call, uint64_t grow)
{
        step_no++;
        say("req %d %s data %" PRIu64 " grow %" PRIu64, step_no, call, data_now(), grow);
        return step_no;
}

static void touch(void *p, uint64_t len)
{
        volatile char *c = p;
        for (uint64_t off = 0; off < len; off += PAGE)
                c[off] = 1;
}

/* A private (or shared) writable anonymous mapping, announced and touched. */
static void *map_anon(uint64_t len, int flags)
{
        int s = announce(flags & MAP_SHARED ? "mmap-shared" : "mmap", PAGE_UP(len));
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                fail("mmap");
        touch(p, len);
        say("ok %d", s);
        return p;
}

/* The break moved up by `len` bytes (sbrk), announced and touched. */
static void sbrk_anon(uint64_t len)
{
        int s = announce("brk", len);
        void *p = sbrk((intptr_t)len);
        if (p == (void *)-1)
                fail("sbrk");
        touch(p, len);
        say("ok %d", s);
}

static int wait_readable(int fd, int ms)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };
        for (;;) {
                int r = poll(&p, 1, ms);
                if (r < 0 && errno == EINTR)
                        continue;
                return r;
        }
}

/* Read one byte from fd within the deadline (EOF counts as the byte). */
static void await_byte(int fd, const char *what)
{
        if (wait_readable(fd, DEADLINE_MS) <= 0) {
                errno = ETIMEDOUT;
                fail(what);
        }
        char c;
        while (read(fd, &c, 1) < 0 && errno == EINTR)
                ;
}

static void send_byte(int fd)
{
        char c = 1;
        while (write(fd, &c, 1) < 0 && errno == EINTR)
                ;
}

/* waitpid with a deadline: SIGKILL the child when it passes. */
static int wait_child(pid_t pid)
{
        for (int i = 0; i < DEADLINE_MS; i++) {
                int st;
                pid_t r = waitpid(pid, &st, WNOHANG);
                if (r == pid)
                        return st;
                if (r < 0 && errno != EINTR)
                        fail("waitpid");
                struct timespec ts = { 0, 1000000 };
                nanosleep(&ts, NULL);
        }
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        errno = ETIMEDOUT;
        fail("child deadline");
}

static void print_status(const char *label, int k, pid_t pid, int st)
{
        if (WIFEXITED(st))
                say("%s %d pid %d exit %d", label, k, pid, WEXITSTATUS(st));
        else if (WIFSIGNALED(st))
                say("%s %d pid %d signal %d", label, k, pid, WTERMSIG(st));
        else
                say("%s %d pid %d status %d", label, k, pid, st);
}

/* ---------------------------------------------------------------- mmap */

/* An unnamed file of $TMPDIR (or /tmp), `len` bytes long (sparse). */
static int tmp_file(uint64_t len)
{
        const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, (off_t)len) < 0)
                fail("a temporary file");
        return fd;
}

/* map KIND MIB COUNT: COUNT mappings of MIB each, touched, kept mapped.
 * KIND: anon (MAP_PRIVATE|MAP_ANONYMOUS), devzero (/dev/zero MAP_PRIVATE),
 * shared (MAP_SHARED|MAP_ANONYMOUS), devzeroshared (/dev/zero MAP_SHARED),
 * file (a sparse file of $TMPDIR or /tmp MAP_SHARED: page cache, never
 * memory). All PROT_READ|PROT_WRITE. */
static int cmd_map(int argc, char **argv)
{
        if (argc != 3)
                usage();
        const char *kind = argv[0];
        uint64_t len = num(argv[1]) * MIB, count = num(argv[2]);
        for (uint64_t i = 0; i < count; i++) {
                if (!strcmp(kind, "anon")) {
                        map_anon(len, MAP_PRIVATE);
                } else if (!strcmp(kind, "shared")) {
                        map_anon(len, MAP_SHARED);
                } else if (!strcmp(kind, "devzero") || !strcmp(kind, "devzeroshared") ||
                           !strcmp(kind, "file")) {
                        bool file = !strcmp(kind, "file");
                        int fd;
                        if (file) {
                                fd = tmp_file(len);
                        } else {
                                fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
                                if (fd < 0)
                                        fail("open /dev/zero");
                        }
                        bool shared = strcmp(kind, "devzero") != 0;
                        /* page cache is not memory: announced as no growth */
                        int s = announce(shared ? "mmap-shared" : "mmap-devzero", file ? 0 : len);
                        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, shared ? MAP_SHARED : MAP_PRIVATE, fd, 0);
                        if (p == MAP_FAILED)
                                fail("mmap of a descriptor");
                        close(fd);
                        touch(p, len);
                        if (file)
                                munmap(p, len); /* its pages go back to the file */
                        say("ok %d", s);
                } else {
                        usage();
                }
        }
        say("done data %" PRIu64, data_now());
        return 0;
}

/* reserve MIB HOW:MIB...: a PROT_NONE reservation of MIB, then each commit
 * in turn at increasing offsets, made writable by HOW (mprotect,
 * pkey_mprotect with pkey -1, or fixed: mmap MAP_FIXED over the
 * reservation) and touched. remprotect and refixed do the same to the last
 * MIB already committed (writable already: no growth) and do not advance. */
static int cmd_reserve(int argc, char **argv)
{
        if (argc < 1)
                usage();
        uint64_t len = num(argv[0]) * MIB;
        char *base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (base == MAP_FAILED)
                fail("mmap PROT_NONE");
        say("reserved %" PRIu64 " data %" PRIu64, len, data_now());
        uint64_t off = 0;
        for (int i = 1; i < argc; i++) {
                char how[32];
                unsigned long long mib;
                if (sscanf(argv[i], "%31[a-z_]:%llu", how, &mib) != 2)
                        usage();
                uint64_t n = mib * MIB;
                bool again = !strncmp(how, "re", 2);
                if (again ? n > off : off + n > len)
                        usage();
                char *p = base + (again ? off - n : off);
                int s;
                if (!strcmp(how, "remprotect")) {
                        s = announce("mprotect", 0);
                        if (mprotect(p, n, PROT_READ | PROT_WRITE))
                                fail("mprotect");
                } else if (!strcmp(how, "refixed")) {
                        s = announce("mmap-fixed", 0);
                        if (mmap(p, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !=
                            p)
                                fail("mmap MAP_FIXED");
                } else if (!strcmp(how, "mprotect")) {
                        s = announce("mprotect", n);
                        if (mprotect(p, n, PROT_READ | PROT_WRITE))
                                fail("mprotect");
                } else if (!strcmp(how, "pkey")) {
                        s = announce("pkey_mprotect", n);
                        if (syscall(SYS_pkey_mprotect, p, n, PROT_READ | PROT_WRITE, -1))
                                fail("pkey_mprotect");
                } else if (!strcmp(how, "fixed")) {
                        s = announce("mmap-fixed", n);
                        if (mmap(p, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !=
                            p)
                                fail("mmap MAP_FIXED");
                } else {
                        usage();
                }
                touch(p, n);
                say("ok %d", s);
                if (!again)
                        off += n;
        }
        say("done data %" PRIu64, data_now());
        return 0;
}

/* mremap OLD NEW: OLD MiB touched, grown in place or moved to NEW MiB. */
static int cmd_mremap(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t old = num(argv[0]) * MIB, new = num(argv[1]) * MIB;
        void *p = map_anon(old, MAP_PRIVATE);
        int s = announce("mremap", new > old ? new - old : 0);
        void *q = mremap(p, old, new, MREMAP_MAYMOVE);
        if (q == MAP_FAILED)
                fail("mremap");
        touch(q, new);
        say("ok %d", s);
        say("done data %" PRIu64, data_now());
        return 0;
}

static void start_thread(pthread_t *th, void *(*fn)(void *), void *arg);

/* The number of the call thread `tid` of process `pid` is blocked in
 * (/proc/<pid>/task/<tid>/syscall: -1 outside any), or -2 when it runs or
 * cannot be read. */
static long task_call(pid_t pid, pid_t tid)
{
        char path[96], buf[64] = "";
        snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)pid, (int)tid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
        if (fd >= 0)
                close(fd);
        char *end;
        long nr = n > 0 ? strtol(buf, &end, 10) : 0;
        return n > 0 && end != buf ? nr : -2;
}

/* grantwait MIB ASK: a thread maps MIB (not touched: no page fault after
 * its call) and blocks reading an eventfd; once it shows blocked in that
 * read (/proc/self/task/<tid>/syscall), the main thread maps ASK MiB
 * (touched). Prints "done data D". Found in review: the thread's grant
 * still counted on top of the measure that showed its mapping, and the
 * main thread's request, which fitted, was killed. */
static int grantwait_efd;
static uint64_t grantwait_len;
static _Atomic pid_t grantwait_tid;

static void *grantwait_thread(void *arg)
{
        (void)arg;
        grantwait_tid = (pid_t)syscall(SYS_gettid);
        if (mmap(NULL, grantwait_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
                fail("mmap");
        uint64_t v;
        (void)!read(grantwait_efd, &v, sizeof(v));
        return NULL;
}

static int cmd_grantwait(int argc, char **argv)
{
        if (argc != 2)
                usage();
        grantwait_len = num(argv[0]) * MIB;
        uint64_t ask = num(argv[1]) * MIB;
        grantwait_efd = eventfd(0, EFD_CLOEXEC);
        if (grantwait_efd < 0)
                fail("eventfd");
        pthread_t th;
        start_thread(&th, grantwait_thread, NULL);
        for (int waited = 0; !grantwait_tid || task_call(getpid(), grantwait_tid) != SYS_read; waited++) {
                if (waited > DEADLINE_MS)
                        fail("the thread never blocked in its read");
                usleep(1000);
        }
        map_anon(ask, MAP_PRIVATE);
        uint64_t one = 1;
        (void)!write(grantwait_efd, &one, sizeof(one));
        pthread_join(th, NULL);
        say("done data %" PRIu64, data_now());
        return 0;
}

/* grantrun MAP ASK: thread M maps MAP MiB (not touched) and runs on for
 * a few ms (no fault, no call) while the main thread maps ASK MiB, then
 * touches its mapping; prints "done data D".
 * M's grant, counted on top of the measure that shows its mapping, makes
 * the ledger cross the limit at the main thread's request, which fits.
 * Found in CI: the request was killed; it is held while M runs (for
 * up to 100 ms from when M was first seen running) and then let through. */
static _Atomic int grantrun_mapped;
static uint64_t grantrun_len;

static void *grantrun_thread(void *arg)
{
        (void)arg;
        char *p = mmap(NULL, grantrun_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                fail("mmap");
        /* runs: no call (clock_gettime may be one, as on this VM's
         * clock source), no fault, while the main thread asks - 40M TSC
         * ticks, 16 ms at this machine's 2.45 GHz, 40 ms at 1 GHz: well
         * within the 100 ms a request is held for it */
        uint64_t t0 = __builtin_ia32_rdtsc();
        grantrun_mapped = 1;
        while (__builtin_ia32_rdtsc() - t0 < 40000000)
                ;
        touch(p, grantrun_len);
        return NULL;
}

static int cmd_grantrun(int argc, char **argv)
{
        if (argc != 2)
                usage();
        grantrun_len = num(argv[0]) * MIB;
        uint64_t ask = num(argv[1]) * MIB;
        grantrun_mapped = 0; /* its page present: M's store takes no fault */
        pthread_t m;
        start_thread(&m, grantrun_thread, NULL);
        while (!grantrun_mapped)
                usleep(100);
        map_anon(ask, MAP_PRIVATE);
        pthread_join(m, NULL);
        say("done data %" PRIu64, data_now());
        return 0;
}

/* stopgrant MAP ASK: a child P whose thread B populates, over and over,
 * a read-only reservation of 4 GiB (MADV_POPULATE_READ: P's mmap lock
 * held, nothing in the measure) while its thread T maps and unmaps MAP MiB
 * in a loop; once T is seen waiting for the lock inside its (allowed)
 * mmap, P stops itself (SIGSTOP), so T stops on its way out of that mmap,
 * which its /proc/<tid>/syscall still shows. Once P is stopped this
 * process maps ASK MiB (touched), then ends P. Prints "mapper stopped in
 * N" (N: the call T's syscall file shows) and "done". Found in review:
 * T's grant counted on top of the measure that showed its mapping while
 * it stayed stopped, and the request, which fitted, was killed. */
static _Atomic pid_t stopgrant_mapper_tid;
static char *stopgrant_resv;
#define STOPGRANT_RESV (4096 * MIB)

static _Noreturn void *stopgrant_blocker(void *arg)
{
        (void)arg;
        for (;;) {
                madvise(stopgrant_resv, STOPGRANT_RESV, 22 /* MADV_POPULATE_READ */);
                madvise(stopgrant_resv, STOPGRANT_RESV, MADV_DONTNEED);
        }
}

static _Noreturn void *stopgrant_mapper(void *arg)
{
        uint64_t len = *(uint64_t *)arg;
        stopgrant_mapper_tid = (pid_t)syscall(SYS_gettid);
        for (;;) {
                void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                        fail("mmap");
                munmap(p, len);
        }
}

static int cmd_stopgrant(int argc, char **argv)
{
        if (argc != 2)
                usage();
        static uint64_t len;
        len = num(argv[0]) * MIB;
        uint64_t ask = num(argv[1]) * MIB;
        pid_t p = fork();
        if (p < 0)
                fail("fork");
        if (p == 0) {
                stopgrant_resv = mmap(NULL, STOPGRANT_RESV, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                                      -1, 0);
                if (stopgrant_resv == MAP_FAILED)
                        fail("mmap reservation");
                madvise(stopgrant_resv, STOPGRANT_RESV, MADV_NOHUGEPAGE);
                pthread_t b, t;
                start_thread(&b, stopgrant_blocker, NULL);
                start_thread(&t, stopgrant_mapper, &len);
                /* T inside its mmap, waiting for the lock B holds */
                for (int waited = 0;
                     !stopgrant_mapper_tid || task_call(getpid(), stopgrant_mapper_tid) != SYS_mmap; waited++) {
                        if (waited > DEADLINE_MS)
                                fail("the mapper never waited in its mmap");
                        usleep(1000);
                }
                kill(getpid(), SIGSTOP);
                for (;;)
                        pause();
        }
        int st;
        if (waitpid(p, &st, WUNTRACED) != p || !WIFSTOPPED(st))
                fail("waitpid for the stop");
        /* every thread stopped: T's last call */
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/task", (int)p);
        DIR *d = opendir(path);
        long mapper_call = -3;
        for (struct dirent *de; d && (de = readdir(d));) {
                pid_t tid = (pid_t)atoi(de->d_name);
                if (tid > 0 && tid != p && task_call(p, tid) != SYS_madvise)
                        mapper_call = task_call(p, tid); /* B stops in madvise */
        }
        if (d)
                closedir(d);
        say("mapper stopped in %ld", mapper_call);
        map_anon(ask, MAP_PRIVATE);
        kill(p, SIGKILL);
        wait_child(p);
        say("done data %" PRIu64, data_now());
        return 0;
}

/* remapspan HOLD COPIES: a read-only page, then HOLD MiB writable (judged
 * at its mmap, touched), moved together COPIES times by one
 * mremap(MREMAP_FIXED|MREMAP_DONTUNMAP) each (Linux 6.17: a move may span
 * mappings), announced as HOLD: the old range stays mapped, in data_vm,
 * and is touched again. Found in review: judged by the read-only page
 * alone, each copy was let through uncharged. */
static int cmd_remapspan(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t hold = num(argv[0]) * MIB, copies = num(argv[1]), span = PAGE + hold;
        char *src = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (src == MAP_FAILED || mmap(src, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != src)
                fail("mmap");
        int s = announce("mmap", hold);
        if (mmap(src + PAGE, hold, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) !=
            src + PAGE)
                fail("mmap");
        touch(src + PAGE, hold);
        say("ok %d", s);
        for (uint64_t i = 0; i < copies; i++) {
                char *to = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (to == MAP_FAILED)
                        fail("mmap");
                s = announce("mremap", hold);
                if (mremap(src, span, span, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to) != to)
                        fail("mremap");
                touch(src + PAGE, hold);
                say("ok %d", s);
        }
        say("done data %" PRIu64, data_now());
        return 0;
}

/* remapmany N: N one-page mappings side by side, read-only and writable
 * in turn (each its own mapping), moved together by one
 * mremap(MREMAP_FIXED); says "moved" or "mremap errno E". */
static int cmd_remapmany(int argc, char **argv)
{
        if (argc != 1)
                usage();
        uint64_t n = num(argv[0]);
        char *src = mmap(NULL, n * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        char *to = mmap(NULL, n * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (src == MAP_FAILED || to == MAP_FAILED)
                fail("mmap");
        for (uint64_t i = 0; i < n; i++)
                if (mprotect(src + i * PAGE, PAGE, i % 2 ? PROT_READ | PROT_WRITE : PROT_READ))
                        fail("mprotect");
        if (mremap(src, n * PAGE, n * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to) == to)
                say("moved");
        else
                say("mremap errno %d", errno);
        return 0;
}

/* remapfixed MODE HOLD: a child holds HOLD MiB (touched) and waits; this
 * process maps a 24 MiB destination and a 16 MiB source (touched), then
 * moves the source onto the destination with MREMAP_FIXED - MODE grow: to
 * 24 MiB (data_vm -16 -24 +24), dontunmap: MREMAP_DONTUNMAP, 16 MiB (the
 * destination's first 16 MiB replaced) - and says "done". Found in review:
 * the private memory the move replaces was not netted out, and near the
 * limit the request was killed for growth the measure never showed. */
static int cmd_remapfixed(int argc, char **argv)
{
        if (argc != 2)
                usage();
        bool dont = !strcmp(argv[0], "dontunmap");
        if (!dont && strcmp(argv[0], "grow"))
                usage();
        uint64_t hold = num(argv[1]) * MIB, len = 16 * MIB, to = dont ? len : 24 * MIB;
        int go[2], ready[2];
        if (pipe2(go, O_CLOEXEC) || pipe2(ready, O_CLOEXEC))
                fail("pipe");
        pid_t child = fork();
        if (child < 0)
                fail("fork");
        if (child == 0) {
                map_anon(hold, MAP_PRIVATE);
                send_byte(ready[1]);
                await_byte(go[0], "parent"); /* its end */
                _exit(0);
        }
        await_byte(ready[0], "holder");
        char *dst = map_anon(24 * MIB, MAP_PRIVATE), *src = map_anon(len, MAP_PRIVATE);
        int s = announce("mremap", dont ? len : to - len);
        if (mremap(src, len, to, MREMAP_MAYMOVE | MREMAP_FIXED | (dont ? MREMAP_DONTUNMAP : 0), dst) != dst)
                fail("mremap");
        say("ok %d", s);
        send_byte(go[1]);
        print_status("holder", 1, child, wait_child(child));
        say("done data %" PRIu64, data_now());
        return 0;
}

/* remapshared KIND MIB GROW: MIB mapped and touched, then mremap'd to
 * MIB+GROW (announced as no growth) - a shared mapping adds nothing to
 * data_vm, and its object no page (past the object a fault is SIGBUS).
 * KIND: file (a file of $TMPDIR or /tmp, MIB+GROW long, mapped shared:
 * all of it touched after), anon (MAP_SHARED|MAP_ANONYMOUS), dup (anon
 * duplicated: mremap with old size 0, MIB), sysv (a SysV segment of MIB,
 * removed once attached), ro (private, PROT_READ: not in data_vm; then
 * mprotect'd writable, announced as MIB+GROW, and touched). */
static int cmd_remapshared(int argc, char **argv)
{
        if (argc != 3)
                usage();
        const char *kind = argv[0];
        uint64_t len = num(argv[1]) * MIB, grow = num(argv[2]) * MIB, to = len + grow;
        char *p;
        if (!strcmp(kind, "file")) {
                int fd = tmp_file(to);
                p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (p == MAP_FAILED)
                        fail("mmap of a file");
                close(fd);
                touch(p, len);
        } else if (!strcmp(kind, "anon") || !strcmp(kind, "dup")) {
                p = map_anon(len, MAP_SHARED);
        } else if (!strcmp(kind, "sysv")) {
                int s = announce("shmget", len);
                int id = shmget(IPC_PRIVATE, len, IPC_CREAT | 0600);
                if (id < 0)
                        fail("shmget");
                say("ok %d", s);
                p = shmat(id, NULL, 0);
                shmctl(id, IPC_RMID, NULL);
                if (p == (void *)-1)
                        fail("shmat");
                touch(p, len);
        } else if (!strcmp(kind, "ro")) {
                p = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                        fail("mmap");
        } else {
                usage();
        }
        int s = announce("mremap", 0);
        char *q = !strcmp(kind, "dup") ? mremap(p, 0, len, MREMAP_MAYMOVE) : mremap(p, len, to, MREMAP_MAYMOVE);
        if (q == MAP_FAILED)
                fail("mremap");
        say("ok %d", s);
        if (!strcmp(kind, "file"))
                touch(q, to); /* page cache */
        else if (!strcmp(kind, "dup"))
                touch(q, len); /* the same object's pages */
        if (!strcmp(kind, "ro")) {
                s = announce("mprotect", to);
                if (mprotect(q, to, PROT_READ | PROT_WRITE))
                        fail("mprotect");
                touch(q, to);
                say("ok %d", s);
        }
        say("done data %" PRIu64, data_now());
        return 0;
}

/* dontunmap ROUNDS MIB: MIB touched; each round mremap(p, MIB, MIB,
 * MREMAP_MAYMOVE|MREMAP_DONTUNMAP), old and new ranges touched and kept
 * mapped; the next round moves the new range. */
static int cmd_dontunmap(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t rounds = num(argv[0]), len = num(argv[1]) * MIB;
        char *p = map_anon(len, MAP_PRIVATE);
        for (uint64_t r = 1; r <= rounds; r++) {
                int s = announce("mremap-dontunmap", len);
                char *q = mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
                if (q == MAP_FAILED)
                        fail("mremap MREMAP_DONTUNMAP");
                touch(p, len);
                touch(q, len);
                say("ok %d", s);
                say("round %" PRIu64 " data %" PRIu64, r, data_now());
                p = q;
        }
        say("done data %" PRIu64, data_now());
        return 0;
}

/* ----------------------------------------------------------------- brk */

/* brk STEP_MIB COUNT: COUNT times brk(current + STEP) with the raw
 * syscall, each touched. */
static int cmd_brk(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t step = num(argv[0]) * MIB, count = num(argv[1]);
        uintptr_t cur = (uintptr_t)syscall(SYS_brk, 0);
        say("break %#" PRIxPTR, cur);
        for (uint64_t i = 0; i < count; i++) {
                uintptr_t want = cur + step;
                int s = announce("brk", PAGE_UP(want) - PAGE_UP(cur));
                uintptr_t got = (uintptr_t)syscall(SYS_brk, want);
                if (got != want) {
                        errno = ENOMEM;
                        fail("brk");
                }
                touch((void *)PAGE_UP(cur), PAGE_UP(want) - PAGE_UP(cur));
                say("ok %d", s);
                cur = want;
        }
        say("done data %" PRIu64, data_now());
        return 0;
}

/* brkblocked MIB N: a PROT_NONE page just above the break (mmap without
 * write permission: never judged) makes the kernel refuse brk requests of
 * 1..N x MIB past the break in turn; then the page goes and one brk asks
 * for N x MIB at once, which is touched. Refused requests must not count
 * as the break: each asks for i x MIB. */
static int cmd_brkblocked(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t step = num(argv[0]) * MIB, count = num(argv[1]);
        uintptr_t cur = (uintptr_t)syscall(SYS_brk, 0);
        void *ob = (void *)PAGE_UP(cur + 1);
        if (mmap(ob, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != ob)
                fail("mmap obstacle");
        for (uint64_t i = 1; i <= count; i++) {
                /* asks for i x MIB past the real break; refused by the kernel */
                int s = announce("brk", i * step);
                if ((uintptr_t)syscall(SYS_brk, cur + i * step) != cur) {
                        errno = EEXIST;
                        fail("brk went past the obstacle");
                }
                say("ok %d", s);
        }
        munmap(ob, PAGE);
        uintptr_t want = cur + count * step;
        int s = announce("brk", PAGE_UP(want) - PAGE_UP(cur));
        if ((uintptr_t)syscall(SYS_brk, want) != want) {
                errno = ENOMEM;
                fail("brk");
        }
        say("ok %d", s);
        touch((void *)PAGE_UP(cur), PAGE_UP(want) - PAGE_UP(cur));
        say("done data %" PRIu64, data_now());
        return 0;
}

/* brkdecoy X Y: the break made page-aligned, X MiB of PROT_NONE mapped at
 * it (never judged; the kernel names it "[heap]": it holds the break),
 * then brk(break + Y MiB), announced as Y - which the decoy makes the
 * kernel refuse ("brk refused"), and which another thread unmapping the
 * decoy at the right moment would let through. */
static int cmd_brkdecoy(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t x = num(argv[0]) * MIB, y = num(argv[1]) * MIB;
        uintptr_t cur = (uintptr_t)syscall(SYS_brk, 0), at = PAGE_UP(cur);
        if (at != cur) {
                int s = announce("brk", 0);
                if ((uintptr_t)syscall(SYS_brk, at) != at) {
                        errno = ENOMEM;
                        fail("brk");
                }
                say("ok %d", s);
        }
        if (mmap((void *)at, x, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != (void *)at)
                fail("mmap decoy");
        int s = announce("brk", y);
        say((uintptr_t)syscall(SYS_brk, at + y) == at + y ? "brk moved" : "brk refused");
        say("ok %d", s);
        munmap((void *)at, x);
        say("done data %" PRIu64, data_now());
        return 0;
}

/* heapnone HOLD HEAP ASK: HOLD MiB mapped (touched), the heap grown by
 * HEAP MiB (brk, touched) and made PROT_NONE (not notified: it leaves
 * data_vm), then brk(+ASK), touched. Found in review: the break taken as
 * the end of the last writable heap piece charged the PROT_NONE heap
 * again, and the brk, which fitted, was killed. */
static int cmd_heapnone(int argc, char **argv)
{
        if (argc != 3)
                usage();
        uint64_t hold = num(argv[0]) * MIB, heap = num(argv[1]) * MIB, ask = num(argv[2]) * MIB;
        map_anon(hold, MAP_PRIVATE);
        uintptr_t cur = (uintptr_t)syscall(SYS_brk, 0), at = PAGE_UP(cur);
        int s = announce("brk", PAGE_UP(at + heap) - at);
        if ((uintptr_t)syscall(SYS_brk, at + heap) != at + heap) {
                errno = ENOMEM;
                fail("brk");
        }
        touch((void *)at, heap);
        say("ok %d", s);
        if (mprotect((void *)at, heap, PROT_NONE))
                fail("mprotect");
        s = announce("brk", ask);
        if ((uintptr_t)syscall(SYS_brk, at + heap + ask) != at + heap + ask) {
                errno = ENOMEM;
                fail("brk");
        }
        touch((void *)(at + heap), ask);
        say("ok %d", s);
        say("done data %" PRIu64, data_now());
        return 0;
}

/* execgrant MAP ASK: threads T1 and T2 start and wait; then T1 maps MAP
 * MiB (touched) and waits; then T2 makes an exec that fails (ENOENT) and
 * waits; then this thread maps ASK MiB (touched) and says "done" - with
 * no request between T1's and the exec. Found in review: with T2's exec
 * taken as pending for good, T1's grant counted on top of the measure
 * that showed its mapping, and the request, which fitted, was killed. */
static int execgrant_done[2], execgrant_go[2][2];
static uint64_t execgrant_len;

static _Noreturn void *execgrant_mapper(void *arg)
{
        (void)arg;
        await_byte(execgrant_go[0][0], "go");
        map_anon(execgrant_len, MAP_PRIVATE);
        send_byte(execgrant_done[1]);
        for (;;)
                pause();
}

static _Noreturn void *execgrant_execer(void *arg)
{
        (void)arg;
        await_byte(execgrant_go[1][0], "go");
        execl("/nonexistent/seccell-mem-helper", "seccell-mem-helper", (char *)NULL);
        say("exec errno %d", errno);
        send_byte(execgrant_done[1]);
        for (;;)
                pause();
}

static int cmd_execgrant(int argc, char **argv)
{
        if (argc != 2)
                usage();
        execgrant_len = num(argv[0]) * MIB;
        uint64_t ask = num(argv[1]) * MIB;
        if (pipe2(execgrant_done, O_CLOEXEC) || pipe2(execgrant_go[0], O_CLOEXEC) || pipe2(execgrant_go[1], O_CLOEXEC))
                fail("pipe");
        pthread_t t1, t2;
        start_thread(&t1, execgrant_mapper, NULL);
        start_thread(&t2, execgrant_execer, NULL);
        send_byte(execgrant_go[0][1]);
        await_byte(execgrant_done[0], "the mapper");
        send_byte(execgrant_go[1][1]);
        await_byte(execgrant_done[0], "the failed exec");
        map_anon(ask, MAP_PRIVATE);
        say("done data %" PRIu64, data_now());
        return 0;
}

/* execchain N MIB: grow the heap by MIB (sbrk, touched), then exec this
 * helper with N-1; at 0 print "chain end". */
static int cmd_execchain(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t n = num(argv[0]), len = num(argv[1]) * MIB;
        void *p = sbrk((intptr_t)len);
        if (p == (void *)-1)
                fail("sbrk");
        touch(p, len);
        if (n == 0) {
                say("chain end pid %d", (int)getpid());
                return 0;
        }
        char next[32];
        snprintf(next, sizeof(next), "%" PRIu64, n - 1);
        execl(self_path, self_path, "execchain", next, argv[1], (char *)NULL);
        fail("execl");
}

/* forkexec N MIB: N times: fork; the child grows its heap by MIB (sbrk,
 * touched) and execs sh -c 'echo ok'; the parent waits. */
static int cmd_forkexec(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t n = num(argv[0]), len = num(argv[1]) * MIB;
        int good = 0;
        for (uint64_t i = 1; i <= n; i++) {
                pid_t pid = fork();
                if (pid < 0)
                        fail("fork");
                if (pid == 0) {
                        void *p = sbrk((intptr_t)len);
                        if (p == (void *)-1)
                                _exit(4);
                        touch(p, len);
                        execl("/bin/sh", "sh", "-c", "echo ok", (char *)NULL);
                        _exit(5);
                }
                int st = wait_child(pid);
                good += WIFEXITED(st) && WEXITSTATUS(st) == 0;
                if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
                        print_status("child", (int)i, pid, st);
        }
        say("forkexec %d/%" PRIu64, good, n);
        return 0;
}

/* fixedshared MIB: MIB of anonymous shared memory, touched, kept by a
 * forked child; then the parent maps MIB of private memory over its view
 * (MAP_FIXED) and touches it. The shared memory lives on in the child, so
 * the fixed mapping adds MIB. */
static int cmd_fixedshared(int argc, char **argv)
{
        if (argc != 1)
                usage();
        uint64_t len = num(argv[0]) * MIB;
        char *p = map_anon(len, MAP_SHARED);
        int go[2];
        if (pipe(go))
                fail("pipe");
        pid_t child = fork();
        if (child < 0)
                fail("fork");
        if (child == 0) {
                close(go[1]);
                await_byte(go[0], "parent");
                touch(p, len);
                for (;;)
                        pause();
        }
        close(go[0]);
        int s = announce("mmap-fixed", len);
        if (mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != p)
                fail("mmap MAP_FIXED");
        say("ok %d", s);
        touch(p, len);
        send_byte(go[1]);
        kill(child, SIGKILL);
        wait_child(child);
        say("done");
        return 0;
}

/* sharedover MIB THEN: MIB of private memory mapped and touched, then
 * MIB of anonymous shared memory mapped MAP_FIXED over it and touched
 * (announced as no growth: the private memory it replaces leaves statm),
 * then THEN MiB of private memory. The shared memory is in no statm: the
 * sandbox now holds MIB + THEN. */
static int cmd_sharedover(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t len = num(argv[0]) * MIB, then = num(argv[1]) * MIB;
        char *p = map_anon(len, MAP_PRIVATE);
        int s = announce("mmap-shared", 0);
        if (mmap(p, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != p)
                fail("mmap MAP_FIXED shared");
        say("ok %d", s);
        touch(p, len);
        map_anon(then, MAP_PRIVATE);
        say("done");
        return 0;
}

/* sleepers N MIB: N children that only wait, then one more that maps and
 * touches MIB and exits; prints how that last child ended. */
static int cmd_sleepers(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t n = num(argv[0]), len = num(argv[1]) * MIB;
        pid_t *kids = calloc(n, sizeof(*kids));
        if (!kids)
                fail("calloc");
        uint64_t made = 0;
        for (; made < n; made++) {
                kids[made] = fork();
                if (kids[made] < 0)
                        break; /* denied: the rest is the point */
                if (kids[made] == 0)
                        for (;;)
                                pause();
        }
        say("sleepers %" PRIu64, made);
        pid_t last = fork();
        if (last < 0)
                fail("fork");
        if (last == 0) {
                map_anon(len, MAP_PRIVATE);
                _exit(0);
        }
        print_status("last", 1, last, wait_child(last));
        for (uint64_t i = 0; i < made; i++) {
                kill(kids[i], SIGKILL);
                wait_child(kids[i]);
        }
        say("done");
        return 0;
}

/* ------------------------------------------------------------ processes */

/* seq N MIB: N children one after another, each maps and touches MIB,
 * reports ready, and then ends by the next way in turn: _exit(0),
 * abort() (no core file), SIGKILL from the parent. */
static int cmd_seq(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t n = num(argv[0]), len = num(argv[1]) * MIB;
        static const char *const how[] = { "exit", "abort", "killed" };
        int ready = 0;
        for (uint64_t i = 0; i < n; i++) {
                int fds[2];
                if (pipe2(fds, O_CLOEXEC))
                        fail("pipe");
                const char *mode = how[i % 3];
                pid_t pid = fork();
                if (pid < 0)
                        fail("fork");
                if (pid == 0) {
                        close(fds[0]);
                        struct rlimit no_core = { 0, 0 };
                        setrlimit(RLIMIT_CORE, &no_core);
                        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                        if (p == MAP_FAILED)
                                _exit(4);
                        touch(p, len);
                        send_byte(fds[1]);
                        if (!strcmp(mode, "exit"))
                                _exit(0);
                        if (!strcmp(mode, "abort"))
                                abort();
                        for (;;)
                                pause();
                }
                close(fds[1]);
                /* EOF without the byte: the child died before touching */
                struct pollfd pf = { .fd = fds[0], .events = POLLIN };
                bool got = false;
                if (poll(&pf, 1, DEADLINE_MS) > 0) {
                        char c;
                        got = read(fds[0], &c, 1) == 1;
                }
                close(fds[0]);
                if (got)
                        ready++;
                if (!strcmp(mode, "killed"))
                        kill(pid, SIGKILL);
                int st = wait_child(pid);
                say("child %" PRIu64 " %s %s", i + 1, mode, got ? "ready" : "not-ready");
                print_status("status", (int)i + 1, pid, st);
        }
        say("ready %d/%" PRIu64, ready, n);
        return 0;
}

/* offender BIG SMALL: child B maps and touches SMALL and holds it; then
 * child A maps BIG (past the limit); then B maps SMALL more and exits 0.
 * The parent reports both statuses and exits 0. */
static int cmd_offender(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t big = num(argv[0]) * MIB, small = num(argv[1]) * MIB;
        int ready[2], go[2];
        if (pipe2(ready, O_CLOEXEC) || pipe2(go, O_CLOEXEC))
                fail("pipe");
        pid_t b = fork();
        if (b < 0)
                fail("fork");
        if (b == 0) {
                close(ready[0]);
                close(go[1]);
                map_anon(small, MAP_PRIVATE);
                send_byte(ready[1]);
                await_byte(go[0], "go");
                map_anon(small, MAP_PRIVATE);
                _exit(0);
        }
        close(ready[1]);
        close(go[0]);
        await_byte(ready[0], "sibling ready");
        say("sibling %d holds %" PRIu64, (int)b, small);
        pid_t a = fork();
        if (a < 0)
                fail("fork");
        if (a == 0) {
                say("offender %d", (int)getpid());
                map_anon(big, MAP_PRIVATE);
                _exit(0);
        }
        int sta = wait_child(a);
        print_status("offender", 1, a, sta);
        send_byte(go[1]);
        int stb = wait_child(b);
        print_status("sibling", 1, b, stb);
        map_anon(small, MAP_PRIVATE);
        say("parent done");
        return 0;
}

/* -------------------------------------------------------------- threads */


struct thread_arg {
        uint64_t len;
        char **argv;
        int ready;
};

static void *thread_map(void *arg)
{
        struct thread_arg *t = arg;
        map_anon(t->len, MAP_PRIVATE);
        return NULL;
}

/* threadmap MIB THEN: a non-leader thread maps and touches MIB and exits;
 * the main thread then maps THEN MiB. */
static int cmd_threadmap(int argc, char **argv)
{
        if (argc != 2)
                usage();
        struct thread_arg t = { .len = num(argv[0]) * MIB };
        uint64_t then = num(argv[1]) * MIB;
        say("before data %" PRIu64, data_now());
        pthread_t th;
        start_thread(&th, thread_map, &t);
        if ((errno = pthread_join(th, NULL)))
                fail("pthread_join");
        say("joined data %" PRIu64, data_now());
        map_anon(then, MAP_PRIVATE);
        say("done data %" PRIu64, data_now());
        return 0;
}

/* Threads get an explicit 1 MiB stack: its size is part of the measure
 * (data_vm counts thread stacks), so it must not depend on RLIMIT_STACK. */
#define THREAD_STACK (1024 * 1024)

static void start_thread(pthread_t *th, void *(*fn)(void *), void *arg)
{
        pthread_attr_t a;
        if ((errno = pthread_attr_init(&a)) || (errno = pthread_attr_setstacksize(&a, THREAD_STACK)) ||
            (errno = pthread_create(th, &a, fn, arg)))
                fail("pthread_create");
        pthread_attr_destroy(&a);
}

struct race {
        uint64_t len;
        int started, go; /* __atomic */
};

static void *race_map(void *arg)
{
        struct race *r = arg;
        __atomic_add_fetch(&r->started, 1, __ATOMIC_SEQ_CST);
        while (!__atomic_load_n(&r->go, __ATOMIC_SEQ_CST))
                ; /* spin: both threads ask at the same moment */
        if (mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
                fail("mmap");
        return NULL;
}

/* threadrace N MIB: N children one after another; in each, two threads
 * map MIB each at the same moment (one mapping fits the limit, two do
 * not), then the child reports its measure and exits 0. */
static int cmd_threadrace(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t n = num(argv[0]), len = num(argv[1]) * MIB;
        for (uint64_t i = 0; i < n; i++) {
                pid_t pid = fork();
                if (pid < 0)
                        fail("fork");
                if (pid == 0) {
                        struct race r = { .len = len };
                        pthread_t th[2];
                        for (int t = 0; t < 2; t++)
                                start_thread(&th[t], race_map, &r);
                        while (__atomic_load_n(&r.started, __ATOMIC_SEQ_CST) < 2)
                                ;
                        __atomic_store_n(&r.go, 1, __ATOMIC_SEQ_CST);
                        for (int t = 0; t < 2; t++)
                                if ((errno = pthread_join(th[t], NULL)))
                                        fail("pthread_join");
                        say("child %" PRIu64 " both mapped data %" PRIu64, i + 1, data_now());
                        _exit(0);
                }
                print_status("status", (int)i + 1, pid, wait_child(pid));
        }
        say("done");
        return 0;
}

/* procrace N MIB: N rounds; in each, two children map MIB each at the
 * same moment (one mapping fits the limit, two do not) and report their
 * measure; each holds its mapping until both have mapped or died, then
 * exits 0. The parent reports both statuses. */
static int cmd_procrace(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t n = num(argv[0]), len = num(argv[1]) * MIB;
        struct race *r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (r == MAP_FAILED)
                fail("mmap");
        for (uint64_t i = 0; i < n; i++) {
                *r = (struct race){ .len = len };
                int mapped[2][2], release[2];
                pid_t pid[2];
                if (pipe2(release, O_CLOEXEC))
                        fail("pipe");
                for (int c = 0; c < 2; c++) {
                        if (pipe2(mapped[c], O_CLOEXEC))
                                fail("pipe");
                        if ((pid[c] = fork()) < 0)
                                fail("fork");
                        if (pid[c] == 0) {
                                close(release[1]);
                                race_map(r);
                                say("round %" PRIu64 " child %d mapped data %" PRIu64, i + 1, c, data_now());
                                send_byte(mapped[c][1]);
                                await_byte(release[0], "release"); /* EOF */
                                _exit(0);
                        }
                        close(mapped[c][1]);
                }
                close(release[0]);
                while (__atomic_load_n(&r->started, __ATOMIC_SEQ_CST) < 2)
                        ;
                __atomic_store_n(&r->go, 1, __ATOMIC_SEQ_CST);
                for (int c = 0; c < 2; c++) {
                        await_byte(mapped[c][0], "mapped"); /* the byte, or EOF: killed */
                        close(mapped[c][0]);
                }
                close(release[1]);
                for (int c = 0; c < 2; c++)
                        print_status("status", (int)(2 * i + c + 1), pid[c], wait_child(pid[c]));
        }
        say("done");
        return 0;
}

/* forkmap: another thread maps while the main thread forks */
struct forkmap {
        uint64_t len;
        long delay_ns;
        void *p;
        int go, mapped, stop; /* __atomic */
};

static long now_ns(void)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void *forkmap_thread(void *arg)
{
        struct forkmap *f = arg;
        for (;;) {
                while (!__atomic_load_n(&f->go, __ATOMIC_SEQ_CST))
                        if (__atomic_load_n(&f->stop, __ATOMIC_SEQ_CST))
                                return NULL;
                __atomic_store_n(&f->go, 0, __ATOMIC_SEQ_CST);
                for (long end = now_ns() + f->delay_ns; now_ns() < end;)
                        ;
                char *p = mmap(NULL, f->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                        fail("mmap");
                p[0] = 1; /* its grant settles */
                f->p = p;
                __atomic_store_n(&f->mapped, 1, __ATOMIC_SEQ_CST);
        }
}

/* forkmap MIB TRIES KILLS: found in review. In each try a second thread
 * maps MIB (private, one page touched) 0-100 us after the main thread
 * starts a fork(), so that in some tries the mapping is let in after the
 * fork was judged and before the kernel copies the parent: the child then
 * holds a copy nobody judged. The child reports its measure; one that has
 * the mapping's copy waits (up to 20 s) for the limit to kill it, the
 * others exit at once; the parent keeps its mapping until the child is
 * gone. Each try is one of: the fork refused (ENOMEM); the child killed
 * before it reports (at birth); killed after it reported the copy (late);
 * the copy held (not killed in 20 s: the defect); plain (no copy). Stops
 * after KILLS kills, a copy held, or TRIES tries, and prints the counts. */
static int cmd_forkmap(int argc, char **argv)
{
        if (argc != 3)
                usage();
        struct forkmap f = { .len = num(argv[0]) * MIB };
        uint64_t tries = num(argv[1]), want = num(argv[2]), t;
        uint64_t refused = 0, killed = 0, late = 0, held = 0, plain = 0;
        pthread_t th;
        start_thread(&th, forkmap_thread, &f);
        srand((unsigned)getpid());
        for (t = 0; t < tries && killed + late < want && !held; t++) {
                int fds[2];
                if (pipe2(fds, O_CLOEXEC))
                        fail("pipe");
                f.delay_ns = rand() % 100000;
                __atomic_store_n(&f.mapped, 0, __ATOMIC_SEQ_CST);
                __atomic_store_n(&f.go, 1, __ATOMIC_SEQ_CST);
                pid_t pid = fork();
                if (pid == 0) {
                        uint64_t d = data_now();
                        (void)!write(fds[1], &d, sizeof(d));
                        struct timespec ts = { 20, 0 };
                        while (d >= f.len && nanosleep(&ts, &ts) < 0 && errno == EINTR)
                                ;
                        _exit(0);
                }
                int e = errno;
                close(fds[1]);
                while (!__atomic_load_n(&f.mapped, __ATOMIC_SEQ_CST))
                        ;
                if (pid < 0) {
                        munmap(f.p, f.len);
                        close(fds[0]);
                        if (e != ENOMEM) {
                                errno = e;
                                fail("fork");
                        }
                        refused++;
                        continue;
                }
                uint64_t d = 0;
                ssize_t got = read(fds[0], &d, sizeof(d));
                close(fds[0]);
                int st = wait_child(pid);
                munmap(f.p, f.len);
                bool sigkill = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
                bool copy = got == sizeof(d) && d >= f.len;
                if (sigkill && got <= 0) {
                        killed++;
                        say("killed pid %d", pid);
                } else if (sigkill && copy) {
                        late++;
                        say("late pid %d data %" PRIu64, pid, d);
                } else if (copy) {
                        held++;
                        say("held pid %d data %" PRIu64, pid, d);
                } else if (got == sizeof(d) && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
                        plain++;
                } else {
                        print_status("odd", (int)t, pid, st);
                }
        }
        __atomic_store_n(&f.stop, 1, __ATOMIC_SEQ_CST);
        if ((errno = pthread_join(th, NULL)))
                fail("pthread_join");
        say("tries %" PRIu64 " refused %" PRIu64 " killed %" PRIu64 " late %" PRIu64 " held %" PRIu64
            " plain %" PRIu64, t, refused, killed, late, held, plain);
        return 0;
}

/* phantom: A's allocation is over (its grant must not keep counting)
 * while A runs on or sleeps, and B asks for memory that fits only
 * without it. `done` (shared) ends A's spin or wait. */
struct phantom {
        uint64_t len;
        const char *how;
        int ready, done; /* __atomic */
        int efd;         /* epoll: what A waits on */
};

static void phantom_a(struct phantom *ph)
{
        char *p = mmap(NULL, ph->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                fail("mmap");
        touch(p, ph->len);
        if (strcmp(ph->how, "keep") && strcmp(ph->how, "fork"))
                munmap(p, ph->len);
        __atomic_store_n(&ph->ready, 1, __ATOMIC_SEQ_CST);
        if (!strcmp(ph->how, "epoll")) {
                int ep = epoll_create1(EPOLL_CLOEXEC);
                struct epoll_event ev = { .events = EPOLLIN };
                if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ph->efd, &ev) < 0)
                        fail("epoll");
                while (epoll_wait(ep, &ev, 1, DEADLINE_MS) < 0 && errno == EINTR)
                        ;
                close(ep);
                return;
        }
        /* runs on: no wait shows that its call is over */
        for (long i = 0; !__atomic_load_n(&ph->done, __ATOMIC_SEQ_CST); i++)
                if (i % (1L << 20) == 0 && time(NULL) < 0)
                        break;
}

static void *phantom_thread(void *arg)
{
        phantom_a(arg);
        return NULL;
}

/* phantom HOW MIB: A (a thread; a child process for HOW=proc) maps and
 * touches MIB, then - HOW unmap/proc/epoll: unmaps it and spins (epoll:
 * sleeps in epoll_wait); keep: keeps it and spins; fork: keeps it and
 * spins while the main thread forks a child that exits 0. Then the main
 * thread (B) maps and touches MIB, announced, and A is let go. */
static int cmd_phantom(int argc, char **argv)
{
        if (argc != 2)
                usage();
        struct phantom *ph = mmap(NULL, sizeof(*ph), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (ph == MAP_FAILED)
                fail("mmap");
        *ph = (struct phantom){ .len = num(argv[1]) * MIB, .how = argv[0], .efd = eventfd(0, EFD_CLOEXEC) };
        if (ph->efd < 0)
                fail("eventfd");
        pid_t a = -1;
        pthread_t th;
        if (!strcmp(ph->how, "proc")) {
                if ((a = fork()) < 0)
                        fail("fork");
                if (a == 0) {
                        phantom_a(ph);
                        _exit(0);
                }
        } else {
                start_thread(&th, phantom_thread, ph);
        }
        while (!__atomic_load_n(&ph->ready, __ATOMIC_SEQ_CST))
                ;
        if (!strcmp(ph->how, "fork")) {
                pid_t k = fork();
                if (k < 0)
                        fail("fork");
                if (k == 0)
                        _exit(0);
                print_status("forked", 1, k, wait_child(k));
        } else {
                map_anon(ph->len, MAP_PRIVATE);
        }
        __atomic_store_n(&ph->done, 1, __ATOMIC_SEQ_CST);
        uint64_t one = 1;
        if (write(ph->efd, &one, sizeof(one)) != sizeof(one))
                fail("eventfd write");
        if (a > 0)
                print_status("a", 1, a, wait_child(a));
        else if ((errno = pthread_join(th, NULL)))
                fail("pthread_join");
        say("done");
        return 0;
}

/* The column (bytes from the start of its line) at which the path of the
 * file mapped at `at` begins in /proc/self/maps; -1 if not found. */
static int maps_path_column(uintptr_t at)
{
        char prefix[32], buf[4096];
        snprintf(prefix, sizeof(prefix), "%08lx-", (unsigned long)at);
        FILE *f = fopen("/proc/self/maps", "re");
        if (!f)
                fail("open maps");
        int col = -1;
        while (col < 0 && fgets(buf, sizeof(buf), f)) {
                char *slash = strchr(buf, '/');
                if (!strncmp(buf, prefix, strlen(prefix)) && slash)
                        col = (int)(slash - buf);
        }
        fclose(f);
        return col;
}

/* longpath MIB: a file in the working directory whose path puts the text
 * of a writable private mapping of [0x100000000000, 0x200000000000) at
 * column 511 of its line in /proc/self/maps, mapped below that range;
 * then MIB of anonymous shared memory mapped MAP_FIXED inside the range,
 * announced as MIB, touched and held ("held MIB"). A maps reader that
 * splits lines at 512 bytes sees private memory that the fixed mapping
 * replaces, and charges nothing. */
static int cmd_longpath(int argc, char **argv)
{
        static const char fake[] = "100000000000-200000000000 rw-p 00000000 00:00 0 x";
        const uintptr_t at = 0x0f0000000000ul;
        char *const range = (char *)0x100000000000ul;
        if (argc != 1)
                usage();
        uint64_t len = num(argv[0]) * MIB;
        char path[2048];
        if (!getcwd(path, 1024))
                fail("getcwd");
        /* where a path begins in a line for a file mapped at `at` */
        char probe[2100];
        snprintf(probe, sizeof(probe), "%s/probe", path);
        int fd = open(probe, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, (off_t)PAGE) < 0)
                fail("the probe file");
        if (mmap((void *)at, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0) != (void *)at)
                fail("mmap the probe");
        close(fd);
        int col = maps_path_column(at);
        munmap((void *)at, PAGE);
        unlink(probe);
        if (col < 0)
                fail("the probe's column");
        /* directories of 200 bytes, then a name that ends in `fake` */
        int need = 511 - col; /* path bytes before `fake` */
        while ((int)strlen(path) + 1 + 200 + 1 < need) {
                size_t l = strlen(path);
                path[l] = '/';
                memset(path + l + 1, 'a', 200);
                path[l + 201] = 0;
                if (mkdir(path, 0700) < 0 && errno != EEXIST)
                        fail("mkdir");
        }
        size_t l = strlen(path);
        int pad = need - (int)l - 1;
        if (pad < 1)
                usage();
        path[l] = '/';
        memset(path + l + 1, 'b', (size_t)pad);
        snprintf(path + l + 1 + pad, sizeof(path) - l - 1 - (size_t)pad, "%s", fake);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, (off_t)PAGE) < 0)
                fail("the long-path file");
        if (mmap((void *)at, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0) != (void *)at)
                fail("mmap the long-path file");
        close(fd);
        if (maps_path_column(at) + (int)strlen(path) - (int)strlen(fake) != 511)
                fail("the fake line's column");
        int s = announce("mmap-shared", len);
        if (mmap(range, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != range)
                fail("mmap MAP_FIXED shared");
        say("ok %d", s);
        touch(range, len);
        say("held %llu", (unsigned long long)(len / MIB));
        return 0;
}

/* growsdown: one-page MAP_GROWSDOWN mappings, writable and PROT_NONE;
 * prints "growsdown PROT ok" or "growsdown PROT errno N". */
static int cmd_growsdown(int argc, char **argv)
{
        (void)argv;
        if (argc != 0)
                usage();
        static const struct { const char *name; int prot; } v[] = {
                { "rw", PROT_READ | PROT_WRITE }, { "none", PROT_NONE } };
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                void *p = mmap(NULL, PAGE, v[i].prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);
                if (p == MAP_FAILED)
                        say("growsdown %s errno %d", v[i].name, errno);
                else
                        say("growsdown %s ok", v[i].name);
        }
        say("done");
        return 0;
}

/* stackcopy: mremap a page of the main stack elsewhere, kept
 * (MREMAP_DONTUNMAP) and moved; then prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE).
 * Prints
 * "WHAT ok" or "WHAT errno N" for each. */
/* The lowest address of this process's main stack ("[stack]" in its
 * maps), where it grows down from; fails without one. */
static uintptr_t main_stack_low(void)
{
        char line[512];
        uintptr_t lo = 0;
        FILE *f = fopen("/proc/self/maps", "re");
        if (!f)
                fail("maps");
        while (fgets(line, sizeof(line), f))
                if (strstr(line, "[stack]"))
                        sscanf(line, "%" SCNxPTR, &lo);
        fclose(f);
        if (!lo)
                fail("no [stack]");
        return lo;
}

static int cmd_stackcopy(int argc, char **argv)
{
        (void)argv;
        if (argc != 0)
                usage();
        uintptr_t lo = main_stack_low();
        static const struct { const char *name; int flags; } v[] = {
                { "dontunmap", MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP },
                { "move", MREMAP_MAYMOVE | MREMAP_FIXED } };
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                void *to = (void *)(0x300000000000ul + i * (16ul << 20));
                if (mremap((void *)lo, PAGE, PAGE, v[i].flags, to) == MAP_FAILED)
                        say("%s errno %d", v[i].name, errno);
                else
                        say("%s ok", v[i].name);
        }
        unsigned int map_size = 0; /* a query, allowed to anyone bare */
        if (prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, (unsigned long)&map_size, 0, 0) < 0)
                say("setmm errno %d", errno);
        else
                say("setmm ok");
        say("done");
        return 0;
}

/* sharedmaps HOW MIB COUNT: COUNT anonymous shared mappings of MIB, each
 * announced: HOW hole - writable, a page unmapped from its middle, the
 * rest touched; ro - read-only, every page read. */
static int cmd_sharedmaps(int argc, char **argv)
{
        if (argc != 3)
                usage();
        bool ro = !strcmp(argv[0], "ro");
        uint64_t len = num(argv[1]) * MIB, n = num(argv[2]);
        for (uint64_t i = 0; i < n; i++) {
                int st = announce(ro ? "mmap-shared-ro" : "mmap-shared", len);
                volatile char *p = mmap(NULL, len, ro ? PROT_READ : PROT_READ | PROT_WRITE,
                                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                        fail("mmap");
                say("ok %d", st);
                if (ro) {
                        unsigned sum = 0;
                        for (uint64_t off = 0; off < len; off += PAGE)
                                sum += p[off];
                        if (sum)
                                fail("not zero");
                } else {
                        munmap((char *)p + PAGE, PAGE);
                        for (uint64_t off = 2 * PAGE; off < len; off += PAGE)
                                p[off] = 1;
                }
        }
        say("done");
        return 0;
}

/* vforkmap MIB THEN: a vfork child maps and touches MIB (in the parent's
 * address space) and exits; then a child forked before maps THEN MiB and
 * reports; the parent reports its status. */
static int cmd_vforkmap(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t len = num(argv[0]) * MIB, then = num(argv[1]) * MIB;
        int go[2];
        if (pipe2(go, O_CLOEXEC))
                fail("pipe");
        pid_t q = fork();
        if (q < 0)
                fail("fork");
        if (q == 0) {
                close(go[1]);
                await_byte(go[0], "go");
                map_anon(then, MAP_PRIVATE);
                _exit(0);
        }
        close(go[0]);
        pid_t v = vfork();
        if (v == 0) {
                char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (m == MAP_FAILED)
                        _exit(4);
                for (uint64_t off = 0; off < len; off += PAGE)
                        m[off] = 1;
                _exit(0);
        }
        if (v < 0)
                fail("vfork");
        print_status("vforked", 1, v, wait_child(v));
        say("parent data %" PRIu64, data_now());
        send_byte(go[1]);
        print_status("q", 1, q, wait_child(q));
        say("done");
        return 0;
}

static void *thread_exec(void *arg)
{
        struct thread_arg *t = arg;
        say("thread %ld execs %s", (long)syscall(SYS_gettid), t->argv[0]);
        execv(t->argv[0], t->argv);
        fail("execv");
}

/* spawnloop THREADS ROUNDS MIB [path]: maps and touches MIB, then THREADS
 * threads each posix_spawn(3) /bin/true ROUNDS times (a vfork-like clone:
 * CLONE_VM | CLONE_VFORK), each reaped and its status checked; with
 * "path", posix_spawnp(3) of "true" with two missing directories first in
 * PATH (a failed exec each before the one that runs). Says "spawned N"
 * and "done", or fails at the first child that did not exit 0. */
static int spawn_rounds;
static bool spawn_path;
static int spawned; /* __atomic */

static void *spawn_thread(void *arg)
{
        (void)arg;
        extern char **environ;
        for (int i = 0; i < spawn_rounds; i++) {
                char *const av[] = { spawn_path ? "true" : "/bin/true", NULL };
                pid_t pid;
                if ((errno = (spawn_path ? posix_spawnp : posix_spawn)(&pid, av[0], NULL, NULL, av, environ)))
                        fail("posix_spawn");
                int st = wait_child(pid);
                if (!WIFEXITED(st) || WEXITSTATUS(st)) {
                        print_status("bad", i + 1, pid, st);
                        _exit(3);
                }
                __atomic_add_fetch(&spawned, 1, __ATOMIC_SEQ_CST);
        }
        return NULL;
}

static int cmd_spawnloop(int argc, char **argv)
{
        if (argc != 3 && (argc != 4 || strcmp(argv[3], "path")))
                usage();
        uint64_t threads = num(argv[0]);
        spawn_rounds = (int)num(argv[1]);
        spawn_path = argc == 4;
        if (spawn_path && setenv("PATH", "/nonexistent/seccell-a:/nonexistent/seccell-b:/usr/bin:/bin", 1))
                fail("setenv");
        map_anon(num(argv[2]) * MIB, MAP_PRIVATE);
        pthread_t th[64];
        if (threads > 64)
                usage();
        for (uint64_t t = 0; t < threads; t++)
                start_thread(&th[t], spawn_thread, NULL);
        for (uint64_t t = 0; t < threads; t++)
                if ((errno = pthread_join(th[t], NULL)))
                        fail("pthread_join");
        say("spawned %d", __atomic_load_n(&spawned, __ATOMIC_SEQ_CST));
        say("done");
        return 0;
}

/* vforkwatch MODE MIB: maps and touches MIB, then vforks a child that,
 * before it execs /bin/true, does by MODE:
 *   signal  raises SIGUSR1, whose handler marks it (memory is shared);
 *   cont    sends itself SIGCONT (running: its trap, then the signal),
 *           with a handler that marks it;
 *   stop    stops itself (SIGSTOP); a thread of the parent sees it stopped
 *           (/proc/<pid>/stat state T) and continues it (SIGCONT);
 *   thread  makes a thread (raw clone, CLONE_THREAD) and waits for it to
 *           mark that it ran;
 *   sigthread  the same, the thread's exit signal SIGCHLD (which ptrace
 *           reports as a fork);
 *   fork    forks a child of its own (raw clone, no atfork handlers in the
 *           shared address space), which exits 0, and reaps it.
 * Under a memory limit a vfork child is traced until its exec's event:
 * each of these stops that trace, or passes through it. Says "MODE ok
 * MARK" (MARK: the handler ran, the stop was seen, the thread ran, the
 * grandchild's exit status), "status 1 pid P exit 0" for the child, and
 * "done". */
static volatile sig_atomic_t watch_mark;
static volatile pid_t watch_child;
static volatile long watch_grand = -1; /* "fork": the grandchild's wait status */

static void watch_on_signal(int sig)
{
        (void)sig;
        watch_mark = 1;
}

static int watch_thread_fn(void *arg)
{
        (void)arg;
        __atomic_store_n(&watch_mark, 1, __ATOMIC_SEQ_CST);
        return 0;
}

/* The parent's thread for "stop": continues the child once it is seen
 * stopped; gives up at the deadline (watch_mark stays 0). */
static void *watch_continuer(void *arg)
{
        (void)arg;
        for (int i = 0; i < DEADLINE_MS; i++) {
                pid_t c = __atomic_load_n(&watch_child, __ATOMIC_SEQ_CST);
                char path[64], buf[512];
                if (c > 0) {
                        snprintf(path, sizeof(path), "/proc/%d/stat", c);
                        int fd = open(path, O_RDONLY | O_CLOEXEC);
                        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
                        if (fd >= 0)
                                close(fd);
                        char *rp = n > 0 ? (buf[n] = 0, strrchr(buf, ')')) : NULL;
                        if (rp && rp[1] == ' ' && rp[2] == 'T') {
                                watch_mark = 1;
                                kill(c, SIGCONT);
                                return NULL;
                        }
                }
                struct timespec ts = { 0, 1000000 };
                nanosleep(&ts, NULL);
        }
        return NULL;
}

static int cmd_vforkwatch(int argc, char **argv)
{
        if (argc != 2)
                usage();
        const char *mode = argv[0];
        map_anon(num(argv[1]) * MIB, MAP_PRIVATE);
        static char tstack[64 * 1024] __attribute__((aligned(16)));
        pthread_t cont;
        bool thread = !strcmp(mode, "thread") || !strcmp(mode, "sigthread");
        if (!strcmp(mode, "signal") || !strcmp(mode, "cont")) {
                struct sigaction sa = { .sa_handler = watch_on_signal };
                sigemptyset(&sa.sa_mask);
                if (sigaction(!strcmp(mode, "cont") ? SIGCONT : SIGUSR1, &sa, NULL))
                        fail("sigaction");
        } else if (!strcmp(mode, "stop")) {
                start_thread(&cont, watch_continuer, NULL);
        } else if (!thread && strcmp(mode, "fork")) {
                usage();
        }
        pid_t v = vfork();
        if (v == 0) {
                /* only raw system calls and this stack below: the address
                 * space is the parent's */
                if (!strcmp(mode, "signal") || !strcmp(mode, "cont")) {
                        syscall(SYS_kill, syscall(SYS_getpid), !strcmp(mode, "cont") ? SIGCONT : SIGUSR1);
                } else if (!strcmp(mode, "stop")) {
                        __atomic_store_n(&watch_child, (pid_t)syscall(SYS_getpid), __ATOMIC_SEQ_CST);
                        syscall(SYS_kill, syscall(SYS_getpid), SIGSTOP);
                } else if (thread) {
                        if (clone(watch_thread_fn, tstack + sizeof(tstack),
                                  CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
                                          (!strcmp(mode, "sigthread") ? SIGCHLD : 0),
                                  NULL) < 0)
                                _exit(5);
                        for (long i = 0; !__atomic_load_n(&watch_mark, __ATOMIC_SEQ_CST); i++)
                                if (i > 1000000000L)
                                        _exit(6);
                                else
                                        syscall(SYS_sched_yield);
                } else {
                        long g = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
                        if (g == 0)
                                syscall(SYS_exit_group, 0);
                        int st = -1;
                        if (g < 0 || syscall(SYS_wait4, g, &st, 0, 0) != g)
                                _exit(7);
                        watch_grand = st;
                }
                char *const av[] = { "/bin/true", NULL };
                syscall(SYS_execve, av[0], av, NULL);
                _exit(127);
        }
        if (v < 0)
                fail("vfork");
        int st = wait_child(v);
        if (!strcmp(mode, "stop"))
                pthread_join(cont, NULL);
        say("%s ok %ld", mode, !strcmp(mode, "fork") ? watch_grand : (long)watch_mark);
        print_status("status", 1, v, st);
        say("done");
        return 0;
}

/* brkexec N THREADS: N children in turn, each with THREADS threads that
 * move the break up and back down again without end (a page or two,
 * within any limit), execs /bin/true once every thread has made a call.
 * The exec kills the threads first, some while parked in a brk
 * notification. Says "status K pid P ..." for each, then "done". */
static long brkexec_base;
static int brkexec_go, brkexec_calls; /* __atomic */

static void *brk_spin(void *arg)
{
        while (!__atomic_load_n(&brkexec_go, __ATOMIC_SEQ_CST))
                ;
        long up = brkexec_base + PAGE * (1 + (long)(uintptr_t)arg % 2);
        for (;;) {
                syscall(SYS_brk, up);
                syscall(SYS_brk, brkexec_base);
                __atomic_add_fetch(&brkexec_calls, 1, __ATOMIC_SEQ_CST);
        }
        return NULL;
}

static int cmd_brkexec(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t n = num(argv[0]), threads = num(argv[1]);
        for (uint64_t i = 0; i < n; i++) {
                pid_t pid = fork();
                if (pid < 0)
                        fail("fork");
                if (pid == 0) {
                        char *const av[] = { "/bin/true", NULL };
                        pthread_t th;
                        for (uint64_t t = 0; t < threads; t++)
                                start_thread(&th, brk_spin, (void *)(uintptr_t)t);
                        /* the break moves under malloc: no allocation after */
                        brkexec_base = syscall(SYS_brk, 0);
                        __atomic_store_n(&brkexec_go, 1, __ATOMIC_SEQ_CST);
                        while (__atomic_load_n(&brkexec_calls, __ATOMIC_SEQ_CST) < (int)threads)
                                ;
                        execv(av[0], av);
                        _exit(99);
                }
                print_status("status", (int)i + 1, pid, wait_child(pid));
        }
        say("done");
        return 0;
}

/* threadexec MIB CMD...: the main thread maps and touches MIB; a non-leader
 * thread execs CMD while the main thread waits. */
static int cmd_threadexec(int argc, char **argv)
{
        if (argc < 2)
                usage();
        uint64_t len = num(argv[0]) * MIB;
        map_anon(len, MAP_PRIVATE);
        struct thread_arg t = { .argv = argv + 1 };
        pthread_t th;
        start_thread(&th, thread_exec, &t);
        /* the exec ends this thread; joining returns only if it failed */
        pthread_join(th, NULL);
        say("error exec did not replace the process");
        return 3;
}

struct leader_arg {
        const char *kind;
        uint64_t len, count;
};

/* Wait until the leader of process `pid` is a zombie (its /proc stat says
 * so): the process lives on in its other threads. */
static void await_zombie_leader(pid_t pid)
{
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        for (int i = 0;; i++) {
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
                if (fd >= 0)
                        close(fd);
                buf[n > 0 ? n : 0] = 0;
                char *c = strrchr(buf, ')');
                if (c && c[1] == ' ' && c[2] == 'Z')
                        break;
                if (i >= DEADLINE_MS) {
                        errno = ETIMEDOUT;
                        fail("leader exit");
                }
                struct timespec ts = { 0, 1000000 };
                nanosleep(&ts, NULL);
        }
}

/* A CLONE_VM peer's stack, and all it does: wait. */
static char vmpeer_stack[64 * 1024] __attribute__((aligned(16)));

static int vmpeer(void *arg)
{
        (void)arg;
        for (;;)
                pause();
        return 0;
}

static void *thread_after_leader(void *arg)
{
        struct leader_arg *t = arg;
        pid_t peer = 0;
        await_zombie_leader(getpid());
        say("leader gone statm-of-pid %" PRIu64 " data %" PRIu64, statm_data_of("self"), data_now());
        for (uint64_t i = 0; i < t->count; i++) {
                if (!strcmp(t->kind, "brk")) {
                        sbrk_anon(t->len);
                } else if (!strcmp(t->kind, "sharedcycle")) {
                        munmap(map_anon(t->len, MAP_SHARED), t->len);
                } else if (!strcmp(t->kind, "clonevm")) {
                        /* MIB first, then a CLONE_VM peer, then 1 MiB each */
                        map_anon(i ? MIB : t->len, MAP_PRIVATE);
                        if (!i && (peer = clone(vmpeer, vmpeer_stack + sizeof(vmpeer_stack), CLONE_VM | SIGCHLD,
                                                NULL)) < 0)
                                fail("clone");
                } else {
                        map_anon(t->len, MAP_PRIVATE);
                }
        }
        say("done data %" PRIu64, data_now());
        if (peer > 0)
                kill(peer, SIGKILL);
        exit(0);
}

/* leaderexit KIND MIB COUNT: the main thread exits (pthread_exit, the
 * process lives on in another thread), which then asks COUNT times for MIB,
 * touched. KIND: map (private, kept), brk (the break moved up, kept),
 * sharedcycle (MAP_SHARED|MAP_ANONYMOUS, unmapped again), clonevm (MIB
 * once, then a CLONE_VM peer, then 1 MiB each time). */
static int cmd_leaderexit(int argc, char **argv)
{
        if (argc != 3)
                usage();
        static struct leader_arg t;
        t.kind = argv[0];
        t.len = num(argv[1]) * MIB;
        t.count = num(argv[2]);
        pthread_t th;
        start_thread(&th, thread_after_leader, &t);
        pthread_exit(NULL);
}

/* The group ends (SIGKILL to all, this process included) when stdin does. */
static void *kill_group_at_eof(void *arg)
{
        (void)arg;
        char c;
        while (read(0, &c, 1) > 0)
                ;
        kill(0, SIGKILL);
        return NULL;
}

/* fdlocks N: a file of $TMPDIR (or /tmp) with N POSIX locks on it - each
 * a line of its /proc fdinfo - then "armed", and mmap(MAP_SHARED) of it
 * (page cache: never counted, but its descriptor is looked at) without end,
 * until stdin ends. */
static int cmd_fdlocks(int argc, char **argv)
{
        if (argc != 1)
                usage();
        uint64_t n = num(argv[0]);
        int fd = tmp_file(PAGE_UP(2 * n + 1));
        for (uint64_t i = 0; i < n; i++) {
                struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)(2 * i), .l_len = 1 };
                if (fcntl(fd, F_SETLK, &l))
                        fail("fcntl");
        }
        pthread_t th;
        start_thread(&th, kill_group_at_eof, NULL);
        say("armed");
        for (;;) {
                void *p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
                if (p == MAP_FAILED)
                        fail("mmap");
                munmap(p, PAGE);
        }
}

/* A thread of its own, on a stack already mapped (no request), that
 * waits. */
static char holder_stack[64 * 1024] __attribute__((aligned(16)));

static int holder(void *arg)
{
        (void)arg;
        for (;;)
                syscall(SYS_pause);
        return 0;
}

/* hideshared MIB: maps MIB of MAP_SHARED|MAP_ANONYMOUS memory, touched;
 * forks a child whose leader exits, leaving a thread that holds the
 * memory; unmaps its own mapping ("hidden"), then maps MIB shared again. */
static int cmd_hideshared(int argc, char **argv)
{
        if (argc != 1)
                usage();
        uint64_t len = num(argv[0]) * MIB;
        void *p = map_anon(len, MAP_SHARED);
        pid_t pid = fork();
        if (pid < 0)
                fail("fork");
        if (pid == 0) {
                if (clone(holder, holder_stack + sizeof(holder_stack),
                          CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM,
                          NULL) < 0)
                        fail("clone");
                syscall(SYS_exit, 0);
        }
        await_zombie_leader(pid);
        munmap(p, len);
        say("hidden in %d", (int)pid);
        map_anon(len, MAP_SHARED);
        say("done");
        kill(pid, SIGKILL);
        return 0;
}

/* heapsplit MIB MORE: grows the heap by MIB (brk), touched, makes its
 * first page read-only (an mprotect that splits the heap), then grows it
 * MORE times by 1 MiB. */
static int cmd_heapsplit(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t len = num(argv[0]) * MIB, more = num(argv[1]);
        char *b = sbrk(0);
        char *h = (char *)PAGE_UP((uintptr_t)b);
        if (sbrk(h - b) == (void *)-1 || sbrk((intptr_t)len) == (void *)-1)
                fail("sbrk");
        touch(h, len);
        if (mprotect(h, PAGE, PROT_READ))
                fail("mprotect");
        for (uint64_t i = 0; i < more; i++)
                sbrk_anon(MIB);
        say("done data %" PRIu64, data_now());
        return 0;
}

/* sharedmany N: maps N one-page MAP_SHARED|MAP_ANONYMOUS objects (each its
 * own), says "armed", then, until stdin ends, forks children that each ask
 * for 1 TiB (killed: each kill an exact re-read of the N objects, twice
 * over), saying "killed K" after the K-th such child. */
static int cmd_sharedmany(int argc, char **argv)
{
        if (argc != 1)
                usage();
        uint64_t n = num(argv[0]);
        for (uint64_t i = 0; i < n; i++)
                if (mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
                        fail("mmap");
        pthread_t th;
        start_thread(&th, kill_group_at_eof, NULL);
        say("armed");
        int killed = 0;
        for (;;) {
                pid_t pid = fork();
                if (pid < 0)
                        fail("fork");
                if (pid == 0) {
                        mmap(NULL, 1ull << 40, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                             -1, 0);
                        _exit(0);
                }
                if (WIFSIGNALED(wait_child(pid)))
                        say("killed %d", ++killed);
        }
}

/* clonevm HOLD MIB: HOLD MiB touched; a child made with
 * clone(CLONE_VM | SIGCHLD) - a second process in the same address space -
 * maps 1 MiB and waits; the parent then maps MIB; then the child exits. */
static char clonevm_stack[256 * 1024] __attribute__((aligned(16)));
static int clonevm_pipe[2], clonevm_go[2];

static int clonevm_child(void *arg)
{
        (void)arg;
        map_anon(MIB, MAP_PRIVATE);
        send_byte(clonevm_pipe[1]);
        await_byte(clonevm_go[0], "go");
        return 0;
}

static int cmd_clonevm(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t hold = num(argv[0]) * MIB, len = num(argv[1]) * MIB;
        if (pipe2(clonevm_pipe, O_CLOEXEC) || pipe2(clonevm_go, O_CLOEXEC))
                fail("pipe");
        map_anon(hold, MAP_PRIVATE);
        pid_t pid = clone(clonevm_child, clonevm_stack + sizeof(clonevm_stack), CLONE_VM | SIGCHLD, NULL);
        if (pid < 0)
                fail("clone");
        await_byte(clonevm_pipe[0], "child mapped");
        say("clone-vm child %d", (int)pid);
        map_anon(len, MAP_PRIVATE);
        send_byte(clonevm_go[1]);
        int st = wait_child(pid);
        print_status("child", 1, pid, st);
        say("done data %" PRIu64, data_now());
        return 0;
}

/* VMAS mappings at no cost to the ledger: PROT_READ pages in a PROT_NONE
 * reservation, never notified; at `at` if that is free (NULL: anywhere). */
static void make_vmas(uint64_t vmas, void *at)
{
        int fixed = at ? MAP_FIXED_NOREPLACE : 0;
        char *r = mmap(at, vmas * 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | fixed, -1, 0);
        if (r == MAP_FAILED && at)
                r = mmap(NULL, vmas * 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (r == MAP_FAILED)
                fail("mmap");
        for (uint64_t k = 0; k < vmas; k++)
                if (mprotect(r + k * 2 * PAGE, PAGE, PROT_READ))
                        fail("mprotect");
}

/* KIDS children, each with VMAS mappings (make_vmas); returns once all
 * have them. With `spin`, they lie below a PIE's heap and each child then
 * calls, without end, what the tracer must look at the address space for
 * and that costs nothing: mremap of a page to its own size (is it the main
 * stack?), brk to the current break (where is the break?). Else the
 * children wait. */
static void vma_kids(uint64_t kids, uint64_t vmas, bool spin)
{
        int ready[2];
        if (pipe2(ready, O_CLOEXEC))
                fail("pipe");
        for (uint64_t i = 0; i < kids; i++) {
                pid_t pid = fork();
                if (pid < 0)
                        fail("fork");
                if (pid)
                        continue;
                make_vmas(vmas, spin ? (void *)0x10000000 : NULL);
                if (!spin) {
                        send_byte(ready[1]);
                        for (;;)
                                pause();
                }
                char *page = map_anon(PAGE, MAP_PRIVATE);
                void *cur = sbrk(0);
                if (syscall(SYS_mremap, page, PAGE, PAGE, 0) != (long)page || syscall(SYS_brk, cur) != (long)cur)
                        fail("spin");
                send_byte(ready[1]);
                for (;;) {
                        syscall(SYS_mremap, page, PAGE, PAGE, 0);
                        syscall(SYS_brk, cur);
                }
        }
        for (uint64_t i = 0; i < kids; i++)
                await_byte(ready[0], "child's mappings");
        close(ready[0]);
        close(ready[1]);
}

/* Say "armed", hold until stdin ends, then kill the process group (the
 * children, and any CLONE_VM peer, with this process). */
static int armed_until_eof(void)
{
        say("armed");
        char c;
        while (read(0, &c, 1) > 0)
                ;
        kill(0, SIGKILL);
        return 0;
}

/* vmaspin KIDS VMAS: KIDS children make VMAS mappings each (free, as in
 * manyvmas) and spin (vma_kids); says "armed" once all spin, then holds
 * until its stdin ends. */
static int cmd_vmaspin(int argc, char **argv)
{
        if (argc != 2)
                usage();
        vma_kids(num(argv[0]), num(argv[1]), true);
        return armed_until_eof();
}

/* vmforest KIDS: KIDS children that wait, one vfork (so that address
 * spaces may be shared in the sandbox), then "armed" and mmap/munmap of a
 * writable page without end - each a judged request - until stdin ends. */
static int cmd_vmforest(int argc, char **argv)
{
        if (argc != 1)
                usage();
        uint64_t kids = num(argv[0]);
        for (uint64_t i = 0; i < kids; i++) {
                pid_t pid = fork();
                if (pid < 0)
                        fail("fork");
                if (pid == 0)
                        for (;;)
                                pause();
        }
        pid_t v = vfork();
        if (v == 0)
                _exit(0);
        if (v < 0)
                fail("vfork");
        wait_child(v);
        pthread_t th;
        start_thread(&th, kill_group_at_eof, NULL);
        say("armed");
        for (;;) {
                void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                        fail("mmap");
                munmap(p, PAGE);
        }
}

/* manyvmas KIDS VMAS HOLD: KIDS children make VMAS mappings each at no
 * cost to the ledger (PROT_READ pages in a PROT_NONE reservation: never
 * notified), then this process maps HOLD MiB and makes a CLONE_VM peer, so
 * that the sweep's cheap look (which counts a shared address space twice)
 * is over any limit between HOLD and twice HOLD and every sweep wants the
 * exact look - every process's maps. Says "armed", then holds until its
 * stdin ends. */
static int cmd_manyvmas(int argc, char **argv)
{
        if (argc != 3)
                usage();
        uint64_t kids = num(argv[0]), vmas = num(argv[1]), hold = num(argv[2]) * MIB;
        vma_kids(kids, vmas, false);
        map_anon(hold, MAP_PRIVATE);
        if (clone(vmpeer, vmpeer_stack + sizeof(vmpeer_stack), CLONE_VM | SIGCHLD, NULL) < 0)
                fail("clone");
        return armed_until_eof(); /* the peer dies with the children */
}

/* stack MIB: raise RLIMIT_STACK to its hard limit, then grow the main
 * thread's stack in 1 MiB frames (every page touched) to MIB - page
 * faults only, no syscall. */
static uint64_t stack_depth;

static void __attribute__((noinline)) grow_stack(uint64_t left)
{
        volatile char frame[MIB];
        for (size_t off = 0; off < sizeof(frame); off += PAGE)
                frame[off] = 1;
        stack_depth++;
        if (stack_depth % 16 == 0)
                say("stack %" PRIu64 " data %" PRIu64, stack_depth, data_now());
        if (left > 1)
                grow_stack(left - 1);
        frame[0] = 2;
}

static int cmd_stack(int argc, char **argv)
{
        if (argc != 1)
                usage();
        uint64_t mib = num(argv[0]);
        struct rlimit rl;
        if (getrlimit(RLIMIT_STACK, &rl))
                fail("getrlimit");
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_STACK, &rl))
                fail("setrlimit");
        say("stack limit %s data %" PRIu64, rl.rlim_cur == RLIM_INFINITY ? "unlimited" : "finite", data_now());
        grow_stack(mib);
        say("done data %" PRIu64, data_now());
        return 0;
}

/* Fork a child that waits for a byte on the pipe whose write end is
 * returned in *go, then grows STACK MiB of main stack by page faults (no
 * request) and waits to be killed. */
static pid_t fork_stack_grower(uint64_t stack, int *go)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC))
                fail("pipe");
        pid_t child = fork();
        if (child < 0)
                fail("fork");
        if (child == 0) {
                close(p[1]);
                await_byte(p[0], "parent");
                grow_stack(stack);
                for (;;)
                        pause();
        }
        close(p[0]);
        *go = p[1];
        return child;
}

/* Let fork_stack_grower()'s child grow; print its end ("grower 1 pid P
 * signal 9") and "done". */
static void stack_grower_go(pid_t child, int go)
{
        send_byte(go);
        print_status("grower", 1, child, wait_child(child));
        say("done");
}

/* failexec HOLD STACK: a child that waits, then HOLD MiB mapped (a judged
 * request) and touched, then an exec that fails (ENOENT); then the child
 * grows STACK MiB of stack by page faults (no request) and waits to be
 * killed. Prints "exec errno N", the child's end ("grower 1 pid P signal
 * 9") and "done". The failed exec left this image as it was, judged: the
 * sweep must blame the child's growth, not this process. */
static int cmd_failexec(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t hold = num(argv[0]) * MIB;
        int go;
        pid_t child = fork_stack_grower(num(argv[1]), &go);
        map_anon(hold, MAP_PRIVATE);
        map_anon(PAGE, MAP_PRIVATE); /* the first call is over: judged */
        execl("/nonexistent/seccell-mem-helper", "seccell-mem-helper", (char *)NULL);
        say("exec errno %d", errno);
        stack_grower_go(child, go);
        return 0;
}

/* dropgrow DROP STACK: a child that waits; then DROP MiB mapped
 * MAP_DROPPABLE (a judged request: private memory) and touched; then the
 * child grows STACK MiB of stack by page faults (no request) and waits to
 * be killed. Prints the child's end ("grower 1 pid P signal 9") and
 * "done". Found in review: the droppable memory was taken for shared, so
 * never as judged, and the sweep killed this process for the child's
 * growth. */
static int cmd_dropgrow(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t drop = num(argv[0]) * MIB;
        int go;
        pid_t child = fork_stack_grower(num(argv[1]), &go);
        map_anon(drop, MAP_DROPPABLE);
        stack_grower_go(child, go);
        return 0;
}

/* Wait until each of the n processes in kids has died or shows `want`
 * bytes in statm, then until this process's and their statm fit in
 * `limit` bytes (only the tracer's sweep can make that so, by killing);
 * print "survivors S killed K data D", SIGKILL and reap the rest. */
static int await_fit(const pid_t *kids, uint64_t n, uint64_t want, uint64_t limit)
{
        enum { MAX_KIDS = 256 };
        char pids[MAX_KIDS][24];
        bool dead[MAX_KIDS] = { 0 };
        for (uint64_t i = 0; i < n; i++)
                snprintf(pids[i], sizeof(pids[i]), "%d", kids[i]);
        for (int waited = 0;; waited++) {
                if (waited > DEADLINE_MS) {
                        errno = ETIMEDOUT;
                        fail("children deadline");
                }
                pid_t p;
                while ((p = waitpid(-1, NULL, WNOHANG)) > 0)
                        for (uint64_t i = 0; i < n; i++)
                                dead[i] |= kids[i] == p;
                uint64_t settled = 0;
                for (uint64_t i = 0; i < n; i++)
                        settled += dead[i] || statm_data_of(pids[i]) >= want;
                if (settled == n)
                        break;
                struct timespec ts = { 0, 1000000 };
                nanosleep(&ts, NULL);
        }
        for (int waited = 0;; waited++) {
                if (waited > DEADLINE_MS) {
                        errno = ETIMEDOUT;
                        fail("the sandbox stayed over its limit");
                }
                uint64_t data = data_now(), survivors = 0;
                for (uint64_t i = 0; i < n; i++) {
                        uint64_t d = dead[i] ? 0 : statm_data_of(pids[i]);
                        survivors += d > 0;
                        data += d;
                }
                if (data <= limit) {
                        /* every child not alive was killed (a zombie's
                         * statm reads zeros) */
                        say("survivors %" PRIu64 " killed %" PRIu64 " data %" PRIu64, survivors, n - survivors,
                            data);
                        break;
                }
                pid_t p = waitpid(-1, NULL, WNOHANG);
                for (uint64_t i = 0; p > 0 && i < n; i++)
                        dead[i] |= kids[i] == p;
                if (p <= 0) {
                        struct timespec ts = { 0, 1000000 };
                        nanosleep(&ts, NULL);
                }
        }
        for (uint64_t i = 0; i < n; i++)
                if (!dead[i])
                        kill(kids[i], SIGKILL);
        while (wait(NULL) > 0 || errno == EINTR)
                ;
        return 0;
}

static void *failed_exec_thread(void *arg)
{
        execl("/nonexistent/seccell-mem-helper", "seccell-mem-helper", (char *)NULL);
        __atomic_store_n((int *)arg, 1, __ATOMIC_SEQ_CST);
        for (;;)
                pause(); /* the exec stays "pending" for the tracer */
        return NULL;
}

/* A thread's exec fails and the thread sleeps on; then the main thread
 * maps and unmaps 8 MiB 20 times, and one page. */
static void exec_pending_cycles(void)
{
        int failed = 0;
        pthread_t th;
        start_thread(&th, failed_exec_thread, &failed);
        while (!__atomic_load_n(&failed, __ATOMIC_SEQ_CST)) {
                struct timespec ts = { 0, 1000000 };
                nanosleep(&ts, NULL);
        }
        for (int k = 0; k < 21; k++) {
                uint64_t len = k < 20 ? 8 * MIB : PAGE;
                char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                        fail("mmap");
                p[0] = 1;
                if (k < 20)
                        munmap(p, len);
        }
}

/* growkids N HOW MIB LIMIT: N children, each growing by MIB with no
 * request once all exist, then holding it: HOW "stack" grows the main
 * stack (page faults), "stackfork" does so and then asks for a fork (which
 * the grown sandbox refuses: a refusal must not pass the growth as
 * judged), "vmstack" does so beside a peer of its own that shares its
 * address space (clone(CLONE_VM), the peer only waits: the sweep must kill
 * the child with its peer), "execstack" does so after
 * exec_pending_cycles(), anything else is a program to exec whose image
 * holds MIB (seccell-mem-freebss). The parent makes no request either:
 * await_fit(). */
static int cmd_growkids(int argc, char **argv)
{
        enum { MAX_KIDS = 256 };
        if (argc != 4)
                usage();
        uint64_t n = num(argv[0]), mib = num(argv[2]), limit = num(argv[3]) * MIB;
        const char *how = argv[1];
        if (n == 0 || n > MAX_KIDS)
                usage();
        int go[2], cycled[2];
        if (pipe2(go, O_CLOEXEC) || pipe2(cycled, O_CLOEXEC))
                fail("pipe");
        pid_t kids[MAX_KIDS];
        for (uint64_t i = 0; i < n; i++) {
                kids[i] = fork();
                if (kids[i] < 0)
                        fail("fork");
                if (kids[i] == 0) {
                        close(go[1]);
                        close(cycled[0]);
                        if (!strcmp(how, "vmstack")) {
                                pid_t peer = clone(vmpeer, vmpeer_stack + sizeof(vmpeer_stack), CLONE_VM | SIGCHLD,
                                                   NULL);
                                if (peer < 0)
                                        fail("clone");
                                say("child %" PRIu64 " pid %d peer %d", i + 1, (int)getpid(), (int)peer);
                        }
                        bool stack = !strcmp(how, "stack") || !strcmp(how, "stackfork") || !strcmp(how, "vmstack");
                        if (!strcmp(how, "execstack")) {
                                exec_pending_cycles();
                                send_byte(cycled[1]);
                                stack = true;
                        }
                        char c;
                        while (read(go[0], &c, 1) < 0 && errno == EINTR)
                                ;
                        if (!stack) {
                                execl(how, how, (char *)NULL);
                                _exit(127);
                        }
                        grow_stack(mib);
                        if (!strcmp(how, "stackfork")) {
                                pid_t g = (pid_t)syscall(SYS_fork);
                                if (g == 0)
                                        _exit(0);
                                if (g > 0)
                                        waitpid(g, NULL, 0);
                        }
                        for (;;)
                                pause();
                }
                /* one child's 8 MiB cycles at a time: together they would
                 * cross the limit */
                if (!strcmp(how, "execstack"))
                        await_byte(cycled[0], "cycles");
        }
        close(cycled[0]);
        close(cycled[1]);
        close(go[0]);
        close(go[1]); /* go */
        return await_fit(kids, n, mib * MIB, limit);
}

/* An anonymous mapping (MAP_PRIVATE or MAP_SHARED), read-write, untouched. */
static char *mmap_or_fail(uint64_t len, int type)
{
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, type | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                fail("mmap");
        return p;
}

static char *map_touched(uint64_t len)
{
        char *p = mmap_or_fail(len, MAP_PRIVATE);
        touch(p, len);
        return p;
}

/* stalejudge N LIMIT: found in review. N children each map and touch
 * 8 MiB; a page mapped by the parent then sets a new peak (an exact
 * re-read: each child judged with its 8 MiB); the children unmap it (not
 * notified); a fork's registration re-reads every process and finds the
 * room; the parent maps and touches (N - 1) x 8 MiB of it; then each child
 * grows its main stack by 7 MiB with no request - back into what it was
 * judged to have before its munmap. await_fit(). */
static int cmd_stalejudge(int argc, char **argv)
{
        enum { MAX_KIDS = 64 };
        if (argc != 2)
                usage();
        uint64_t n = num(argv[0]), limit = num(argv[1]) * MIB;
        if (n == 0 || n > MAX_KIDS)
                usage();
        int go1[2], go2[2], done[2];
        if (pipe2(go1, O_CLOEXEC) || pipe2(go2, O_CLOEXEC) || pipe2(done, O_CLOEXEC))
                fail("pipe");
        pid_t kids[MAX_KIDS];
        for (uint64_t i = 0; i < n; i++) {
                if ((kids[i] = fork()) < 0)
                        fail("fork");
                if (kids[i] == 0) {
                        char *p = map_touched(8 * MIB);
                        send_byte(done[1]);
                        await_byte(go1[0], "go1");
                        munmap(p, 8 * MIB);
                        send_byte(done[1]);
                        await_byte(go2[0], "go2");
                        grow_stack(7);
                        for (;;)
                                pause();
                }
        }
        for (uint64_t i = 0; i < n; i++)
                await_byte(done[0], "mapped");
        map_touched(PAGE); /* a new peak: the exact ledger */
        for (uint64_t i = 0; i < n; i++)
                send_byte(go1[1]);
        for (uint64_t i = 0; i < n; i++)
                await_byte(done[0], "unmapped");
        pid_t s = fork();
        if (s < 0)
                fail("fork");
        if (s == 0)
                _exit(0);
        if (!WIFEXITED(wait_child(s)))
                fail("short child");
        for (uint64_t i = 0; i + 1 < n; i++)
                map_touched(8 * MIB);
        say("parent mapped %" PRIu64 " MiB data %" PRIu64, 8 * (n - 1), data_now());
        for (uint64_t i = 0; i < n; i++)
                send_byte(go2[1]);
        return await_fit(kids, n, 7 * MIB, limit);
}

/* grantjudged: found in review. One process, P: its main thread T1 maps
 * G (a grant made alone: one thread) and spins - running, no page faults,
 * so the tracer cannot tell its call is over. A second thread T2, made by
 * a raw clone (CLONE_THREAD is not notified; no libc in it), maps a page:
 * P's reading, which holds G, is taken as its judgement while G's grant is
 * still counted on top. T2 then forks (refused: ENOMEM at the exact
 * ledger), touches G, grows P's main stack by G - 1 MiB (page faults, no
 * request), and lets the child F map and touch FILL in the room the
 * ledger sees. */
static struct gj {
        uint64_t g_len;
        char *g;
        uintptr_t stack_lo;
        int to_f, from_f;
        int stop; /* __atomic */
} gj;

static void __attribute__((noinline)) gj_spin(void)
{
        while (!__atomic_load_n(&gj.stop, __ATOMIC_SEQ_CST))
                __asm__ volatile("" ::: "memory");
}

/* raw system calls only: this thread has no TLS of its own */
static int gj_t2(void *arg)
{
        (void)arg;
        char c = 1;
        if ((long)syscall(SYS_mmap, 0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) < 0)
                goto out;
        long r = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (r == 0)
                syscall(SYS_exit_group, 0);
        if (r > 0)
                syscall(SYS_wait4, r, 0, 0, 0);
        for (uint64_t off = 0; off < gj.g_len; off += PAGE)
                gj.g[off] = 1;
        for (uintptr_t a = gj.stack_lo - PAGE; a >= gj.stack_lo - (gj.g_len - MIB); a -= PAGE)
                *(volatile char *)a = 1;
        if (syscall(SYS_write, gj.to_f, &c, 1) != 1 || syscall(SYS_read, gj.from_f, &c, 1) != 1)
                goto out;
        struct timespec ts = { 20, 0 }; /* over the limit: a deadline for the sweep's kill */
        syscall(SYS_nanosleep, &ts, 0);
out:
        __atomic_store_n(&gj.stop, 1, __ATOMIC_SEQ_CST);
        syscall(SYS_exit, 0);
        return 0;
}

/* grantjudged PEAK G FILL HOLD (MiB): see above; PEAK is mapped and
 * unmapped first (a peak near the limit: F's request is judged on last
 * readings), HOLD held. Prints "survived" if P is not killed. */
static int cmd_grantjudged(int argc, char **argv)
{
        if (argc != 4)
                usage();
        uint64_t peak = num(argv[0]) * MIB, fill = num(argv[2]) * MIB, hold = num(argv[3]) * MIB;
        gj.g_len = num(argv[1]) * MIB;
        int fp[2], fb[2];
        if (pipe2(fp, O_CLOEXEC) || pipe2(fb, O_CLOEXEC))
                fail("pipe");
        pid_t f = fork();
        if (f < 0)
                fail("fork");
        if (f == 0) {
                await_byte(fp[0], "go");
                say("filling"); /* before: filled, the sandbox may end at once */
                map_touched(fill);
                send_byte(fb[1]);
                for (;;)
                        pause();
        }
        gj.to_f = fp[1];
        gj.from_f = fb[0];
        gj.stack_lo = main_stack_low();
        __atomic_store_n(&gj.stop, 1, __ATOMIC_SEQ_CST);
        gj_spin(); /* its code faulted in */
        __atomic_store_n(&gj.stop, 0, __ATOMIC_SEQ_CST);
        munmap(map_touched(peak), peak);
        map_touched(hold);
        char *stk = map_touched(256 * 1024);
        gj.g = mmap(NULL, gj.g_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (gj.g == MAP_FAILED)
                fail("mmap");
        if (clone(gj_t2, stk + 256 * 1024,
                  CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM, NULL) < 0)
                fail("clone");
        gj_spin();
        say("survived");
        kill(f, SIGKILL);
        waitpid(f, NULL, 0);
        return 0;
}

/* inheritstale: found in review. P holds HOLD (judged), unmaps it (not
 * notified: P's reading and judgement are stale), then clone(CLONE_VM)s a
 * child C that takes over the address space's judgement, and execs
 * itself ("inheritstale2"): its stale reading leaves the ledger. C, alone
 * in the old address space, grows its main stack by GROW (page faults, no
 * request; raw system calls only) while the new image maps and touches
 * FILL in the room the ledger sees. */
static uintptr_t is_stack_lo;
static uint64_t is_grow;
static int is_go, is_done;

static int is_child(void *arg)
{
        (void)arg;
        char c;
        if (syscall(SYS_read, is_go, &c, 1) != 1)
                syscall(SYS_exit, 1);
        for (uintptr_t a = is_stack_lo - PAGE; a >= is_stack_lo - is_grow; a -= PAGE)
                *(volatile char *)a = 1;
        syscall(SYS_write, is_done, &c, 1);
        for (;;)
                syscall(SYS_pause);
        return 0;
}

/* inheritstale PEAK HOLD GROW FILL (MiB): see above. The new image
 * reports whether C was killed within 10 s. */
static int cmd_inheritstale(int argc, char **argv)
{
        if (argc != 4)
                usage();
        uint64_t peak = num(argv[0]) * MIB, hold = num(argv[1]) * MIB;
        is_grow = num(argv[2]) * MIB;
        int go[2], done[2];
        if (pipe(go) || pipe(done)) /* kept across the exec */
                fail("pipe");
        is_go = go[0];
        is_done = done[1];
        is_stack_lo = main_stack_low();
        char *stk = map_touched(256 * 1024);
        munmap(map_touched(peak), peak); /* the peak */
        char *p = map_touched(hold);
        map_touched(PAGE); /* the hold's call is over: judged */
        munmap(p, hold);   /* given back, not notified */
        pid_t c = clone(is_child, stk + 256 * 1024, CLONE_VM | SIGCHLD, NULL);
        if (c < 0)
                fail("clone");
        char a1[16], a2[16], a3[16];
        snprintf(a1, sizeof(a1), "%d", go[1]);
        snprintf(a2, sizeof(a2), "%d", done[0]);
        snprintf(a3, sizeof(a3), "%d", (int)c);
        execl(self_path, self_path, "inheritstale2", a1, a2, a3, argv[3], (char *)NULL);
        fail("exec");
}

static int cmd_inheritstale2(int argc, char **argv)
{
        if (argc != 4)
                usage();
        int go = (int)num(argv[0]), done = (int)num(argv[1]);
        pid_t c = (pid_t)num(argv[2]);
        uint64_t fill = num(argv[3]) * MIB;
        say("new image, child %d", (int)c);
        send_byte(go);
        await_byte(done, "grown");
        map_touched(fill);
        for (int i = 0; i < 10000; i++) {
                int st;
                pid_t r = waitpid(c, &st, WNOHANG);
                if (r == c) {
                        say(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL ? "child killed" : "child ended");
                        return 0;
                }
                struct timespec ts = { 0, 1000000 };
                nanosleep(&ts, NULL);
        }
        say("child survived");
        kill(c, SIGKILL);
        waitpid(c, NULL, 0);
        return 0;
}

/* innocent: found in review. The root forks P, and P forks Q. P's thread
 * C keeps mmap_lock busy (MADV_POPULATE_READ over 512 MiB of read-only
 * memory), so that P's 40 MiB mmap, allowed, waits for the lock after its
 * answer, while P's thread B asks for pages in a loop (each allowed, each
 * failing EBADF): P is judged again and again while the 40 MiB has not run.
 * Then Q grows its main stack by 30 MiB with no request: the sandbox is
 * over the limit, and Q - not P, which holds only what it was let have -
 * must be killed. The root reports both. */
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
static char *inn_ro;
static int inn_stop, inn_b_started, inn_c_rounds; /* __atomic */

static void *inn_c(void *arg)
{
        while (!__atomic_load_n(&inn_stop, __ATOMIC_SEQ_CST)) {
                madvise(inn_ro, 512 * MIB, MADV_POPULATE_READ);
                madvise(inn_ro, 512 * MIB, MADV_DONTNEED);
                __atomic_add_fetch(&inn_c_rounds, 1, __ATOMIC_SEQ_CST);
        }
        return arg;
}

static void *inn_b(void *arg)
{
        __atomic_store_n(&inn_b_started, 1, __ATOMIC_SEQ_CST);
        while (!__atomic_load_n(&inn_stop, __ATOMIC_SEQ_CST)) {
                syscall(SYS_mmap, 0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, -1, 0);
                struct timespec ts = { 0, 200000 };
                nanosleep(&ts, NULL);
        }
        return arg;
}

static int cmd_innocent(int argc, char **argv)
{
        (void)argv;
        if (argc != 0)
                usage();
        int rep[2];
        if (pipe2(rep, O_CLOEXEC))
                fail("pipe");
        pid_t p = fork();
        if (p < 0)
                fail("fork");
        if (p == 0) {
                int go[2];
                if (pipe2(go, O_CLOEXEC))
                        fail("pipe");
                pid_t q = fork();
                if (q < 0)
                        fail("fork");
                if (q == 0) {
                        uintptr_t lo = main_stack_low();
                        await_byte(go[0], "go");
                        *(volatile char *)(lo - 30 * MIB) = 1;
                        for (;;)
                                pause();
                }
                (void)!write(rep[1], &q, sizeof(q));
                inn_ro = mmap(NULL, 512 * MIB, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
                if (inn_ro == MAP_FAILED)
                        fail("mmap");
                pthread_t b, c;
                start_thread(&c, inn_c, NULL);
                start_thread(&b, inn_b, NULL);
                /* C's loop under way (its populate holds mmap_lock most
                 * of the time), B's requests too */
                while (__atomic_load_n(&inn_c_rounds, __ATOMIC_SEQ_CST) < 2 ||
                       !__atomic_load_n(&inn_b_started, __ATOMIC_SEQ_CST)) {
                        struct timespec ts = { 0, 1000000 };
                        nanosleep(&ts, NULL);
                }
                char *a = mmap(NULL, 40 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (a == MAP_FAILED)
                        fail("mmap");
                a[0] = 1;
                __atomic_store_n(&inn_stop, 1, __ATOMIC_SEQ_CST);
                pthread_join(b, NULL);
                pthread_join(c, NULL);
                say("p mapped 40 MiB data %" PRIu64, data_now());
                send_byte(go[1]);
                /* until the limit kills Q (or this process); then some
                 * time for a wrong second kill */
                for (int i = 0; i < 20000 && kill(q, 0) == 0 && waitpid(q, NULL, WNOHANG) == 0; i++) {
                        struct timespec t = { 0, 1000000 };
                        nanosleep(&t, NULL);
                }
                struct timespec t = { 0, 300000000 };
                nanosleep(&t, NULL);
                _exit(0);
        }
        pid_t q = 0;
        if (read(rep[0], &q, sizeof(q)) != sizeof(q))
                fail("no Q");
        int st = wait_child(p);
        print_status("p", 1, p, st);
        char qs[24];
        snprintf(qs, sizeof(qs), "%d", (int)q);
        say("q %d data %" PRIu64, (int)q, statm_data_of(qs)); /* 0: killed (a zombie) */
        kill(q, SIGKILL);
        while (wait(NULL) > 0 || errno == EINTR)
                ;
        return 0;
}

/* shmtail N MIB KEEP: N times, an anonymous shared object of MIB, touched,
 * then unmapped but for its first page (KEEP "head") or its last
 * ("tail"): its pages stay while that page is mapped. Found in review:
 * counted by the furthest byte still mapped, "head" objects counted 4 KiB
 * each. */
static int cmd_shmtail(int argc, char **argv)
{
        if (argc != 3)
                usage();
        uint64_t n = num(argv[0]), len = num(argv[1]) * MIB;
        bool head = !strcmp(argv[2], "head");
        for (uint64_t i = 0; i < n; i++) {
                char *p = map_anon(len, MAP_SHARED);
                if (head)
                        munmap(p + PAGE, len - PAGE);
                else
                        munmap(p, len - PAGE);
                say("object %" PRIu64 " held", i + 1);
        }
        say("done");
        return 0;
}

/* Reap child `pid` (reported as `label` 1), then map and touch `len`
 * bytes and say `done`. Returns 0. */
static int ask_after_exit(const char *label, pid_t pid, uint64_t len, const char *done)
{
        print_status(label, 1, pid, wait_child(pid));
        /* not needed for the outcome: lets the tracer see the exit before
         * the request, as a build without the fix needs to show it */
        struct timespec ts = { 0, 100000000 };
        nanosleep(&ts, NULL);
        map_touched(len);
        say("%s", done);
        return 0;
}

/* sharedfork OBJ PRIV (MiB): found in review. An anonymous shared object
 * of OBJ, touched; a fork child that exits at once (its registration is
 * an exact re-read, at a new peak, which counted the object under the
 * child: the newest process first); once it is reaped, PRIV of private
 * memory, touched. "private mapped" if that was let in. */
static int cmd_sharedfork(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t obj = num(argv[0]) * MIB, priv = num(argv[1]) * MIB;
        map_anon(obj, MAP_SHARED);
        pid_t c = fork();
        if (c < 0)
                fail("fork");
        if (c == 0)
                _exit(0);
        return ask_after_exit("child", c, priv, "private mapped");
}

/* sharedswap N OBJ BIG (MiB): found in review. N rounds, each below the
 * peak (set first by a reservation of OBJ + 8 MiB, never touched, so no
 * exact re-read falls between the creations and the first look): a 4 KiB
 * anonymous shared object, then one of OBJ, touched and cut to its first
 * page; the small one unmapped whole; a page mapped (the big one's grant
 * ends). Then BIG private, touched. Counted by the small one's size, the
 * big objects hid. "round K held" each; "private mapped" at the end. */
static int cmd_sharedswap(int argc, char **argv)
{
        if (argc != 3)
                usage();
        uint64_t n = num(argv[0]), obj = num(argv[1]) * MIB, big = num(argv[2]) * MIB;
        for (uint64_t r = 0; r < n; r++) {
                uint64_t res = obj + 8 * MIB + r * 64 * 1024;
                munmap(mmap_or_fail(res, MAP_PRIVATE), res);
                char *tiny = mmap_or_fail(PAGE, MAP_SHARED);
                char *o = map_anon(obj, MAP_SHARED);
                munmap(o + PAGE, obj - PAGE);
                munmap(tiny, PAGE);
                munmap(mmap_or_fail(PAGE, MAP_PRIVATE), PAGE);
                say("round %" PRIu64 " held", r + 1);
        }
        map_touched(big);
        say("private mapped");
        return 0;
}

/* execcut N OBJ BIG (MiB): found in review. N rounds: thread T maps an
 * anonymous shared object of OBJ, touched, and cuts it to its first page;
 * the main thread's exec fails (ENOENT) and it waits, its exec pending
 * for the tracer (whose re-reads then skip its maps); T sets a new peak
 * (an exact re-read); the main thread makes a notified call (its exec
 * seen over). Then BIG private, touched. Forgotten at the re-read that
 * skipped them, the objects counted a page each. */
static int ec_to_main[2], ec_to_t[2];
static uint64_t ec_n, ec_obj;

static void *ec_t(void *arg)
{
        (void)arg;
        for (uint64_t r = 0; r < ec_n; r++) {
                char *o = map_anon(ec_obj, MAP_SHARED);
                munmap(o + PAGE, ec_obj - PAGE);
                send_byte(ec_to_main[1]); /* exec, failing */
                await_byte(ec_to_t[0], "exec failed");
                uint64_t peak = 8 * MIB + r * 64 * 1024;
                munmap(mmap_or_fail(peak, MAP_PRIVATE), peak);
                send_byte(ec_to_main[1]); /* a notified call */
                await_byte(ec_to_t[0], "call made");
                say("round %" PRIu64 " held", r + 1);
        }
        return NULL;
}

static int cmd_execcut(int argc, char **argv)
{
        if (argc != 3)
                usage();
        ec_n = num(argv[0]);
        ec_obj = num(argv[1]) * MIB;
        uint64_t big = num(argv[2]) * MIB;
        if (pipe2(ec_to_main, O_CLOEXEC) || pipe2(ec_to_t, O_CLOEXEC))
                fail("pipe");
        pthread_t t;
        start_thread(&t, ec_t, NULL);
        for (uint64_t i = 0; i < 2 * ec_n; i++) {
                await_byte(ec_to_main[0], "thread");
                if (i % 2 == 0) {
                        char *av[] = { "x", NULL };
                        syscall(SYS_execve, "/nonexistent/seccell-execcut", av, environ);
                } else {
                        munmap(mmap_or_fail(PAGE, MAP_PRIVATE), PAGE);
                }
                send_byte(ec_to_t[1]);
        }
        pthread_join(t, NULL);
        map_touched(big);
        say("private mapped");
        return 0;
}

/* zerooffset MIB: 4 KiB of /dev/zero mapped shared at file offset MIB:
 * counted by the furthest byte it reaches. "mapped" if let in. */
static int cmd_zerooffset(int argc, char **argv)
{
        if (argc != 1)
                usage();
        int fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                fail("open /dev/zero");
        char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)(num(argv[0]) * MIB));
        if (p == MAP_FAILED)
                fail("mmap");
        say("mapped");
        return 0;
}

/* remapfile: remap_file_pages(2) of a page of anonymous shared memory to
 * file offset 1 GiB; prints "remap_file_pages errno N" (0: done). */
static int cmd_remapfile(int argc, char **argv)
{
        (void)argv;
        if (argc != 0)
                usage();
        char *p = mmap_or_fail(PAGE, MAP_SHARED);
        long r = syscall(SYS_remap_file_pages, p, PAGE, 0, (1ul << 30) / PAGE, 0);
        say("remap_file_pages errno %d", r == 0 ? 0 : errno);
        return 0;
}

/* shmattach SHMID N PRIV: attach the SysV segment SHMID (made outside the
 * sandbox) N times, touching all of it each time ("attached K"); then PRIV
 * MiB private, touched ("private mapped"). */
static int cmd_shmattach(int argc, char **argv)
{
        if (argc != 3)
                usage();
        int shmid = (int)snum(argv[0]);
        uint64_t n = num(argv[1]), priv = num(argv[2]) * MIB;
        struct shmid_ds ds;
        if (shmctl(shmid, IPC_STAT, &ds) < 0)
                fail("shmctl");
        for (uint64_t i = 0; i < n; i++) {
                char *p = shmat(shmid, NULL, 0);
                if (p == (void *)-1)
                        fail("shmat");
                touch(p, ds.shm_segsz);
                say("attached %" PRIu64, i + 1);
        }
        map_touched(priv);
        say("private mapped");
        return 0;
}

/* manycut PEAK N KIB PRIV: a reservation of PEAK MiB, never touched (a
 * peak: no exact re-read while what follows stays below it); N anonymous
 * shared objects of KIB KiB, each touched and cut to its first page; then
 * PRIV MiB private, touched ("private mapped"). Found in review: only the
 * last 8 creations' sizes were remembered, the other objects counted a
 * page each. */
static int cmd_manycut(int argc, char **argv)
{
        if (argc != 4)
                usage();
        uint64_t peak = num(argv[0]) * MIB, n = num(argv[1]), len = num(argv[2]) * 1024, priv = num(argv[3]) * MIB;
        munmap(mmap_or_fail(peak, MAP_PRIVATE), peak);
        for (uint64_t i = 0; i < n; i++) {
                char *p = mmap_or_fail(len, MAP_SHARED);
                touch(p, len);
                munmap(p + PAGE, len - PAGE);
        }
        say("objects held %" PRIu64, n);
        map_touched(priv);
        say("private mapped");
        return 0;
}

/* orphanobject OBJ ASK PEAK (MiB): found in review. A child M maps and
 * unmaps PEAK (an earlier peak: no exact re-read at its fork below); its
 * second thread maps OBJ of anonymous shared memory, touched; M forks H,
 * which holds the object, and exits. Once M is reaped, the root asks for
 * ASK ("got it" if let). M's exit dropped its thread's grant, and the
 * object its request made was taken for one no request made: H was killed
 * in place of the root. */
static uint64_t oo_len;
static void *oo_obj;

static void *oo_thread(void *arg)
{
        (void)arg;
        oo_obj = map_anon(oo_len, MAP_SHARED);
        return NULL;
}

static int cmd_orphanobject(int argc, char **argv)
{
        if (argc != 3)
                usage();
        oo_len = num(argv[0]) * MIB;
        uint64_t ask = num(argv[1]) * MIB, peak = num(argv[2]) * MIB;
        pid_t m = fork();
        if (m < 0)
                fail("fork");
        if (m == 0) {
                munmap(map_touched(peak), peak);
                pthread_t t;
                start_thread(&t, oo_thread, NULL);
                pthread_join(t, NULL);
                pid_t h = fork();
                if (h < 0)
                        fail("fork");
                if (h == 0) {
                        struct timespec ts = { 20, 0 }; /* holds it until the run ends */
                        nanosleep(&ts, NULL);
                        _exit(0);
                }
                say("holder %d", (int)h);
                _exit(0);
        }
        return ask_after_exit("middle", m, ask, "got it");
}

/* inflightorder ASK PEAK (MiB): found in review. A child H maps and
 * unmaps PEAK (an earlier peak), maps an 8 MiB anonymous shared object X,
 * touched, then a 1 MiB one Y at a lower address, untouched, and computes
 * with no call and no page fault (Y's call not seen over). The root then
 * asks for ASK ("got it" if let). Y took X's creation at the exact re-read
 * (smallest larger, in address order), X was taken for an object no
 * request made, and H was killed in place of the root. */
static int cmd_inflightorder(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t ask = num(argv[0]) * MIB, peak = num(argv[1]) * MIB;
        int ready[2];
        if (pipe2(ready, O_CLOEXEC))
                fail("pipe");
        pid_t h = fork();
        if (h < 0)
                fail("fork");
        if (h == 0) {
                munmap(map_touched(peak), peak);
                touch(mmap_or_fail(8 * MIB, MAP_SHARED), 8 * MIB);
                struct timespec t0, t;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                send_byte(ready[1]);
                volatile char *y = mmap_or_fail(MIB, MAP_SHARED);
                /* a deadline, well past the root's request: no call, no
                 * page fault (its grant stays in flight) */
                do
                        clock_gettime(CLOCK_MONOTONIC, &t);
                while (t.tv_sec - t0.tv_sec < 3);
                y[0] = 1;
                _exit(0);
        }
        await_byte(ready[0], "holder ready");
        /* until Y is mapped: a 1 MiB anonymous shared object in its maps */
        char path[64], line[512];
        snprintf(path, sizeof(path), "/proc/%d/maps", (int)h);
        for (bool mapped = false; !mapped;) {
                FILE *f = fopen(path, "re");
                if (!f)
                        fail("maps");
                while (fgets(line, sizeof(line), f)) {
                        unsigned long a, b;
                        if (sscanf(line, "%lx-%lx", &a, &b) == 2 && b - a == MIB && strstr(line, "/dev/zero"))
                                mapped = true;
                }
                fclose(f);
        }
        map_touched(ask);
        say("got it");
        print_status("holder", 1, h, wait_child(h));
        return 0;
}

/* zerosmuggle MIB N: found in review. An mmap(MAP_SHARED) of descriptor
 * 100, a regular file when the tracer looks, /dev/zero when the call takes
 * it: a second thread dup2()s /dev/zero over it between the two. Both
 * threads on CPU 0, the mapping thread SCHED_IDLE: the swapper waits 15 us
 * (the idle thread parks in its notification), spins 10 ms (the tracer
 * answers, the idle thread cannot run yet), then swaps. Up to 4 N tries
 * for N such objects of MIB, each touched ("smuggled K"); then "held K",
 * and, holding any, 20 s. */
static int zs_zero, zs_go[2], zs_done[2];

static void zs_pin(void)
{
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(0, &set);
        sched_setaffinity(0, sizeof(set), &set);
}

static void *zs_swapper(void *arg)
{
        (void)arg;
        char c;
        zs_pin();
        prctl(PR_SET_TIMERSLACK, 1);
        while (read(zs_go[0], &c, 1) == 1) {
                struct timespec ts = { 0, 15000 };
                nanosleep(&ts, NULL);
                struct timespec t0, t;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                do
                        clock_gettime(CLOCK_MONOTONIC, &t);
                while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 10000000L);
                dup2(zs_zero, 100);
                send_byte(zs_done[1]);
        }
        return NULL;
}

static int cmd_zerosmuggle(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t len = num(argv[0]) * MIB, want = num(argv[1]), got = 0;
        char path[] = "/tmp/seccell-zerosmuggle-XXXXXX";
        int file = mkstemp(path);
        if (file < 0 || unlink(path) < 0 || ftruncate(file, (off_t)len) < 0)
                fail("temporary file");
        zs_zero = open("/dev/zero", O_RDWR | O_CLOEXEC);
        if (zs_zero < 0 || pipe2(zs_go, O_CLOEXEC) || pipe2(zs_done, O_CLOEXEC))
                fail("open");
        zs_pin();
        pthread_t t;
        start_thread(&t, zs_swapper, NULL);
        struct sched_param sp = { 0 };
        sched_setscheduler(0, SCHED_IDLE, &sp); /* this thread only */
        for (uint64_t tries = 0; got < want && tries < 4 * want; tries++) {
                if (dup2(file, 100) < 0)
                        fail("dup2");
                send_byte(zs_go[1]);
                char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, 100, 0);
                await_byte(zs_done[0], "swap");
                if (p == MAP_FAILED)
                        continue;
                /* the object it made: a shmem file ("/dev/zero (deleted)") or the regular file */
                bool zero = false;
                FILE *f = fopen("/proc/self/maps", "re");
                char line[512], start[32];
                snprintf(start, sizeof(start), "%lx-", (unsigned long)p);
                while (f && fgets(line, sizeof(line), f))
                        if (!strncmp(line, start, strlen(start)))
                                zero = strstr(line, "/dev/zero") != NULL;
                if (f)
                        fclose(f);
                if (zero) {
                        touch(p, len);
                        say("smuggled %" PRIu64, ++got);
                } else {
                        munmap(p, len);
                }
        }
        sp.sched_priority = 0;
        sched_setscheduler(0, SCHED_OTHER, &sp);
        say("held %" PRIu64, got);
        if (got) {
                struct timespec ts = { 20, 0 }; /* a deadline for the sweep's kill */
                nanosleep(&ts, NULL);
        }
        return 0;
}

/* racekill A B REQ N (MiB, MiB, MiB, rounds): two children hold A and B
 * MiB, touched, then at once each maps REQ MiB (one page touched) and
 * unmaps it, N times: at the limit, the first to ask past it is killed,
 * and the other asks on while the victim dies. The root reports each
 * ("a 1 ...", "b 2 ..."). */
static int cmd_racekill(int argc, char **argv)
{
        if (argc != 4)
                usage();
        uint64_t hold[2] = { num(argv[0]) * MIB, num(argv[1]) * MIB }, req = num(argv[2]) * MIB;
        uint64_t rounds = num(argv[3]);
        int go[2], ready[2];
        if (pipe2(go, O_CLOEXEC) || pipe2(ready, O_CLOEXEC))
                fail("pipe");
        pid_t kid[2];
        for (int i = 0; i < 2; i++) {
                kid[i] = fork();
                if (kid[i] < 0)
                        fail("fork");
                if (kid[i] == 0) {
                        map_touched(hold[i]);
                        send_byte(ready[1]);
                        await_byte(go[0], "go");
                        for (uint64_t r = 0; r < rounds; r++) {
                                char *p = mmap_or_fail(req, MAP_PRIVATE);
                                p[0] = 1;
                                munmap(p, req);
                        }
                        _exit(0);
                }
        }
        await_byte(ready[0], "a ready");
        await_byte(ready[0], "b ready");
        char both[2] = { 1, 1 };
        if (write(go[1], both, 2) != 2)
                fail("write");
        print_status("a", 1, kid[0], wait_child(kid[0]));
        print_status("b", 2, kid[1], wait_child(kid[1]));
        return 0;
}

/* A grower beside an asker, for the sweep's choice of victim: the root
 * forks Q, which waits for a byte on its pipe and then grows its main
 * stack by 30 MiB with no request, and the asker, which runs asker(fd)
 * with the pipe's write end: it stays within what it is let have, sends
 * the byte and waits in await_grower_gone() until Q has ended. The root
 * reports how each ended ("grower", "asked"). */
static int gb_gone = -1; /* the asker's: a byte (or EOF) once Q has ended */

static void await_grower_gone(void)
{
        await_byte(gb_gone, "the grower's end");
}

static int grower_beside(void (*asker)(int go))
{
        int go[2], gone[2];
        if (pipe2(go, O_CLOEXEC))
                fail("pipe");
        pid_t q = fork();
        if (q < 0)
                fail("fork");
        if (q == 0) {
                await_byte(go[0], "go");
                grow_stack(30);
                struct timespec ts = { 20, 0 }; /* a deadline for the sweep's kill */
                nanosleep(&ts, NULL);
                _exit(0);
        }
        if (pipe2(gone, O_CLOEXEC))
                fail("pipe");
        pid_t p = fork();
        if (p < 0)
                fail("fork");
        if (p == 0) {
                close(gone[1]);
                gb_gone = gone[0];
                asker(go[1]);
                _exit(0);
        }
        close(gone[0]);
        print_status("grower", 1, q, wait_child(q));
        close(gone[1]); /* the asker's await_grower_gone() returns */
        print_status("asked", 2, p, wait_child(p));
        return 0;
}

/* zombieleader: found in review. The asker's leader exits (pthread_exit)
 * and, once it is a zombie, its thread T maps 40 MiB, unmaps it and maps
 * 40 MiB again (allowed on last readings), touched, then waits: never
 * more than it was let have, until the grower has ended. */
static int zl_go;

static void *zl_t(void *arg)
{
        (void)arg;
        await_zombie_leader(getpid());
        munmap(map_touched(40 * MIB), 40 * MIB);
        map_touched(40 * MIB);
        send_byte(zl_go);
        await_grower_gone();
        exit(0);
}

static void zl_asker(int go)
{
        zl_go = go;
        pthread_t t;
        start_thread(&t, zl_t, NULL);
        pthread_exit(NULL);
}

static int cmd_zombieleader(int argc, char **argv)
{
        (void)argv;
        if (argc != 0)
                usage();
        return grower_beside(zl_asker);
}

/* nodump: found in review. The asker maps and touches 40 MiB (judged),
 * then makes itself non-dumpable (its stat then hides start_brk from a
 * tracer without CAP_SYS_PTRACE) and waits for the grower's end. */
static void nodump_asker(int go)
{
        map_touched(40 * MIB); /* judged at its request, while dumpable */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
                fail("prctl");
        send_byte(go);
        await_grower_gone();
}

static int cmd_nodump(int argc, char **argv)
{
        (void)argv;
        if (argc != 0)
                usage();
        return grower_beside(nodump_asker);
}

/* vforkimages N HOLD PROG LIMIT: hold HOLD MiB (mapped and touched: a
 * judged request), then N times vfork and exec PROG (an image of its own
 * memory, no libc: seccell-mem-freebss) - a vfork child shares this
 * address space until its exec, which must not pass the image as judged;
 * then await_fit() with the images' 40 MiB. */
static int cmd_vforkimages(int argc, char **argv)
{
        enum { MAX_KIDS = 256 };
        if (argc != 4)
                usage();
        uint64_t n = num(argv[0]), hold = num(argv[1]) * MIB, limit = num(argv[3]) * MIB;
        if (n == 0 || n > MAX_KIDS)
                usage();
        void *p = mmap(NULL, hold, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                fail("mmap");
        touch(p, hold);
        pid_t kids[MAX_KIDS];
        for (uint64_t i = 0; i < n; i++) {
                kids[i] = vfork();
                if (kids[i] < 0)
                        fail("vfork");
                if (kids[i] == 0) {
                        execl(argv[2], argv[2], (char *)NULL);
                        _exit(127);
                }
        }
        return await_fit(kids, n, 40 * MIB, limit);
}

/* ------------------------------------------------------------ SysV shm */

/* One private segment of `len` bytes: created, attached, removed (gone at
 * its last detach), touched in full and detached. */
static void shm_round(uint64_t len)
{
        int s = announce("shmget", len);
        int id = shmget(IPC_PRIVATE, len, IPC_CREAT | 0600);
        if (id < 0)
                fail("shmget");
        say("ok %d", s);
        void *p = shmat(id, NULL, 0);
        shmctl(id, IPC_RMID, NULL);
        if (p == (void *)-1)
                fail("shmat");
        touch(p, len);
        shmdt(p);
}

/* shm MIB: one such segment. */
static int cmd_shm(int argc, char **argv)
{
        if (argc != 1)
                usage();
        uint64_t len = num(argv[0]) * MIB;
        shm_round(len);
        say("used %" PRIu64, len);
        return 0;
}

/* shmcycle N MIB: N such segments one after another; one exists at a
 * time. */
static int cmd_shmcycle(int argc, char **argv)
{
        if (argc != 2)
                usage();
        uint64_t rounds = num(argv[0]), len = num(argv[1]) * MIB;
        for (uint64_t i = 0; i < rounds; i++)
                shm_round(len);
        say("done cycled %" PRIu64, rounds);
        return 0;
}

/* shmpair ROUNDS MIB KEY: first 40 MiB mapped, touched and unmapped (a
 * peak, so the shmgets below are not re-read exactly); then each round a
 * private segment of MIB (attached, removed: gone at its detach) and a
 * segment of MIB with key KEY+round, then two requests that re-read the
 * ledger exactly (mprotect of an unmapped range: no growth, fails ENOMEM)
 * around the private one's detach; the keyed one is attached, touched and
 * kept. */
static int cmd_shmpair(int argc, char **argv)
{
        if (argc != 3)
                usage();
        uint64_t rounds = num(argv[0]), len = num(argv[1]) * MIB;
        key_t key = (key_t)snum(argv[2]);
        void *far = (void *)(uintptr_t)0x100000000000ull;
        munmap(map_anon(40 * MIB, MAP_PRIVATE), 40 * MIB);
        for (uint64_t i = 0; i < rounds; i++) {
                int s = announce("shmget", len);
                int c = shmget(IPC_PRIVATE, len, IPC_CREAT | 0600);
                if (c < 0)
                        fail("shmget private");
                say("ok %d", s);
                void *pc = shmat(c, NULL, 0);
                shmctl(c, IPC_RMID, NULL);
                if (pc == (void *)-1)
                        fail("shmat");
                s = announce("shmget", len);
                int b = shmget(key + (key_t)i, len, IPC_CREAT | IPC_EXCL | 0600);
                if (b < 0)
                        fail("shmget keyed");
                say("ok %d", s);
                mprotect(far, 1ull << 40, PROT_READ | PROT_WRITE);
                shmdt(pc);
                mprotect(far, 1ull << 40, PROT_READ | PROT_WRITE);
                void *pb = shmat(b, NULL, 0);
                if (pb == (void *)-1)
                        fail("shmat");
                touch(pb, len);
                shmdt(pb);
                say("round %" PRIu64 " keyed %" PRIu64, i + 1, (i + 1) * len);
        }
        say("done");
        return 0;
}

/* shmkids N MIB THEN: N children one after another, each asking for a
 * MIB huge-page segment (SHM_HUGETLB: fails with ENOMEM where no huge pages
 * are reserved; removed at once where it succeeds) and exiting; then THEN
 * MiB of anonymous memory in the parent. */
static int cmd_shmkids(int argc, char **argv)
{
        if (argc != 3)
                usage();
        uint64_t n = num(argv[0]), len = num(argv[1]) * MIB, then = num(argv[2]) * MIB;
        for (uint64_t i = 1; i <= n; i++) {
                pid_t pid = fork();
                if (pid < 0)
                        fail("fork");
                if (pid == 0) {
                        int id = shmget(IPC_PRIVATE, len, IPC_CREAT | SHM_HUGETLB | 0600);
                        if (id >= 0)
                                shmctl(id, IPC_RMID, NULL);
                        say("child %" PRIu64 " shmget %s", i, id >= 0 ? "ok" : strerror(errno));
                        _exit(0);
                }
                print_status("child", (int)i, pid, wait_child(pid));
        }
        map_anon(then, MAP_PRIVATE);
        say("done");
        return 0;
}

/* shmhuge HOLD KB LOG: HOLD MiB mapped and touched, then a private
 * huge-page segment of KB KiB (SHM_HUGETLB, with LOG << 26 in the flags:
 * log2 of the huge page size, 0 for the default), announced as the whole
 * huge pages it takes; prints "shmget ok" (removed at once) or "shmget
 * errno N" (no huge pages reserved: ENOMEM), then "done". "nohuge" and
 * exit 0 when the kernel has no such huge pages. */
static int cmd_shmhuge(int argc, char **argv)
{
        if (argc != 3)
                usage();
        uint64_t hold = num(argv[0]) * MIB, len = num(argv[1]) * 1024, log = num(argv[2]);
        if (log > 62)
                usage();
        uint64_t huge = log ? 1ull << log : 0;
        if (!log) {
                char line[256];
                unsigned long long kb = 0;
                FILE *f = fopen("/proc/meminfo", "re");
                if (!f)
                        fail("open /proc/meminfo");
                while (!kb && fgets(line, sizeof(line), f))
                        if (sscanf(line, "Hugepagesize: %llu kB", &kb) != 1)
                                kb = 0;
                fclose(f);
                huge = kb * 1024;
        } else {
                char path[96];
                struct stat st;
                snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB",
                         (unsigned long long)(huge >> 10));
                if (stat(path, &st) < 0)
                        huge = 0;
        }
        if (!huge) {
                say("nohuge");
                return 0;
        }
        map_anon(hold, MAP_PRIVATE);
        int s = announce("shmget", (len + huge - 1) / huge * huge);
        int id = shmget(IPC_PRIVATE, len, IPC_CREAT | SHM_HUGETLB | (int)(log << 26) | 0600);
        int err = errno;
        if (id >= 0)
                shmctl(id, IPC_RMID, NULL);
        say("ok %d", s);
        if (id >= 0)
                say("shmget ok");
        else
                say("shmget errno %d", err);
        say("done");
        return 0;
}

/* shmkey KEY MIB LOOKUPS THEN: a keyed segment of MIB created with
 * IPC_CREAT, looked up LOOKUPS more times with IPC_CREAT (the same
 * segment), attached, removed (IPC_RMID: destroyed only at its last
 * detach) and touched; then THEN MiB of anonymous memory while it is still
 * attached. KEY 0 is IPC_PRIVATE (then LOOKUPS must be 0). */
static int cmd_shmkey(int argc, char **argv)
{
        if (argc != 4)
                usage();
        key_t key = (key_t)snum(argv[0]);
        uint64_t len = num(argv[1]) * MIB, lookups = num(argv[2]), then = num(argv[3]) * MIB;
        int s = announce("shmget", len);
        int id = shmget(key, len, IPC_CREAT | IPC_EXCL | 0600);
        if (id < 0)
                fail("shmget create");
        say("ok %d", s);
        for (uint64_t i = 0; i < lookups; i++) {
                s = announce("shmget-lookup", 0);
                int again = shmget(key, len, IPC_CREAT | 0600);
                if (again != id) {
                        shmctl(id, IPC_RMID, NULL);
                        fail("shmget lookup");
                }
                say("ok %d", s);
        }
        void *p = shmat(id, NULL, 0);
        shmctl(id, IPC_RMID, NULL);
        if (p == (void *)-1)
                fail("shmat");
        touch(p, len);
        say("used %" PRIu64, len);
        if (then)
                map_anon(then, MAP_PRIVATE);
        shmdt(p);
        say("done");
        return 0;
}

/* ----------------------------------------------------------------- files */

/* filecycle FILE ROUNDS STEP COUNT: ROUNDS times map FILE MAP_PRIVATE
 * read-only and unmap it; ROUNDS times map it MAP_PRIVATE read-write,
 * write every page and unmap it; then COUNT anonymous mappings of STEP MiB,
 * touched and kept. */
static int cmd_filecycle(int argc, char **argv)
{
        if (argc != 4)
                usage();
        uint64_t rounds = num(argv[1]), step = num(argv[2]) * MIB, count = num(argv[3]);
        int fd = open(argv[0], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                fail("open file");
        struct stat st;
        if (fstat(fd, &st))
                fail("fstat");
        uint64_t len = (uint64_t)st.st_size;
        volatile uint64_t sum = 0;
        for (uint64_t r = 0; r < rounds; r++) {
                char *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
                if (p == MAP_FAILED)
                        fail("mmap file read-only");
                for (uint64_t off = 0; off < len; off += PAGE)
                        sum += (unsigned char)p[off];
                munmap(p, len);
        }
        say("read-only rounds %" PRIu64 " data %" PRIu64, rounds, data_now());
        for (uint64_t r = 0; r < rounds; r++) {
                int s = announce("mmap-file", len);
                char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
                if (p == MAP_FAILED)
                        fail("mmap file read-write");
                touch(p, len);
                say("ok %d", s);
                munmap(p, len);
        }
        close(fd);
        say("read-write rounds %" PRIu64 " data %" PRIu64, rounds, data_now());
        for (uint64_t i = 0; i < count; i++)
                map_anon(step, MAP_PRIVATE);
        say("done data %" PRIu64, data_now());
        return 0;
}

/* --------------------------------------------------------------- probe */

/* The sum of statm field 6 over `root` and all its descendants. */
static uint64_t tree_data(pid_t root, int *nproc)
{
        enum { MAXP = 4096 };
        static pid_t pids[MAXP], ppids[MAXP];
        int n = 0;
        DIR *d = opendir("/proc");
        if (!d)
                fail("opendir /proc");
        struct dirent *de;
        while ((de = readdir(d)) && n < MAXP) {
                if (de->d_name[0] < '1' || de->d_name[0] > '9')
                        continue;
                char path[300], buf[1024];
                snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                ssize_t r = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (r <= 0)
                        continue;
                buf[r] = 0;
                char *c = strrchr(buf, ')');
                int ppid;
                char state;
                if (!c || sscanf(c + 2, "%c %d", &state, &ppid) != 2)
                        continue;
                pids[n] = atoi(de->d_name);
                ppids[n] = ppid;
                n++;
        }
        closedir(d);
        /* members: root and whoever descends from it */
        static bool in[MAXP];
        for (int i = 0; i < n; i++)
                in[i] = pids[i] == root;
        for (bool grew = true; grew;) {
                grew = false;
                for (int i = 0; i < n; i++) {
                        if (in[i])
                                continue;
                        for (int j = 0; j < n; j++)
                                if (in[j] && pids[j] == ppids[i]) {
                                        in[i] = grew = true;
                                        break;
                                }
                }
        }
        uint64_t sum = 0;
        *nproc = 0;
        for (int i = 0; i < n; i++)
                if (in[i]) {
                        char p[16];
                        snprintf(p, sizeof(p), "%d", pids[i]);
                        sum += statm_data_of(p);
                        ++*nproc;
                }
        return sum;
}

/* probe ROOT LIMIT SIGN: S = the statm sum over ROOT's tree (this process
 * included), T = max(4 MiB, S/20) rounded up to pages; ask for
 * G = LIMIT - S + T (SIGN +) or LIMIT - S - T (SIGN -) bytes of private
 * writable memory. With a ledger within T of S, + is killed and - is
 * allowed. */
static int cmd_probe(int argc, char **argv)
{
        if (argc != 3)
                usage();
        pid_t root = (pid_t)num(argv[0]);
        uint64_t limit = num(argv[1]);
        bool up = !strcmp(argv[2], "+");
        if (!up && strcmp(argv[2], "-"))
                usage();
        int nproc;
        uint64_t s = tree_data(root, &nproc);
        uint64_t tol = PAGE_UP(s / 20 > 4 * MIB ? s / 20 : 4 * MIB);
        if (s + tol >= limit) {
                say("probe sum %" PRIu64 " too close to the limit", s);
                return 3;
        }
        uint64_t g = up ? limit - s + tol : limit - s - tol;
        say("probe sum %" PRIu64 " procs %d tol %" PRIu64 " grow %" PRIu64, s, nproc, tol, g);
        void *p = mmap(NULL, g, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
                fail("probe mmap");
        say("probe allowed");
        return 0;
}

/* treedata ROOT: print the statm sum over ROOT's tree. */
static int cmd_treedata(int argc, char **argv)
{
        if (argc != 1)
                usage();
        int nproc;
        uint64_t s = tree_data((pid_t)num(argv[0]), &nproc);
        say("tree %" PRIu64 " procs %d", s, nproc);
        return 0;
}

/* data: print this process's statm field 6. */
static int cmd_data(int argc, char **argv)
{
        (void)argv;
        if (argc != 0)
                usage();
        say("data %" PRIu64, data_now());
        return 0;
}

int main(int argc, char **argv)
{
        static const struct {
                const char *name;
                int (*fn)(int, char **);
        } cmds[] = {
                { "map", cmd_map },           { "reserve", cmd_reserve },   { "mremap", cmd_mremap },
                { "dontunmap", cmd_dontunmap }, { "brk", cmd_brk },           { "brkblocked", cmd_brkblocked },         { "execchain", cmd_execchain },
                { "forkexec", cmd_forkexec }, { "seq", cmd_seq },           { "offender", cmd_offender },
                { "threadmap", cmd_threadmap }, { "threadexec", cmd_threadexec }, { "brkexec", cmd_brkexec }, { "spawnloop", cmd_spawnloop }, { "vforkwatch", cmd_vforkwatch }, { "threadrace", cmd_threadrace }, { "procrace", cmd_procrace }, { "forkmap", cmd_forkmap }, { "phantom", cmd_phantom }, { "growsdown", cmd_growsdown }, { "longpath", cmd_longpath }, { "stackcopy", cmd_stackcopy },
                { "sharedmaps", cmd_sharedmaps }, { "vforkmap", cmd_vforkmap }, { "shm", cmd_shm },
                { "shmkey", cmd_shmkey },     { "shmcycle", cmd_shmcycle }, { "shmpair", cmd_shmpair }, { "shmkids", cmd_shmkids }, { "shmhuge", cmd_shmhuge },
                { "fixedshared", cmd_fixedshared }, { "sharedover", cmd_sharedover }, { "sleepers", cmd_sleepers },     { "filecycle", cmd_filecycle }, { "probe", cmd_probe },
                { "treedata", cmd_treedata }, { "data", cmd_data },
                { "leaderexit", cmd_leaderexit }, { "clonevm", cmd_clonevm }, { "stack", cmd_stack },
                { "growkids", cmd_growkids }, { "stalejudge", cmd_stalejudge }, { "grantjudged", cmd_grantjudged }, { "innocent", cmd_innocent }, { "shmtail", cmd_shmtail }, { "zombieleader", cmd_zombieleader }, { "nodump", cmd_nodump }, { "inheritstale", cmd_inheritstale }, { "inheritstale2", cmd_inheritstale2 }, { "sharedfork", cmd_sharedfork }, { "sharedswap", cmd_sharedswap }, { "execcut", cmd_execcut }, { "zerooffset", cmd_zerooffset }, { "remapfile", cmd_remapfile }, { "shmattach", cmd_shmattach }, { "racekill", cmd_racekill }, { "inflightorder", cmd_inflightorder }, { "orphanobject", cmd_orphanobject }, { "zerosmuggle", cmd_zerosmuggle }, { "manycut", cmd_manycut }, { "failexec", cmd_failexec }, { "vforkimages", cmd_vforkimages },
                { "manyvmas", cmd_manyvmas }, { "vmaspin", cmd_vmaspin }, { "vmforest", cmd_vmforest }, { "hideshared", cmd_hideshared }, { "heapsplit", cmd_heapsplit }, { "sharedmany", cmd_sharedmany }, { "dropgrow", cmd_dropgrow }, { "remapshared", cmd_remapshared }, { "grantwait", cmd_grantwait }, { "brkdecoy", cmd_brkdecoy }, { "stopgrant", cmd_stopgrant }, { "remapspan", cmd_remapspan }, { "remapfixed", cmd_remapfixed }, { "remapmany", cmd_remapmany }, { "grantrun", cmd_grantrun }, { "heapnone", cmd_heapnone }, { "execgrant", cmd_execgrant }, { "fdlocks", cmd_fdlocks },
        };
        static char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        self_path = n > 0 ? (exe[n] = 0, exe) : "/proc/self/exe";
        if (argc < 2)
                usage();
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
                if (!strcmp(argv[1], cmds[i].name))
                        return cmds[i].fn(argc - 2, argv + 2);
        usage();
}
