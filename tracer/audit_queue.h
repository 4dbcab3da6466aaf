/* One audit sink's queue and the thread that writes it.
 *
 * A sink is whatever the client passed as --audit: a regular file, but just
 * as well a pipe, a FIFO, a terminal, or a file on a FUSE or NFS mount. A
 * write(2) to it can block for as long as its reader or its file system
 * likes (found in review: `--audit /dev/stdout | sleep 25` held the
 * tracer's lock, and every sandbox of every user, for 25 s). So the threads
 * that serve sandboxes only queue a sink's lines; the sink's own writer
 * thread writes them, and a sink that does not take its writes holds that
 * thread alone.
 *
 * The queue is bounded: AUDIT_QUEUE_MAX bytes per sink, and
 * AUDIT_QUEUE_MAX_PER_UID over all sinks of one uid (a sink may always hold
 * AUDIT_QUEUE_FLOOR, and one line when it is empty). An event past the
 * bound is dropped and counted, never silently: its seq is missing from
 * the sink, and the count reaches the client at the end of the run. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIT_QUEUE_MAX (4u << 20)
#define AUDIT_QUEUE_MAX_PER_UID (64u << 20)
#define AUDIT_QUEUE_FLOOR (64u << 10)

struct audit_queue;

/* What became of a sink's events, from audit_queue_close(). */
struct audit_queue_result {
        uint64_t unwritten;     /* events the sink did not take, all causes */
        uint64_t lagged;        /* of those: dropped because the sink did not
                                 * keep up (its queue was full, or still held
                                 * them when it was closed) */
        int first_errno;        /* why the first failed write failed; 0: none
                                 * did */
};

/* Once per process, before any writer starts and before the threads that
 * must not see it: install a no-op handler (no SA_RESTART) for the signal
 * that interrupts a closed writer's blocked write, and block that signal in
 * the calling thread (threads it starts inherit the mask; writers unblock
 * it). `wake_fd` (an eventfd, borrowed; -1: none) is written each time a
 * finished queue (audit_queue_finish) becomes idle. Returns 0 or -errno. */
int audit_queue_init(int wake_fd);

/* Set the bound over one uid's sinks (AUDIT_QUEUE_MAX_PER_UID unless set):
 * for tests. */
void audit_queue_set_max_per_uid(size_t bytes);

/* Start a writer thread for sink `fd` (ownership passes; closed on failure
 * too), charged to uid `owner`, holding at most `max_bytes` queued.
 * Returns 0 or -errno (from pthread_create, or -ENOMEM). */
int audit_queue_start(struct audit_queue **out, int fd, unsigned owner, size_t max_bytes);

/* Queue `len` bytes of `line` (copied; a newline is added). Never waits
 * for the sink: takes only the queue's lock. Returns 0; -ENOBUFS when the
 * queue is at its bound, -ENOMEM: the line is dropped and counted. */
int audit_queue_push(struct audit_queue *q, const char *line, size_t len);

/* No more lines will come: the writer writes to the wake fd once it has
 * written (or failed to write) all there is. */
void audit_queue_finish(struct audit_queue *q);

/* Whether nothing is queued or being written. *progress_ns (may be NULL):
 * CLOCK_MONOTONIC ns of the last bytes the sink took, or of
 * audit_queue_finish() when that came later. */
bool audit_queue_idle(struct audit_queue *q, uint64_t *progress_ns);

/* Close the queue and report in *out. Lines still queued are dropped
 * (lagged), and so is the one being written, if any: it counts as not
 * written even should its write still finish. The writer closes the sink
 * and ends at once when idle, else once its write returns: the write is
 * interrupted (a signal) where it waits interruptibly (a pipe, FIFO,
 * socket or terminal); one that waits uninterruptibly (a stalled FUSE or
 * hard NFS mount) counts in audit_queue_stuck() until it returns. `q` is
 * not to be used after. */
void audit_queue_close(struct audit_queue *q, struct audit_queue_result *out);

/* Signal again every closed writer still in its write: the one signal that
 * audit_queue_close() sends is lost when it lands just before the write is
 * entered. */
void audit_queue_kick_stuck(void);

/* How many writers of uid `owner` were closed in a write that has not
 * returned yet: each holds a thread and the line it writes. */
unsigned audit_queue_stuck(unsigned owner);
