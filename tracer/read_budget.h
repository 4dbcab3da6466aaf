/* A time budget per user for the tracer's costly looks at a sandbox: the
 * exact memory re-read reads every process's /proc/<pid>/maps and compares
 * address spaces pairwise (kcmp), all under tracer_lock, which every
 * sandbox of every user waits on. A sandbox chooses what that costs (found
 * in review: 20 processes of 65k mappings each took 1.5 s a read, and
 * another user's runs 8-11 s each). Each user may spend at most
 * 1/READ_BUDGET_SHARE of the tracer's time in them, after a first burst of
 * READ_BUDGET_BURST_NS / READ_BUDGET_SHARE. When the budget is spent, the
 * caller waits for the look: a request that needs it is held until then,
 * a sweep waits for a later one. Under tracer_lock; no kernel contract. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define READ_BUDGET_SHARE 10
#define READ_BUDGET_BURST_NS (1000ull * 1000 * 1000)

struct read_budget {
        uid_t uid;
        uint64_t clear_ns;       /* CLOCK_MONOTONIC: when all it spent is paid back */
        struct read_budget *next;
};

/* Whether `uid` may make a costly look at `now_ns` (CLOCK_MONOTONIC). */
bool read_budget_allows(struct read_budget **list, uid_t uid, uint64_t now_ns);

/* How long from `now_ns` until `uid` may look again: 0 when it may now. */
uint64_t read_budget_wait_ns(struct read_budget **list, uid_t uid, uint64_t now_ns);

/* Record that a look of `uid` ran from `start_ns` to `end_ns`: it is paid
 * back at READ_BUDGET_SHARE times its length. Out of memory: not recorded
 * (the user is not throttled; logged by the caller if it matters). */
void read_budget_spend(struct read_budget **list, uid_t uid, uint64_t start_ns, uint64_t end_ns);

/* Forget every user (the list's memory). */
void read_budget_free(struct read_budget **list);
