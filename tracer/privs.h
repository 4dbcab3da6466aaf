/* The tracer's privileges: when started as root it becomes `user` and keeps
 * only CAP_SYS_PTRACE (reading the memory of sandboxed processes of other
 * uids, process_vm_readv(2)) and CAP_KILL (signalling them); in every case
 * it is non-dumpable (PR_SET_DUMPABLE 0), so sandboxed processes of its uid
 * cannot open its /proc files or descriptors. */
#pragma once
#include <stdbool.h>

/* Drop privileges as above and describe the result in `desc` (for the
 * start-up line). Returns 0 or -errno; on failure the caller must exit:
 * a tracer that cannot drop privileges must not run. */
int privs_drop(const char *user, char *desc, unsigned desclen);
