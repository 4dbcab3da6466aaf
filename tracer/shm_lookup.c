#include "shm_lookup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>

#include "kcompat.h"

#define CAP_IPC_OWNER_BIT 15

long shm_lookup_result(const struct shm_listing *seg, uint64_t size, int flags, const struct ipc_caller *c)
{
        if ((flags & IPC_CREAT) && (flags & IPC_EXCL))
                return -EEXIST;
        if (seg->size < size)
                return -EINVAL; /* shm_more_checks() */
        /* ipcperms(): each class's bits of the mode asked, against the
         * owner's, the group's or the others' bits of the segment */
        int requested = (flags >> 6) | (flags >> 3) | flags;
        int granted = (int)seg->mode;
        if (c->euid == seg->cuid || c->euid == seg->uid)
                granted >>= 6;
        else if (c->in_cgid || c->in_gid)
                granted >>= 3;
        if ((requested & ~granted & 0007) && !c->ipc_owner)
                return -EACCES;
        return seg->shmid;
}

/* Whether `tid` and the tracer share an IPC namespace. */
static bool same_ipc_ns(pid_t tid)
{
        char path[64];
        struct stat a, b;
        snprintf(path, sizeof(path), "/proc/%d/ns/ipc", tid);
        return stat(path, &a) == 0 && stat("/proc/self/ns/ipc", &b) == 0 && a.st_dev == b.st_dev &&
               a.st_ino == b.st_ino;
}

bool shm_listing_parse(const char *line, struct shm_listing *out)
{
        int key, id, cpid, lpid;
        unsigned mode, uid, gid, cuid, cgid;
        unsigned long long sz;
        unsigned long nattch;
        if (sscanf(line, "%d %d %o %llu %d %d %lu %u %u %u %u", &key, &id, &mode, &sz, &cpid, &lpid, &nattch, &uid,
                   &gid, &cuid, &cgid) != 11)
                return false;
        *out = (struct shm_listing){ .key = key, .shmid = id, .size = sz, .mode = mode, .cpid = cpid, .uid = uid,
                                     .cuid = cuid, .gid = gid, .cgid = cgid };
        return true;
}

/* Segment `shmid` as the kernel holds it: shmctl(2) SHM_STAT_ANY (Linux
 * 4.17) by the segment's index, which asks for no read permission, where
 * IPC_STAT would. The id it returns must be `shmid`: else the segment was
 * removed and its slot taken again. One call, where reading
 * /proc/sysvipc/shm renders every segment of the namespace (found in
 * review: 18.6 ms a lookup with 4,000 segments made outside any sandbox,
 * under the tracer's one lock). Returns 0, -ENOENT (removed since) or
 * -errno. */
static int shm_stat(int shmid, struct shm_listing *out)
{
        /* ipcid_to_idx(): the id's low 15 bits, or 24 with the
         * ipcmni_extend boot option */
        static const int idx_bits[] = { 15, 24 };
        for (size_t i = 0; i < sizeof(idx_bits) / sizeof(idx_bits[0]); i++) {
                struct shmid_ds ds;
                int id = shmctl(shmid & ((1 << idx_bits[i]) - 1), SHM_STAT_ANY, &ds);
                if (id < 0 && errno != EINVAL)
                        return -errno;
                if (id != shmid)
                        continue;
                *out = (struct shm_listing){ .key = ds.shm_perm.__key, .shmid = id, .size = ds.shm_segsz,
                                             .mode = ds.shm_perm.mode, .cpid = ds.shm_cpid,
                                             .uid = ds.shm_perm.uid, .cuid = ds.shm_perm.cuid,
                                             .gid = ds.shm_perm.gid, .cgid = ds.shm_perm.cgid };
                return 0;
        }
        return -ENOENT;
}

/* The caller `tid` as ipcperms() sees it for `seg`, from
 * /proc/<tid>/status (its own credentials: a parked thread cannot change
 * them). Returns 0 or -errno. */
