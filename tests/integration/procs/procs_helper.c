/* seccell-procs-helper: programs run inside `seccell run --max-procs N` by
 * test_procs.py. Each subcommand does one thing to the process limit and
 * prints exact results on stdout; the test asserts them together with the
 * audit record. Nothing here sleeps and hopes: every wait is for a
 * condition, with a deadline, and every child is killed and reaped before
 * the helper exits.
 *
 * Exit status: 0 when the subcommand ran to its end (its verdict is on
 * stdout), 2 on a usage error, 3 when the environment broke (a deadline
 * passed, a setup call failed).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_pidfd_send_signal
#define __NR_pidfd_send_signal 424
#endif
#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

/* Deadline for any condition the helper waits for. */
#define DEADLINE_NS (30ull * 1000 * 1000 * 1000)

static uint64_t mono_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t real_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        fflush(stdout);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
        va_list ap;
        fflush(stdout);
        fprintf(stderr, "procs-helper: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n");
        exit(3);
}

static const char *ename(int e)
{
        switch (e) {
        case 0: return "0";
        case EAGAIN: return "EAGAIN";
        case EPERM: return "EPERM";
        case ENOSYS: return "ENOSYS";
        case EINTR: return "EINTR";
        case ECHILD: return "ECHILD";
        case EINVAL: return "EINVAL";
        case ENOMEM: return "ENOMEM";
        case ESRCH: return "ESRCH";
        case EBADF: return "EBADF";
        case ENOENT: return "ENOENT";
        default: {
                static char buf[32];
                snprintf(buf, sizeof(buf), "E%d", e);
                return buf;
        }
        }
}

static void sleep_forever(void)
{
        for (;;)
                pause();
}

/* Blocking waitpid that retries EINTR; dies on anything else. */
static int reap(pid_t pid)
{
        int st;
        for (;;) {
                pid_t r = waitpid(pid, &st, __WALL);
                if (r == pid)
                        return st;
                if (r < 0 && errno == EINTR)
                        continue;
                die("waitpid(%d): %s", pid, strerror(errno));
        }
}

static void kill_reap(pid_t pid)
{
        kill(pid, SIGKILL);
        reap(pid);
}

/* Fork a child that waits to be killed: the pid, or -errno. */
static pid_t fork_sleeper(void)
{
        pid_t pid = fork();
        if (pid == 0)
                sleep_forever();
        return pid < 0 ? -errno : pid;
}

/* Fork a child that exits at once and reap it: 0 or -errno. */
static int fork_and_reap(void)
{
        pid_t pid = fork();
        if (pid == 0)
                _exit(0);
        if (pid < 0)
                return -errno;
        reap(pid);
        return 0;
}

static char proc_state(pid_t pid)
{
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        char *rp = strrchr(buf, ')');
        return rp && rp[1] == ' ' ? rp[2] : 0;
}

static bool proc_exists(pid_t pid)
{
        char path[64];
        struct stat sb;
        snprintf(path, sizeof(path), "/proc/%d", pid);
        return stat(path, &sb) == 0;
}

/* ------------------------------------------------------------------ nfork */

static pid_t create_one(const char *mode, int *err)
{
        long r;
        *err = 0;
        if (!strcmp(mode, "fork")) {
                r = fork();
        } else if (!strcmp(mode, "sysfork")) {
                r = syscall(SYS_fork);
        } else if (!strcmp(mode, "clone")) {
                r = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        } else if (!strcmp(mode, "vfork")) {
                r = vfork();
                if (r == 0) {
                        execl("/bin/sleep", "sleep", "30", (char *)NULL);
                        _exit(127);
                }
        } else if (!strcmp(mode, "spawn")) {
                pid_t pid;
                char *argv[] = { "sleep", "30", NULL };
                int e = posix_spawn(&pid, "/bin/sleep", NULL, NULL, argv, environ);
                if (e) {
                        *err = e;
                        return -1;
                }
                return pid;
        } else {
                die("unknown mode %s", mode);
        }
        if (r == 0)
                sleep_forever();
        if (r < 0)
                *err = errno;
        return (pid_t)r;
}

static int cmd_nfork(int n, const char *mode)
{
        pid_t *kids = calloc((size_t)n, sizeof(*kids));
        int created = 0, eagain = 0, other = 0, other_errno = 0;
        for (int i = 0; i < n; i++) {
                int err;
                pid_t pid = create_one(mode, &err);
                if (pid > 0)
                        kids[created++] = pid;
                else if (err == EAGAIN)
                        eagain++;
                else {
                        other++;
                        other_errno = err;
                }
        }
        out("created %d eagain %d other %d", created, eagain, other);
        if (other)
                out(" errno %s", ename(other_errno));
        out("\n");
        for (int i = 0; i < created; i++)
                kill_reap(kids[i]);
        free(kids);
        return 0;
}

/* -------------------------------------------------------------------- seq */

