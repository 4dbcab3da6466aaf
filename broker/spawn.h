/* Starting a sandbox: the broker forks the per-sandbox reaper, which forks
 * the root. The root sets itself up (process group, no_new_privs, the
 * requesting user's credentials, working directory, seccomp filter with a
 * new listener), hands the listener fd to the broker and waits for "go"
 * (sent once the tracer holds the listener) before it closes every other
 * descriptor and execs. */
#pragma once
#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

/* What a command inherits from the process that asked for it, as it would
 * bare: in daemon mode the broker is no ancestor of the client. */
struct spawn_inherit {
        mode_t umask;
        int nice;
        struct rlimit rlim[RLIM_NLIMITS];
};

/* Read the umask, nice value and resource limits of the client process
 * `pid`, which must belong to `uid` (SO_PEERCRED) and stay alive while it
 * is read (a pidfd guards against a reused pid). Returns 0, -ESRCH (gone
 * or not uid's) or another -errno. */
int spawn_read_inherit(pid_t pid, uid_t uid, struct spawn_inherit *out);

struct spawn_request {
        char *const *argv;              /* NULL-terminated */
        char *const *envp;              /* NULL-terminated */
        const char *cwd;
        uid_t uid;                      /* the requesting client */
        gid_t gid;
        const gid_t *groups;            /* supplementary groups of uid */
        size_t ngroups;
        bool switch_user;               /* broker is root: become uid/gid */
        int stdio[3];                   /* borrowed; duplicated into the root */
        const struct sock_fprog *filter;
        uint64_t max_memory;            /* bytes, 0: none; caps RLIMIT_STACK */
        const struct spawn_inherit *inherit; /* the client's, applied last as its user; NULL: none */
};

struct spawn_result {
        pid_t reaper_pid;
        int reaper_pidfd;               /* owned */
        int reaper_sock;                /* owned: struct reaper_msg channel */
        pid_t root_pid;
        int listener_fd;                /* owned until handed to the tracer */
        bool killable_recv;             /* WAIT_KILLABLE_RECV in force */
        int go_sock;                    /* owned: spawn_release() writes go */
};

/* Fork the reaper and the root and wait (at most 10 s) until the root has
 * sent its listener fd. On failure, *what names the step that failed in
 * the root ("chdir", "seccomp", ...) or NULL, everything started is
 * killed and reaped, and -errno is returned. */
int spawn_sandbox(const struct spawn_request *rq, struct spawn_result *res, const char **what);

/* Let the root exec (tracer attached) and close the go socket.
 * Returns 0 or -errno (the root is gone). */
int spawn_release(struct spawn_result *res);

/* Close every descriptor in `res` that is still open. */
void spawn_result_close(struct spawn_result *res);