static int ipc_caller_read(pid_t tid, const struct shm_listing *seg, struct ipc_caller *c)
{
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/status", tid);
        FILE *f = fopen(path, "re");
        char *line = NULL;
        size_t cap = 0;
        int seen = 0;
        if (!f)
                return errno == ENOENT ? -ESRCH : -errno;
        *c = (struct ipc_caller){ 0 };
        while (getline(&line, &cap, f) > 0) {
                unsigned a, b, d, e;
                unsigned long long caps;
                if (sscanf(line, "Uid: %u %u %u %u", &a, &b, &d, &e) == 4) {
                        c->euid = b;
                        seen |= 1;
                } else if (sscanf(line, "Gid: %u %u %u %u", &a, &b, &d, &e) == 4) {
                        /* in_group_p() starts with the filesystem gid */
                        c->in_cgid |= e == seg->cgid;
                        c->in_gid |= e == seg->gid;
                        seen |= 2;
                } else if (strncmp(line, "Groups:", 7) == 0) {
                        char *p = line + 7, *end;
                        for (;;) {
                                unsigned long g = strtoul(p, &end, 10);
                                if (end == p)
                                        break;
                                c->in_cgid |= g == seg->cgid;
                                c->in_gid |= g == seg->gid;
                                p = end;
                        }
                        seen |= 4;
                } else if (sscanf(line, "CapEff: %llx", &caps) == 1) {
                        c->ipc_owner = caps >> CAP_IPC_OWNER_BIT & 1;
                        seen |= 8;
                }
        }
        free(line);
        fclose(f);
        return seen == 15 ? 0 : -EIO;
}

int shm_lookup(pid_t tid, int key, uint64_t size, int flags, long *result)
{
        if (!same_ipc_ns(tid))
                return -EXDEV;
        /* A few tries: the segment found may be removed before its listing
         * is read (then the key may be free, or taken again). */
        for (int tries = 0; tries < 3; tries++) {
                /* mode 0 asks for no permission: the lookup itself is
                 * atomic, and what it finds is the answer */
                int shmid = shmget(key, 0, 0);
                if (shmid < 0)
                        return errno == ENOENT ? 0 : -errno;
                struct shm_listing seg = { 0 };
                int r = shm_stat(shmid, &seg);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r;
                struct ipc_caller c = { 0 };
                r = ipc_caller_read(tid, &seg, &c);
                if (r < 0)
                        return r;
                *result = shm_lookup_result(&seg, size, flags, &c);
                return 1;
        }
        return -EAGAIN;
}

int shm_find(pid_t tid, int shmid, struct shm_listing *out)
{
        if (!same_ipc_ns(tid))
                return -EXDEV;
        return shmid < 0 ? -ENOENT : shm_stat(shmid, out);
}

uint64_t shm_segment_bytes(uint64_t size, uint64_t huge)
{
        uint64_t unit = huge > 4096 ? huge : 4096;
        if (unit & (unit - 1))
                return UINT64_MAX / 4; /* no huge page size is such */
        if (size > UINT64_MAX - (unit - 1))
                return UINT64_MAX / 4;
        return (size + unit - 1) & ~(unit - 1);
}

/* "Hugepagesize:" of /proc/meminfo in bytes (boot-time constant: read
 * once); 0 when the kernel has no huge pages, UINT64_MAX when unreadable. */
static uint64_t default_huge_page_size(void)
{
        static uint64_t cached;
        if (cached)
                return cached;
        FILE *f = fopen("/proc/meminfo", "re");
        if (!f)
                return UINT64_MAX;
        char line[256];
        unsigned long long kb = 0;
        bool found = false;
        while (!found && fgets(line, sizeof(line), f))
                found = sscanf(line, "Hugepagesize: %llu kB", &kb) == 1;
        bool err = ferror(f);
        fclose(f);
        if (err)
                return UINT64_MAX;
        cached = found && kb ? kb * 1024 : 1; /* 1: none */
        return cached;
}

uint64_t shm_huge_page_size(int shmflg)
{
        if (!(shmflg & SHM_HUGETLB))
                return 0;
        unsigned log = ((unsigned)shmflg >> SHM_HUGE_SHIFT) & SHM_HUGE_MASK;
        if (!log) {
                uint64_t d = default_huge_page_size();
                if (d == UINT64_MAX)
                        return 1ull << 30;
                return d == 1 ? 0 : d;
        }
        if (log < 12 || log > 62)
                return 0; /* hstate_sizelog() has none: EINVAL */
        /* sizes the kernel has are listed there (a missing sysfs tells
         * nothing) */
        char path[96];
        struct stat st;
        snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB", (1ull << log) >> 10);
        if (stat(path, &st) < 0 && errno == ENOENT && stat("/sys/kernel/mm/hugepages", &st) == 0)
                return 0;
        return 1ull << log;
}
