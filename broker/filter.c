#include "filter.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "cleanup.h"
#include "kcompat.h"

/* Flags that create namespaces. */
static const uint64_t ns_flags[] = {
        CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
        CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWTIME,
};
_Static_assert((CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
                CLONE_NEWNET | CLONE_NEWTIME) == CLONE_NS_FLAGS, "namespace flag set");

/* Syscalls a sandbox never needs and that reach past it: tracing and
 * writing other processes, loading code into the kernel, rebooting,
 * system-wide settings, and getting descriptors out of other processes. */
static const char *const hardening_deny[] = {
        "ptrace", "process_vm_writev", "process_madvise", "pidfd_getfd",
        "kexec_load", "kexec_file_load", "init_module", "finit_module",
        "delete_module", "bpf", "perf_event_open", "reboot", "swapon",
        "swapoff", "acct", "iopl", "ioperm", "open_by_handle_at",
        "name_to_handle_at", "lookup_dcookie", "quotactl", "userfaultfd",
        "keyctl", "add_key", "request_key", "mount", "umount2", "pivot_root",
        "fsopen", "fsmount", "fsconfig", "move_mount", "open_tree",
        "mount_setattr",
};

#define ADD(...) do {                                   \
                if (n >= max)                           \
                        return -ENOSPC;                 \
                rules[n++] = (struct filter_rule){ __VA_ARGS__ }; \
        } while (0)

