#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kcompat.h"

int child_setup(int *fds, int n)
{
        /* the parent's handlers and mask mean nothing here */
        for (int s = 1; s < NSIG; s++)
                signal(s, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);

        /* first above every target, so no dup2 below clobbers a source */
        for (int i = 0; i < n; i++) {
                int d = fcntl(fds[i], F_DUPFD_CLOEXEC, n);
                if (d < 0 && errno == EBADF) {
                        /* a closed descriptor (say, a closed stdin) */
                        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                        d = null < 0 ? -1 : fcntl(null, F_DUPFD_CLOEXEC, n);
                        if (null >= 0)
                                close(null);
                }
                if (d < 0)
                        return -errno;
                fds[i] = d;
        }
        for (int i = 0; i < n; i++)
                if (dup2(fds[i], i) < 0)
                        return -errno;
        syscall(__NR_close_range, n, ~0U, 0);
        return 0;
}
