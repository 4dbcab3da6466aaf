#include "audit_queue.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fdpass.h"

/* Interrupts a closed writer's write (audit_queue_close). Blocked in every
 * thread but the writers, so that it interrupts nothing else. */
#define AUDIT_QUEUE_SIGNAL SIGUSR1

struct line {
        struct line *next;
        size_t len;             /* bytes, the newline included */
        char buf[];
};

/* The bytes queued over all sinks of one uid. */
struct uid_budget {
        unsigned uid;
        size_t bytes;
        unsigned refs;          /* its queues */
        struct uid_budget *next;
};

/* The writers of one pipe, FIFO or terminal take turns, a line each: a
 * write there of more than PIPE_BUF bytes is not atomic, and two runs'
 * lines written into one FIFO interleaved (found in review). A regular file
 * opened O_APPEND takes each write whole. */
struct sink_turn {
        dev_t dev;
        ino_t ino;
        unsigned refs;          /* under turns_lock */
        pthread_mutex_t lock;   /* held for a line's write */
        struct sink_turn *next;
};

struct audit_queue {
        int fd;                 /* the sink (owned) */
        struct sink_turn *turn; /* NULL: a regular file */
        size_t max_bytes;
        unsigned owner;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;    /* the writer waits on it */
        /* under lock: */
        struct line *head, *tail;
        size_t bytes;           /* queued and being written */
        bool writing;           /* a line is being written */
        bool finishing;         /* audit_queue_finish() was called */
        bool notified;          /* ... and the wake fd written */
        bool closed;            /* audit_queue_close(): the writer owns q */
        bool listed;            /* on the stuck list */
        atomic_uint_least64_t progress_ns; /* of the last byte written */
        struct audit_queue_result res;
        struct uid_budget *budget;
        atomic_bool aborted;    /* closed: an interrupted write gives up */
        struct audit_queue *next_stuck;   /* under stuck_lock */
};

static int wake_fd = -1;
static size_t max_per_uid = AUDIT_QUEUE_MAX_PER_UID;

/* Lock order: a queue's lock, then budget_lock or stuck_lock. */
static pthread_mutex_t budget_lock = PTHREAD_MUTEX_INITIALIZER;
static struct uid_budget *budgets;
static pthread_mutex_t stuck_lock = PTHREAD_MUTEX_INITIALIZER;
static struct audit_queue *stuck;

static pthread_mutex_t turns_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sink_turn *turns;

static void on_signal(int sig) { (void)sig; }

/* The turn of `fd`'s file, or NULL for a regular file (or out of memory,
 * or an fd fstat(2) refuses: then lines may interleave, as before). */
static struct sink_turn *turn_get(int fd)
{
        struct stat st;
        if (fstat(fd, &st) < 0 || S_ISREG(st.st_mode))
                return NULL;
        pthread_mutex_lock(&turns_lock);
        struct sink_turn *t;
        for (t = turns; t && (t->dev != st.st_dev || t->ino != st.st_ino); t = t->next)
                ;
        if (!t && (t = calloc(1, sizeof(*t)))) {
                t->dev = st.st_dev;
                t->ino = st.st_ino;
                pthread_mutex_init(&t->lock, NULL);
                t->next = turns;
                turns = t;
        }
        if (t)
                t->refs++;
        pthread_mutex_unlock(&turns_lock);
        return t;
}

static void turn_put(struct sink_turn *t)
{
        if (!t)
                return;
        pthread_mutex_lock(&turns_lock);
        if (--t->refs == 0) {
                for (struct sink_turn **pp = &turns; *pp; pp = &(*pp)->next)
                        if (*pp == t) {
                                *pp = t->next;
                                break;
                        }
                pthread_mutex_destroy(&t->lock);
                free(t);
        }
        pthread_mutex_unlock(&turns_lock);
}

/* Wait for `q`'s turn at its sink, giving up once the queue is closed (a
 * signal does not end a mutex wait: looked at every 100 ms). */
static bool turn_take(struct audit_queue *q)
{
        while (!atomic_load(&q->aborted)) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 100 * 1000 * 1000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                if (pthread_mutex_timedlock(&q->turn->lock, &ts) == 0)
                        return true;
        }
        return false;
}

int audit_queue_init(int fd)
{
        /* no SA_RESTART: the signal must end a blocked write */
        struct sigaction sa = { .sa_handler = on_signal };
        sigset_t set;
        sigemptyset(&sa.sa_mask);
        sigemptyset(&set);
        sigaddset(&set, AUDIT_QUEUE_SIGNAL);
        if (sigaction(AUDIT_QUEUE_SIGNAL, &sa, NULL) < 0)
                return -errno;
        int r = pthread_sigmask(SIG_BLOCK, &set, NULL);
        if (r)
                return -r;
        wake_fd = fd;
        return 0;
}

void audit_queue_set_max_per_uid(size_t bytes) { max_per_uid = bytes; }

