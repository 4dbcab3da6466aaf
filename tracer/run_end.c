#include "run_end.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "msg.h"

#define MS 1000000ull

/* An ended run whose answer waits for its audit file. */
struct ending {
        uint64_t id;
        struct audit_sink audit;
        Seccell__SandboxStats stats;
        uint64_t since_ns;        /* CLOCK_MONOTONIC of the end */
        run_end_answer_fn answer;
        unsigned char ctx[64];
        size_t ctxlen;
        struct ending *next;
};

static struct {
        int wake_fd;              /* eventfd: a finished queue is idle */
        int timer_fd;             /* the next deadline or kick */
        struct ending *endings;
        uint64_t kick_ns;         /* when to signal stuck writers again; 0: never */
        int kicks_left;
} E = { .wake_fd = -1, .timer_fd = -1 };

int run_end_init(int *wake_fd, int *timer_fd)
{
        E.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        E.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (E.wake_fd < 0 || E.timer_fd < 0)
                return -errno;
        int r = audit_queue_init(E.wake_fd);
        if (r < 0)
                return r;
        *wake_fd = E.wake_fd;
        *timer_fd = E.timer_fd;
        return 0;
}

/* Close e's file and send its answer; `gave_up`: the file still held
 * events. */
static void answer(struct ending *e, bool gave_up)
{
        struct audit_queue_result res;
        audit_close(&e->audit, &res);
        if (gave_up) {
                log_msg("sandbox %llu: its audit file did not take its last events; %llu given up",
                        (unsigned long long)e->id, (unsigned long long)res.lagged);
                /* the signal that ends its writer's write can come before
                 * the write: twice more, 20 ms and a second later */
                E.kick_ns = mono_ns() + 20 * MS;
                E.kicks_left = 2;
        }
        e->stats.audit_write_errors = res.unwritten;
        e->stats.audit_errno = res.first_errno;
        e->stats.audit_lagged = res.lagged;
        e->answer(e->ctx, e->ctxlen, &e->stats);
}

void run_end_start(uint64_t id, struct audit_sink *audit, const Seccell__SandboxStats *stats, const void *ctx,
                   size_t ctxlen, run_end_answer_fn fn)
{
        struct ending spare, *e = calloc(1, sizeof(*e));
        bool wait = e != NULL;

        if (!e) {
                memset(&spare, 0, sizeof(spare));
                e = &spare;
        }
        e->id = id;
        e->audit = *audit;
        audit->q = NULL;
        e->stats = *stats;
        e->since_ns = mono_ns();
        e->answer = fn;
        e->ctxlen = ctxlen < sizeof(e->ctx) ? ctxlen : sizeof(e->ctx);
        memcpy(e->ctx, ctx, e->ctxlen);
        if (!wait || audit_idle(&e->audit, NULL)) {
                /* without memory to wait: what is queued is given up */
                answer(e, !audit_idle(&e->audit, NULL));
                if (wait)
                        free(e);
                return;
        }
        /* its writer says when it is done (the wake fd) */
        audit_end(&e->audit);
        e->next = E.endings;
        E.endings = e;
        run_end_check();
}

void run_end_check(void)
{
        uint64_t now = mono_ns(), next = UINT64_MAX, progress, v;

        (void)!read(E.wake_fd, &v, sizeof(v));
        (void)!read(E.timer_fd, &v, sizeof(v));
        for (struct ending **pp = &E.endings; *pp;) {
                struct ending *e = *pp;
                bool idle = audit_idle(&e->audit, &progress);
                uint64_t stall = progress + RUN_END_STALL_MS * MS;
                uint64_t cap = e->since_ns + MSG_END_AUDIT_WAIT_MS * MS;
                uint64_t due = stall < cap ? stall : cap;
                if (!idle && now < due) {
                        next = due < next ? due : next;
                        pp = &e->next;
                        continue;
                }
                *pp = e->next;
                answer(e, !idle);
                free(e);
        }
        if (E.kick_ns && now >= E.kick_ns) {
                audit_queue_kick_stuck();
                E.kick_ns = --E.kicks_left > 0 ? now + 1000 * MS : 0;
        }
        if (E.kick_ns && E.kick_ns < next)
                next = E.kick_ns;
        struct itimerspec its = { 0 };
        if (next != UINT64_MAX)
                its.it_value = (struct timespec){ .tv_sec = next / 1000000000, .tv_nsec = next % 1000000000 };
        timerfd_settime(E.timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}