static int wait_pidfd_gone(pid_t pid)
{
        int pidfd = (int)syscall(__NR_pidfd_open, pid, 0);
        if (pidfd < 0)
                return errno == ESRCH ? 0 : -errno; /* already reaped */
        uint64_t end = mono_ns() + DEADLINE_NS;
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        for (;;) {
                int r = poll(&p, 1, 1000);
                if (r == 1)
                        break;
                if (r < 0 && errno != EINTR)
                        die("poll(pidfd): %s", strerror(errno));
                if (mono_ns() > end)
                        die("child %d did not exit", pid);
        }
        /* Readable at exit; the auto-reap (release) follows in the kernel
         * a moment later. A signal 0 through the pidfd fails with ESRCH
         * only once the task is released, with no pid-reuse race. */
        while (syscall(__NR_pidfd_send_signal, pidfd, 0, NULL, 0) == 0) {
                if (mono_ns() > end)
                        die("child %d exited but was not auto-reaped", pid);
                sched_yield();
        }
        close(pidfd);
        return 0;
}

static int cmd_seq(int n, const char *mode)
{
        bool m_wait = !strcmp(mode, "wait"), m_wnohang = !strcmp(mode, "wnohang"),
             m_sigign = !strcmp(mode, "sigign"), m_spawn = !strcmp(mode, "spawn");
        if (!m_wait && !m_wnohang && !m_sigign && !m_spawn)
                die("unknown mode %s", mode);
        if (m_sigign)
                signal(SIGCHLD, SIG_IGN);
        for (int i = 0; i < n; i++) {
                pid_t pid;
                if (m_spawn) {
                        char *argv[] = { "true", NULL };
                        int e = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
                        if (e) {
                                out("fail round %d spawn %s\n", i + 1, ename(e));
                                return 0;
                        }
                        int st = reap(pid);
                        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                                out("fail round %d status %d\n", i + 1, st);
                                return 0;
                        }
                        continue;
                }
                pid = fork();
                if (pid == 0)
                        _exit(0);
                if (pid < 0) {
                        out("fail round %d fork %s\n", i + 1, ename(errno));
                        return 0;
                }
                if (m_wait) {
                        reap(pid);
                } else if (m_wnohang) {
                        uint64_t end = mono_ns() + DEADLINE_NS;
                        for (;;) {
                                pid_t r = waitpid(pid, NULL, WNOHANG);
                                if (r == pid)
                                        break;
                                if (r < 0)
                                        die("waitpid(WNOHANG): %s", strerror(errno));
                                if (mono_ns() > end)
                                        die("child %d never reaped", pid);
                                sched_yield();
                        }
                } else {
                        int r = wait_pidfd_gone(pid);
                        if (r < 0)
                                die("pidfd_open(%d): %s", pid, strerror(-r));
                }
        }
        if (m_sigign) {
                /* no wait at all was made: prove none was needed */
                if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
                        out("unreaped children left\n");
        }
        out("ok %d\n", n);
        return 0;
}

/* ---------------------------------------------------------------- threads */

static pthread_barrier_t tbar;

static void *pthread_body(void *arg)
{
        (void)arg;
        pthread_barrier_wait(&tbar); /* all N alive */
        pthread_barrier_wait(&tbar); /* released */
        return NULL;
}

static atomic_int raw_arrived, raw_release;

static long futex(void *uaddr, int op, int val)
{
        return syscall(SYS_futex, uaddr, op, val, NULL, NULL, 0);
}

/* Runs on its own stack, sharing the main thread's TLS (no CLONE_SETTLS):
 * atomics and raw syscalls only, no errno-setting libc. */
static int raw_body(void *arg)
{
        (void)arg;
        atomic_fetch_add(&raw_arrived, 1);
        while (!atomic_load(&raw_release))
                futex(&raw_release, FUTEX_WAIT, 0);
        return 0; /* glibc's clone() ends the thread with SYS_exit */
}

static int cmd_threads(int n, const char *mode)
{
        if (!strcmp(mode, "pthread")) {
                pthread_t *t = calloc((size_t)n, sizeof(*t));
                pthread_barrier_init(&tbar, NULL, (unsigned)n + 1);
                for (int i = 0; i < n; i++) {
                        int e = pthread_create(&t[i], NULL, pthread_body, NULL);
                        if (e) {
                                out("fail thread %d %s\n", i + 1, ename(e));
                                _exit(0); /* the others are parked: leave */
                        }
                }
                pthread_barrier_wait(&tbar);
                pthread_barrier_wait(&tbar);
                for (int i = 0; i < n; i++)
                        pthread_join(t[i], NULL);
                free(t);
                out("ok %d\n", n);
                return 0;
        }
        if (strcmp(mode, "raw"))
                die("unknown mode %s", mode);
        const size_t stack_size = 64 * 1024;
        pid_t *tids = calloc((size_t)n, sizeof(*tids));
        const int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
                          CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
        for (int i = 0; i < n; i++) {
                char *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
                if (stack == MAP_FAILED)
                        die("mmap: %s", strerror(errno));
                /* glibc's clone() is the raw clone syscall with the given
                 * flags on the given stack (no clone3 here) */
                int r = clone(raw_body, stack + stack_size, flags, NULL, &tids[i], NULL, &tids[i]);
                if (r < 0) {
                        out("fail thread %d %s\n", i + 1, ename(errno));
                        _exit(0);
                }
        }
        uint64_t end = mono_ns() + DEADLINE_NS;
        while (atomic_load(&raw_arrived) < n) {
                if (mono_ns() > end)
                        die("only %d of %d raw threads ran", atomic_load(&raw_arrived), n);
                sched_yield();
        }
        /* all n threads are alive right now */
        int alive = 0;
        {
                char path[64];
                snprintf(path, sizeof(path), "/proc/%d/task", getpid());
                DIR *d = opendir(path);
                struct dirent *de;
                while (d && (de = readdir(d)))
                        if (de->d_name[0] != '.')
                                alive++;
                if (d)
                        closedir(d);
        }
        atomic_store(&raw_release, 1);
        futex(&raw_release, FUTEX_WAKE, n);
        /* CLONE_CHILD_CLEARTID: the kernel zeroes the tid word and wakes
         * it when the thread is gone, so its stack is free */
        for (int i = 0; i < n; i++) {
                pid_t t;
                while ((t = __atomic_load_n(&tids[i], __ATOMIC_ACQUIRE)) != 0)
                        futex(&tids[i], FUTEX_WAIT, t);
        }
        free(tids);
        out("ok %d tasks %d\n", n, alive);
        return 0;
}

