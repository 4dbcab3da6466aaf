/* Embedded mode: a private broker+tracer pair for one run, in a private
 * runtime directory, torn down afterwards. */
#pragma once
#include <limits.h>
#include <sys/types.h>

struct embedded {
        char dir[PATH_MAX];
        pid_t pid;
        int pidfd;
        int ready_fd;       /* readable once the broker serves */
};

/* Start seccell-broker (found beside this binary) in a new private
 * directory; embedded_wait_ready() then waits (at most 10 s) until it
 * serves. Both return 0 or -errno (after printing why; a failed wait has
 * already stopped the broker). */
int embedded_start(struct embedded *e);
int embedded_wait_ready(struct embedded *e);

/* Stop the broker (which ends its tracer), wait for it and remove the
 * directory. */
void embedded_stop(struct embedded *e);
