/* The broker's side of the tracer: starting it, and the control channel
 * (nng REQ to the tracer's REP, both raw, plus an inherited SOCK_SEQPACKET
 * fd channel for listener and audit descriptors).
 *
 * Raw sockets, so that requests overlap: the tracer answers an EndSandbox
 * only once the sandbox's audit sink has taken its last events (up to
 * MSG_END_AUDIT_WAIT_MS), and meanwhile the broker goes on serving, and the
 * tracer answers other requests. */
#pragma once
#include <nng/nng.h>
#include <stddef.h>
#include <stdbool.h>
#include <sys/types.h>

#include "seccell.pb-c.h"

struct tracer_end;

struct tracer_link {
        pid_t pid;
        int pidfd;              /* readable when the tracer exits */
        int fdchan;             /* broker end of the fd channel */
        nng_socket req;
        bool open;
        bool lost;              /* the tracer exited: no answer will come */
        int ready_fd;           /* until connected: readable once the tracer serves */
        int recv_fd;            /* nng's: readable while answers are queued */
        int timer_fd;           /* the earliest pending end's deadline */
        int wake_fd;            /* eventfd: answers taken in during a call */
        int epfd;               /* those three: tracer_link_fd() */
        uint32_t next_id;       /* of requests (the REQ wire protocol's ids) */
        struct tracer_end *ends; /* EndSandbox requests awaiting answers */
        char dir[4096];
};

/* Start `tracer_path` with its control socket in `dir` (created here; when
 * the broker is root it is handed to `user`, whom the tracer becomes).
 * `quiet`: the tracer reports its privileges only in debug output
 * (embedded mode); `events`: the tracer publishes its audit events live.
 * tracer_link_connect() then waits at most 10 s for it to
 * serve and connects; the broker sets itself up in between.
 * Both return 0 or -errno (after printing why). */
int tracer_link_start(struct tracer_link *t, const char *tracer_path, const char *dir, const char *user, bool quiet,
                      bool events);
int tracer_link_connect(struct tracer_link *t);

/* Hand a sandbox to the tracer: `fds` (listener fd first, then the audit
 * sink if add->audit) go on the fd channel under add->fd_token; the caller
 * keeps ownership of them. Returns 0, or -errno with the tracer's reason
 * in why[whylen]. */
int tracer_link_add(struct tracer_link *t, const Seccell__AddSandbox *add, const int *fds, size_t nfds,
                    char *why, size_t whylen);

/* How an EndSandbox went: r 0 and the tracer's counts in *stats (valid
 * during the call only), or -errno and stats NULL. */
typedef void (*tracer_end_fn)(void *arg, int r, const Seccell__SandboxStats *stats);

/* Tell the tracer a sandbox is over, without waiting for its answer:
 * done(arg, ...) runs later on the main loop (tracer_link_process,
 * tracer_link_finish), once the tracer answers, the link fails, or
 * MSG_END_AUDIT_WAIT_MS plus 10 s pass. Returns 0, or -errno (then done
 * is never called). */
int tracer_link_end(struct tracer_link *t, const Seccell__EndSandbox *end, tracer_end_fn done, void *arg);

/* A descriptor that is readable (EPOLLIN) when tracer_link_process() has
 * something to do. */
int tracer_link_fd(const struct tracer_link *t);

/* Take in the tracer's answers, and run the completions of the ends
 * answered or overdue. */
void tracer_link_process(struct tracer_link *t);

/* Wait up to `ms` for the answers to every pending end (the broker is
 * stopping), running their completions; those left fail (-ETIMEDOUT, or
 * -ECONNRESET once the tracer's pidfd says it is gone). */
void tracer_link_finish(struct tracer_link *t, int ms);

/* The tracer is gone: fail every pending end (-ECONNRESET) and every later
 * request at once. */
void tracer_link_lost(struct tracer_link *t);

/* Send the tracer `sig` and reap it, waiting 5 s at most: a tracer thread
 * held in a call that no signal ends (an audit write to a stalled FUSE
 * mount) keeps the process alive until that call returns; it is then left
 * behind (to init, once the broker exits), not waited for. */
void tracer_link_kill(struct tracer_link *t, int sig);

/* Close the link (pending ends fail) and tracer_link_kill(SIGTERM). */
void tracer_link_stop(struct tracer_link *t);
