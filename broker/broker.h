/* State shared by the broker's modules: the main loop's watches. */
#pragma once
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "server.h"
#include "tracer_link.h"

/* An epoll registration: `fn(obj, events)` runs on the main thread. */
struct watch {
        void (*fn)(void *obj, uint32_t events);
        void *obj;
        int fd;
};

struct broker {
        int epfd;
        struct server *srv;
        struct tracer_link tracer;
        bool is_root;                  /* may switch sandboxes to client uids */
        uid_t tracer_uid;              /* the tracer's own uid when is_root */
        bool refuse_filtered;          /* refuse clients under a seccomp filter */
        uint64_t next_id;
        struct sandbox *sandboxes;
        struct sandbox *graveyard;     /* freed after the current batch */
        bool orphan_sweep;             /* processes other than the tracer and
                                        * live reapers may be our children:
                                        * look at the end of the batch */
};

/* A reaper ended other than by exiting 0 once it had killed and reaped all
 * it had (reaper_kill_all), or is let go unreaped: its processes may have
 * come to the broker (a subreaper too), and it may be left to reap. `si`:
 * what waitid(2) gave (si_pid 0: not exited yet), or NULL when none was
 * asked. The orphan sweep runs at the end of the batch. */
void broker_reaper_ended(struct broker *b, const siginfo_t *si);

/* Add/remove `w` (w->fd) to/from the main loop for `events`.
 * Returns 0 or -errno. */
int broker_watch(struct broker *b, struct watch *w, uint32_t events);
void broker_unwatch(struct broker *b, struct watch *w);

/* Handle one client request (sandbox.c). Takes ownership of rq. */
void sandbox_handle_request(struct broker *b, struct server_request *rq);

/* Whether `pid` is the reaper of a live sandbox. */
bool sandbox_is_reaper(struct broker *b, pid_t pid);

/* Free sandboxes that ended during the current batch of events: a later
 * event of the same batch may still name one of their watches. */
void sandbox_free_ended(struct broker *b);

/* End every sandbox (broker shutdown): kill, reap, reply where a client
 * waits, telling it `why` (a static string). */
void sandbox_kill_all(struct broker *b, const char *why);
