/* The broker's side of the tracer: starting it, and the control channel
 * (nng REQ to the tracer's REP, plus an inherited SOCK_SEQPACKET fd channel
 * for listener and audit descriptors). */
#pragma once
#include <nng/nng.h>
#include <stddef.h>
#include <stdbool.h>
#include <sys/types.h>

#include "seccell.pb-c.h"

struct tracer_link {
        pid_t pid;
        int pidfd;              /* readable when the tracer exits */
        int fdchan;             /* broker end of the fd channel */
        nng_socket req;
        bool open;
        int ready_fd;           /* until connected: readable once the tracer serves */
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

/* Tell the tracer a sandbox is over; its counts go to *stats (a plain copy
 * of scalars, no ownership). Returns 0 or -errno. */
int tracer_link_end(struct tracer_link *t, const Seccell__EndSandbox *end, Seccell__SandboxStats *stats);

/* Close the link and SIGTERM + reap the tracer. */
void tracer_link_stop(struct tracer_link *t);
