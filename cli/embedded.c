#include "embedded.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "kcompat.h"
#include "log.h"

#define START_TIMEOUT_MS 10000

static void rm_tree(const char *path)
{
        DIR *d = opendir(path);
        if (d) {
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                                continue;
                        char sub[PATH_MAX + 256];
                        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
                        if (de->d_type == DT_DIR)
                                rm_tree(sub);
                        else
                                unlink(sub);
                }
                closedir(d);
        }
        rmdir(path);
}

/* A directory to create the private runtime directory in: writable, and,
 * when we are root, one the tracer (another uid) can traverse, since its
 * control socket lives below (a root login's /run/user/0 is 0700). */
static bool usable_base(const char *dir)
{
        struct stat st;
        if (!dir || dir[0] != '/' || access(dir, W_OK) != 0 || stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return false;
        if (geteuid() != 0)
                return true;
        /* every component, from the directory up to / */
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s", dir);
        for (;;) {
                if (stat(path, &st) < 0 || !(st.st_mode & S_IXOTH))
                        return false;
                char *slash = strrchr(path, '/');
                if (!slash || slash == path)
                        return true;
                *slash = 0;
        }
}

int embedded_start(struct embedded *e)
{
        char exe[PATH_MAX], broker[PATH_MAX + 32];
        int ready[2], r;

        e->pid = 0;
        e->pidfd = -1;
        e->ready_fd = -1;
        const char *base = NULL, *candidates[] = { getenv("XDG_RUNTIME_DIR"), getenv("TMPDIR") };
        for (size_t i = 0; i < ARRAY_SIZE(candidates) && !base; i++)
                if (usable_base(candidates[i]))
                        base = candidates[i];
        if (!base)
                base = "/tmp";
        snprintf(e->dir, sizeof(e->dir), "%s/seccell.XXXXXX", base);
        if (!mkdtemp(e->dir))
                return log_errno(-errno, "cannot create a runtime directory in %s", base);

        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n < 0) {
                r = log_errno(-errno, "cannot find my own binary");
                goto fail;
        }
        exe[n] = 0;
        snprintf(broker, sizeof(broker), "%s/seccell-broker", dirname(exe));
        if (pipe2(ready, O_CLOEXEC) < 0) {
                r = -errno;
                goto fail;
        }
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
                r = -errno;
                close(ready[0]), close(ready[1]);
                goto fail;
        }
        if (pid == 0) {
                /* The private broker dies with its CLI; it ends its
                 * sandboxes on SIGTERM. */
                prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
                if (getppid() != parent)
                        _exit(125);
                int fds[4] = { 0, 1, 2, ready[1] };
                if (child_setup(fds, 4) < 0)
                        _exit(125);
                char *argv[] = { broker, "--embedded", "--dir", e->dir, "--ready-fd", "3", NULL };
                execv(broker, argv);
                dprintf(2, "seccell: cannot run %s: %s\n", broker, strerror(errno));
                _exit(125);
        }
        close(ready[1]);
        e->pid = pid;
        e->pidfd = (int)syscall(__NR_pidfd_open, pid, 0);
        e->ready_fd = ready[0];
        return 0;
fail:
        rm_tree(e->dir);
        return r;
}

int embedded_wait_ready(struct embedded *e)
{
        struct pollfd p = { .fd = e->ready_fd, .events = POLLIN };
        char c;
        int k;
        do
                k = poll(&p, 1, START_TIMEOUT_MS);
        while (k < 0 && errno == EINTR);
        bool ok = k > 0 && read(e->ready_fd, &c, 1) == 1;
        closep(&e->ready_fd);
        e->ready_fd = -1;
        if (!ok) {
                log_msg("the private broker did not start (see the message above)");
                embedded_stop(e);
                return -ECHILD;
        }
        log_debug("private broker ready");
        return 0;
}

void embedded_stop(struct embedded *e)
{
        if (e->pid > 0) {
                kill(e->pid, SIGTERM);
                log_debug("waiting for the private broker");
                waitpid(e->pid, NULL, 0);
                log_debug("private broker exited");
                e->pid = 0;
        }
        closep(&e->pidfd);
        closep(&e->ready_fd);
        e->pidfd = e->ready_fd = -1;
        rm_tree(e->dir);
}
