/* The one place for kernel constants that the installed headers
 * (linux-libc-dev 6.1) lack or that glibc 2.36 does not wrap. The running
 * kernel is newer; every value here is its uapi value. */
#pragma once
#include <linux/ioctl.h>
#include <linux/seccomp.h>
#include <linux/types.h>
#include <sys/syscall.h>

/* seccomp(2): since 5.19, a task parked in a notification can only be woken
 * by a fatal signal, so its notification id stays valid across signals. */
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
/* seccomp_unotify(2): since 6.6, wake the target on the supervisor's CPU. */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

/* pidfd_open(2): since 6.9, a pidfd may name a single thread. */
#ifndef PIDFD_THREAD
#define PIDFD_THREAD 00000200 /* == O_EXCL on x86_64 */
#endif

/* getsockopt(2), unix(7): since 6.5, a pidfd of the process that connected
 * (or created the socket pair): names it even once its pid is reused. */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* proc(5) /proc/<pid>/maps ioctl: since 6.11, one mapping at a time by
 * address, the kernel skipping those that do not match the flags (no text
 * made of the rest). */
#ifndef PROCMAP_QUERY
#define PROCFS_IOCTL_MAGIC 'f'
enum procmap_query_flags {
        PROCMAP_QUERY_VMA_READABLE = 0x01,
        PROCMAP_QUERY_VMA_WRITABLE = 0x02,
        PROCMAP_QUERY_VMA_EXECUTABLE = 0x04,
        PROCMAP_QUERY_VMA_SHARED = 0x08,
        PROCMAP_QUERY_COVERING_OR_NEXT_VMA = 0x10,
        PROCMAP_QUERY_FILE_BACKED_VMA = 0x20,
};
struct procmap_query {
        __u64 size;
        __u64 query_flags;   /* in */
        __u64 query_addr;    /* in */
        __u64 vma_start;     /* out */
        __u64 vma_end;       /* out */
        __u64 vma_flags;     /* out: PROCMAP_QUERY_VMA_* */
        __u64 vma_page_size; /* out */
        __u64 vma_offset;    /* out: into the file, bytes (0: anonymous) */
        __u64 inode;         /* out */
        __u32 dev_major;     /* out */
        __u32 dev_minor;     /* out */
        __u32 vma_name_size; /* in/out: room, then length with the NUL (0: no name) */
        __u32 build_id_size; /* in/out */
        __u64 vma_name_addr; /* in */
        __u64 build_id_addr; /* in */
};
#define PROCMAP_QUERY _IOWR(PROCFS_IOCTL_MAGIC, 17, struct procmap_query)
#endif

#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_pidfd_send_signal
#define __NR_pidfd_send_signal 424
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* shmget(2): with SHM_HUGETLB, bits 26-31 of shmflg are log2 of the huge
 * page size (0: the default size); glibc's <sys/shm.h> lacks them. */
#ifndef SHM_HUGE_SHIFT
#define SHM_HUGE_SHIFT 26
#endif
#ifndef SHM_HUGE_MASK
#define SHM_HUGE_MASK 0x3f
#endif

/* mmap(2) map type (6.11): private anonymous memory the kernel may drop
 * under pressure - private, in data_vm, whatever its type bits say. */
#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif

/* Namespace-creating clone flags; CLONE_NEWTIME (5.6) is missing from some
 * libc headers. */
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* x32 ABI syscalls on x86_64 set this bit in the syscall number. */
#define X32_SYSCALL_BIT 0x40000000
