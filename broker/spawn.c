#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <limits.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "fdpass.h"
#include "filter.h"
#include "kcompat.h"
#include "procfs.h"
#include "reaper.h"

#define FD_SPAWN 3
#define FD_BROKER 4

/* Steps of the root's set-up, named in the error the user sees. */
static const char *const stage_names[] = {
        "", "no_new_privs", "setgroups", "setresgid", "setresuid",
        "capabilities", "parent death signal", "chdir", "seccomp",
        "listener hand-over",
};
enum { ST_NNP = 1, ST_GROUPS, ST_GID, ST_UID, ST_CAPS, ST_PDEATH, ST_CHDIR, ST_SECCOMP, ST_SEND };

_Noreturn static void root_fail(int stage, int err)
{
        /* errno in the low half, the stage in the high half of the token */
        fdchan_send(FD_SPAWN, ((uint64_t)stage << 32) | (uint32_t)err, NULL, 0);
        _exit(125);
}

/* A root-owned sandbox keeps uid 0 but no capability: every one of them
 * reaches the supervisor or the kernel past the filter (found in review:
 * CAP_FOWNER opened the tracer's 0700 directory, CAP_MKNOD block devices,
 * CAP_SYS_NICE the tracer's priority; CAP_SYS_PTRACE /proc/<tracer>/fd).
 * The bounding set goes first (dropping from it needs CAP_SETPCAP), so no
 * exec can give any back; then the effective, permitted, inheritable and
 * ambient sets. Kernel contract: PR_CAPBSET_DROP fails with EINVAL past
 * the last capability the kernel knows. Returns 0 or -errno. */
static int drop_root_caps(void)
{
        for (cap_value_t c = 0;; c++)
                if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
                        if (errno == EINVAL && c > CAP_SETFCAP)
                                break;
                        return -errno;
                }
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
                return -errno;
        cap_t none = cap_init();
        if (!none)
                return -errno;
        int r = cap_set_proc(none) < 0 ? -errno : 0;
        cap_free(none);
        return r;
}

/* The PATH search of execvp(3), done before the exec so that only the
 * program that runs is an exec in the audit record. PATH comes from the
 * command's environment (default as glibc's). Returns 0 with the file in
 * out[len], or the errno execvp would report: ENOENT when nothing was
 * found, EACCES when only non-executable candidates were. */
static int resolve_command(const char *cmd, char *const *envp, char *out, size_t len)
{
        if (strchr(cmd, '/')) {
                if (strlen(cmd) >= len)
                        return ENAMETOOLONG;
                strcpy(out, cmd);
                return 0;
        }
        const char *path = "/bin:/usr/bin";
        for (char *const *e = envp; *e; e++)
                if (strncmp(*e, "PATH=", 5) == 0)
                        path = *e + 5;
        int err = ENOENT;
        for (const char *p = path;; p++) {
                const char *end = strchrnul(p, ':');
                size_t dl = end - p;
                /* an empty entry means the current directory */
                int n = dl ? snprintf(out, len, "%.*s/%s", (int)dl, p, cmd) : snprintf(out, len, "%s", cmd);
                if (n > 0 && (size_t)n < len) {
                        struct stat st;
                        if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
                                if (access(out, X_OK) == 0)
                                        return 0;
                                err = EACCES;
                        } else if (errno == EACCES && err == ENOENT) {
                                err = EACCES;
                        }
                }
                if (!*end)
                        return err;
                p = end;
        }
}

/* /proc/<pid>/limits (world-readable; prlimit(2) on another uid's process
 * takes CAP_SYS_RESOURCE, which a container's root may lack): a header,
 * then one line per resource in RLIMIT_* order, the name in 26 columns,
 * then the soft and the hard limit ("unlimited" or a number). */
static int read_limits(pid_t pid, struct rlimit rlim[RLIM_NLIMITS])
{
        char path[64], buf[4096];
        snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
        int n = procfs_read(path, buf, sizeof(buf));
        if (n < 0)
                return n;
        char *line = strchr(buf, '\n');
        for (int r = 0; r < RLIM_NLIMITS; r++) {
                if (!line || strlen(line) < 27)
                        return -EIO;
                line++;
                char soft[32], hard[32];
                if (sscanf(line + 26, "%31s %31s", soft, hard) != 2)
                        return -EIO;
                rlim[r].rlim_cur = strcmp(soft, "unlimited") ? strtoull(soft, NULL, 10) : RLIM_INFINITY;
                rlim[r].rlim_max = strcmp(hard, "unlimited") ? strtoull(hard, NULL, 10) : RLIM_INFINITY;
                line = strchr(line, '\n');
        }
        return 0;
}

