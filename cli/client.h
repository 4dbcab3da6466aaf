/* The CLI's side of a run: descriptors on the fd channel, the Run request
 * over nng, signal forwarding, and the wait for the result. */
#pragma once
#include <stdbool.h>
#include <signal.h>
#include <stdint.h>

#include <nng/nng.h>

#include "seccell.pb-c.h"

struct run_options {
        char **argv;              /* NULL-terminated command */
        uint32_t max_procs;
        uint64_t max_memory;
        uint64_t timeout_ms;
        int audit_fd;             /* -1: no audit sink; borrowed */
        const char *audit_path;   /* its name, for messages */
        bool summary;             /* one line of counts on stderr at the end */
};

struct client {
        nng_socket sock;
        bool open;
        int sfd;                  /* signalfd of the forwarded signals */
        sigset_t mask;
};

/* Block the forwarded signals (read from a signalfd from now on) and open
 * the nng socket, whose threads start now: call it while an embedded broker
 * is starting. Returns 0 or -errno (after printing why). */
int client_open(struct client *c);
void client_close(struct client *c);

/* Run `o` through the broker listening in `dir` and return the exit status
 * seccell should exit with (the command's, 128+N, 124, or 125 after
 * printing one line about what failed). `broker_pidfd` (or -1) names an
 * embedded broker whose death ends the wait. */
int client_run(struct client *c, const char *dir, const struct run_options *o, int broker_pidfd);