/* --------------------------------------------------------------- nonchild */

static void on_alarm(int sig) { (void)sig; }

static void install_noreststart(int sig, void (*fn)(int))
{
        struct sigaction sa = { .sa_handler = fn }; /* no SA_RESTART */
        sigemptyset(&sa.sa_mask);
        if (sigaction(sig, &sa, NULL) < 0)
                die("sigaction: %s", strerror(errno));
}

static void arm_itimer(long interval_us)
{
        struct itimerval it = {
                .it_interval = { .tv_sec = interval_us / 1000000, .tv_usec = interval_us % 1000000 },
                .it_value = { .tv_sec = interval_us / 1000000, .tv_usec = interval_us % 1000000 },
        };
        if (setitimer(ITIMER_REAL, &it, NULL) < 0)
                die("setitimer: %s", strerror(errno));
}

static void disarm_itimer(void)
{
        struct itimerval it = { 0 };
        setitimer(ITIMER_REAL, &it, NULL);
}

/* A fork at the limit: "EAGAIN", or "ok" (the child is reaped). */
static const char *probe_fork(void)
{
        int r = fork_and_reap();
        return r == 0 ? "ok" : ename(-r);
}

static int cmd_nonchild(void)
{
        pid_t child = fork_sleeper();
        if (child < 0) {
                out("first fork %s\n", ename(-child));
                return 0;
        }
        out("first fork ok\n");
        out("at-limit fork %s\n", probe_fork());

        /* 1. waits on a pid that is not our child */
        int echild = 0;
        for (int i = 0; i < 1000; i++)
                if (waitpid(getppid(), NULL, 0) < 0 && errno == ECHILD)
                        echild++;
        for (int i = 0; i < 1000; i++)
                if (waitpid(1, NULL, __WALL) < 0 && errno == ECHILD)
                        echild++;
        for (int i = 0; i < 1000; i++) {
                siginfo_t si;
                if (waitid(P_PID, (id_t)getppid(), &si, WEXITED) < 0 && errno == ECHILD)
                        echild++;
        }
        out("echild %d\n", echild);
        out("after-echild fork %s\n", probe_fork());

        /* 2. blocking waits interrupted by a signal */
        install_noreststart(SIGALRM, on_alarm);
        arm_itimer(20000);
        int eintr = 0;
        for (int i = 0; i < 10; i++) {
                if (waitpid(-1, NULL, 0) < 0 && errno == EINTR)
                        eintr++;
                siginfo_t si;
                if (waitid(P_ALL, 0, &si, WEXITED) < 0 && errno == EINTR)
                        eintr++;
        }
        disarm_itimer();
        out("eintr %d\n", eintr);
        out("after-eintr fork %s\n", probe_fork());

        /* 3. WSTOPPED / WCONTINUED waits on a live child report, not reap */
        kill(child, SIGSTOP);
        int st;
        pid_t r;
        do
                r = waitpid(child, &st, WUNTRACED);
        while (r < 0 && errno == EINTR);
        out("stopped %s\n", r == child && WIFSTOPPED(st) ? "yes" : "no");
        out("after-stop fork %s\n", probe_fork());
        kill(child, SIGCONT);
        do
                r = waitpid(child, &st, WCONTINUED);
        while (r < 0 && errno == EINTR);
        out("continued %s\n", r == child && WIFCONTINUED(st) ? "yes" : "no");
        const char *last = probe_fork();
        out("after-continue fork %s\n", last);
        out("%s\n", !strcmp(last, "EAGAIN") ? "still-eagain" : "LEAK");

        /* the real reap frees the slot */
        kill_reap(child);
        out("after-reap fork %s\n", probe_fork());
        return 0;
}

/* ----------------------------------------------------------------- zombie */

