#include "proc_index.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kcompat.h"
#include "mem_limit.h"
#include "procfs.h"
#include "tracer.h"

struct proc_entry *proc_index_add(struct proc_index *ix, struct tsandbox *sb, pid_t pid, int pidfd)
{
        struct proc_stat st = { 0 };
        struct proc_entry *e;
        int r = procfs_stat(pid, &st);

        if (r == -ENOENT || !(e = calloc(1, sizeof(*e)))) {
                if (pidfd >= 0)
                        close(pidfd);
                errno = r == -ENOENT ? ESRCH : ENOMEM;
                return NULL;
        }
        /* r < 0 otherwise (out of descriptors...): the start time is
         * learnt at the first reap check that can read it */
        e->kind = TW_PIDFD;
        e->pid = pid;
        e->pidfd = pidfd;
        e->statm_fd = e->stat_fd = e->exec_maps_fd = -1;
        e->starttime = st.starttime;
        e->sb = sb;
        e->next = ix->head;
        ix->head = e;
        ix->count++;
        return e;
}

struct proc_entry *proc_index_find(struct proc_index *ix, pid_t pid)
{
        for (struct proc_entry *e = ix->head; e; e = e->next)
                if (e->pid == pid)
                        return e;
        return NULL;
}

static void close_proc_files(struct proc_entry *e)
{
        if (e->statm_fd >= 0)
                close(e->statm_fd);
        if (e->stat_fd >= 0)
                close(e->stat_fd);
        if (e->exec_maps_fd >= 0)
                close(e->exec_maps_fd);
        e->statm_fd = e->stat_fd = e->exec_maps_fd = -1;
}

static void drop_grants(struct proc_entry *e)
{
        while (e->grants) {
                struct mem_grant *g = e->grants;
                e->grants = g->next;
                free(g);
        }
        e->grants_kept = 0;
}

static void close_fds(struct proc_entry *e)
{
        close_proc_files(e);
        drop_grants(e);
        if (e->pidfd >= 0)
                close(e->pidfd);
        e->pidfd = -1;
}

uint64_t proc_entry_grants(const struct proc_entry *e)
{
        uint64_t sum = e->grants_kept;
        for (const struct mem_grant *g = e->grants; g; g = g->next)
                sum += g->bytes;
        return sum;
}

/* The bytes of `e`'s grants of anonymous shared memory. */
static uint64_t shared_grants(const struct proc_entry *e)
{
        uint64_t sum = 0;
        for (const struct mem_grant *g = e->grants; g; g = g->next)
                if (g->shared)
                        sum += g->bytes;
        return sum;
}

void proc_entry_exited(struct proc_entry *e)
{
        close_proc_files(e);
        /* What may live on in other processes counts until the next exact
         * re-read: an address space it may have shared (vfork, CLONE_VM),
         * whose other holders' last readings need not show what this one
         * added, and - whatever its sharing - the anonymous shared objects
         * counted under it (one object counts under one holder only: found
         * in review, a fork child's exit took its parent's 60 MiB object
         * out of the ledger, and the parent was let map as much again). */
        if (e->sb && e->sb->vm_clones)
                e->sb->mem_unsettled += e->data + e->shared + proc_entry_grants(e);
        else if (e->sb)
                e->sb->mem_unsettled += e->shared + shared_grants(e);
        /* an object its calls made lives on in others (a fork child): made
         * by a request, whichever thread's (found in review: dropped with
         * the grant of another thread than the forking one, it was taken
         * for an object no request made, and its holder killed) */
        for (const struct mem_grant *g = e->grants; e->sb && g; g = g->next)
                if (g->shared && !g->stood)
                        mem_limit_creation(e->sb, g->bytes);
        drop_grants(e);
        e->exited = true;
}

/* The pidfd's state now (pidfd_open(2)): POLLIN once the process has
 * exited, POLLHUP too once it is reaped; 0 while it runs or when there
 * is no pidfd. */
static short pidfd_revents(int pidfd)
{
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        return pidfd >= 0 && poll(&p, 1, 0) == 1 ? p.revents : 0;
}

bool proc_entry_running(const struct proc_entry *e)
{
        return e->pidfd >= 0 && !e->exited && !pidfd_revents(e->pidfd);
}

static bool reaped(struct proc_entry *e)
{
        if (e->reap_seen || (e->reap_seen = pidfd_revents(e->pidfd) & POLLHUP))
                return true;
        struct proc_stat st;
        int r = procfs_stat(e->pid, &st);
        if (r == 0 && !e->starttime) {
                e->starttime = st.starttime; /* unknown until now: keep counting */
                return false;
        }
        /* gone, or the pid now names another process; any other failure
         * to read says nothing, and the process keeps counting */
        return r == -ENOENT || (r == 0 && st.starttime != e->starttime);
}

uint32_t proc_index_recount(struct proc_index *ix, void (*on_reap)(struct proc_entry *e, void *ud), void *ud,
                            void (*release)(struct proc_entry *e), bool poll_live)
{
        for (struct proc_entry **pp = &ix->head; *pp;) {
                struct proc_entry *e = *pp;
                if (!e->exited && poll_live && pidfd_revents(e->pidfd))
                        proc_entry_exited(e);
                if (e->exited && reaped(e)) {
                        if (on_reap)
                                on_reap(e, ud);
                        *pp = e->next;
                        ix->count--;
                        close_fds(e);
                        release(e);
                        continue;
                }
                pp = &e->next;
        }
        return ix->count;
}

int proc_index_signal(struct proc_index *ix, int sig)
{
        int n = 0;
        for (struct proc_entry *e = ix->head; e; e = e->next)
                if (!e->exited && syscall(__NR_pidfd_send_signal, e->pidfd, sig, NULL, 0) == 0)
                        n++;
        return n;
}

void proc_index_clear(struct proc_index *ix, void (*release)(struct proc_entry *e))
{
        while (ix->head) {
                struct proc_entry *e = ix->head;
                ix->head = e->next;
                close_fds(e);
                release(e);
        }
        ix->count = 0;
}
