/* Reading what an execve/execveat asks for (path and argv) out of the
 * calling task, with bounded sizes, for the audit stream. Memory access
 * goes through `struct target_mem`, so the reader is testable without a
 * kernel. The caller must check the notification id is still valid after
 * reading (seccomp_unotify(2)): until then the bytes may belong to a task
 * that has died and whose pid was reused. */
#pragma once
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define EXEC_MAX_PATH 4096          /* bytes of the path kept */
#define EXEC_MAX_ARGS 1024          /* argv entries kept */
#define EXEC_MAX_ARG 4096           /* bytes of one argument kept */
#define EXEC_MAX_TOTAL (64 * 1024)  /* bytes of all arguments kept */

struct target_mem {
        /* Read up to `len` bytes at `addr` of task `tid` into `buf`.
         * Returns the bytes read (may be short at an unmapped page), or
         * -errno. */
        ssize_t (*read)(void *ctx, pid_t tid, uint64_t addr, void *buf, size_t len);
        void *ctx;
};

/* The process_vm_readv(2) implementation (needs ptrace access to `tid`). */
extern const struct target_mem target_mem_process_vm;

struct exec_record {
        int dirfd;          /* execveat: the dirfd argument; execve: AT_FDCWD */
        char *path;
        char **argv;
        size_t argc;
        bool truncated;     /* some path or argv bytes were not kept */
        bool unreadable;    /* a pointer could not be read at all */
};

/* Read the exec request of syscall `nr` with `args` from task `tid`.
 * Returns 0 (even when truncated/unreadable, which are flagged) or
 * -ENOMEM. `rec` is owned by the caller (exec_record_free). */
int exec_read(const struct target_mem *m, pid_t tid, int nr, const uint64_t args[6], struct exec_record *rec);

void exec_record_free(struct exec_record *rec);

/* Audit fields of the record: path, argv, truncated, (dirfd). */
json_object *exec_record_json(const struct exec_record *rec);

/* Copy `len` bytes of `s` into a new NUL-terminated string that is valid
 * UTF-8: each invalid byte becomes U+FFFD, so hostile bytes cannot break a
 * consumer's JSON parser. Returns NULL on allocation failure. */
char *utf8_sanitize(const char *s, size_t len);