int filter_rules(const struct filter_policy *p, struct filter_rule *rules, size_t max)
{
        size_t n = 0;

        for (size_t i = 0; i < ARRAY_SIZE(hardening_deny); i++)
                ADD(.syscall = hardening_deny[i], .action = FILTER_ERRNO, .err = EPERM);

        /* Namespace creation and entry: routed to the tracer, which always
         * answers EPERM and records the attempt. The routing is decided on
         * clone's register argument, and the tracer judges the kernel's copy
         * of it in the notification, so nothing races with the sandbox.
         * Without a tracer the call fails (ENOSYS): denied either way. */
        for (size_t i = 0; i < ARRAY_SIZE(ns_flags); i++)
                ADD(.syscall = "clone", .action = FILTER_NOTIFY,
                    .masked = true, .argno = 0, .mask = ns_flags[i], .value = ns_flags[i]);
        ADD(.syscall = "unshare", .action = FILTER_NOTIFY);
        ADD(.syscall = "setns", .action = FILTER_NOTIFY);
        /* A listener of the sandbox's own: its filter, installed after
         * ours, would take a fork notification first (equal actions go to
         * the newest filter) and could answer Continue past the limits. */
        ADD(.syscall = "seccomp", .action = FILTER_ERRNO, .err = EPERM, .masked = true, .argno = 0,
            .mask = 0xffffffffu, .value = SECCOMP_SET_MODE_FILTER, .masked2 = true, .argno2 = 1,
            .mask2 = SECCOMP_FILTER_FLAG_NEW_LISTENER, .value2 = SECCOMP_FILTER_FLAG_NEW_LISTENER);
        /* PR_SET_MM moves the break (start_brk, brk) and other layout
         * fields under a running brk judgement (found in review); it is
         * for checkpoint/restore, which a sandbox has no use for. */
        ADD(.syscall = "prctl", .action = FILTER_ERRNO, .err = EPERM, .masked = true, .argno = 0,
            .mask = 0xffffffffu, .value = PR_SET_MM);
        /* CLONE_UNTRACED would hide the child from fork registration. */
        ADD(.syscall = "clone", .action = FILTER_ERRNO, .err = EPERM,
            .masked = true, .argno = 0, .mask = CLONE_UNTRACED, .value = CLONE_UNTRACED);

        if (p->max_procs || p->max_memory) {
                /* Process creation goes to the tracer, which registers each
                 * new process (its address space counts too); threads
                 * (CLONE_THREAD) never count and are not routed. */
                ADD(.syscall = "clone", .action = FILTER_NOTIFY, .masked = true, .argno = 0,
                    .mask = CLONE_NS_FLAGS | CLONE_UNTRACED | CLONE_THREAD, .value = 0);
                ADD(.syscall = "fork", .action = FILTER_NOTIFY);
                ADD(.syscall = "vfork", .action = FILTER_NOTIFY);
        }

        /* clone3(2) keeps its flags in user memory, invisible to BPF and
         * racy to read: ENOSYS makes glibc fall back to clone(2). */
        ADD(.syscall = "clone3", .action = FILTER_ERRNO, .err = ENOSYS);

        if (p->max_memory) {
                /* Only calls that can add private writable commitment, as
                 * far as register arguments tell: a PROT_NONE or read-only
                 * mapping (the loader's library text) never wakes the
                 * tracer. */
                ADD(.syscall = "mmap", .action = FILTER_NOTIFY, .masked = true, .argno = 2,
                    .mask = PROT_WRITE, .value = PROT_WRITE, .masked2 = true, .argno2 = 3,
                    .mask2 = MAP_PRIVATE | MAP_GROWSDOWN, .value2 = MAP_PRIVATE);
                ADD(.syscall = "mmap", .action = FILTER_NOTIFY, .masked = true, .argno = 2,
                    .mask = PROT_WRITE, .value = PROT_WRITE, .masked2 = true, .argno2 = 3,
                    .mask2 = MAP_ANONYMOUS | MAP_GROWSDOWN, .value2 = MAP_ANONYMOUS);
                /* Anonymous shared memory, whatever the protection: a
                 * read-only mapping allocates its pages when read. */
                ADD(.syscall = "mmap", .action = FILTER_NOTIFY, .masked = true, .argno = 3,
                    .mask = MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN, .value = MAP_SHARED | MAP_ANONYMOUS);
                /* A file mapped shared: page cache, not counted - unless it
                 * is /dev/zero, which the kernel makes a new anonymous
                 * shared object (the tracer looks at the descriptor). */
                ADD(.syscall = "mmap", .action = FILTER_NOTIFY, .masked = true, .argno = 3,
                    .mask = MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN, .value = MAP_SHARED);
                /* A MAP_GROWSDOWN mapping grows by page faults, never
                 * notified, up to RLIMIT_STACK - each of them. (The main
                 * stack is the one such mapping: its growth is bounded by
                 * the hard RLIMIT_STACK the tracer sets.) Disjoint from the
                 * rules above, whatever the protection. */
                ADD(.syscall = "mmap", .action = FILTER_ERRNO, .err = EPERM, .masked = true, .argno = 3,
                    .mask = MAP_GROWSDOWN, .value = MAP_GROWSDOWN);
                ADD(.syscall = "mprotect", .action = FILTER_NOTIFY, .masked = true, .argno = 2,
                    .mask = PROT_WRITE, .value = PROT_WRITE);
                ADD(.syscall = "pkey_mprotect", .action = FILTER_NOTIFY, .masked = true, .argno = 2,
                    .mask = PROT_WRITE, .value = PROT_WRITE);
                ADD(.syscall = "brk", .action = FILTER_NOTIFY);
                ADD(.syscall = "mremap", .action = FILTER_NOTIFY);
                ADD(.syscall = "shmget", .action = FILTER_NOTIFY);
                /* a segment made outside the sandbox is charged when
                 * attached (one of its own was at its shmget) */
                ADD(.syscall = "shmat", .action = FILTER_NOTIFY);
                /* Secret memory is in no measure the tracer reads (not in
                 * statm, not in maps as anonymous shared memory), bounded
                 * only by RLIMIT_MEMLOCK per process: unavailable, as on a
                 * kernel without it (found in review). */
                ADD(.syscall = "memfd_secret", .action = FILTER_ERRNO, .err = ENOSYS);
                /* It moves a shared mapping's file offset with no mmap
                 * (found in review: 4 KiB of anonymous shared memory moved
                 * to offset 1 GiB counted 1 GiB, and innocent requests were
                 * killed). Deprecated; unavailable, as on a kernel without
                 * it. */
                ADD(.syscall = "remap_file_pages", .action = FILTER_ERRNO, .err = ENOSYS);
        }

        /* TIOCSTI pushes input into a terminal the sandbox shares with the
         * user's shell. */
        ADD(.syscall = "ioctl", .action = FILTER_ERRNO, .err = EPERM,
            .masked = true, .argno = 1, .mask = 0xffffffffu, .value = TIOCSTI);
        /* A userfaultfd made through /dev/userfaultfd (the syscall is in the
         * hardening list) could park the tracer's reads of an exec's argv
         * on a page the sandbox never serves. */
        ADD(.syscall = "ioctl", .action = FILTER_ERRNO, .err = EPERM,
            .masked = true, .argno = 1, .mask = 0xffffffffu, .value = USERFAULTFD_IOC_NEW);

        /* Every exec is an audit event. */
        ADD(.syscall = "execve", .action = FILTER_NOTIFY);
        ADD(.syscall = "execveat", .action = FILTER_NOTIFY);
        return (int)n;
}

