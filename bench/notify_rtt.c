/* notify_rtt: cost of one syscall in a tight loop, to compare a notified
 * syscall (run under `seccell run`) with the same syscall run bare.
 *
 *   notify_rtt [execve|unshare|raw|rawsync] [N] [REPS]
 *
 * execve  execve("/nonexistent/seccell-bench", argv, envp): fails with
 *         ENOENT. Under seccell every execve is sent to the tracer (exec
 *         audit) and answered CONTINUE before the kernel looks the path up.
 * unshare unshare(0): succeeds bare; under seccell the tracer answers EPERM
 *         (namespace denial), so it is the bare round trip with no kernel
 *         work after it.
 * raw     unshare(0) under a minimal supervisor built into this program:
 *         a child installs a seccomp filter that notifies unshare, hands
 *         the listener to the parent, which answers EPERM in a loop of
 *         blocking RECV + SEND ioctls. The kernel's own round-trip cost
 *         on this machine: the floor for any seccomp-notify supervisor.
 * rawsync raw, with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP set on the listener
 *         (Linux 6.6+: the woken side runs on the waker's CPU at once);
 *         fails with EINVAL on older kernels.
 *
 * Runs REPS repetitions of N calls each, timed with CLOCK_MONOTONIC, and
 * prints one line per repetition and a final line
 *   RESULT <mode> n=<N> reps=<REPS> median_ns=<x> min_ns=<y> max_ns=<z> errno=<name>
 * with the per-call nanoseconds. Exit status 2 if a call does not fail (or
 * succeed) the way the mode expects, so a wrong set-up cannot pass as a
 * measurement. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

/* One repetition. Returns per-call ns, or -1 if a call behaved unexpectedly;
 * *err gets the errno of the last call (0 for success). */
static double run_execve(long n, int *err)
{
        char *argv[] = { "seccell-bench", "--a-few", "arguments", "to", "read", NULL };
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
                execve("/nonexistent/seccell-bench", argv, environ);
                if (errno != ENOENT) {
                        *err = errno;
                        return -1;
                }
        }
        double t1 = now_ns();
        *err = ENOENT;
        return (t1 - t0) / (double)n;
}

static double run_unshare(long n, int *err)
{
        /* first call decides: 0 bare, EPERM under seccell; all must agree */
        int first = unshare(0) == 0 ? 0 : errno;
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
                int e = unshare(0) == 0 ? 0 : errno;
                if (e != first) {
                        *err = e;
                        return -1;
                }
        }
        double t1 = now_ns();
        *err = first;
        return (t1 - t0) / (double)n;
}

static int measure(const char *mode, double (*fn)(long, int *), long n, int reps);

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

/* unshare flags no caller uses: the last call of the raw mode's child */
#define RAW_DONE 0x5eccu

#if defined(__x86_64__)
#define BENCH_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define BENCH_ARCH AUDIT_ARCH_AARCH64
#endif

/* unshare -> USER_NOTIF, everything else allowed */
static int install_filter(void)
{
        struct sock_filter f[] = {
#ifdef BENCH_ARCH
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, BENCH_ARCH, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
#endif
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_unshare, 0, 1),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -1;
        return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
}

static int send_fd(int sock, int fd)
{
        char c = 0, ctl[CMSG_SPACE(sizeof(int))];
        struct iovec iov = { &c, 1 };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(h), &fd, sizeof(int));
        return sendmsg(sock, &m, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
        char c, ctl[CMSG_SPACE(sizeof(int))];
        struct iovec iov = { &c, 1 };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
        if (recvmsg(sock, &m, 0) != 1)
                return -1;
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        if (!h || h->cmsg_type != SCM_RIGHTS)
                return -1;
        int fd;
        memcpy(&fd, CMSG_DATA(h), sizeof(int));
        return fd;
}

/* The child measures unshare(0) under its own filter; the parent is the
 * minimal supervisor. */