int spawn_read_inherit(pid_t pid, uid_t uid, struct spawn_inherit *out)
{
        _cleanup_close_ int pidfd = (int)syscall(__NR_pidfd_open, pid, 0);
        if (pidfd < 0)
                return -errno;
        /* every uid the client's: a setuid program it exec'd since it
         * connected may have set limits or a priority its user has not */
        char path[64], buf[4096];
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        int n = procfs_read(path, buf, sizeof(buf));
        if (n < 0)
                return n;
        unsigned long ids[4], mask;
        const char *u = strstr(buf, "\nUid:"), *m = strstr(buf, "\nUmask:");
        if (!u || !m || sscanf(u, "\nUid: %lu %lu %lu %lu", &ids[0], &ids[1], &ids[2], &ids[3]) != 4 ||
            sscanf(m, "\nUmask: %lo", &mask) != 1)
                return -EIO;
        for (int i = 0; i < 4; i++)
                if (ids[i] != uid)
                        return -ESRCH;
        out->umask = (mode_t)mask;
        errno = 0;
        out->nice = getpriority(PRIO_PROCESS, (id_t)pid);
        if (out->nice == -1 && errno)
                return -errno;
        int r = read_limits(pid, out->rlim);
        if (r < 0)
                return r;
        /* still the same process (its pid not reused meanwhile) */
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        if (poll(&p, 1, 0) != 0)
                return -ESRCH;
        return 0;
}

/* Set limit `r` to `want`, its hard limit no higher than the current one
 * (raising it takes CAP_SYS_RESOURCE) and the soft one within that.
 * Returns 0 or -1 (errno). */
static int set_within_hard(int r, struct rlimit want)
{
        struct rlimit have;
        if (getrlimit(r, &have) < 0)
                return -1;
        if (want.rlim_max > have.rlim_max)
                want.rlim_max = have.rlim_max;
        if (want.rlim_cur > want.rlim_max)
                want.rlim_cur = want.rlim_max;
        return setrlimit(r, &want);
}

/* The client's umask, priority and resource limits, set as the client's
 * user (after the credential change): the kernel grants only what that
 * user may, so a hard limit above the broker's own is kept at the broker's
 * (and the soft one within it), and a priority above what the user may
 * take stays the broker's. Returns 0 or -1 (errno). */
static int apply_inherit(const struct spawn_inherit *in)
{
        umask(in->umask);
        for (int r = 0; r < RLIM_NLIMITS; r++) {
                if (setrlimit(r, &in->rlim[r]) == 0)
                        continue;
                if (errno != EPERM || set_within_hard(r, in->rlim[r]) < 0)
                        return -1;
        }
        /* after RLIMIT_NICE, which may allow it */
        (void)setpriority(PRIO_PROCESS, 0, in->nice);
        return 0;
}

/* The kernel must bound what the tracer never sees, and the sandbox must
 * not raise those bounds: the main stack grows by page faults, and an exec
 * maps the new image's data and bss itself (data_vm, which RLIMIT_DATA
 * bounds). Neither can exceed the whole limit in one process then: both
 * limits, soft and hard, become the smaller of the soft one and `max`.
 * Returns 0 or -1 (errno). */
static int cap_memory_rlimits(uint64_t max)
{
        static const int res[] = { RLIMIT_STACK, RLIMIT_DATA };
        /* Not below 1 MiB: under a few KiB the kernel cannot even set up
         * the new image's stack and data, and the exec dies with SIGSEGV
         * and no word; at 1 MiB it runs into the tracer, which says why
         * it kills it. */
        if (max < (1u << 20))
                max = 1u << 20;
        for (size_t i = 0; i < ARRAY_SIZE(res); i++) {
                struct rlimit rl;
                if (getrlimit(res[i], &rl) < 0)
                        return -1;
                uint64_t cap = max; /* also when unlimited */
                if ((uint64_t)rl.rlim_cur < cap)
                        cap = rl.rlim_cur;
                rl.rlim_cur = rl.rlim_max = cap;
                if (setrlimit(res[i], &rl) < 0)
                        return -1;
        }
        return 0;
}

