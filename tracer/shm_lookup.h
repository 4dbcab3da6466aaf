/* shmget(2) of a key that already exists, answered by the tracer.
 *
 * shmget(key, size, IPC_CREAT | mode) only looks a segment up when its key
 * exists, and creates one otherwise. Judged and then continued, the call
 * would run later: another process removing the key (IPC_RMID) in between
 * makes it create a segment the ledger never charged (found in review).
 * So the tracer looks the key up itself, in the sandbox's IPC namespace, and
 * answers with what the kernel would (ipc/util.c ipcget_public()): the id,
 * or EEXIST, EINVAL, EACCES. The call itself never runs. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A segment as /proc/sysvipc/shm lists it (proc(5)), or shmctl(2)
 * SHM_STAT_ANY gives it. */
struct shm_listing {
        int key;                /* IPC_PRIVATE (0) once removed (IPC_RMID) */
        int shmid;
        uint64_t size;          /* shm_segsz: the size asked at creation */
        unsigned mode;          /* permission bits (and SHM_* flags above them) */
        pid_t cpid;             /* its creator */
        uid_t uid, cuid;
        gid_t gid, cgid;
};

/* Parse one line of /proc/sysvipc/shm ("key shmid perms size cpid lpid
 * nattch uid gid cuid cgid ..."). Returns false for the header or a line
 * that does not parse. */
bool shm_listing_parse(const char *line, struct shm_listing *out);

/* The caller as ipcperms() sees it, for one segment: its effective uid,
 * whether in_group_p() holds (filesystem gid or a supplementary group) for
 * the segment's creator group and group, and whether it holds
 * CAP_IPC_OWNER. */
struct ipc_caller {
        uid_t euid;
        bool in_cgid, in_gid;
        bool ipc_owner;
};

/* What shmget(key, size, flags) returns when `seg` holds the key: its id,
 * -EEXIST (IPC_CREAT | IPC_EXCL), -EINVAL (larger than the segment) or
 * -EACCES (mode bits of `flags` not granted), in the kernel's order.
 * Pure: no system call. */
long shm_lookup_result(const struct shm_listing *seg, uint64_t size, int flags, const struct ipc_caller *c);

/* Look `key` up for thread `tid` (parked in its shmget notification).
 * Returns 1 with *result set (an id, or -errno as above), 0 when the key
 * does not exist (the call creates a segment: judge it), or -errno when it
 * cannot be told (another IPC namespace, /proc or shmctl failing): then
 * judge the call as a creation. */
int shm_lookup(pid_t tid, int key, uint64_t size, int flags, long *result);

/* Segment `shmid` for thread `tid` (parked in its shmat notification), as
 * the kernel holds it (shmctl(2) SHM_STAT_ANY: no read permission asked).
 * Returns 0 with *out set, -ENOENT when there is no such segment (the
 * call fails in the kernel), -EXDEV when `tid` is in another IPC
 * namespace than the tracer's, or another -errno. */
int shm_find(pid_t tid, int shmid, struct shm_listing *out);

/* The size in bytes of the huge pages that shmget(size, shmflg) makes its
 * segment of (ipc/shm.c newseg(): with SHM_HUGETLB, the size that the bits
 * at SHM_HUGE_SHIFT encode, or the default huge page size, "Hugepagesize"
 * of /proc/meminfo); 0 without SHM_HUGETLB, or for a size the kernel does
 * not have (no /sys/kernel/mm/hugepages/hugepages-<kB>kB: the call fails
 * with EINVAL). What cannot be read is taken to be the size asked, or
 * 1 GiB for the default: never less than the kernel's. */
uint64_t shm_huge_page_size(int shmflg);

/* The bytes a segment of `size` bytes takes: rounded up to the huge page
 * size `huge` (shm_huge_page_size), or to 4 KiB pages when `huge` is 0, as
 * the kernel rounds it. UINT64_MAX / 4 when the rounding does not fit (no
 * such segment can be made). Pure: no system call. */
uint64_t shm_segment_bytes(uint64_t size, uint64_t huge);
