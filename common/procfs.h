/* Small readers of /proc (proc(5)). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct proc_stat {
        char state;          /* R, S, D, Z, T, t, X ... */
        pid_t ppid;
        pid_t pgrp;
        int num_threads;     /* field 20 */
        uint64_t starttime;  /* clock ticks since boot (field 22) */
        uint64_t start_brk;  /* heap start (field 47); 0 when hidden (no
                              * ptrace access) or absent */
        uint64_t faults;     /* minflt + majflt (fields 10, 12): the whole
                              * process's, or one thread's (procfs_task_stat) */
};

/* Parse /proc/<pid>/stat. The comm field may hold spaces and parentheses,
 * so fields are taken after the last ')'. The read waits while the process
 * is in an exec (exec_update_lock): for a process the caller does not
 * control, use procfs_status_field. Returns 0, -ENOENT when the
 * process is gone (or is reaped), -EIO on unparsable content. */
int procfs_stat(pid_t pid, struct proc_stat *st);

/* The same for thread `tid` of `tgid`, from /proc/<tgid>/task/<tid>/stat:
 * state and faults are that thread's own. */
int procfs_task_stat(pid_t tgid, pid_t tid, struct proc_stat *st);

/* The same from a stat file kept open as `fd`: a read at offset 0 renders
 * it afresh. -ENOENT once its task is gone. */
int procfs_stat_pread(int fd, struct proc_stat *st);

/* Call `fn` for every process whose parent is `parent`, by scanning /proc
 * (this kernel has no /proc/<pid>/task/<tid>/children) and reading each
 * /proc/<pid>/status - never stat (procfs_stat), whose read waits for an
 * exec under way in that process (exec_update_lock), which a user can
 * hold for good in a stalled file system. Returns the number of such
 * processes, or -errno if /proc, or a process's status (other than one
 * gone meanwhile), could not be read: then some may have been missed (`fn`
 * has still been called for those found). */
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

/* One mapping, one line of a maps file (proc(5)). */
struct proc_vma {
        uint64_t start, end;  /* [start, end), bytes */
        char perms[5];        /* "rw-p": read, write, exec, p(rivate)/s(hared) */
        uint64_t offset;      /* into the file, bytes */
        unsigned long inode;
        const char *name;     /* path, "[heap]", "[stack]", "" ...: into the
                               * reader's line, valid until the next call */
};

/* A reader of a process's mappings in address order: by PROCMAP_QUERY
 * (proc(5), Linux 6.11), one mapping per ioctl from a given address, the
 * kernel skipping what a filter rules out; else the maps text, one whole
 * line at a time. A query costs O(log n) in the mappings, a text read O(n)
 * (about 0.7 us a mapping here: 40 ms at the 64k a process may have), and
 * the tracer judges requests under one lock for every sandbox.
 * A line is as long as its mapping's path (a file name the sandbox chose,
 * up to PATH_MAX and more once escaped), so a fixed buffer would split it
 * and hand its tail - text of the sandbox's choosing - over as a mapping
 * of its own. The kernel escapes '\n' in a path ("\012",
 * seq_file_path()), so every line is one mapping and starts with its
 * range. */
struct procfs_maps {
        int fd;          /* the maps file (owned), -1 once read as text */
        FILE *f;         /* the text, once the ioctl is known missing */
        char *line;      /* text: the last line; query: the name room */
        size_t cap;
        uint64_t next;   /* query: where the next mapping starts, at least */
        unsigned flags;  /* PROCFS_MAPS_* */
        int err;  /* 0, or -errno: what was read is not the whole file */
        unsigned long examined; /* mappings the kernel was asked for, or
                                 * lines read (kept by procfs_maps_close) */
};

/* procfs_maps_open() flags. */
#define PROCFS_MAPS_SHARED 1u /* only shared mappings ("s": VM_MAYSHARE) */
#define PROCFS_MAPS_TEXT   2u /* read the text even where the ioctl is
                               * there (as kernels before 6.11 are read) */

/* Read the mappings of /proc/<tgid>/task/<tid>/maps (tid 0:
 * /proc/<tgid>/maps) that end above `from` (bytes), filtered by `flags`.
 * The file is opened here (its access check: PTRACE_MODE_READ, at open).
 * Returns 0 or -errno (-ENOENT: gone); close with procfs_maps_close. */
int procfs_maps_open(struct procfs_maps *m, pid_t tgid, pid_t tid, uint64_t from, unsigned flags);

/* Read maps text from `f` (owned by `m` from now on, even on error). */
void procfs_maps_from(struct procfs_maps *m, FILE *f);

/* The next mapping into *v. False at the end of the file, or on an error:
 * a failed read or ioctl, or a line that does not start with a well-formed
 * mapping (its range, permissions, offset, device and inode), which m->err
 * then records (-EIO, -ENOMEM...): the caller must not take what it read
 * as the whole address space. A name longer than PATH_MAX, which the ioctl
 * does not return, reads as "(long)" (no path starts with "("). */
bool procfs_maps_next(struct procfs_maps *m, struct proc_vma *v);

/* Close `m`: 0 when every line was read and parsed, else -errno. */
int procfs_maps_close(struct procfs_maps *m);