/* Runs in the root process, after the reaper laid out 0-2 and FD_SPAWN. */
static void root_main(void *ud)
{
        const struct spawn_request *rq = ud;
        pid_t reaper = getppid();
        bool killable;
        char go;

        /* own process group: signals forwarded to the group reach the
         * whole job, and the kill at the end starts there */
        setpgid(0, 0);
        /* No controlling terminal (found in review: through a daemon
         * started from a terminal, a sandbox could open /dev/tty and read
         * what its owner typed). Not by a session of its own: a new session
         * is a new scheduling autogroup, and the tracer's wake-ups then lost
         * to the sandbox often enough to multiply EINTR on forks (CI: dash
         * lost a fork in 31 of 100 pipelines). TIOCNOTTY drops the terminal
         * for this process and what it starts. */
        int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (tty >= 0) {
                ioctl(tty, TIOCNOTTY);
                close(tty);
        }
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                root_fail(ST_NNP, errno);
        /* The user's process limit is judged at setresuid(2) (an exec
         * after it fails with EAGAIN when the user is over): it must be
         * the client's by then. Only ever lowered here. */
        if (rq->inherit)
                (void)set_within_hard(RLIMIT_NPROC, rq->inherit->rlim[RLIMIT_NPROC]);
        if (rq->switch_user) {
                /* the client's own groups and gid, a root client's too */
                if (setgroups(rq->ngroups, rq->groups) < 0)
                        root_fail(ST_GROUPS, errno);
                if (setresgid(rq->gid, rq->gid, rq->gid) < 0)
                        root_fail(ST_GID, errno);
        }
        if (rq->switch_user && rq->uid != 0) {
                if (setresuid(rq->uid, rq->uid, rq->uid) < 0)
                        root_fail(ST_UID, errno);
        } else if (geteuid() == 0) {
                int r = drop_root_caps();
                if (r < 0)
                        root_fail(ST_CAPS, -r);
        }
        /* after the credential change, which clears it */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
                root_fail(ST_PDEATH, errno);
        if (getppid() != reaper)
                _exit(125);
        if (chdir(rq->cwd) < 0)
                root_fail(ST_CHDIR, errno);
        /* From here until the tracer holds the listener, nothing may make a
         * notified syscall: it would wait for a supervisor that has no fd. */
        int lfd = filter_load_listener(rq->filter, &killable);
        if (lfd < 0)
                root_fail(ST_SECCOMP, -lfd);
        if (fdchan_send(FD_SPAWN, killable ? 1 : 0, &lfd, 1) < 0)
                root_fail(ST_SEND, errno);
        /* The listener fd must never stay in a sandboxed process. */
        close(lfd);

        ssize_t n;
        do
                n = read(FD_SPAWN, &go, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1)
                _exit(125); /* broker gave up on us */
        syscall(__NR_close_range, FD_SPAWN, ~0U, 0);

        /* Last, so that a tiny descriptor limit of the client's does not
         * break the set-up above; the memory caps after it. */
        if (rq->inherit && apply_inherit(rq->inherit) < 0) {
                dprintf(2, "seccell: cannot apply the caller's limits: %s\n", strerror(errno));
                _exit(125);
        }
        if (rq->max_memory && cap_memory_rlimits(rq->max_memory) < 0) {
                dprintf(2, "seccell: cannot cap the stack and data limits: %s\n", strerror(errno));
                _exit(125);
        }

        char path[PATH_MAX];
        int e = resolve_command(rq->argv[0], rq->envp, path, sizeof(path));
        if (e == 0) {
                execve(path, rq->argv, rq->envp);
                e = errno;
                if (e == ENOEXEC) {
                        /* no #! line: a shell script, as execvp(3) and
                         * env(1) run it */
                        size_t n = 0;
                        while (rq->argv[n])
                                n++;
                        char **sh = calloc(n + 2, sizeof(char *));
                        if (sh) {
                                sh[0] = "/bin/sh";
                                sh[1] = path;
                                for (size_t i = 1; i < n; i++)
                                        sh[i + 1] = rq->argv[i];
                                execve("/bin/sh", sh, rq->envp);
                        }
                        e = ENOEXEC;
                }
        }
        dprintf(2, "seccell: cannot run '%s': %s\n", rq->argv[0], strerror(e));
        _exit(e == ENOENT || e == ENOTDIR ? 127 : 126);
}

