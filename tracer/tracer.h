/* The tracer's per-sandbox state. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit.h"

struct tsandbox {
        uint64_t id;
        int listener;             /* seccomp listener fd (owned); -1 once hung up */
        pid_t root;
        uid_t uid;
        uint32_t max_procs;
        uint64_t max_memory;
        struct audit_sink audit;
        uint64_t execs;           /* exec notifications handled */
        uint64_t stale;           /* notifications whose task died first */
        struct tsandbox *next;
};