static int run_raw(long n, int reps, int sync)
{
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return 2;
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
                return 2;
        if (pid == 0) {
                close(sv[0]);
                int lfd = install_filter();
                if (lfd < 0 || send_fd(sv[1], lfd) < 0) {
                        perror("notify_rtt: raw: seccomp listener");
                        _exit(2);
                }
                close(lfd);
                close(sv[1]);
                int r = measure(sync ? "rawsync" : "raw", run_unshare, n, reps);
                fflush(stdout);
                syscall(SYS_unshare, RAW_DONE); /* tells the supervisor to stop */
                _exit(r);
        }
        close(sv[1]);
        int lfd = recv_fd(sv[0]);
        close(sv[0]);
        struct seccomp_notif_sizes sz;
        if (lfd < 0 || syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz) < 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                return 2;
        }
        if (sync && ioctl(lfd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) < 0) {
                perror("notify_rtt: rawsync: SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP");
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                return 2;
        }
        struct seccomp_notif *req = calloc(1, sz.seccomp_notif > sizeof(*req) ? sz.seccomp_notif : sizeof(*req));
        struct seccomp_notif_resp *resp =
                calloc(1, sz.seccomp_notif_resp > sizeof(*resp) ? sz.seccomp_notif_resp : sizeof(*resp));
        /* Blocking RECV + SEND and nothing else. A blocked RECV does not
         * return when the filter's last task exits, so the child ends with
         * a marked call (RAW_DONE); alarm() bounds a child that dies first. */
        alarm(120);
        for (;;) {
                memset(req, 0, sz.seccomp_notif);
                if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
                        if (errno == EINTR || errno == ENOENT)
                                continue;
                        perror("notify_rtt: raw: SECCOMP_IOCTL_NOTIF_RECV");
                        break;
                }
                memset(resp, 0, sz.seccomp_notif_resp);
                resp->id = req->id;
                resp->error = -EPERM;
                (void)ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, resp);
                if (req->data.args[0] == RAW_DONE)
                        break;
        }
        alarm(0);
        int st;
        waitpid(pid, &st, 0);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 2;
}

int main(int argc, char **argv)
{
        const char *mode = argc > 1 ? argv[1] : "execve";
        long n = argc > 2 ? strtol(argv[2], NULL, 10) : 20000;
        int reps = argc > 3 ? atoi(argv[3]) : 5;
        double (*fn)(long, int *);

        if (n < 1 || reps < 1 || reps > 1000) {
                fprintf(stderr, "notify_rtt: bad N or REPS\n");
                return 2;
        }
        if (!strcmp(mode, "execve"))
                fn = run_execve;
        else if (!strcmp(mode, "unshare"))
                fn = run_unshare;
        else if (!strcmp(mode, "raw"))
                return run_raw(n, reps, 0);
        else if (!strcmp(mode, "rawsync"))
                return run_raw(n, reps, 1);
        else {
                fprintf(stderr, "usage: notify_rtt [execve|unshare|raw|rawsync] [N] [REPS]\n");
                return 2;
        }
        return measure(mode, fn, n, reps);
}

static int measure(const char *mode, double (*fn)(long, int *), long n, int reps)
{

        double *v = calloc((size_t)reps, sizeof(*v));
        int err = 0;
        if (!v)
                return 2;
        fn(n / 10 + 1, &err); /* warm-up */
        for (int r = 0; r < reps; r++) {
                v[r] = fn(n, &err);
                if (v[r] < 0) {
                        fprintf(stderr, "notify_rtt: %s: unexpected result: %s\n", mode,
                                err ? strerror(err) : "success");
                        return 2;
                }
                printf("rep %d: %.1f ns/call\n", r + 1, v[r]);
        }
        qsort(v, (size_t)reps, sizeof(*v), cmp_double);
        double med = reps % 2 ? v[reps / 2] : (v[reps / 2 - 1] + v[reps / 2]) / 2;
        printf("RESULT %s n=%ld reps=%d median_ns=%.1f min_ns=%.1f max_ns=%.1f errno=%s\n", mode, n, reps, med,
               v[0], v[reps - 1], err ? strerrorname_np(err) : "0");
        return 0;
}