/* Whether `fd` has input (or a hang-up) waiting, without blocking. */
static bool readable_now(int fd)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, 0) > 0;
}

void spawn_result_close(struct spawn_result *res)
{
        int *fds[] = { &res->reaper_sock, &res->listener_fd, &res->go_sock };
        for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
                closep(fds[i]), *fds[i] = -1;
}

void spawn_result_free(struct spawn_result *res)
{
        spawn_result_close(res);
        closep(&res->reaper_pidfd);
        res->reaper_pidfd = -1;
}

int spawn_start(const struct spawn_request *rq, struct spawn_result *res)
{
        int sp[2], rp[2];
        int r;

        *res = (struct spawn_result){ .reaper_pidfd = -1, .reaper_sock = -1, .listener_fd = -1, .go_sock = -1 };
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
                return -errno;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rp) < 0) {
                r = -errno;
                close(sp[0]), close(sp[1]);
                return r;
        }

        pid_t pid = fork();
        if (pid < 0) {
                r = -errno;
                close(sp[0]), close(sp[1]), close(rp[0]), close(rp[1]);
                return r;
        }
        if (pid == 0) {
                int fds[5] = { rq->stdio[0], rq->stdio[1], rq->stdio[2], sp[1], rp[1] };
                if (child_setup(fds, 5) < 0)
                        _exit(125);
                /* out of the broker's process group, as the tracer */
                setpgid(0, 0);
                reaper_main(root_main, (void *)rq);
        }
        close(sp[1]);
        close(rp[1]);
        res->reaper_pid = pid;
        res->reaper_pidfd = (int)syscall(__NR_pidfd_open, pid, 0);
        if (res->reaper_pidfd < 0) {
                /* the reaper is ours and in no file system call: killed, it
                 * is reaped at once; its root, orphaned to the broker (a
                 * subreaper), dies with the broker's orphan sweep */
                r = -errno;
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                close(sp[0]), close(rp[0]);
                return r;
        }
        /* never block on them: an event read in one epoll batch may find
         * its bytes taken by an earlier handler of the same batch (found in
         * review: the broker then slept until that sandbox ended) */
        fcntl(rp[0], F_SETFL, fcntl(rp[0], F_GETFL) | O_NONBLOCK);
        fcntl(sp[0], F_SETFL, fcntl(sp[0], F_GETFL) | O_NONBLOCK);
        res->reaper_sock = rp[0];
        res->go_sock = sp[0];
        return 0;
}

int spawn_progress(struct spawn_result *res, const char **what)
{
        struct reaper_msg m;
        bool exited = false;
        int r;

        *what = NULL;
        /* The reaper: the root's pid first; then only the root's end. */
        while (!exited && readable_now(res->reaper_sock)) {
                r = reaper_recv(res->reaper_sock, &m);
                if (r < 0)
                        return r; /* the reaper died: -ECONNRESET */
                if (m.type == REAPER_ROOT_PID && !res->root_pid)
                        res->root_pid = m.value;
                else if (m.type == REAPER_ROOT_EXIT)
                        res->root_status = m.value, exited = true;
                else
                        return -EBADMSG;
        }
        /* The root: its listener, or the step that failed - sent before it
         * exited, so here by the time its exit is reported. */
        if (!res->go_done && readable_now(res->go_sock)) {
                uint64_t token;
                size_t nfds = 0;
                r = fdchan_recv(res->go_sock, &token, &res->listener_fd, 1, &nfds);
                /* -ECONNRESET: gone without a word; the reaper's report
                 * follows */
                res->go_done = true;
                if (r < 0 && r != -ECONNRESET)
                        return r;
                if (r == 0 && nfds != 1) {
                        uint32_t stage = token >> 32;
                        *what = stage < ARRAY_SIZE(stage_names) ? stage_names[stage] : "set-up";
                        return (int)(uint32_t)token ? -(int)(uint32_t)token : -EIO;
                }
                if (r == 0)
                        res->killable_recv = token == 1;
        }
        if (exited)
                return -ECHILD; /* killed, or its fork failed, before it was ready */
        return res->root_pid && res->listener_fd >= 0 ? 1 : 0;
}

int spawn_release(struct spawn_result *res)
{
        char go = 'g';
        ssize_t n = send(res->go_sock, &go, 1, MSG_NOSIGNAL);
        int r = n == 1 ? 0 : -errno;
        closep(&res->go_sock);
        res->go_sock = -1;
        return r;
}