static int cmd_zombie(void)
{
        pid_t pid = fork();
        if (pid == 0)
                _exit(0);
        if (pid < 0) {
                out("first fork %s\n", ename(errno));
                return 0;
        }
        uint64_t end = mono_ns() + DEADLINE_NS;
        while (proc_state(pid) != 'Z') {
                if (mono_ns() > end)
                        die("child %d never became a zombie", pid);
                sched_yield();
        }
        out("zombie yes\n");
        out("zombie fork %s\n", probe_fork());
        /* a blocking wait that leaves it waitable (WNOWAIT) reaps nothing */
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        int r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
        out("wnowait %s\n", r == 0 && si.si_pid == pid ? "yes" : "no");
        out("after-wnowait fork %s\n", probe_fork());
        reap(pid);
        out("after-reap fork %s\n", probe_fork());
        return 0;
}

/* ----------------------------------------------------------------- orphan */

static int cmd_orphan(void)
{
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC) < 0)
                die("pipe: %s", strerror(errno));
        pid_t child = fork();
        if (child == 0) {
                pid_t g = fork();
                if (g == 0)
                        sleep_forever();
                int e = g < 0 ? errno : 0;
                int msg[2] = { g, e };
                (void)!write(pfd[1], msg, sizeof(msg));
                _exit(0);
        }
        if (child < 0) {
                out("child fork %s\n", ename(errno));
                return 0;
        }
        close(pfd[1]);
        int msg[2];
        if (read(pfd[0], msg, sizeof(msg)) != sizeof(msg))
                die("no word from child");
        reap(child);
        if (msg[0] < 0) {
                out("grandchild fork %s\n", ename(msg[1]));
                return 0;
        }
        pid_t g = msg[0];
        out("grandchild %d orphaned %s\n", g, proc_exists(g) ? "yes" : "no");
        pid_t k1 = fork_sleeper();
        out("fork1 %s\n", k1 > 0 ? "ok" : ename(-k1));
        pid_t k2 = fork_sleeper();
        out("fork2 %s\n", k2 > 0 ? "ok" : ename(-k2));
        if (k2 > 0)
                kill_reap(k2);
        /* the grandchild is not ours to reap: its adopter does it */
        kill(g, SIGKILL);
        uint64_t end = mono_ns() + DEADLINE_NS;
        while (proc_exists(g)) {
                if (mono_ns() > end) {
                        out("grandchild-not-reaped\n");
                        if (k1 > 0)
                                kill_reap(k1);
                        return 0;
                }
                sched_yield();
        }
        out("grandchild gone\n");
        pid_t k3 = fork_sleeper();
        out("fork3 %s\n", k3 > 0 ? "ok" : ename(-k3));
        if (k3 > 0)
                kill_reap(k3);
        if (k1 > 0)
                kill_reap(k1);
        return 0;
}

/* ------------------------------------------------------------- threadfork */

static void *threadfork_body(void *arg)
{
        (void)arg;
        pid_t a = fork_sleeper();
        pid_t b = fork_sleeper();
        out("tid %ld pid %d\n", (long)syscall(SYS_gettid), getpid());
        out("thread fork1 %s fork2 %s\n", a > 0 ? "ok" : ename(-a), b > 0 ? "ok" : ename(-b));
        if (a > 0)
                out("child %d\n", a);
        if (a > 0)
                kill_reap(a);
        if (b > 0)
                kill_reap(b);
        /* the slot is back: from the thread again */
        out("thread fork3 %s\n", probe_fork());
        return NULL;
}

static int cmd_threadfork(void)
{
        pthread_t t;
        int e = pthread_create(&t, NULL, threadfork_body, NULL);
        if (e)
                die("pthread_create: %s", strerror(e));
        pthread_join(t, NULL);
        return 0;
}

/* ------------------------------------------------------------- threadexec */

static char **exec_argv;

static void *threadexec_body(void *arg)
{
        (void)arg;
        out("exec from tid %ld of pid %d\n", (long)syscall(SYS_gettid), getpid());
        execv(exec_argv[0], exec_argv);
        out("execv %s\n", ename(errno));
        _exit(1);
}

static int cmd_threadexec(char **argv)
{
        exec_argv = argv;
        pthread_t t;
        int e = pthread_create(&t, NULL, threadexec_body, NULL);
        if (e)
                die("pthread_create: %s", strerror(e));
        /* the leader waits: the exec kills it and takes its pid */
        pthread_join(t, NULL);
        die("exec thread returned");
}

/* --------------------------------------------------------------- firstrun */

static int cmd_firstrun(int n)
{
        for (int i = 0; i < n; i++) {
                /* raw: no libc code runs in the child before its clock read */
                pid_t pid = (pid_t)syscall(SYS_fork);
                if (pid == 0) {
                        uint64_t t = real_ns(); /* the child's first action */
                        char buf[64];
                        int len = snprintf(buf, sizeof(buf), "child %d %" PRIu64 "\n", getpid(), t);
                        (void)!write(1, buf, (size_t)len);
                        _exit(0);
                }
                if (pid < 0) {
                        out("fork %s\n", ename(errno));
                        return 0;
                }
                reap(pid);
        }
        out("done %d\n", n);
        return 0;
}

