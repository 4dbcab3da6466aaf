/* The end of a run, answered once its audit file has taken its last
 * events. The EndSandbox answer carries the count of events the file did
 * not take, so it waits for the run's writer (audit_queue.h) to drain its
 * queue: on the main loop, never blocking it - the answer goes out from
 * run_end_check(), which the writer's wake fd and a timer call in. A file
 * that takes nothing for RUN_END_STALL_MS (or MSG_END_AUDIT_WAIT_MS in all)
 * is given up: what it still holds counts as not written. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "seccell.pb-c.h"

#define RUN_END_STALL_MS 5000

/* Send the answer to an EndSandbox: `stats` with its audit counts filled
 * in, and the `ctx` bytes run_end_start() was given (the request's
 * return path). */
typedef void (*run_end_answer_fn)(const void *ctx, size_t ctxlen, Seccell__SandboxStats *stats);

/* Once, before any thread starts: audit_queue_init() with a wake fd of
 * ours. *wake_fd and *timer_fd (owned here) are to be watched (EPOLLIN),
 * each calling run_end_check(). Returns 0 or -errno. */
int run_end_init(int *wake_fd, int *timer_fd);

/* Answer for sandbox `id` once `audit` (taken over: *audit is left without
 * a sink) has written what it holds: answer(ctx, ctxlen, stats), with
 * `stats` (copied) completed. At once when there is nothing to wait for,
 * or no memory to wait with. `ctx` is copied (at most 64 bytes). */
void run_end_start(uint64_t id, struct audit_sink *audit, const Seccell__SandboxStats *stats, const void *ctx,
                   size_t ctxlen, run_end_answer_fn answer);

/* Answer the ends whose files are idle, stalled or waited for long enough;
 * signal stuck writers again when due; arm the timer for what is next. */
void run_end_check(void);
