/* Small readers of /proc (proc(5)). */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct proc_stat {
        char state;          /* R, S, D, Z, T, t, X ... */
        pid_t ppid;
        pid_t pgrp;
        int num_threads;     /* field 20 */
        uint64_t starttime;  /* clock ticks since boot (field 22) */
        uint64_t start_brk;  /* heap start (field 47); 0 when hidden (no
                              * ptrace access) or absent */
};

/* Parse /proc/<pid>/stat. The comm field may hold spaces and parentheses,
 * so fields are taken after the last ')'. Returns 0, -ENOENT when the
 * process is gone (or is reaped), -EIO on unparsable content. */
int procfs_stat(pid_t pid, struct proc_stat *st);

/* The number of threads of process `pid`, from the link count of
 * /proc/<pid>/task (the kernel's proc_task_getattr: 2 + its threads), one
 * stat(2) instead of rendering /proc/<pid>/stat. Returns the count, or
 * -errno (-ENOENT: gone). */
int procfs_thread_count(pid_t pid);

/* Call `fn` for every process whose parent is `parent`, by scanning /proc
 * (this kernel has no /proc/<pid>/task/<tid>/children). Returns the number
 * of such processes, or -errno if /proc cannot be read. */
int procfs_for_each_child(pid_t parent, void (*fn)(pid_t pid, void *ud), void *ud);

/* Read up to len-1 bytes of the /proc file `path` into buf, NUL-terminated.
 * Returns the bytes read, -ENOENT when the process is gone, or -errno. */
int procfs_read(const char *path, char *buf, size_t len);

/* The number in field `name` ("Tgid", "TracerPid", ...) of
 * /proc/<tid>/status, or -errno (-EIO when absent). */
long procfs_status_field(pid_t tid, const char *name);

/* The thread group of thread `tid`: `tid` itself when pidfd_open(2)
 * accepts it as a leader, else Tgid: of /proc/<tid>/status. Returns the
 * tgid (> 0), or -ENOENT when the thread is gone. */
pid_t procfs_tgid(pid_t tid);
