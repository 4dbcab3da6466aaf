#include "notif_loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "exec_audit.h"
#include "kcompat.h"
#include "log.h"
#include "mem_limit.h"
#include "notif_rx.h"
#include "proc_limit.h"
#include "procfs.h"

static struct seccomp_notif_sizes sizes;
static struct seccomp_notif *req;
static struct seccomp_notif_resp *resp;

int notif_init(void)
{
        if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0)
                return -errno;
        /* the kernel's structures may be larger than our headers' */
        size_t nsize = sizes.seccomp_notif > sizeof(*req) ? sizes.seccomp_notif : sizeof(*req);
        req = calloc(1, nsize);
        resp = calloc(1, sizes.seccomp_notif_resp > sizeof(*resp) ? sizes.seccomp_notif_resp : sizeof(*resp));
        if (!req || !resp)
                return -ENOMEM;
        return notif_rx_init(nsize);
}

void notif_listener_setup(int listener)
{
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) < 0)
                log_debug("synchronous wake-up not available: %s", strerror(errno));
}

static bool id_valid(int listener, uint64_t id)
{
        return ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

/* execve/execveat: audit what is about to run, then let the kernel do it. */
static void handle_exec(struct tsandbox *sb, const struct seccomp_notif *n)
{
        struct exec_record rec;
        sb->execs++;
        if (!audit_on(&sb->audit))
                return; /* nothing to record it in */
        if (exec_read(&target_mem_process_vm, n->pid, n->data.nr, (const uint64_t *)n->data.args, &rec) < 0)
                return;
        /* Only a still-pending notification proves the bytes were the
         * caller's: its task could have died and its pid been reused. */
        if (id_valid(sb->listener, n->id)) {
                json_object *f = exec_record_json(&rec);
                pid_t tgid = procfs_tgid(n->pid);
                json_object_object_add(f, "pid", json_object_new_int(tgid > 0 ? tgid : (pid_t)n->pid));
                json_object_object_add(f, "tid", json_object_new_int(n->pid));
                audit_emit(&sb->audit, "exec", f);
        }
        exec_record_free(&rec);
}

/* err == 0: let the syscall run (SECCOMP_USER_NOTIF_FLAG_CONTINUE);
 * otherwise fail it with -err. */
static int respond(int listener, uint64_t id, int err)
{
        memset(resp, 0, sizes.seccomp_notif_resp);
        resp->id = id;
        if (err)
                resp->error = -err;
        else
                resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0)
                return -errno;
        return 0;
}

int notif_drain(struct tsandbox *sb, int budget)
{
        int handled = 0;

        while (handled < budget) {
                int k = notif_rx_pop(sb->rx, req);
                if (k == -ENOTCONN)
                        return -ENOTCONN;
                if (k == 0)
                        break;
                handled++;
                int err = 0;
                switch (req->data.nr) {
                case SYS_execve:
                case SYS_execveat:
                        mem_limit_exec(sb, req->pid);
                        handle_exec(sb, req);
                        break;
                case SYS_mmap:
                case SYS_mprotect:
                case SYS_pkey_mprotect:
                case SYS_brk:
                case SYS_mremap:
                case SYS_shmget:
                        err = mem_limit_notify(sb, req);
                        break;
                case SYS_clone:
                case SYS_fork:
                case SYS_vfork:
                case SYS_unshare:
                case SYS_setns:
                        err = proc_limit_notify(sb, req);
                        break;
                default:
                        /* the filter routes nothing else here; fail closed
                         * if it ever does */
                        err = ENOSYS;
                        break;
                }
                if (err == NOTIF_ANSWERED)
                        continue;
                int r = respond(sb->listener, req->id, err);
                if (r == -ENOENT)
                        sb->stale++; /* the task died, or restarted its call */
                else if (r < 0)
                        log_errno(r, "sandbox %llu: answering notification", (unsigned long long)sb->id);
        }
        return handled;
}
