/* Serving one sandbox's seccomp listener (seccomp_unotify(2)). */
#pragma once
#include <linux/seccomp.h>

#include "tracer.h"

/* Query the kernel's notification sizes once (SECCOMP_GET_NOTIF_SIZES).
 * Returns 0 or -errno. */
int notif_init(void);

/* Prepare a new listener: ask for synchronous wake-ups (6.6+; ignored where
 * the kernel lacks it). */
void notif_listener_setup(int listener);

/* Answer the notifications the sandbox's receiver (notif_rx.h) has
 * queued, at most `budget`, without ever blocking. ENOENT from a reply
 * (the task died, or a signal made it restart) is a normal race. Returns
 * the number handled, or -ENOTCONN once the queue is empty and the
 * listener has hung up (every filtered task is gone). */
int notif_drain(struct tsandbox *sb, int budget);