static struct uid_budget *budget_get(unsigned uid)
{
        struct uid_budget *b;
        pthread_mutex_lock(&budget_lock);
        for (b = budgets; b && b->uid != uid; b = b->next)
                ;
        if (!b && (b = calloc(1, sizeof(*b)))) {
                b->uid = uid;
                b->next = budgets;
                budgets = b;
        }
        if (b)
                b->refs++;
        pthread_mutex_unlock(&budget_lock);
        return b;
}

static void budget_put(struct uid_budget *b)
{
        pthread_mutex_lock(&budget_lock);
        if (--b->refs == 0) {
                for (struct uid_budget **pp = &budgets; *pp; pp = &(*pp)->next)
                        if (*pp == b) {
                                *pp = b->next;
                                break;
                        }
                free(b);
        }
        pthread_mutex_unlock(&budget_lock);
}

/* Whether `n` more bytes may be queued; if so they are counted. Under
 * q->lock. A sink may always hold AUDIT_QUEUE_FLOOR (and one line when it
 * holds nothing), so that one uid's stuck sinks cannot take the room of its
 * sinks that keep up. */
static bool admit(struct audit_queue *q, size_t n)
{
        bool ok = q->bytes == 0 || q->bytes + n <= q->max_bytes;
        pthread_mutex_lock(&budget_lock);
        if (ok && q->bytes + n > AUDIT_QUEUE_FLOOR && q->bytes > 0)
                ok = q->budget->bytes + n <= max_per_uid;
        if (ok)
                q->budget->bytes += n;
        pthread_mutex_unlock(&budget_lock);
        if (ok)
                q->bytes += n;
        return ok;
}

/* Give back `n` bytes. Under q->lock. */
static void release(struct audit_queue *q, size_t n)
{
        q->bytes -= n;
        pthread_mutex_lock(&budget_lock);
        q->budget->bytes -= n;
        pthread_mutex_unlock(&budget_lock);
}

/* List `q`'s writer as stuck (counted against its user, signalled by
 * audit_queue_kick_stuck) until stuck_remove(). */
static void stuck_add(struct audit_queue *q)
{
        pthread_mutex_lock(&stuck_lock);
        q->next_stuck = stuck;
        stuck = q;
        pthread_mutex_unlock(&stuck_lock);
}

static void stuck_remove(struct audit_queue *q)
{
        pthread_mutex_lock(&stuck_lock);
        for (struct audit_queue **pp = &stuck; *pp; pp = &(*pp)->next_stuck)
                if (*pp == q) {
                        *pp = q->next_stuck;
                        break;
                }
        pthread_mutex_unlock(&stuck_lock);
}

void audit_queue_kick_stuck(void)
{
        /* a listed writer has not left its thread yet (it unlists itself
         * first), so its pthread_t is valid */
        pthread_mutex_lock(&stuck_lock);
        for (struct audit_queue *q = stuck; q; q = q->next_stuck)
                pthread_kill(q->thread, AUDIT_QUEUE_SIGNAL);
        pthread_mutex_unlock(&stuck_lock);
}

unsigned audit_queue_stuck(unsigned owner)
{
        unsigned n = 0;
        pthread_mutex_lock(&stuck_lock);
        for (struct audit_queue *q = stuck; q; q = q->next_stuck)
                n += q->owner == owner;
        pthread_mutex_unlock(&stuck_lock);
        return n;
}

/* Write all of `buf` (one line). A short write (a pipe, a non-blocking
 * sink) is continued; a non-blocking sink is waited for. If the rest cannot
 * be written - the queue was closed, or the sink failed - a newline still
 * ends the fragment, so that the next line, this run's or another's on the
 * same FIFO, parses (found in review: it was glued to the fragment). That
 * newline waits as a write does, until the reader reads or a signal (the
 * writer is listed stuck meanwhile). Returns 0 or -errno. */
static int write_line_whole(struct audit_queue *q, const char *buf, size_t len)
{
        size_t done = 0;
        while (done < len) {
                if (atomic_load(&q->aborted)) {
                        if (done > 0)
                                (void)!write(q->fd, "\n", 1);
                        return -EINTR;
                }
                ssize_t n = write(q->fd, buf + done, len - done);
                if (n > 0) {
                        done += n;
                        /* a slow reader of a long line is progress too */
                        atomic_store(&q->progress_ns, mono_ns());
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        struct pollfd p = { .fd = q->fd, .events = POLLOUT };
                        if (poll(&p, 1, -1) >= 0 || errno == EINTR)
                                continue;
                }
                int r = n < 0 ? -errno : -EIO;
                if (done > 0)
                        (void)!write(q->fd, "\n", 1);
                return r;
        }
        return 0;
}

/* write_line_whole(), in turn with the other writers of a pipe, FIFO or
 * terminal; -EINTR when the queue was closed while it waited. */
static int write_line(struct audit_queue *q, const char *buf, size_t len)
{
        if (!q->turn)
                return write_line_whole(q, buf, len);
        if (!turn_take(q))
                return -EINTR;
        int r = write_line_whole(q, buf, len);
        pthread_mutex_unlock(&q->turn->lock);
        return r;
}

static void notify(void)
{
        uint64_t one = 1;
        if (wake_fd >= 0)
                (void)!write(wake_fd, &one, sizeof(one));
}

