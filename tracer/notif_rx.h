/* The receiving side of a sandbox's listener: one thread per listener,
 * blocked in SECCOMP_IOCTL_NOTIF_RECV, that only receives and queues.
 *
 * Why a thread: until the supervisor has received a notification, a signal
 * to the waiting task ends the wait with -ERESTARTSYS, which a handler
 * without SA_RESTART turns into EINTR - a fork that fails where a native
 * one restarts (dash's SIGCHLD handler is such a handler). After the
 * receive, WAIT_KILLABLE_RECV holds the task. A thread already waiting in
 * the receive, woken on the notifier's own CPU
 * (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP), shrinks that window to a context
 * switch; an epoll loop would add its whole wake-up path to it.
 *
 * A notification that needs no ptrace (memory calls, exec, namespace
 * requests) is judged and answered right here by the inline callback, on
 * the notifier's CPU with no further wake-up (waking the main thread on the
 * other CPU costs ~30 us on an idle VM); fork-like calls are queued for the
 * main thread, which is the only one that ever calls ptrace. */
#pragma once
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stddef.h>

struct notif_rx;

/* Install the wake-up signal handler; once, before any receiver starts.
 * Returns 0 or -errno. */
int notif_rx_init(size_t notif_size);

/* Called on the receiver thread `rx` with each received notification;
 * returns true if it answered it (or dropped it: the receiver is
 * stopping), false to queue it for the main thread. While it runs nothing
 * else of this listener is received, so it should not block - but only
 * this sandbox waits when it does (reading an exec's argv out of memory
 * that a stalled file system backs): never the main thread. */
struct notif_rx;
typedef bool (*notif_inline_fn)(void *ctx, struct seccomp_notif *n, struct notif_rx *rx);

/* Whether notif_rx_stop() was called for `rx`: then its ctx may be gone.
 * Stable once read under the lock the caller of notif_rx_stop() holds. */
bool notif_rx_stopping(struct notif_rx *rx);

/* Start receiving on `listener` (borrowed; it must outlive the receiver).
 * *efd is an eventfd, readable while notifications are queued or once the
 * listener has hung up. `inline_fn` (may be NULL) is offered each
 * notification first, with `ctx`. Returns 0 or -errno. */
int notif_rx_start(struct notif_rx **out, int listener, int *efd, notif_inline_fn inline_fn, void *ctx);

/* Tag `rx` with the uid it serves, for notif_rx_stuck(). */
void notif_rx_set_owner(struct notif_rx *rx, unsigned owner);

/* How many receivers of `owner` were left stuck by notif_rx_stop() and
 * have not ended yet: each holds its sandbox's address space (a read of its
 * memory that a stalled file system holds). */
unsigned notif_rx_stuck(unsigned owner);

/* Take the oldest queued notification into `buf` (notif_size bytes).
 * Returns 1 if one was taken, 0 if the queue is empty, -ENOTCONN if it is
 * empty and the listener has hung up (every filtered task is gone). */
int notif_rx_pop(struct notif_rx *rx, struct seccomp_notif *buf);

/* Stop and join the receiver, drop what is still queued, close the
 * eventfd; returns true. A receiver that does not stop within ~10 ms (stuck
 * in its inline callback, in a read that does not return) is left to end
 * on its own: it then closes the listener and the eventfd and frees itself,
 * and false is returned - the caller must not close the listener, and must
 * hold off the inline callback's state changes by the lock it takes. */
bool notif_rx_stop(struct notif_rx *rx);
