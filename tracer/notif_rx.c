#include "notif_rx.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define WAKE_SIGNAL SIGUSR2

struct item {
        struct item *next;
        unsigned char notif[]; /* notif_size bytes */
};

struct notif_rx {
        int listener;
        int efd;
        notif_inline_fn inline_fn;
        void *ctx;
        pthread_t thread;
        pthread_mutex_t lock;
        struct item *head, *tail;
        atomic_bool stop;
        atomic_bool hup;
        bool exited;            /* under lock: the thread is leaving */
        bool abandoned;         /* under lock: it frees itself (notif_rx_stop) */
        unsigned owner;         /* notif_rx_set_owner() */
        struct notif_rx *next_stuck;
};

/* Receivers left stuck (notif_rx_stop), until they end. */
static pthread_mutex_t stuck_lock = PTHREAD_MUTEX_INITIALIZER;
static struct notif_rx *stuck;

static void stuck_remove(struct notif_rx *rx)
{
        pthread_mutex_lock(&stuck_lock);
        for (struct notif_rx **pp = &stuck; *pp; pp = &(*pp)->next_stuck)
                if (*pp == rx) {
                        *pp = rx->next_stuck;
                        break;
                }
        pthread_mutex_unlock(&stuck_lock);
}

void notif_rx_set_owner(struct notif_rx *rx, unsigned owner)
{
        rx->owner = owner;
}

unsigned notif_rx_stuck(unsigned owner)
{
        unsigned n = 0;
        pthread_mutex_lock(&stuck_lock);
        for (struct notif_rx *rx = stuck; rx; rx = rx->next_stuck)
                n += rx->owner == owner;
        pthread_mutex_unlock(&stuck_lock);
        return n;
}

static size_t nsize;

static void on_wake(int sig) { (void)sig; }

int notif_rx_init(size_t notif_size)
{
        /* no SA_RESTART: the signal must end a blocked receive */
        struct sigaction sa = { .sa_handler = on_wake };
        sigemptyset(&sa.sa_mask);
        nsize = notif_size;
        return sigaction(WAKE_SIGNAL, &sa, NULL) < 0 ? -errno : 0;
}

static void wake_main(struct notif_rx *rx)
{
        uint64_t one = 1;
        (void)!write(rx->efd, &one, sizeof(one));
}

/* Drop what is queued, close the eventfd, free. */
static void rx_free(struct notif_rx *rx)
{
        while (rx->head) {
                struct item *it = rx->head;
                rx->head = it->next;
                free(it);
        }
        close(rx->efd);
        pthread_mutex_destroy(&rx->lock);
        free(rx);
}

bool notif_rx_stopping(struct notif_rx *rx)
{
        return atomic_load(&rx->stop);
}

static void *rx_main(void *arg)
{
        struct notif_rx *rx = arg;
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, WAKE_SIGNAL);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);

        while (!atomic_load(&rx->stop)) {
                struct item *it = malloc(sizeof(*it) + nsize);
                if (!it) {
                        log_msg("notification receiver: out of memory");
                        break;
                }
                /* a dirty buffer is rejected with EINVAL */
                memset(it->notif, 0, nsize);
                if (ioctl(rx->listener, SECCOMP_IOCTL_NOTIF_RECV, it->notif) == 0) {
                        if (rx->inline_fn && rx->inline_fn(rx->ctx, (struct seccomp_notif *)it->notif, rx)) {
                                free(it);
                                continue;
                        }
                        it->next = NULL;
                        pthread_mutex_lock(&rx->lock);
                        if (rx->tail)
                                rx->tail->next = it;
                        else
                                rx->head = it;
                        rx->tail = it;
                        pthread_mutex_unlock(&rx->lock);
                        wake_main(rx);
                        continue;
                }
                int e = errno;
                free(it);
                if (e == EINTR)
                        continue;
                if (e == ENOENT) {
                        /* the task died first, or no task is left at all */
                        struct pollfd p = { .fd = rx->listener, .events = POLLIN };
                        if (poll(&p, 1, 0) == 1 && (p.revents & POLLHUP))
                                break;
                        continue;
                }
                log_errno(-e, "receiving a notification");
                break;
        }
        atomic_store(&rx->hup, true);
        wake_main(rx);
        pthread_mutex_lock(&rx->lock);
        rx->exited = true;
        bool abandoned = rx->abandoned;
        pthread_mutex_unlock(&rx->lock);
        if (abandoned) {
                stuck_remove(rx);
                close(rx->listener);
                rx_free(rx);
        }
        return NULL;
}

int notif_rx_start(struct notif_rx **out, int listener, int *efd, notif_inline_fn inline_fn, void *ctx)
{
        struct notif_rx *rx = calloc(1, sizeof(*rx));
        if (!rx)
                return -ENOMEM;
        rx->listener = listener;
        rx->inline_fn = inline_fn;
        rx->ctx = ctx;
        rx->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        pthread_mutex_init(&rx->lock, NULL);
        int r = rx->efd < 0 ? errno : pthread_create(&rx->thread, NULL, rx_main, rx);
        if (r) {
                if (rx->efd >= 0)
                        close(rx->efd);
                free(rx);
                return -r;
        }
        *efd = rx->efd;
        *out = rx;
        return 0;
}

int notif_rx_pop(struct notif_rx *rx, struct seccomp_notif *buf)
{
        uint64_t v;
        (void)!read(rx->efd, &v, sizeof(v));
        pthread_mutex_lock(&rx->lock);
        struct item *it = rx->head;
        if (it) {
                rx->head = it->next;
                if (!rx->head)
                        rx->tail = NULL;
        }
        bool more = rx->head != NULL;
        pthread_mutex_unlock(&rx->lock);
        if (!it)
                return atomic_load(&rx->hup) ? -ENOTCONN : 0;
        memcpy(buf, it->notif, nsize);
        free(it);
        /* more queued: stay readable for the next round */
        if (more)
                wake_main(rx);
        return 1;
}

bool notif_rx_stop(struct notif_rx *rx)
{
        if (!rx)
                return true;
        atomic_store(&rx->stop, true);
        /* a signal that lands just before the receive is entered is lost,
         * so repeat a few times */
        for (int i = 0; i < 5; i++) {
                pthread_kill(rx->thread, WAKE_SIGNAL);
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 2000000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                if (pthread_timedjoin_np(rx->thread, NULL, &ts) == 0) {
                        rx_free(rx);
                        return true;
                }
        }
        /* listed before it can end and remove itself */
        pthread_mutex_lock(&stuck_lock);
        rx->next_stuck = stuck;
        stuck = rx;
        pthread_mutex_unlock(&stuck_lock);
        pthread_mutex_lock(&rx->lock);
        bool exited = rx->exited;
        rx->abandoned = !exited;
        pthread_mutex_unlock(&rx->lock);
        if (exited)
                stuck_remove(rx);
        if (exited) {
                pthread_join(rx->thread, NULL);
                rx_free(rx);
                return true;
        }
        /* stuck, most likely in a read of the sandbox's memory that a
         * stalled file system holds: it ends on its own */
        log_msg("a notification receiver did not stop (stuck reading a sandbox's memory?); left to end on its own");
        pthread_detach(rx->thread);
        return false;
}
