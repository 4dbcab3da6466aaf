#include "privs.h"

#include <errno.h>
#include <stdbool.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cleanup.h"

/* Effective: CAP_SYS_PTRACE (read and signal sandbox processes, seize
 * forks), CAP_KILL (kill them across uids) and CAP_CHECKPOINT_RESTORE
 * (Linux 5.9: follow /proc/<pid>/map_files links, the one place the size
 * of an anonymous shared object shows: mem_limit.c object_real_size).
 * Permitted only: CAP_DAC_READ_SEARCH, to enter a map_files directory
 * (mode 0500, its process's uid) and read a thread's /proc/<tid>/syscall
 * (0400: which call it is blocked in, mem_limit.c thread_past_calls),
 * made effective around those looks alone (privs_search). CAP_SYS_PTRACE over every process already gives more. A
 * kernel without CAP_CHECKPOINT_RESTORE keeps the first two. */
static const cap_value_t keep[] = { CAP_SYS_PTRACE, CAP_KILL, CAP_CHECKPOINT_RESTORE, CAP_DAC_READ_SEARCH };
#define N_EFFECTIVE 3

/* Permitted: keep[0..n); effective: the first min(n, N_EFFECTIVE). */
static int set_caps(size_t n)
{
        cap_t caps = cap_init(); /* all clear */
        if (!caps)
                return -errno;
        int r = cap_set_flag(caps, CAP_PERMITTED, (int)n, keep, CAP_SET);
        if (r == 0)
                r = cap_set_flag(caps, CAP_EFFECTIVE, (int)(n < N_EFFECTIVE ? n : N_EFFECTIVE), keep, CAP_SET);
        if (r == 0)
                r = cap_set_proc(caps);
        int e = errno;
        cap_free(caps);
        return r < 0 ? -e : 0;
}

static bool can_search;

int privs_search(bool on)
{
        if (!can_search)
                return -EPERM;
        cap_t caps = cap_get_proc();
        if (!caps)
                return -errno;
        static const cap_value_t search[] = { CAP_DAC_READ_SEARCH };
        int r = cap_set_flag(caps, CAP_EFFECTIVE, 1, search, on ? CAP_SET : CAP_CLEAR);
        if (r == 0)
                r = cap_set_proc(caps);
        int e = errno;
        cap_free(caps);
        return r < 0 ? -e : 0;
}

bool privs_size_objects(void)
{
        return can_search;
}

int privs_drop(const char *user, char *desc, unsigned desclen)
{
        if (geteuid() != 0) {
                if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                        return -errno;
                snprintf(desc, desclen, "uid %u, no capabilities, non-dumpable", getuid());
                return 0;
        }

        struct passwd pw, *res;
        char buf[4096];
        if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) != 0 || !res)
                return -ESRCH;
        if (pw.pw_uid == 0)
                return -EPERM; /* refusing to stay root */

        /* keep the permitted set across setuid, then trim it */
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups(0, NULL) < 0 ||
            setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid) < 0 || setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid) < 0)
                return -errno;
        bool restore = true;
        int r = set_caps(ARRAY_SIZE(keep));
        if (r == -EINVAL || r == -EPERM) {
                restore = false;
                r = set_caps(2);
        }
        if (r < 0)
                return r;
        prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        /* setuid resets dumpable to the sysctl default: set it after */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return -errno;
        if (getuid() == 0 || geteuid() == 0)
                return -EPERM;
        can_search = restore;
        snprintf(desc, desclen, "uid %u (%s), CAP_SYS_PTRACE, CAP_KILL%s only, non-dumpable", pw.pw_uid, user,
                 restore ? ", CAP_CHECKPOINT_RESTORE and (raised around /proc/<pid>/map_files looks) "
                           "CAP_DAC_READ_SEARCH" : "");
        return 0;
}