/* ---------------------------------------------------------------- sigalrm */

static volatile sig_atomic_t alarms;
static void count_alarm(int sig) { (void)sig; alarms++; }

/* `restart`: the handler has SA_RESTART (then even the kernel's
 * interrupted seccomp wait restarts). */
static int cmd_sigalrm(int n, bool restart)
{
        install_noreststart(SIGALRM, count_alarm);
        if (restart) {
                struct sigaction sa = { .sa_handler = count_alarm, .sa_flags = SA_RESTART };
                sigemptyset(&sa.sa_mask);
                if (sigaction(SIGALRM, &sa, NULL) < 0)
                        die("sigaction: %s", strerror(errno));
        }
        arm_itimer(50);
        int eintr = 0, other = 0, other_errno = 0;
        for (int i = 0; i < n; i++) {
                pid_t pid = fork();
                if (pid == 0)
                        _exit(0);
                if (pid < 0) {
                        if (errno == EINTR)
                                eintr++;
                        else {
                                other++;
                                other_errno = errno;
                        }
                        continue;
                }
                reap(pid);
        }
        disarm_itimer();
        if (other)
                out("fail other %d errno %s eintr %d\n", other, ename(other_errno), eintr);
        else if (eintr)
                out("fail eintr %d created %d\n", eintr, n - eintr);
        else
                out("ok %d eintr 0\n", n);
        out("alarms %s\n", alarms > 0 ? "yes" : "no");
        return 0;
}

/* -------------------------------------------------------------------- x32 */

static int cmd_x32(void)
{
        int failed = 0, created = 0, first_errno = 0, same = 1;
        for (int i = 0; i < 30; i++) {
                long r = syscall(0x40000000L | 57);
                if (r == 0)
                        _exit(0); /* a child: must never happen */
                if (r > 0) {
                        created++;
                        continue; /* left alive: it must count, reaped below */
                }
                failed++;
                if (!first_errno)
                        first_errno = errno;
                else if (errno != first_errno)
                        same = 0;
        }
        int stray = 0;
        for (;;) {
                pid_t r = waitpid(-1, NULL, __WALL);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        break;
                stray++;
        }
        out("failed %d created %d errno %s%s reaped %d\n", failed, created, ename(first_errno),
            same ? "" : " mixed", stray);
        return 0;
}

/* --------------------------------------------------------------- untraced */

static int cmd_untraced(void)
{
        uint64_t t0 = mono_ns();
        long r = syscall(SYS_clone, CLONE_UNTRACED | SIGCHLD, 0, 0, 0, 0);
        int e = errno;
        uint64_t dt = mono_ns() - t0;
        if (r == 0)
                _exit(0);
        if (r > 0)
                reap((pid_t)r);
        out("rc %ld errno %s ms %" PRIu64 "\n", r > 0 ? 1 : r, r < 0 ? ename(e) : "0", dt / 1000000);
        return 0;
}

/* --------------------------------------------------------------------- ns */

static void report_clone(const char *name, long r, int e)
{
        if (r == 0) {
                /* a child in a new user namespace must not exist; say so
                 * from the child, whose stdout is shared */
                out("%s CHILD-CREATED\n", name);
                _exit(0);
        }
        if (r > 0) {
                reap((pid_t)r);
                out("%s created\n", name);
                return;
        }
        out("%s -1 %s\n", name, ename(e));
}

static int cmd_ns(void)
{
        struct clone_args ca;
        memset(&ca, 0, sizeof(ca));
        ca.flags = CLONE_NEWUSER;
        ca.exit_signal = SIGCHLD;
        long r = syscall(__NR_clone3, &ca, sizeof(ca));
        report_clone("clone3", r, errno);
        r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        report_clone("clone", r, errno);
        r = unshare(CLONE_NEWUSER);
        out("unshare %ld %s\n", r, r < 0 ? ename(errno) : "0");
        r = setns(-1, 0);
        out("setns %ld %s\n", r, r < 0 ? ename(errno) : "0");
        /* still in the initial user namespace */
        char buf[128];
        ssize_t n = readlink("/proc/self/ns/user", buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = 0;
        out("userns %s\n", buf);
        return 0;
}

/* ------------------------------------------------------------------ stale */

/* Each child forks and reaps in a loop: every one of its forks is a
 * notification, so kills land in every phase of the fork path. */
static void stale_child(void)
{
        for (;;) {
                pid_t g = fork();
                if (g == 0)
                        _exit(0);
                if (g > 0)
                        waitpid(g, NULL, 0);
        }
}

static void spin_us(unsigned us)
{
        uint64_t end = mono_ns() + (uint64_t)us * 1000;
        while (mono_ns() < end)
                ;
}

static int cmd_stale(int n)
{
        /* Orphaned grandchildren come back to us, so that before the final
         * forks everything we ever started is reaped: no outside reaper to
         * wait for, the end state is exact. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
                die("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
        uint32_t seed = 12345;
        int started = 0, refused = 0;
        for (int i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                unsigned us = (seed >> 16) % 201;
                pid_t pid = fork();
                if (pid == 0)
                        stale_child();
                if (pid < 0) {
                        refused++;
                        /* orphans not yet collected hold slots: collect */
                        while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
                                ;
                        continue;
                }
                started++;
                spin_us(us);
                kill(pid, SIGKILL);
                reap(pid);
                while (waitpid(-1, NULL, WNOHANG) > 0)
                        ;
        }
        /* everything below us, orphans included, reaped */
        for (;;) {
                pid_t r = waitpid(-1, NULL, __WALL);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        break;
        }
        for (int i = 0; i < 100; i++) {
                void *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                        die("mmap: %s", strerror(errno));
                memset(p, 1, 4096);
                munmap(p, 1 << 20);
        }
        int ok = 0;
        for (int i = 0; i < 3; i++)
                if (fork_and_reap() == 0)
                        ok++;
        out("started %d refused %d final-forks %d\n", started, refused, ok);
        out("done\n");
        return 0;
}

