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

/* Receive and answer every notification pending on sb->listener, at most
 * `budget`, without ever blocking: the listener is polled before each
 * receive, and ENOENT from receive or reply (the task died, or a signal
 * made it restart) is a normal race. Returns the number handled, or
 * -ENOTCONN once the listener has hung up (every filtered task is gone). */
int notif_drain(struct tsandbox *sb, int budget);
