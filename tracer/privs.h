/* The tracer's privileges: when started as root it becomes `user` and keeps
 * only CAP_SYS_PTRACE (reading the memory of sandboxed processes of other
 * uids, process_vm_readv(2)), CAP_KILL (signalling them) and, to size
 * anonymous shared objects through /proc/<pid>/map_files,
 * CAP_CHECKPOINT_RESTORE and (permitted, raised only for that look and
 * to read which call a thread is blocked in, /proc/<tid>/syscall)
 * CAP_DAC_READ_SEARCH; in every case
 * it is non-dumpable (PR_SET_DUMPABLE 0), so sandboxed processes of its uid
 * cannot open its /proc files or descriptors. */
#pragma once
#include <stdbool.h>

/* Drop privileges as above and describe the result in `desc` (for the
 * start-up line). Returns 0 or -errno; on failure the caller must exit:
 * a tracer that cannot drop privileges must not run. */
int privs_drop(const char *user, char *desc, unsigned desclen);

/* Make CAP_DAC_READ_SEARCH effective (`on`) or not, in the calling thread
 * only (capabilities are per thread). Returns 0, or -EPERM when the tracer
 * does not hold it (started unprivileged, or a kernel without
 * CAP_CHECKPOINT_RESTORE), or another -errno. */
int privs_search(bool on);

/* Whether the tracer holds what sizing anonymous shared objects through
 * /proc/<pid>/map_files takes (CAP_CHECKPOINT_RESTORE, started as root):
 * else their sizes are inferred from their mappings. */
bool privs_size_objects(void);
