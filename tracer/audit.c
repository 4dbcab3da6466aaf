#include "audit.h"
#include "exec_audit.h"
#include "procfs.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t host_seq;
audit_publish_fn audit_publisher;

void audit_set_publisher(audit_publish_fn fn) { audit_publisher = fn; }

/* Write all of `buf` (one line). A short write (a pipe, a non-blocking
 * sink) is continued, waiting up to a second for room; if the rest cannot
 * be written, a newline still ends the fragment, so the next line parses.
 * Returns 0 or -errno. */
static int write_line(int fd, const char *buf, size_t len)
{
        size_t done = 0;
        while (done < len) {
                ssize_t n = write(fd, buf + done, len - done);
                if (n > 0) {
                        done += n;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        struct pollfd p = { .fd = fd, .events = POLLOUT };
                        if (poll(&p, 1, 1000) == 1)
                                continue;
                }
                int r = n < 0 ? -errno : -EIO;
                if (done > 0)
                        (void)!write(fd, "\n", 1);
                return r;
        }
        return 0;
}

void audit_init(struct audit_sink *s, int fd, uint64_t sandbox_id)
{
        *s = (struct audit_sink){ .fd = fd, .sandbox_id = sandbox_id };
}

void audit_close(struct audit_sink *s)
{
        if (s->fd >= 0)
                close(s->fd);
        s->fd = -1;
}

static void rfc3339_now(char *buf, size_t len)
{
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, len - n, ".%09ldZ", ts.tv_nsec);
}

int audit_emit(struct audit_sink *s, const char *event, json_object *fields)
{
        json_object *o = json_object_new_object();
        char ts[64];
        int r = 0;

        s->seq++;
        host_seq++;
        rfc3339_now(ts, sizeof(ts));
        json_object_object_add(o, "seq", json_object_new_uint64(s->seq));
        json_object_object_add(o, "host_seq", json_object_new_uint64(host_seq));
        json_object_object_add(o, "ts", json_object_new_string(ts));
        json_object_object_add(o, "sandbox", json_object_new_uint64(s->sandbox_id));
        json_object_object_add(o, "event", json_object_new_string(event));
        if (fields) {
                /* the standard members above are never overwritten */
                json_object_object_foreach(fields, k, v)
                        if (!json_object_object_get_ex(o, k, NULL))
                                json_object_object_add(o, k, json_object_get(v));
                json_object_put(fields);
        }
        if (audit_publisher) {
                size_t len;
                const char *txt = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
                audit_publisher(s, event, s->seq, host_seq, txt, len);
        }
        if (s->fd >= 0) {
                size_t len;
                const char *txt = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
                char *line = malloc(len + 1);
                if (!line) {
                        r = -ENOMEM;
                } else {
                        memcpy(line, txt, len);
                        line[len] = '\n';
                        r = write_line(s->fd, line, len + 1);
                        free(line);
                }
                if (r < 0 && s->write_errors++ == 0)
                        s->first_errno = -r;
        }
        json_object_put(o);
        return r;
}

json_object *audit_wait_status(int st)
{
        json_object *o = json_object_new_object();
        if (WIFSIGNALED(st)) {
                json_object_object_add(o, "signal", json_object_new_int(WTERMSIG(st)));
                json_object_object_add(o, "core_dumped", json_object_new_boolean(WCOREDUMP(st)));
        } else {
                json_object_object_add(o, "code", json_object_new_int(WEXITSTATUS(st)));
        }
        return o;
}

json_object *audit_string(const char *s)
{
        char *clean = utf8_sanitize(s ? s : "", s ? strlen(s) : 0);
        json_object *o = json_object_new_string(clean ? clean : "");
        free(clean);
        return o;
}

json_object *audit_string_array(char *const *v, size_t n, size_t max_items, size_t max_item, size_t max_total,
                                bool *truncated)
{
        size_t total = 0;
        json_object *a = json_object_new_array_ext((int)(n < max_items ? n : max_items));
        *truncated = n > max_items;
        for (size_t i = 0; i < n && i < max_items && total < max_total; i++) {
                const char *s = v[i] ? v[i] : "";
                size_t len = strlen(s), keep = len;
                if (keep > max_item)
                        keep = max_item;
                if (keep > max_total - total)
                        keep = max_total - total;
                *truncated |= keep < len || (total + keep == max_total && i + 1 < n);
                total += keep;
                char *clean = utf8_sanitize(s, keep);
                json_object_array_add(a, json_object_new_string(clean ? clean : ""));
                free(clean);
        }
        return a;
}

void audit_caller(json_object *f, pid_t tid)
{
        pid_t tgid = procfs_tgid(tid);
        json_object_object_add(f, "pid", json_object_new_int(tgid > 0 ? tgid : tid));
        json_object_object_add(f, "tid", json_object_new_int(tid));
}
