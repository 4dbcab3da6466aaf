/* The audit stream: one JSON object per line per event, appended to the
 * sandbox's sink (opened O_APPEND by the client, so lines of sinks sharing
 * a file never interleave). Events are made and numbered where they happen,
 * under the tracer's lock; the sink's own writer thread writes them
 * (audit_queue.h), so a sink that does not take its writes never holds the
 * tracer. Every event carries
 *   "seq"      - per sandbox, 1, 2, 3, ... (a gap means a lost event)
 *   "host_seq" - per tracer, strictly increasing across all sandboxes
 *   "ts"       - wall-clock time, RFC 3339 UTC with nanoseconds
 *   "sandbox"  - the sandbox id
 *   "event"    - the event type */
#pragma once
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit_queue.h"

struct audit_sink {
        struct audit_queue *q;  /* the sink's writer (owned); NULL: no sink
                                 * (events are counted only) */
        uint64_t sandbox_id;
        uint64_t seq;           /* last seq emitted */
};

/* Start a sink on `fd` (ownership passes, closed on failure too; -1 for
 * none), its writer charged to uid `owner`. Returns 0 or -errno (no writer
 * thread: the sink is closed and *s has none). */
int audit_init(struct audit_sink *s, int fd, uint64_t sandbox_id, unsigned owner);

/* Emit `event` with the members of `fields` (consumed; may be NULL): give
 * it the next seq and host_seq, publish it, and queue its line for the
 * sink. Never waits for the sink. Returns 0, or -errno when the line was
 * dropped (-ENOBUFS: the sink's queue is full; counted, and the event keeps
 * its seq so the gap is visible). Write errors come later, with
 * audit_close(). */
int audit_emit(struct audit_sink *s, const char *event, json_object *fields);

/* Called with every event (the line without its newline) when set; see
 * audit_set_publisher. */
typedef void (*audit_publish_fn)(const struct audit_sink *s, const char *event, uint64_t seq, uint64_t host_seq,
                                 const char *line, size_t len);

/* Send every event to `fn` as well (the live stream), or stop (NULL). */
void audit_set_publisher(audit_publish_fn fn);
extern audit_publish_fn audit_publisher;

/* Whether events go anywhere: hot paths skip building them. */
static inline bool audit_on(const struct audit_sink *s) { return s->q || audit_publisher; }

/* No more events: the sink's writer writes to the wake fd
 * (audit_queue_init) once all queued lines are written. */
void audit_end(struct audit_sink *s);

/* Whether the sink has written (or failed to write) every line; *progress_ns
 * as audit_queue_idle(). No sink: true. */
bool audit_idle(struct audit_sink *s, uint64_t *progress_ns);

/* Close the sink: what it holds unwritten is given up (audit_queue_close);
 * its counts go to *res (may be NULL). */
void audit_close(struct audit_sink *s, struct audit_queue_result *res);

/* A wait(2) status as {"code": N} or {"signal": N, "core_dumped": bool}. */
json_object *audit_wait_status(int wait_status);

/* Add the calling thread of a notification to `f`: "tid" (the thread, as
 * the notification names it) and "pid" (its thread group, read from
 * /proc/<tid>/status, which no exec in progress holds; the tid itself
 * when that read fails). */
void audit_caller(json_object *f, pid_t tid);

/* A JSON string of `s` made valid UTF-8 (invalid bytes become U+FFFD), so
 * hostile bytes cannot break a consumer's parser. */
json_object *audit_string(const char *s);

/* A JSON array of the first of `n` C strings, each as audit_string(): at
 * most `max_items` of them, each cut to `max_item` bytes, `max_total` bytes
 * in all (a cut may split a UTF-8 sequence: its bytes become U+FFFD).
 * *truncated says whether anything was left out. */
json_object *audit_string_array(char *const *v, size_t n, size_t max_items, size_t max_item, size_t max_total,
                                bool *truncated);
