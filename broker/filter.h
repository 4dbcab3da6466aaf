/* The sandbox's seccomp filter: one table of rules per policy, turned into a
 * libseccomp filter, exported to classic BPF in the broker, and loaded by the
 * sandbox root with a raw seccomp(2) call (libseccomp 2.5.4 cannot ask for
 * SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV). */
#pragma once
#include <linux/filter.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "syscalls.h"

struct filter_policy {
        uint32_t max_procs;   /* 0: no process limit */
        uint64_t max_memory;  /* bytes; 0: no memory limit */
};

enum filter_action {
        FILTER_NOTIFY,        /* route to the tracer */
        FILTER_ERRNO,         /* fail with `err` */
};

/* One rule: `syscall` (a libseccomp name) gets `action` when, if `masked`,
 * (arg[argno] & mask) == value and, if also `masked2`,
 * (arg[argno2] & mask2) == value2. */
struct filter_rule {
        const char *syscall;
        enum filter_action action;
        int err;
        bool masked;
        unsigned argno;
        uint64_t mask;
        uint64_t value;
        bool masked2;
        unsigned argno2;
        uint64_t mask2;
        uint64_t value2;
};

/* Fill `rules` (room for `max`) with the rules for `p`, in the order they are
 * added. Returns the count, or -ENOSPC when `max` is too small. */
int filter_rules(const struct filter_policy *p, struct filter_rule *rules, size_t max);

/* Build a libseccomp filter for `p` (default: allow; bad architecture and
 * x32 numbers: ENOSYS). *out is owned by the caller (seccomp_release).
 * Returns 0 or -errno. */
int filter_build(const struct filter_policy *p, scmp_filter_ctx *out);

/* Build and export the filter for `p` to classic BPF. prog->filter is
 * malloc'd and owned by the caller. Returns 0 or -errno. */
int filter_export(const struct filter_policy *p, struct sock_fprog *prog);

/* Load `prog` on the calling thread with SECCOMP_FILTER_FLAG_NEW_LISTENER
 * and, where the kernel has it (5.19+), WAIT_KILLABLE_RECV; on EINVAL it
 * retries without, and sets *killable accordingly. The caller must have set
 * PR_SET_NO_NEW_PRIVS or hold CAP_SYS_ADMIN. Allocates nothing, so it is
 * safe in a forked child. Returns the listener fd (O_CLOEXEC) or -errno. */
int filter_load_listener(const struct sock_fprog *prog, bool *killable);