/* ------------------------------------------------------------------ burst */

#define BURST_THREADS 64

static pthread_barrier_t bbar;
static int burst_rounds;
static pid_t burst_kid[BURST_THREADS];
static int burst_err[BURST_THREADS];

static void *burst_body(void *arg)
{
        int idx = (int)(intptr_t)arg;
        for (int r = 0; r < burst_rounds; r++) {
                pthread_barrier_wait(&bbar); /* release: all fork at once */
                /* the raw syscall: glibc's fork() serializes threads on
                 * its fork locks, so only one would be in the kernel */
                pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
                if (pid == 0)
                        sleep_forever(); /* held until every thread forked */
                burst_kid[idx] = pid;
                burst_err[idx] = pid < 0 ? errno : 0;
                pthread_barrier_wait(&bbar); /* every fork answered */
                if (pid > 0)
                        kill_reap(pid);
                pthread_barrier_wait(&bbar); /* every child reaped */
        }
        return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return (x > y) - (x < y);
}

/* Prints each round's children, then the counts, and the rounds' median
 * and longest time (us) from release to the last fork's answer: a figure
 * for bench/limits.py (case 8's "every round within a second"), which the
 * tests do not assert. */
static int cmd_burst(int rounds)
{
        pthread_t t[BURST_THREADS];
        uint64_t *took = calloc((size_t)rounds, sizeof(*took));
        if (!took)
                die("calloc: %s", strerror(errno));
        burst_rounds = rounds;
        pthread_barrier_init(&bbar, NULL, BURST_THREADS + 1);
        for (int i = 0; i < BURST_THREADS; i++) {
                int e = pthread_create(&t[i], NULL, burst_body, (void *)(intptr_t)i);
                if (e)
                        die("pthread_create: %s", strerror(e));
        }
        long created = 0, eagain = 0, other = 0;
        int min_c = BURST_THREADS + 1, max_c = -1, other_errno = 0;
        for (int r = 0; r < rounds; r++) {
                uint64_t t0 = mono_ns();
                pthread_barrier_wait(&bbar);
                pthread_barrier_wait(&bbar);
                took[r] = mono_ns() - t0;
                int c = 0;
                out("pids");
                for (int i = 0; i < BURST_THREADS; i++)
                        if (burst_kid[i] > 0)
                                out(" %d", burst_kid[i]);
                out("\n");
                for (int i = 0; i < BURST_THREADS; i++) {
                        if (burst_kid[i] > 0)
                                c++;
                        else if (burst_err[i] == EAGAIN)
                                eagain++;
                        else {
                                other++;
                                other_errno = burst_err[i];
                        }
                }
                created += c;
                if (c < min_c)
                        min_c = c;
                if (c > max_c)
                        max_c = c;
                pthread_barrier_wait(&bbar);
        }
        for (int i = 0; i < BURST_THREADS; i++)
                pthread_join(t[i], NULL);
        out("rounds %d created %ld eagain %ld other %ld", rounds, created, eagain, other);
        if (other)
                out(" errno %s", ename(other_errno));
        qsort(took, (size_t)rounds, sizeof(*took), cmp_u64);
        out(" per-round %d..%d round-us median %" PRIu64 " max %" PRIu64 "\n", min_c, max_c,
            rounds ? took[rounds / 2] / 1000 : 0, rounds ? took[rounds - 1] / 1000 : 0);
        free(took);
        out("ok\n");
        return 0;
}

/* -------------------------------------------------------------- spawnload */

static atomic_int spin_stop;
static atomic_int spawn_ok, spawn_fail, spawn_fail_errno;

static void *busy_body(void *arg)
{
        (void)arg;
        volatile unsigned long x = 0;
        while (!atomic_load_explicit(&spin_stop, memory_order_relaxed))
                x++;
        return NULL;
}

static void *spawn_body(void *arg)
{
        int n = (int)(intptr_t)arg;
        for (int i = 0; i < n; i++) {
                pid_t pid;
                char *argv[] = { "true", NULL };
                int e = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
                if (e) {
                        atomic_fetch_add(&spawn_fail, 1);
                        atomic_store(&spawn_fail_errno, e);
                        continue;
                }
                int st = reap(pid);
                if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                        atomic_fetch_add(&spawn_ok, 1);
                else
                        atomic_fetch_add(&spawn_fail, 1);
        }
        return NULL;
}