int filter_build(const struct filter_policy *p, scmp_filter_ctx *out)
{
        struct filter_rule rules[96];
        int n = filter_rules(p, rules, ARRAY_SIZE(rules));
        if (n < 0)
                return n;

        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                return -ENOMEM;
        int r;
        /* Syscalls of another ABI (i386 int 0x80, x32 numbers) are not in
         * this filter's tables, so they are refused, not killed. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS));
        if (r == 0)
                r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
        if (r == 0)
                r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
        for (int i = 0; r == 0 && i < n; i++) {
                const struct filter_rule *f = &rules[i];
                int nr = seccomp_syscall_resolve_name(f->syscall);
                if (nr == __NR_SCMP_ERROR) {
                        r = -ENOENT;
                        break;
                }
                uint32_t act = f->action == FILTER_NOTIFY ? SCMP_ACT_NOTIFY : SCMP_ACT_ERRNO(f->err);
                if (f->masked && f->masked2)
                        r = seccomp_rule_add(ctx, act, nr, 2,
                                             SCMP_CMP(f->argno, SCMP_CMP_MASKED_EQ, f->mask, f->value),
                                             SCMP_CMP(f->argno2, SCMP_CMP_MASKED_EQ, f->mask2, f->value2));
                else if (f->masked)
                        r = seccomp_rule_add(ctx, act, nr, 1,
                                             SCMP_CMP(f->argno, SCMP_CMP_MASKED_EQ, f->mask, f->value));
                else
                        r = seccomp_rule_add(ctx, act, nr, 0);
        }
        if (r < 0) {
                seccomp_release(ctx);
                return r;
        }
        *out = ctx;
        return 0;
}

int filter_export(const struct filter_policy *p, struct sock_fprog *prog)
{
        scmp_filter_ctx ctx;
        int r = filter_build(p, &ctx);
        if (r < 0)
                return r;

        /* libseccomp 2.5.4 exports only to a descriptor. */
        _cleanup_close_ int fd = memfd_create("seccell-filter", MFD_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                seccomp_release(ctx);
                return r;
        }
        r = seccomp_export_bpf(ctx, fd);
        seccomp_release(ctx);
        if (r < 0)
                return r;
        struct stat sb;
        if (fstat(fd, &sb) < 0)
                return -errno;
        if (sb.st_size <= 0 || sb.st_size % sizeof(struct sock_filter) ||
            sb.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return -E2BIG;
        struct sock_filter *insns = malloc(sb.st_size);
        if (!insns)
                return -ENOMEM;
        if (pread(fd, insns, sb.st_size, 0) != sb.st_size) {
                free(insns);
                return -EIO;
        }
        prog->filter = insns;
        prog->len = sb.st_size / sizeof(struct sock_filter);
        return 0;
}

int filter_load_listener(const struct sock_fprog *prog, bool *killable)
{
        unsigned long flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, prog);
        *killable = true;
        if (fd < 0 && errno == EINVAL) {
                /* Before Linux 5.19: a signal to a parked task restarts its
                 * syscall under a new notification id. */
                *killable = false;
                flags &= ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
                fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, prog);
        }
        return fd < 0 ? -errno : (int)fd;
}
