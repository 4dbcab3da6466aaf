#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *prog = "seccell";
static int debug = -1;

void log_set_prog(const char *p) { prog = p; }
void log_set_debug(bool on) { debug = on; }

bool log_debug_enabled(void)
{
        if (debug < 0) {
                const char *e = getenv("SECCELL_DEBUG");
                debug = e && *e && strcmp(e, "0") != 0;
        }
        return debug;
}

/* One write per line, so lines from several processes sharing stderr do not
 * interleave mid-line. */
static void vlog(const char *fmt, va_list ap, int err, bool stamp)
{
        char buf[1024];
        int n;
        if (stamp) {
                /* debug lines carry CLOCK_MONOTONIC ms, to line up processes */
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                n = snprintf(buf, sizeof(buf), "%s [%ld.%06ld]: ", prog, (long)ts.tv_sec % 1000,
                             ts.tv_nsec / 1000);
        } else {
                n = snprintf(buf, sizeof(buf), "%s: ", prog);
        }
        if (n < 0)
                return;
        int m = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
        if (m > 0)
                n += m;
        if ((size_t)n >= sizeof(buf) - 64)
                n = sizeof(buf) - 64;
        if (err)
                n += snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(err));
        buf[n++] = '\n';
        fwrite(buf, 1, n, stderr);
        fflush(stderr);
}

void log_msg(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vlog(fmt, ap, 0, false);
        va_end(ap);
}

void log_debug(const char *fmt, ...)
{
        if (!log_debug_enabled())
                return;
        va_list ap;
        va_start(ap, fmt);
        vlog(fmt, ap, 0, true);
        va_end(ap);
}

int log_errno(int r, const char *fmt, ...)
{
        int saved = errno;
        va_list ap;
        va_start(ap, fmt);
        vlog(fmt, ap, r < 0 ? -r : r, false);
        va_end(ap);
        errno = saved;
        return r;
}

void log_limited(struct log_limit *l, const char *fmt, ...)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        unsigned long long now = (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
        if (!l->window_start_ns || now - l->window_start_ns >= (unsigned long long)l->window_s * 1000000000ull) {
                if (l->dropped)
                        log_msg("(%u similar lines left out)", l->dropped);
                l->window_start_ns = now;
                l->used = l->dropped = 0;
        }
        if (l->used >= l->burst) {
                l->dropped++;
                return;
        }
        l->used++;
        va_list ap;
        va_start(ap, fmt);
        vlog(fmt, ap, 0, false);
        va_end(ap);
}
