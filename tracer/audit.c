#include "audit.h"
#include "exec_audit.h"
#include "procfs.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t host_seq;
audit_publish_fn audit_publisher;

void audit_set_publisher(audit_publish_fn fn) { audit_publisher = fn; }

int audit_init(struct audit_sink *s, int fd, uint64_t sandbox_id, unsigned owner)
{
        *s = (struct audit_sink){ .sandbox_id = sandbox_id };
        return fd < 0 ? 0 : audit_queue_start(&s->q, fd, owner, AUDIT_QUEUE_MAX);
}

void audit_end(struct audit_sink *s)
{
        if (s->q)
                audit_queue_finish(s->q);
}

bool audit_idle(struct audit_sink *s, uint64_t *progress_ns)
{
        return !s->q || audit_queue_idle(s->q, progress_ns);
}

void audit_close(struct audit_sink *s, struct audit_queue_result *res)
{
        struct audit_queue_result none = { 0 };
        if (s->q)
                audit_queue_close(s->q, &none);
        s->q = NULL;
        if (res)
                *res = none;
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
        if (s->q) {
                size_t len;
                const char *txt = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
                r = audit_queue_push(s->q, txt, len);
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