static int cmd_spawnload(int busy, int spawners, int each)
{
        pthread_t b[16], s[16];
        if (busy > 16 || spawners > 16)
                die("too many threads");
        for (int i = 0; i < busy; i++)
                pthread_create(&b[i], NULL, busy_body, NULL);
        for (int i = 0; i < spawners; i++)
                pthread_create(&s[i], NULL, spawn_body, (void *)(intptr_t)each);
        for (int i = 0; i < spawners; i++)
                pthread_join(s[i], NULL);
        atomic_store(&spin_stop, 1);
        for (int i = 0; i < busy; i++)
                pthread_join(b[i], NULL);
        if (atomic_load(&spawn_fail))
                out("fail %d errno %s ok %d\n", atomic_load(&spawn_fail), ename(atomic_load(&spawn_fail_errno)),
                    atomic_load(&spawn_ok));
        else
                out("ok %d\n", atomic_load(&spawn_ok));
        return 0;
}

/* ----------------------------------------------------------------- rlimit */

/* Tasks (threads included: RLIMIT_NPROC counts tasks) whose real uid is
 * uid. The real uid comes from status: a non-dumpable task's /proc entries
 * are owned by root. */
static long count_user_tasks(uid_t uid)
{
        long n = 0;
        DIR *d = opendir("/proc");
        struct dirent *de;
        while (d && (de = readdir(d))) {
                if (de->d_name[0] < '0' || de->d_name[0] > '9')
                        continue;
                char path[300];
                snprintf(path, sizeof(path), "/proc/%s/task", de->d_name);
                DIR *t = opendir(path);
                struct dirent *te;
                while (t && (te = readdir(t))) {
                        if (te->d_name[0] == '.')
                                continue;
                        char sp[600], line[256];
                        snprintf(sp, sizeof(sp), "%s/%s/status", path, te->d_name);
                        FILE *f = fopen(sp, "re");
                        if (!f)
                                continue;
                        while (fgets(line, sizeof(line), f)) {
                                unsigned long ruid;
                                if (sscanf(line, "Uid: %lu", &ruid) == 1) {
                                        if (ruid == uid)
                                                n++;
                                        break;
                                }
                        }
                        fclose(f);
                }
                if (t)
                        closedir(t);
        }
        if (d)
                closedir(d);
        return n;
}

static int cmd_rlimit(int p)
{
        if (getuid() == 0)
                die("rlimit must run as an unprivileged user");
        struct rlimit orig;
        if (getrlimit(RLIMIT_NPROC, &orig) < 0)
                die("getrlimit: %s", strerror(errno));
        long cur = count_user_tasks(getuid());
        struct rlimit low = { .rlim_cur = (rlim_t)cur + 1, .rlim_max = orig.rlim_max };
        if (low.rlim_cur > orig.rlim_max)
                die("hard RLIMIT_NPROC %llu below %ld", (unsigned long long)orig.rlim_max, cur + 1);
        if (setrlimit(RLIMIT_NPROC, &low) < 0)
                die("setrlimit: %s", strerror(errno));

        /* phase 1: the kernel refuses (our limit is far away) */
        pid_t kids[64];
        int created = 0, refused = 0, noise = 0, other = 0;
        uint64_t max_refused = 0;
        for (int i = 0; i < 64 && refused < 20; i++) {
                uint64_t t0 = mono_ns();
                pid_t pid = fork_sleeper();
                uint64_t dt = mono_ns() - t0;
                if (pid > 0) {
                        if (refused)
                                noise++; /* another task of the user ended */
                        kids[created++] = pid;
                } else if (pid == -EAGAIN) {
                        refused++;
                        if (dt > max_refused)
                                max_refused = dt;
                } else {
                        other++;
                }
        }
        for (int i = 0; i < created; i++)
                kill_reap(kids[i]);
        if (setrlimit(RLIMIT_NPROC, &orig) < 0)
                die("setrlimit: %s", strerror(errno));
        out("phase1 created %d refused %d other %d max-refused-ms %" PRIu64 "\n", created, refused, other,
            max_refused / 1000000);
        if (noise)
                out("phase1 noise %d\n", noise);
        other = 0;

        /* phase 2: the sandbox limit, exactly p-1 more */
        int c2 = 0, eagain2 = 0;
        pid_t k2[64];
        for (int i = 0; i < p + 2 && i < 64; i++) {
                pid_t pid = fork_sleeper();
                if (pid > 0)
                        k2[c2++] = pid;
                else if (pid == -EAGAIN)
                        eagain2++;
                else
                        other++;
        }
        for (int i = 0; i < c2; i++)
                kill_reap(k2[i]);
        out("phase2 created %d eagain %d other %d\n", c2, eagain2, other);
        return 0;
}

/* ------------------------------------------------------------------- main */

static int num(const char *s)
{
        char *end;
        long v = strtol(s, &end, 10);
        if (*s == 0 || *end || v < 0 || v > 10000000)
                die("bad number %s", s);
        return (int)v;
}

