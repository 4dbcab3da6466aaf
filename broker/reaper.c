#include "reaper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procfs.h"

#define FD_SPAWN 3
#define FD_BROKER 4

int reaper_send(int sock, enum reaper_msg_type type, int32_t value)
{
        struct reaper_msg m = { .type = type, .value = value };
        for (;;) {
                ssize_t n = send(sock, &m, sizeof(m), MSG_NOSIGNAL);
                if (n == sizeof(m))
                        return 0;
                if (n >= 0)
                        return -EPROTO;
                if (errno != EINTR)
                        return -errno;
        }
}

int reaper_recv(int sock, struct reaper_msg *m)
{
        ssize_t n;
        int resets = 0;
        for (;;) {
                n = recv(sock, m, sizeof(*m), MSG_TRUNC);
                if (n < 0 && errno == EINTR)
                        continue;
                /* A peer that closes with a message of ours unread resets
                 * the connection: the error comes first (and is cleared),
                 * what the peer sent before closing after it (found in
                 * review: a reaper's last report, the root's exit, was
                 * lost, and the run gave 125). */
                if (n < 0 && errno == ECONNRESET && resets++ == 0)
                        continue;
                break;
        }
        if (n < 0)
                return -errno;
        if (n == 0)
                return -ECONNRESET;
        if (n != sizeof(*m) || m->type < REAPER_ROOT_PID || m->type > REAPER_KILL)
                return -EBADMSG;
        return 0;
}

static void kill_one(pid_t pid, void *ud)
{
        (void)ud;
        kill(pid, SIGKILL);
}

void reaper_kill_all(pid_t root, int *root_status, int *root_reaped)
{
        /* The root's process group first: most of the sandbox, in one call. */
        if (!*root_reaped)
                kill(-root, SIGKILL);
        for (;;) {
                int st;
                /* Zombies first; only a live child costs a /proc scan
                 * (about a millisecond), and the common end has none. */
                pid_t p = waitpid(-1, &st, __WALL | WNOHANG);
                if (p == 0) {
                        procfs_for_each_child(getpid(), kill_one, NULL);
                        p = waitpid(-1, &st, __WALL);
                }
                if (p < 0) {
                        if (errno == EINTR)
                                continue;
                        break; /* ECHILD: nothing left below us */
                }
                if (p == root && !*root_reaped) {
                        *root_status = st;
                        *root_reaped = 1;
                }
        }
}

/* Reap whatever has exited; report the root's status once. */
static void reap_ready(pid_t root, int *root_status, int *root_reaped)
{
        for (;;) {
                int st;
                pid_t p = waitpid(-1, &st, WNOHANG | __WALL);
                if (p <= 0)
                        return;
                if (p == root) {
                        *root_status = st;
                        *root_reaped = 1;
                }
        }
}

_Noreturn void reaper_main(void (*root_main)(void *ud), void *ud)
{
        sigset_t mask;
        int root_status = 0, root_reaped = 0;

        /* Why: every orphan of the sandbox must come to us, not to init,
         * so that none escapes the kill at the end. */
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
                _exit(125);
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

        pid_t root = fork();
        if (root == 0) {
                sigprocmask(SIG_UNBLOCK, &mask, NULL);
                close(FD_BROKER);
                if (sfd >= 0)
                        close(sfd);
                root_main(ud);
                _exit(125);
        }
        /* The reaper keeps no handle on the sandbox's stdio, so readers see
         * EOF as soon as the sandbox is gone. */
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        for (int i = 0; i < 3 && devnull >= 0; i++)
                dup2(devnull, i);
        close(FD_SPAWN);

        if (root < 0 || sfd < 0) {
                reaper_send(FD_BROKER, REAPER_ROOT_EXIT, 125 << 8);
                _exit(125);
        }
        reaper_send(FD_BROKER, REAPER_ROOT_PID, root);

        for (;;) {
                struct pollfd pfd[2] = {
                        { .fd = sfd, .events = POLLIN },
                        { .fd = FD_BROKER, .events = POLLIN },
                };
                if (poll(pfd, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (pfd[0].revents) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof(si)) == sizeof(si))
                                ;
                        reap_ready(root, &root_status, &root_reaped);
                        if (root_reaped)
                                break;
                }
                if (pfd[1].revents) {
                        struct reaper_msg m;
                        int r = reaper_recv(FD_BROKER, &m);
                        if (r == -EAGAIN || r == -EBADMSG)
                                continue;
                        if (r < 0 || m.type == REAPER_KILL)
                                break; /* broker gone or asked: end it */
                        if (m.type == REAPER_SIGNAL && !root_reaped) {
                                /* like timeout(1): the root's process group */
                                if (kill(-root, m.value) < 0 && errno == ESRCH)
                                        kill(root, m.value);
                        }
                }
        }
        reaper_kill_all(root, &root_status, &root_reaped);
        reaper_send(FD_BROKER, REAPER_ROOT_EXIT, root_status);
        _exit(0);
}