static void *writer_main(void *arg)
{
        struct audit_queue *q = arg;
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, AUDIT_QUEUE_SIGNAL);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);

        pthread_mutex_lock(&q->lock);
        for (;;) {
                while (!q->head && !q->closed) {
                        if (q->finishing && !q->notified) {
                                q->notified = true;
                                notify();
                        }
                        pthread_cond_wait(&q->cond, &q->lock);
                }
                if (q->closed)
                        break;
                struct line *l = q->head;
                q->head = l->next;
                if (!q->head)
                        q->tail = NULL;
                q->writing = true;
                pthread_mutex_unlock(&q->lock);

                int r = write_line(q, l->buf, l->len);

                pthread_mutex_lock(&q->lock);
                q->writing = false;
                atomic_store(&q->progress_ns, mono_ns());
                release(q, l->len);
                free(l);
                if (q->closed)
                        break; /* counted by audit_queue_close() */
                if (r < 0) {
                        q->res.unwritten++;
                        if (!q->res.first_errno)
                                q->res.first_errno = -r;
                }
        }
        bool listed = q->listed;
        pthread_mutex_unlock(&q->lock);
        /* listed until the close returns: a FUSE file's close waits for
         * its FLUSH, which a stalled server holds (found in review: an
         * idle writer's close was never counted against its user) */
        if (!listed)
                stuck_add(q);
        close(q->fd);
        stuck_remove(q);
        turn_put(q->turn);
        budget_put(q->budget);
        pthread_cond_destroy(&q->cond);
        pthread_mutex_destroy(&q->lock);
        free(q);
        return NULL;
}

int audit_queue_start(struct audit_queue **out, int fd, unsigned owner, size_t max_bytes)
{
        struct audit_queue *q = calloc(1, sizeof(*q));
        pthread_attr_t attr;
        int r;

        if (!q || !(q->budget = budget_get(owner))) {
                free(q);
                fds_close_detached(&fd, 1); /* the client's: its close may stall */
                return -ENOMEM;
        }
        q->fd = fd;
        q->turn = turn_get(fd);
        q->owner = owner;
        q->max_bytes = max_bytes;
        atomic_init(&q->progress_ns, mono_ns());
        atomic_init(&q->aborted, false);
        pthread_mutex_init(&q->lock, NULL);
        pthread_cond_init(&q->cond, NULL);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = pthread_create(&q->thread, &attr, writer_main, q);
        pthread_attr_destroy(&attr);
        if (r) {
                turn_put(q->turn);
                budget_put(q->budget);
                pthread_cond_destroy(&q->cond);
                pthread_mutex_destroy(&q->lock);
                free(q);
                fds_close_detached(&fd, 1);
                return -r;
        }
        *out = q;
        return 0;
}

int audit_queue_push(struct audit_queue *q, const char *txt, size_t len)
{
        struct line *l = malloc(sizeof(*l) + len + 1);
        int r = 0;

        if (l) {
                memcpy(l->buf, txt, len);
                l->buf[len] = '\n';
                l->len = len + 1;
                l->next = NULL;
        }
        pthread_mutex_lock(&q->lock);
        if (!l) {
                r = -ENOMEM;
                q->res.unwritten++;
                if (!q->res.first_errno)
                        q->res.first_errno = ENOMEM;
        } else if (!admit(q, l->len)) {
                r = -ENOBUFS;
                q->res.unwritten++;
                q->res.lagged++;
        } else {
                if (q->tail)
                        q->tail->next = l;
                else
                        q->head = l;
                q->tail = l;
                l = NULL;
                pthread_cond_signal(&q->cond);
        }
        pthread_mutex_unlock(&q->lock);
        free(l);
        return r;
}

void audit_queue_finish(struct audit_queue *q)
{
        pthread_mutex_lock(&q->lock);
        q->finishing = true;
        atomic_store(&q->progress_ns, mono_ns());
        pthread_cond_signal(&q->cond);
        pthread_mutex_unlock(&q->lock);
}

bool audit_queue_idle(struct audit_queue *q, uint64_t *progress_ns)
{
        pthread_mutex_lock(&q->lock);
        bool idle = !q->head && !q->writing;
        if (progress_ns)
                *progress_ns = atomic_load(&q->progress_ns);
        pthread_mutex_unlock(&q->lock);
        return idle;
}

void audit_queue_close(struct audit_queue *q, struct audit_queue_result *out)
{
        pthread_mutex_lock(&q->lock);
        for (struct line *l = q->head, *next; l; l = next) {
                next = l->next;
                q->res.unwritten++;
                q->res.lagged++;
                release(q, l->len);
                free(l);
        }
        q->head = q->tail = NULL;
        bool busy = q->writing;
        if (busy) {
                q->res.unwritten++;
                q->res.lagged++;
                q->listed = true;
                stuck_add(q);
        }
        *out = q->res;
        q->closed = true;
        atomic_store(&q->aborted, true);
        pthread_cond_signal(&q->cond);
        pthread_mutex_unlock(&q->lock);
        /* from here q is the writer's; it is signalled only while listed */
        if (busy)
                audit_queue_kick_stuck();
}