static void *thread_noop(void *arg) { return arg; }

/* `n` rounds of a clone the kernel refuses (CLONE_SIGHAND without
 * CLONE_VM: EINVAL) at once followed by a new thread: the tracer lets the
 * clone run seized and has its thread still seized for a moment after. */
static int cmd_refusedthread(int n)
{
        for (int i = 0; i < n; i++) {
                long r = syscall(SYS_clone, CLONE_SIGHAND, 0, 0, 0, 0);
                if (r != -1 || errno != EINVAL)
                        die("refused clone: %ld %s", r, ename(errno));
                pthread_t t;
                int e = pthread_create(&t, NULL, thread_noop, NULL);
                if (e)
                        die("pthread_create: %s", ename(e));
                pthread_join(t, NULL);
        }
        out("ok %d\n", n);
        return 0;
}

static int go_pipe[2];
static char **exec_argv;

static void *exec_on_go(void *arg)
{
        char c;
        (void)arg;
        if (read(go_pipe[0], &c, 1) == 1)
                execv("/proc/self/exe", exec_argv);
        die("exec: %s", strerror(errno));
}

/* A thread that is not the leader execs this helper with `argv` right
 * after the leader made a clone the kernel refuses (which the tracer lets
 * run seized): the exec kills the seized leader and takes its tid. */
static int cmd_refusedexec(char **argv)
{
        pthread_t t;
        exec_argv = argv - 1; /* argv[-1]: the command name slot */
        exec_argv[0] = "seccell-procs-helper";
        if (pipe(go_pipe) < 0)
                die("pipe: %s", strerror(errno));
        int e = pthread_create(&t, NULL, exec_on_go, NULL);
        if (e)
                die("pthread_create: %s", ename(e));
        long r = syscall(SYS_clone, CLONE_SIGHAND, 0, 0, 0, 0);
        if (r != -1 || errno != EINVAL)
                die("refused clone: %ld %s", r, ename(errno));
        if (write(go_pipe[1], "g", 1) != 1)
                die("write: %s", strerror(errno));
        for (;;)
                pause(); /* killed by the exec */
}

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
        fprintf(stderr,
                "usage: seccell-procs-helper CMD ARGS\n"
                "  nfork N fork|sysfork|clone|vfork|spawn   seq N wait|wnohang|sigign|spawn\n"
                "  threads N pthread|raw   nonchild   zombie   orphan   threadfork\n"
                "  threadexec PATH ARG...   firstrun N   sigalrm N [restart]   x32   untraced   ns\n"
                "  stale N   burst ROUNDS   spawnload BUSY THREADS EACH   rlimit P   refusedthread N\n"
                "  refusedexec CMD ARGS...\n");
        exit(2);
}

int main(int argc, char **argv)
{
        if (argc < 2)
                usage();
        const char *c = argv[1];
        int n = argc - 2;
        char **a = argv + 2;
        setvbuf(stdout, NULL, _IOFBF, 1 << 16);
        if (!strcmp(c, "nfork") && n == 2)
                return cmd_nfork(num(a[0]), a[1]);
        if (!strcmp(c, "seq") && n == 2)
                return cmd_seq(num(a[0]), a[1]);
        if (!strcmp(c, "threads") && n == 2)
                return cmd_threads(num(a[0]), a[1]);
        if (!strcmp(c, "refusedexec") && n >= 1)
                return cmd_refusedexec(a);
        if (!strcmp(c, "refusedthread") && n == 1)
                return cmd_refusedthread(num(a[0]));
        if (!strcmp(c, "nonchild") && n == 0)
                return cmd_nonchild();
        if (!strcmp(c, "zombie") && n == 0)
                return cmd_zombie();
        if (!strcmp(c, "orphan") && n == 0)
                return cmd_orphan();
        if (!strcmp(c, "threadfork") && n == 0)
                return cmd_threadfork();
        if (!strcmp(c, "threadexec") && n >= 1)
                return cmd_threadexec(a);
        if (!strcmp(c, "firstrun") && n == 1)
                return cmd_firstrun(num(a[0]));
        if (!strcmp(c, "sigalrm") && n == 1)
                return cmd_sigalrm(num(a[0]), false);
        if (!strcmp(c, "sigalrm") && n == 2 && !strcmp(a[1], "restart"))
                return cmd_sigalrm(num(a[0]), true);
        if (!strcmp(c, "x32") && n == 0)
                return cmd_x32();
        if (!strcmp(c, "untraced") && n == 0)
                return cmd_untraced();
        if (!strcmp(c, "ns") && n == 0)
                return cmd_ns();
        if (!strcmp(c, "stale") && n == 1)
                return cmd_stale(num(a[0]));
        if (!strcmp(c, "burst") && n == 1)
                return cmd_burst(num(a[0]));
        if (!strcmp(c, "spawnload") && n == 3)
                return cmd_spawnload(num(a[0]), num(a[1]), num(a[2]));
        if (!strcmp(c, "rlimit") && n == 1)
                return cmd_rlimit(num(a[0]));
        usage();
}
