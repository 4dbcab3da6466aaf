/* Embedded mode: a private broker+tracer pair for one run, in a private
 * runtime directory, torn down afterwards. */
#pragma once
#include <limits.h>
#include <sys/types.h>

struct embedded {
        char dir[PATH_MAX];
        pid_t pid;
        int pidfd;
};

/* Start seccell-broker (found beside this binary) in a new private
 * directory and wait until it serves. Returns 0 or -errno (after printing
 * why). */
int embedded_start(struct embedded *e);

/* Stop the broker (which ends its tracer), wait for it and remove the
 * directory. */
void embedded_stop(struct embedded *e);
