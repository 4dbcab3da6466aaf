/* Serving one sandbox's seccomp listener (seccomp_unotify(2)). */
#pragma once
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "tracer.h"

/* Query the kernel's notification sizes once (SECCOMP_GET_NOTIF_SIZES).
 * Returns 0 or -errno. */
int notif_init(void);

/* Prepare a new listener: ask for synchronous wake-ups (6.6+; ignored where
 * the kernel lacks it). */
void notif_listener_setup(int listener);

/* Held by the main loop while it handles a batch of events; a receiver
 * thread takes it (never waiting) to judge a notification inline. Every
 * piece of tracer state is touched only under it. */
extern pthread_mutex_t tracer_lock;

/* Answer notification `id` on `listener` (borrowed): err 0 lets the
 * syscall run (SECCOMP_USER_NOTIF_FLAG_CONTINUE), otherwise it fails with
 * -err. Returns 0 or -errno; -ENOENT when the task died or restarted its
 * call (a normal race). */
int notif_respond(int listener, uint64_t id, int err);

/* Answer notification `id` for the syscall, which does not run: it returns
 * `result` (>= 0), or fails with errno -result. Returns as notif_respond(). */
int notif_respond_result(int listener, uint64_t id, long result);

/* The receiver's inline callback (notif_rx.h), `ctx` the tsandbox: judges
 * and answers a memory or namespace notification when the tracer lock is
 * free at once; fork-like calls (ptrace, main thread only) and anything met
 * while the main loop is busy are left to the queue. An exec's path and
 * argv are always read here, out of the caller's memory and without the
 * lock (memory a stalled file system backs can hold that read for good: it
 * holds this sandbox's receiver, never the tracer); the exec is recorded
 * and answered here when the lock is free, else on the main loop with what
 * was read. */
struct notif_rx;
bool notif_inline(void *ctx, struct seccomp_notif *n, struct notif_rx *rx);

/* Drop what receivers left for `sb` (execs read but not recorded); after
 * its receiver was stopped and before `sb` is freed. */
void notif_forget(const struct tsandbox *sb);

/* Answer the notifications the sandbox's receiver (notif_rx.h) has
 * queued, at most `budget`, without ever blocking. ENOENT from a reply
 * (the task died, or a signal made it restart) is a normal race. Returns
 * the number handled, or -ENOTCONN once the queue is empty and the
 * listener has hung up (every filtered task is gone). */
int notif_drain(struct tsandbox *sb, int budget);
