#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cleanup.h"

static const cap_value_t keep[] = { CAP_SYS_PTRACE, CAP_KILL };

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
        cap_t caps = cap_init(); /* all clear */
        if (!caps)
                return -errno;
        int r = cap_set_flag(caps, CAP_PERMITTED, ARRAY_SIZE(keep), keep, CAP_SET);
        if (r == 0)
                r = cap_set_flag(caps, CAP_EFFECTIVE, ARRAY_SIZE(keep), keep, CAP_SET);
        if (r == 0)
                r = cap_set_proc(caps);
        int e = errno;
        cap_free(caps);
        if (r < 0)
                return -e;
        prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        /* setuid resets dumpable to the sysctl default: set it after */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return -errno;
        if (getuid() == 0 || geteuid() == 0)
                return -EPERM;
        snprintf(desc, desclen, "uid %u (%s), CAP_SYS_PTRACE and CAP_KILL only, non-dumpable", pw.pw_uid, user);
        return 0;
}
