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
        const gid_t *groups;            /* the client's supplementary groups */
        size_t ngroups;
        bool switch_user;               /* broker is root: become uid/gid */
        int stdio[3];                   /* borrowed; duplicated into the root */
        const struct sock_fprog *filter;
        uint64_t max_memory;            /* bytes, 0: none; caps RLIMIT_STACK and RLIMIT_DATA (not below 1 MiB) */
        const struct spawn_inherit *inherit; /* the client's, applied last as its user; NULL: none */
};

struct spawn_result {
        pid_t reaper_pid;
        int reaper_pidfd;               /* owned: readable once the reaper has exited */
        int reaper_sock;                /* owned: struct reaper_msg channel */
        pid_t root_pid;                 /* 0 until the reaper reports it */
        int listener_fd;                /* owned until handed to the tracer; -1 until received */
        bool killable_recv;             /* WAIT_KILLABLE_RECV in force */
        int go_sock;                    /* owned: spawn_release() writes go */
        bool go_done;                   /* nothing more comes on go_sock: stop watching it */
        int root_status;                /* wait status of a root that exited before it was ready */
};

/* Fork the reaper (which forks the root) and return at once: the root's set-up
 * goes on while the caller serves others (a root runs as the client's user,
 * who can stop it, and its chdir can stall on a file system). Watch
 * res->reaper_sock and res->go_sock for input and call spawn_progress().
 * The request is read only in the forked child: the caller may free it on
 * return. Returns 0 or -errno (then nothing was started and res holds no
 * descriptor). */
int spawn_start(const struct spawn_request *rq, struct spawn_result *res);

/* Take what the reaper and the root have sent so far; never blocks.
 * Returns 1 once the root's pid and listener are in *res (the root then
 * waits for spawn_release()), 0 while the set-up goes on, -ECHILD when the
 * root died before it was ready (its wait status in res->root_status: a
 * signal, say), or another -errno when a step of the set-up failed (*what
 * names it, "chdir" or "seccomp" say, or is NULL). After a failure close
 * the result (spawn_result_close(): the reaper then kills and reaps every
 * process it started, and exits) and reap the reaper once res->reaper_pidfd
 * is readable. */
int spawn_progress(struct spawn_result *res, const char **what);

/* Let the root exec (tracer attached) and close the go socket.
 * Returns 0 or -errno (the root is gone). */
int spawn_release(struct spawn_result *res);

/* Close every descriptor in `res` that is still open, except the reaper's
 * pidfd (which outlives them to reap the reaper): spawn_result_free() closes
 * that too. */
void spawn_result_close(struct spawn_result *res);
void spawn_result_free(struct spawn_result *res);

/* Deadline for a root's set-up, in milliseconds: a root not ready by then
 * is killed and the run refused. */
#define SPAWN_TIMEOUT_MS 10000
