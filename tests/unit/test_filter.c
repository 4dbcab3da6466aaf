/* broker/filter.h: the sandbox's seccomp filter.
 *
 * Three views of the same filter:
 *  - the rule table filter_rules() gives for a policy;
 *  - the exported classic BPF program run by a small interpreter on
 *    synthetic seccomp_data, sweeping syscall numbers, clone flags, ioctl
 *    commands and foreign ABIs;
 *  - the real kernel: a forked child loads the filter and makes the
 *    syscalls. The listener fd either comes back to this process, which
 *    plays the tracer (answers namespace requests with EPERM, lets forks
 *    continue, refuses execs with EACCES after reading them), or is closed
 *    so notified syscalls fail with ENOSYS. The child never execs: its
 *    execve targets do not exist.
 * x86_64 only (syscall numbers, x32 and int 0x80 probes). */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "exec_audit.h"
#include "fdpass.h"
#include "filter.h"
#include "unit.h"

#if !defined(__x86_64__)
#error "these tests know x86_64 syscall numbers"
#endif

#define MAX_RULES 128

static const struct filter_policy no_limits = { 0, 0 };
static const struct filter_policy procs_limit = { .max_procs = 5 };

static const uint64_t ns_flag_list[] = {
        CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
        CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWTIME,
};
#define N_NS (sizeof(ns_flag_list) / sizeof(ns_flag_list[0]))
#define ALL_NS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
                CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME)

/* The hardening list of the header comment: denied with EPERM outright. */
static const char *const must_deny[] = {
        "ptrace", "process_vm_writev", "bpf", "perf_event_open", "kexec_load",
        "kexec_file_load", "init_module", "finit_module", "delete_module",
        "open_by_handle_at", "userfaultfd", "keyctl", "mount", "pidfd_getfd",
        "reboot", "swapon", "iopl", "ioperm",
};

/* --- the rule table ------------------------------------------------------------ */

static int get_rules(const struct filter_policy *p, struct filter_rule *rules)
{
        int n = filter_rules(p, rules, MAX_RULES);
        assert_true(n > 0 && n < MAX_RULES);
        return n;
}

static int count_rules(const struct filter_rule *r, int n, const char *name)
{
        int k = 0;
        for (int i = 0; i < n; i++)
                k += strcmp(r[i].syscall, name) == 0;
        return k;
}

/* The one unmasked rule for `name`. */
static const struct filter_rule *plain_rule(const struct filter_rule *r, int n, const char *name)
{
        const struct filter_rule *found = NULL;
        for (int i = 0; i < n; i++)
                if (strcmp(r[i].syscall, name) == 0) {
                        if (found || r[i].masked)
                                fail_msg("%s: expected exactly one unmasked rule", name);
                        found = &r[i];
                }
        if (!found)
                fail_msg("%s: no rule", name);
        return found;
}

static const struct filter_rule *masked_rule(const struct filter_rule *r, int n, const char *name, unsigned argno,
                                             uint64_t mask, uint64_t value)
{
        for (int i = 0; i < n; i++)
                if (strcmp(r[i].syscall, name) == 0 && r[i].masked && r[i].argno == argno && r[i].mask == mask &&
                    r[i].value == value)
                        return &r[i];
        fail_msg("%s: no rule for (arg%u & %#llx) == %#llx", name, argno, (unsigned long long)mask,
                 (unsigned long long)value);
        return NULL;
}

static void assert_errno_rule(const struct filter_rule *f, int err)
{
        assert_int_equal(f->action, FILTER_ERRNO);
        assert_int_equal(f->err, err);
}

static void rules_common(const struct filter_rule *r, int n)
{
        for (size_t i = 0; i < sizeof(must_deny) / sizeof(must_deny[0]); i++)
                assert_errno_rule(plain_rule(r, n, must_deny[i]), EPERM);

        assert_int_equal(plain_rule(r, n, "execve")->action, FILTER_NOTIFY);
        assert_int_equal(plain_rule(r, n, "execveat")->action, FILTER_NOTIFY);
        assert_int_equal(plain_rule(r, n, "unshare")->action, FILTER_NOTIFY);
        assert_int_equal(plain_rule(r, n, "setns")->action, FILTER_NOTIFY);
        assert_errno_rule(plain_rule(r, n, "clone3"), ENOSYS);

        /* each namespace flag of clone, on the register argument */
        for (size_t i = 0; i < N_NS; i++)
                assert_int_equal(masked_rule(r, n, "clone", 0, ns_flag_list[i], ns_flag_list[i])->action,
                                 FILTER_NOTIFY);
        assert_errno_rule(masked_rule(r, n, "clone", 0, CLONE_UNTRACED, CLONE_UNTRACED), EPERM);
        /* ioctl's command is an unsigned int: the upper half is ignored */
        assert_errno_rule(masked_rule(r, n, "ioctl", 1, 0xffffffffu, TIOCSTI), EPERM);
        assert_errno_rule(masked_rule(r, n, "ioctl", 1, 0xffffffffu, USERFAULTFD_IOC_NEW), EPERM);
        assert_int_equal(count_rules(r, n, "ioctl"), 2);

        /* every name is one libseccomp knows */
        for (int i = 0; i < n; i++)
                if (seccomp_syscall_resolve_name(r[i].syscall) == __NR_SCMP_ERROR)
                        fail_msg("rule %d: unknown syscall %s", i, r[i].syscall);
        /* a sandbox with no memory limit pays nothing for memory calls */
        static const char *const mem[] = { "mmap", "munmap", "brk", "mremap", "mprotect", "shmget", "shmat", "memfd_secret", "remap_file_pages" };
        for (size_t i = 0; i < sizeof(mem) / sizeof(mem[0]); i++)
                assert_int_equal(count_rules(r, n, mem[i]), 0);
        /* execs are never denied outright */
        assert_int_equal(count_rules(r, n, "execve"), 1);
        assert_int_equal(count_rules(r, n, "execveat"), 1);
}

static void rules_no_limits(void **state)
{
        (void)state;
        struct filter_rule r[MAX_RULES];
        int n = get_rules(&no_limits, r);

        rules_common(r, n);
        /* no process limit: forks are not routed */
        assert_int_equal(count_rules(r, n, "fork"), 0);
        assert_int_equal(count_rules(r, n, "vfork"), 0);
        assert_int_equal(count_rules(r, n, "clone"), (int)N_NS + 1);
}

static void rules_procs_limit(void **state)
{
        (void)state;
        struct filter_rule r[MAX_RULES];
        int n = get_rules(&procs_limit, r);

        rules_common(r, n);
        assert_int_equal(plain_rule(r, n, "fork")->action, FILTER_NOTIFY);
        assert_int_equal(plain_rule(r, n, "vfork")->action, FILTER_NOTIFY);
        /* process-creating clones (no namespace flag, not CLONE_UNTRACED,
         * not a thread) go to the process-limit handler */
        const struct filter_rule *f =
                masked_rule(r, n, "clone", 0, ALL_NS | CLONE_UNTRACED | CLONE_THREAD, 0);
        assert_int_equal(f->action, FILTER_NOTIFY);
        assert_int_equal(count_rules(r, n, "clone"), (int)N_NS + 2);
}

static void rules_memory_limit(void **state)
{
        (void)state;
        const struct filter_policy mem = { .max_memory = 64 << 20 };
        struct filter_rule r[MAX_RULES];
        int n = get_rules(&mem, r);

        assert_int_equal(plain_rule(r, n, "brk")->action, FILTER_NOTIFY);
        assert_int_equal(plain_rule(r, n, "shmget")->action, FILTER_NOTIFY);
        assert_int_equal(plain_rule(r, n, "shmat")->action, FILTER_NOTIFY);
        /* memory no measure sees: as if the kernel had none */
        assert_errno_rule(plain_rule(r, n, "memfd_secret"), ENOSYS);
        /* a shared mapping's offset moved with no mmap: likewise */
        assert_errno_rule(plain_rule(r, n, "remap_file_pages"), ENOSYS);
        /* never routed: frees */
        assert_int_equal(count_rules(r, n, "munmap"), 0);
}

static void rules_enospc(void **state)
{
        (void)state;
        struct filter_rule r[MAX_RULES];
        int n = get_rules(&procs_limit, r);
        struct filter_rule exact[MAX_RULES + 1];

        assert_int_equal(filter_rules(&procs_limit, r, 0), -ENOSPC);
        assert_int_equal(filter_rules(&procs_limit, r, (size_t)n - 1), -ENOSPC);
        /* exactly enough room; nothing written past it */
        memset(exact, 0xa5, sizeof(exact));
        assert_int_equal(filter_rules(&procs_limit, exact, (size_t)n), n);
        const unsigned char *tail = (const unsigned char *)&exact[n];
        for (size_t i = 0; i < sizeof(exact[0]); i++)
                assert_int_equal(tail[i], 0xa5);
        /* and the same rules in the same order */
        for (int i = 0; i < n; i++) {
                assert_string_equal(exact[i].syscall, r[i].syscall);
                assert_int_equal(exact[i].action, r[i].action);
                assert_int_equal(exact[i].mask, r[i].mask);
        }
}

static void build_and_export(void **state)
{
        (void)state;
        const struct filter_policy policies[] = { no_limits, procs_limit, { .max_procs = 1, .max_memory = 1 } };
        for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
                scmp_filter_ctx ctx = NULL;
                struct sock_fprog prog = { 0 };

                assert_int_equal(filter_build(&policies[i], &ctx), 0);
                assert_non_null(ctx);
                seccomp_release(ctx);

                assert_int_equal(filter_export(&policies[i], &prog), 0);
                assert_non_null(prog.filter);
                assert_true(prog.len > 0 && prog.len <= BPF_MAXINSNS);
                /* it starts by checking the architecture */
                assert_int_equal(prog.filter[0].code, BPF_LD | BPF_W | BPF_ABS);
                assert_int_equal(prog.filter[0].k, offsetof(struct seccomp_data, arch));
                free(prog.filter);
        }
}

/* --- a classic BPF interpreter for seccomp programs ------------------------------- */

static uint32_t bpf_run(const struct sock_fprog *prog, const struct seccomp_data *d)
{
        uint32_t A = 0, X = 0, M[BPF_MEMWORDS] = { 0 };
        const unsigned char *data = (const unsigned char *)d;

        for (unsigned pc = 0; pc < prog->len; pc++) {
                const struct sock_filter *f = &prog->filter[pc];
                uint32_t src = BPF_SRC(f->code) == BPF_X ? X : f->k;
                switch (BPF_CLASS(f->code)) {
                case BPF_LD:
                        if (f->code == (BPF_LD | BPF_W | BPF_ABS)) {
                                assert_true(f->k % 4 == 0 && f->k + 4 <= sizeof(*d));
                                memcpy(&A, data + f->k, 4);
                        } else if (f->code == (BPF_LD | BPF_W | BPF_LEN)) {
                                A = sizeof(*d);
                        } else if (f->code == (BPF_LD | BPF_IMM)) {
                                A = f->k;
                        } else if (f->code == (BPF_LD | BPF_MEM)) {
                                A = M[f->k];
                        } else {
                                fail_msg("pc %u: unknown load %#x", pc, f->code);
                        }
                        break;
                case BPF_LDX:
                        if (f->code == (BPF_LDX | BPF_IMM))
                                X = f->k;
                        else if (f->code == (BPF_LDX | BPF_MEM))
                                X = M[f->k];
                        else if (f->code == (BPF_LDX | BPF_W | BPF_LEN))
                                X = sizeof(*d);
                        else
                                fail_msg("pc %u: unknown ldx %#x", pc, f->code);
                        break;
                case BPF_ST:
                        M[f->k] = A;
                        break;
                case BPF_STX:
                        M[f->k] = X;
                        break;
                case BPF_ALU:
                        switch (BPF_OP(f->code)) {
                        case BPF_ADD: A += src; break;
                        case BPF_SUB: A -= src; break;
                        case BPF_MUL: A *= src; break;
                        case BPF_DIV: assert_int_not_equal(src, 0); A /= src; break;
                        case BPF_MOD: assert_int_not_equal(src, 0); A %= src; break;
                        case BPF_AND: A &= src; break;
                        case BPF_OR: A |= src; break;
                        case BPF_XOR: A ^= src; break;
                        case BPF_LSH: A <<= src; break;
                        case BPF_RSH: A >>= src; break;
                        case BPF_NEG: A = -A; break;
                        default: fail_msg("pc %u: unknown alu %#x", pc, f->code);
                        }
                        break;
                case BPF_JMP: {
                        bool t;
                        switch (BPF_OP(f->code)) {
                        case BPF_JA: pc += f->k; continue;
                        case BPF_JEQ: t = A == src; break;
                        case BPF_JGT: t = A > src; break;
                        case BPF_JGE: t = A >= src; break;
                        case BPF_JSET: t = (A & src) != 0; break;
                        default: fail_msg("pc %u: unknown jump %#x", pc, f->code); t = false;
                        }
                        pc += t ? f->jt : f->jf;
                        break;
                }
                case BPF_RET:
                        return BPF_RVAL(f->code) == BPF_A ? A : f->k;
                case BPF_MISC:
                        if (BPF_MISCOP(f->code) == BPF_TAX)
                                X = A;
                        else
                                A = X;
                        break;
                }
        }
        fail_msg("program ran off its end");
        return 0;
}

#define RET_ALLOW SECCOMP_RET_ALLOW
#define RET_NOTIFY SECCOMP_RET_USER_NOTIF
#define RET_ERRNO(e) (SECCOMP_RET_ERRNO | (e))

static uint32_t run_on(const struct sock_fprog *prog, uint32_t arch, int nr, uint64_t a0, uint64_t a1)
{
        struct seccomp_data d = { .nr = nr, .arch = arch, .instruction_pointer = 0x401000 };
        d.args[0] = a0;
        d.args[1] = a1;
        return bpf_run(prog, &d);
}

static const char *ret_name(uint32_t r, char *buf, size_t len)
{
        if (r == RET_ALLOW)
                snprintf(buf, len, "ALLOW");
        else if (r == RET_NOTIFY)
                snprintf(buf, len, "NOTIFY");
        else if ((r & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_ERRNO)
                snprintf(buf, len, "ERRNO(%s)", strerrorname_np(r & SECCOMP_RET_DATA));
        else
                snprintf(buf, len, "%#x", r);
        return buf;
}

#define EXPECT_RET(got, want, ...) do {                                                 \
                uint32_t g_ = (got), w_ = (want);                                       \
                if (g_ != w_) {                                                         \
                        char b1_[32], b2_[32];                                          \
                        print_error(__VA_ARGS__);                                       \
                        fail_msg(": got %s, want %s", ret_name(g_, b1_, 32), ret_name(w_, b2_, 32)); \
                }                                                                       \
        } while (0)

/* Expected action of x86_64 syscall `nr` (no arguments) under `p`. */
static uint32_t expected_plain(const struct filter_policy *p, int nr)
{
        for (size_t i = 0; i < sizeof(must_deny) / sizeof(must_deny[0]); i++)
                if (nr == seccomp_syscall_resolve_name(must_deny[i]))
                        return RET_ERRNO(EPERM);
        switch (nr) {
        case SYS_execve:
        case SYS_execveat:
        case SYS_unshare:
        case SYS_setns:
                return RET_NOTIFY;
        case SYS_clone3:
                return RET_ERRNO(ENOSYS);
        case SYS_clone:
        case SYS_fork:
        case SYS_vfork:
                return p->max_procs ? RET_NOTIFY : RET_ALLOW;
        }
        return RET_ALLOW;
}

static void bpf_sweep(const struct filter_policy *p)
{
        struct sock_fprog prog;
        struct filter_rule r[MAX_RULES];
        int n = get_rules(p, r);

        assert_int_equal(filter_export(p, &prog), 0);

        /* every x86_64 syscall number with zero arguments */
        for (int nr = 0; nr < 512; nr++) {
                uint32_t want = expected_plain(p, nr);
                /* anything else the table denies is allowed to be denied */
                if (want == RET_ALLOW)
                        for (int i = 0; i < n; i++)
                                if (!r[i].masked && seccomp_syscall_resolve_name(r[i].syscall) == nr)
                                        want = r[i].action == FILTER_NOTIFY ? RET_NOTIFY : RET_ERRNO(r[i].err);
                EXPECT_RET(run_on(&prog, AUDIT_ARCH_X86_64, nr, 0, 0), want, "x86_64 syscall %d", nr);
        }

        /* clone: every combination of a namespace flag, CLONE_UNTRACED,
         * a thread, vfork-style and plain flags, and upper bits */
        static const uint64_t extra[] = {
                0, SIGCHLD, CLONE_VM | CLONE_VFORK | SIGCHLD, CLONE_PARENT | SIGCHLD,
                CLONE_THREAD | CLONE_SIGHAND | CLONE_VM, CLONE_FILES | CLONE_FS, 1ULL << 32, ~0ULL << 40,
        };
        for (size_t ns = 0; ns <= N_NS; ns++)
                for (int untraced = 0; untraced < 2; untraced++)
                        for (size_t e = 0; e < sizeof(extra) / sizeof(extra[0]); e++) {
                                uint64_t flags = extra[e] | (ns < N_NS ? ns_flag_list[ns] : 0) |
                                                 (untraced ? CLONE_UNTRACED : 0);
                                uint32_t got = run_on(&prog, AUDIT_ARCH_X86_64, SYS_clone, flags, 0);
                                char b[32];
                                if (flags & ALL_NS) {
                                        /* denied: by the tracer (always EPERM) or outright */
                                        if (got != RET_NOTIFY && !(untraced && got == RET_ERRNO(EPERM)))
                                                fail_msg("clone(%#llx): %s", (unsigned long long)flags,
                                                         ret_name(got, b, sizeof(b)));
                                } else if (untraced) {
                                        EXPECT_RET(got, RET_ERRNO(EPERM), "clone(%#llx)", (unsigned long long)flags);
                                } else if ((flags & CLONE_THREAD) || !p->max_procs) {
                                        EXPECT_RET(got, RET_ALLOW, "clone(%#llx)", (unsigned long long)flags);
                                } else {
                                        EXPECT_RET(got, RET_NOTIFY, "clone(%#llx)", (unsigned long long)flags);
                                }
                        }

        /* ioctl: TIOCSTI whatever the upper half of the register */
        static const uint64_t hi[] = { 0, 1, 0xffffffffULL, 0x80000000ULL };
        for (size_t i = 0; i < sizeof(hi) / sizeof(hi[0]); i++) {
                EXPECT_RET(run_on(&prog, AUDIT_ARCH_X86_64, SYS_ioctl, 0, hi[i] << 32 | TIOCSTI),
                           RET_ERRNO(EPERM), "ioctl TIOCSTI hi %#llx", (unsigned long long)hi[i]);
                EXPECT_RET(run_on(&prog, AUDIT_ARCH_X86_64, SYS_ioctl, 0, hi[i] << 32 | TCGETS), RET_ALLOW,
                           "ioctl TCGETS hi %#llx", (unsigned long long)hi[i]);
                EXPECT_RET(run_on(&prog, AUDIT_ARCH_X86_64, SYS_ioctl, 0, hi[i] << 32 | USERFAULTFD_IOC_NEW),
                           RET_ERRNO(EPERM), "ioctl USERFAULTFD_IOC_NEW hi %#llx", (unsigned long long)hi[i]);
        }

        /* x32 numbers and foreign ABIs: ENOSYS, never the x86_64 rule */
        static const int x32_nrs[] = { 39 /* getpid */, 57 /* fork */, 272 /* unshare */, 308 /* setns */,
                                       56 /* clone */, 520 /* execve */, 545 /* execveat */ };
        for (size_t i = 0; i < sizeof(x32_nrs) / sizeof(x32_nrs[0]); i++)
                EXPECT_RET(run_on(&prog, AUDIT_ARCH_X86_64, 0x40000000 | x32_nrs[i], 0, 0), RET_ERRNO(ENOSYS),
                           "x32 syscall %d", x32_nrs[i]);
        static const uint32_t archs[] = { AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64, 0 };
        for (size_t a = 0; a < sizeof(archs) / sizeof(archs[0]); a++)
                for (int nr = 0; nr < 512; nr += 7)
                        EXPECT_RET(run_on(&prog, archs[a], nr, 0, 0), RET_ERRNO(ENOSYS), "arch %#x syscall %d",
                                   archs[a], nr);
        free(prog.filter);
}

static void bpf_no_limits(void **state)
{
        (void)state;
        bpf_sweep(&no_limits);
}

static void bpf_procs_limit(void **state)
{
        (void)state;
        bpf_sweep(&procs_limit);
}

/* --- the real kernel ---------------------------------------------------------------- */

struct res {
        long ret;
        int err;
};

/* What the child saw; written whole to the result pipe. */
struct probes {
        int load;             /* filter_load_listener's return, or -errno */
        bool killable;
        bool listener_cloexec;
        pid_t getpid;
        struct res unshare0, unshare_user, setns;
        struct res clone_ns[N_NS];      /* ns flag | CLONE_SIGHAND (EINVAL in the kernel) */
        struct res clone_user, clone_net; /* ns flag | SIGCHLD */
        struct res clone_untraced, clone_untraced_sighand, clone_sighand;
        struct res clone3;
        struct res x32_getpid, x32_fork, x32_unshare, x32_execve;
        long i386_getpid, i386_unshare;
        struct res tiocsti, tiocsti_hi, tcgets;
        struct res bpf, perf, uffd, uffd_dev, pidfd_getfd, pvm_writev, keyctl, mount;
        struct res fork_clone, fork_sys, vfork;
        int fork_clone_status, fork_sys_status, vfork_status;
        int thread;           /* pthread_create+join: 0 or an error */
        struct res execve, execveat;
        struct res traceme;   /* last: if it ever succeeds, nothing follows */
};

#define PROBE(field, expr) do {                 \
                errno = 0;                      \
                long r_ = (long)(expr);         \
                p->field.ret = r_;              \
                p->field.err = r_ < 0 ? errno : 0; \
        } while (0)

/* A syscall that created a process by mistake: the copy leaves at once. */
#define CHILD_LEAVES(r) do {                            \
                if ((r) == 0)                           \
                        syscall(SYS_exit_group, 0);     \
        } while (0)

static long raw_clone(uint64_t flags)
{
        long r = syscall(SYS_clone, flags, 0, 0, 0, 0);
        CHILD_LEAVES(r);
        return r;
}

static long x32_fork(void)
{
        long r = syscall(0x40000000 | 57);
        CHILD_LEAVES(r);
        return r;
}

/* int $0x80 from 64-bit code: the i386 ABI (AUDIT_ARCH_I386). */
static long int80(long nr, long a1)
{
        long ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a1) : "memory", "r8", "r9", "r10", "r11");
        return ret;
}

/* Does this kernel run i386 syscalls from 64-bit code? (Without IA32
 * emulation, int $0x80 is a SIGSEGV.) */
static bool ia32;

static bool ia32_works(void)
{
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                syscall(SYS_exit_group, int80(20, 0) == getpid() ? 0 : 1);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* vfork and, in the child, exit at once: all in registers, because the
 * child borrows this stack until it exits. */
static long vfork_exit(int code)
{
        long ret;
        __asm__ volatile("syscall\n\t"
                         "test %%rax, %%rax\n\t"
                         "jnz 1f\n\t"
                         "mov %2, %%edi\n\t"
                         "mov $60, %%eax\n\t"
                         "syscall\n\t"
                         "1:\n\t"
                         : "=a"(ret)
                         : "a"((long)SYS_vfork), "r"(code)
                         : "rcx", "r11", "rdi", "memory");
        return ret;
}

static void *thread_fn(void *arg)
{
        return arg;
}

/* Fork-like probe: a grandchild that exits with `code`, reaped here. */
static void reap(long pid, int *status)
{
        *status = -1;
        if (pid > 0 && waitpid((pid_t)pid, status, 0) != pid)
                *status = -2;
}

#define NOEXEC_PATH "/nonexistent-seccell-test/exec"

static void child_probes(struct probes *p)
{
        static char *const argv[] = { "exec-arg0", "second arg", NULL };
        static char *const envp[] = { "SECCELL_TEST=1", NULL };
        char c = 'x';

        p->getpid = getpid();
        PROBE(unshare0, unshare(0));
        PROBE(unshare_user, unshare(CLONE_NEWUSER));
        PROBE(setns, setns(-1, 0));
        for (size_t i = 0; i < N_NS; i++)
                PROBE(clone_ns[i], raw_clone(ns_flag_list[i] | CLONE_SIGHAND));
        PROBE(clone_user, raw_clone(CLONE_NEWUSER | SIGCHLD));
        PROBE(clone_net, raw_clone(CLONE_NEWNET | SIGCHLD));
        PROBE(clone_untraced, raw_clone(CLONE_UNTRACED | SIGCHLD));
        PROBE(clone_untraced_sighand, raw_clone(CLONE_UNTRACED | CLONE_SIGHAND));
        PROBE(clone_sighand, raw_clone(CLONE_SIGHAND));
        PROBE(clone3, syscall(SYS_clone3, NULL, 0));
        PROBE(x32_getpid, syscall(0x40000000 | 39));
        PROBE(x32_fork, x32_fork());
        PROBE(x32_unshare, syscall(0x40000000 | 272, 0));
        PROBE(x32_execve, syscall(0x40000000 | 520, NULL, NULL, NULL));
        if (ia32) {
                p->i386_getpid = int80(20, 0);
                p->i386_unshare = int80(310, 0);
        }
        PROBE(tiocsti, syscall(SYS_ioctl, -1, (unsigned long)TIOCSTI, &c));
        PROBE(tiocsti_hi, syscall(SYS_ioctl, -1, (1UL << 32) | TIOCSTI, &c));
        PROBE(tcgets, syscall(SYS_ioctl, -1, (unsigned long)TCGETS, NULL));
        PROBE(bpf, syscall(SYS_bpf, -1, NULL, 0));
        PROBE(perf, syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
        PROBE(uffd, syscall(SYS_userfaultfd, ~0U));
        PROBE(uffd_dev, syscall(SYS_ioctl, -1, (unsigned long)USERFAULTFD_IOC_NEW, 0));
        PROBE(pidfd_getfd, syscall(SYS_pidfd_getfd, -1, 0, 0));
        PROBE(pvm_writev, syscall(SYS_process_vm_writev, getpid(), NULL, 0, NULL, 0, 0));
        PROBE(keyctl, syscall(SYS_keyctl, -1, 0, 0, 0, 0));
        PROBE(mount, syscall(SYS_mount, NULL, NULL, NULL, 0, NULL));

        long r = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (r == 0)
                syscall(SYS_exit_group, 7);
        p->fork_clone.ret = r;
        p->fork_clone.err = r < 0 ? errno : 0;
        reap(r, &p->fork_clone_status);

        r = syscall(SYS_fork);
        if (r == 0)
                syscall(SYS_exit_group, 8);
        p->fork_sys.ret = r;
        p->fork_sys.err = r < 0 ? errno : 0;
        reap(r, &p->fork_sys_status);

        r = vfork_exit(9); /* raw: -errno on failure */
        p->vfork.ret = r < 0 ? -1 : r;
        p->vfork.err = r < 0 ? (int)-r : 0;
        reap(r, &p->vfork_status);

        pthread_t t;
        p->thread = pthread_create(&t, NULL, thread_fn, NULL);
        if (p->thread == 0)
                p->thread = pthread_join(t, NULL);

        PROBE(execve, syscall(SYS_execve, NOEXEC_PATH, argv, envp));
        PROBE(execveat, syscall(SYS_execveat, AT_FDCWD, NOEXEC_PATH "at", argv, envp, 0));
        PROBE(traceme, syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0));
}

enum listener_mode {
        LISTENER_TO_PARENT,  /* this process answers the notifications */
        LISTENER_CLOSED,     /* nobody listens: notified syscalls fail */
};

/* In the forked child: load the filter, then probe. Never returns. */
static void child_main(const struct sock_fprog *prog, enum listener_mode mode, int result_fd, int chan)
{
        struct probes p;

        memset(&p, 0, sizeof(p));
        alarm(30); /* a stuck child dies rather than hangs the suite */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
                p.load = -errno;
        } else {
                int fd = filter_load_listener(prog, &p.killable);
                p.load = fd;
                if (fd >= 0) {
                        p.listener_cloexec = fcntl(fd, F_GETFD) & FD_CLOEXEC;
                        if (mode == LISTENER_TO_PARENT && fdchan_send(chan, 1, &fd, 1) < 0)
                                p.load = -EPIPE;
                        close(fd);
                }
        }
        close(chan);
        if (p.load >= 0)
                child_probes(&p);
        ssize_t n = write(result_fd, &p, sizeof(p));
        syscall(SYS_exit_group, n == sizeof(p) ? 0 : 1);
}

struct notif_log {
        int nr[64];
        uint64_t arg0[64];
        size_t n;
        struct exec_record exec[2];
        size_t nexec;
        int unexpected;
};

/* Play the tracer for one notification. */
static void answer(int listener, struct seccomp_notif *req, struct seccomp_notif_resp *resp,
                   const struct seccomp_notif_sizes *sz, struct notif_log *log)
{
        int err = 0;

        memset(req, 0, sz->seccomp_notif);
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req) < 0)
                return; /* the task went away */
        if (log->n < 64) {
                log->nr[log->n] = req->data.nr;
                log->arg0[log->n] = req->data.args[0];
                log->n++;
        }
        if (req->data.arch != AUDIT_ARCH_X86_64)
                log->unexpected++;
        switch (req->data.nr) {
        case SYS_unshare:
        case SYS_setns:
                err = EPERM;
                break;
        case SYS_clone:
                err = req->data.args[0] & ALL_NS ? EPERM : 0;
                break;
        case SYS_fork:
        case SYS_vfork:
                break;
        case SYS_execve:
        case SYS_execveat:
                /* read what is asked for, then refuse it */
                if (log->nexec < 2 &&
                    exec_read(&target_mem_process_vm, req->pid, req->data.nr, (const uint64_t *)req->data.args,
                              &log->exec[log->nexec]) == 0)
                        log->nexec++;
                err = EACCES;
                break;
        default:
                log->unexpected++;
                err = ENOSYS;
        }
        memset(resp, 0, sz->seccomp_notif_resp);
        resp->id = req->id;
        if (err)
                resp->error = -err;
        else
                resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0)
                log->unexpected++;
}

/* Fork a child that loads the filter for `pol` and probes; collect what it
 * saw and (LISTENER_TO_PARENT) every notification it caused. */
static pid_t run_child(const struct filter_policy *pol, enum listener_mode mode, struct probes *p,
                       struct notif_log *log)
{
        struct sock_fprog prog;
        int pipefd[2], chan[2], listener = -1;
        struct seccomp_notif_sizes sz;
        struct seccomp_notif *req;
        struct seccomp_notif_resp *resp;

        memset(log, 0, sizeof(*log));
        ia32 = ia32_works();
        assert_int_equal(syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz), 0);
        req = calloc(1, sz.seccomp_notif > sizeof(*req) ? sz.seccomp_notif : sizeof(*req));
        resp = calloc(1, sz.seccomp_notif_resp > sizeof(*resp) ? sz.seccomp_notif_resp : sizeof(*resp));
        assert_non_null(req);
        assert_non_null(resp);
        assert_int_equal(filter_export(pol, &prog), 0);
        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan), 0);

        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(pipefd[0]);
                close(chan[0]);
                child_main(&prog, mode, pipefd[1], chan[1]);
        }
        close(pipefd[1]);
        close(chan[1]);
        free(prog.filter);

        if (mode == LISTENER_TO_PARENT) {
                uint64_t token;
                size_t n = 0;
                struct pollfd pc = { .fd = chan[0], .events = POLLIN };
                /* the child sends the listener, or closes the channel */
                if (poll(&pc, 1, 20000) == 1 && fdchan_recv(chan[0], &token, &listener, 1, &n) == 0 && n == 1)
                        assert_true(listener >= 0);
        }
        close(chan[0]);

        size_t got = 0;
        bool eof = false;
        memset(p, 0, sizeof(*p));
        while (!eof) {
                struct pollfd pfd[2] = {
                        { .fd = pipefd[0], .events = POLLIN },
                        { .fd = listener, .events = POLLIN },
                };
                int r = poll(pfd, listener >= 0 ? 2 : 1, 20000);
                if (r == 0) {
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                        fail_msg("the filtered child is stuck");
                }
                assert_true(r > 0);
                if (listener >= 0 && (pfd[1].revents & POLLIN))
                        answer(listener, req, resp, &sz, log);
                if (listener >= 0 && (pfd[1].revents & (POLLHUP | POLLERR))) {
                        close(listener);
                        listener = -1;
                }
                if (pfd[0].revents & (POLLIN | POLLHUP)) {
                        ssize_t k = read(pipefd[0], (char *)p + got, sizeof(*p) - got);
                        if (k <= 0)
                                eof = true;
                        else
                                got += k;
                }
        }
        if (listener >= 0)
                close(listener);
        close(pipefd[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(got, sizeof(*p));
        free(req);
        free(resp);
        return pid;
}

#define EXPECT_ERR(res, e) do {                                                          \
                if ((res).ret != -1 || (res).err != (e))                                 \
                        fail_msg("%s: returned %ld (%s), want -1 (%s)", #res, (res).ret,   \
                                 strerrorname_np((res).err) ?: "0", strerrorname_np(e));   \
        } while (0)

static bool kernel_at_least(int major, int minor)
{
        struct utsname u;
        int a = 0, b = 0;
        assert_int_equal(uname(&u), 0);
        assert_int_equal(sscanf(u.release, "%d.%d", &a, &b), 2);
        return a > major || (a == major && b >= minor);
}

/* What holds whoever answers: denied outright, untouched, foreign ABIs. */
static void check_common(const struct probes *p, pid_t pid)
{
        assert_true(p->load >= 0);
        assert_true(p->listener_cloexec);
        if (kernel_at_least(5, 19))
                assert_true(p->killable);
        assert_int_equal(p->getpid, pid);

        EXPECT_ERR(p->clone_untraced, EPERM);
        EXPECT_ERR(p->clone_untraced_sighand, EPERM);
        EXPECT_ERR(p->clone3, ENOSYS);          /* the kernel would say EINVAL */
        EXPECT_ERR(p->x32_getpid, ENOSYS);
        EXPECT_ERR(p->x32_fork, ENOSYS);
        EXPECT_ERR(p->x32_unshare, ENOSYS);
        EXPECT_ERR(p->x32_execve, ENOSYS);
        if (ia32) {
                assert_int_equal(p->i386_getpid, -ENOSYS);
                assert_int_equal(p->i386_unshare, -ENOSYS);
        } else {
                print_message("no IA32 emulation: int $0x80 not probed\n");
        }
        EXPECT_ERR(p->tiocsti, EPERM);          /* the kernel would say EBADF */
        EXPECT_ERR(p->tiocsti_hi, EPERM);
        EXPECT_ERR(p->tcgets, EBADF);           /* other ioctls reach the kernel */
        EXPECT_ERR(p->bpf, EPERM);
        EXPECT_ERR(p->perf, EPERM);
        EXPECT_ERR(p->uffd, EPERM);
        EXPECT_ERR(p->uffd_dev, EPERM);         /* the kernel would say EBADF */
        EXPECT_ERR(p->pidfd_getfd, EPERM);
        EXPECT_ERR(p->pvm_writev, EPERM);
        EXPECT_ERR(p->keyctl, EPERM);
        EXPECT_ERR(p->mount, EPERM);
        EXPECT_ERR(p->traceme, EPERM);
        assert_int_equal(p->thread, 0);
}

static void check_forks_work(const struct probes *p)
{
        assert_true(p->fork_clone.ret > 0);
        assert_true(WIFEXITED(p->fork_clone_status));
        assert_int_equal(WEXITSTATUS(p->fork_clone_status), 7);
        assert_true(p->fork_sys.ret > 0);
        assert_true(WIFEXITED(p->fork_sys_status));
        assert_int_equal(WEXITSTATUS(p->fork_sys_status), 8);
        assert_true(p->vfork.ret > 0);
        assert_true(WIFEXITED(p->vfork_status));
        assert_int_equal(WEXITSTATUS(p->vfork_status), 9);
}

/* fork and vfork take no argument (the register holds anything); execve's
 * first is a pointer */
#define ANY_ARG 0xa5a5a5a5a5a5a5a5ULL

/* The notifications, in order, that the probes must cause. */
static void check_notified(const struct notif_log *log, bool forks)
{
        int want[64];
        uint64_t want_arg0[64];
        size_t n = 0;

#define WANT(nr_, a0_) do { want[n] = (nr_); want_arg0[n] = (a0_); n++; } while (0)
        WANT(SYS_unshare, 0);
        WANT(SYS_unshare, CLONE_NEWUSER);
        WANT(SYS_setns, (uint64_t)-1);
        for (size_t i = 0; i < N_NS; i++)
                WANT(SYS_clone, ns_flag_list[i] | CLONE_SIGHAND);
        WANT(SYS_clone, CLONE_NEWUSER | SIGCHLD);
        WANT(SYS_clone, CLONE_NEWNET | SIGCHLD);
        if (forks) {
                WANT(SYS_clone, CLONE_SIGHAND);
                WANT(SYS_clone, SIGCHLD);
                WANT(SYS_fork, ANY_ARG);
                WANT(SYS_vfork, ANY_ARG);
        }
        WANT(SYS_execve, ANY_ARG);
        WANT(SYS_execveat, AT_FDCWD);
#undef WANT

        assert_int_equal(log->unexpected, 0);
        for (size_t i = 0; i < n && i < log->n; i++) {
                if (log->nr[i] != want[i])
                        fail_msg("notification %zu: syscall %d, want %d", i, log->nr[i], want[i]);
                if (want_arg0[i] != ANY_ARG && (uint32_t)log->arg0[i] != (uint32_t)want_arg0[i])
                        fail_msg("notification %zu (syscall %d): arg0 %#llx, want %#llx", i, want[i],
                                 (unsigned long long)log->arg0[i], (unsigned long long)want_arg0[i]);
        }
        assert_int_equal(log->n, n);
}

/* The execs were seen by the "tracer" exactly as the child asked. */
static void check_execs(struct notif_log *log)
{
        assert_int_equal(log->nexec, 2);
        assert_string_equal(log->exec[0].path, NOEXEC_PATH);
        assert_int_equal(log->exec[0].dirfd, AT_FDCWD);
        assert_string_equal(log->exec[1].path, NOEXEC_PATH "at");
        for (int i = 0; i < 2; i++) {
                assert_int_equal(log->exec[i].argc, 2);
                assert_string_equal(log->exec[i].argv[0], "exec-arg0");
                assert_string_equal(log->exec[i].argv[1], "second arg");
                assert_false(log->exec[i].truncated);
                assert_false(log->exec[i].unreadable);
                exec_record_free(&log->exec[i]);
        }
}

static void kernel_no_limits(void **state)
{
        (void)state;
        struct probes p;
        struct notif_log log;

        pid_t pid = run_child(&no_limits, LISTENER_TO_PARENT, &p, &log);
        check_common(&p, pid);
        /* the tracer's answers */
        EXPECT_ERR(p.unshare0, EPERM);
        EXPECT_ERR(p.unshare_user, EPERM);
        EXPECT_ERR(p.setns, EPERM);
        for (size_t i = 0; i < N_NS; i++)
                EXPECT_ERR(p.clone_ns[i], EPERM);
        EXPECT_ERR(p.clone_user, EPERM);
        EXPECT_ERR(p.clone_net, EPERM);
        EXPECT_ERR(p.execve, EACCES);
        EXPECT_ERR(p.execveat, EACCES);
        EXPECT_ERR(p.clone_sighand, EINVAL); /* the kernel's own answer: not filtered */
        check_forks_work(&p);
        check_notified(&log, false);
        check_execs(&log);
}

static void kernel_procs_limit(void **state)
{
        (void)state;
        struct probes p;
        struct notif_log log;

        pid_t pid = run_child(&procs_limit, LISTENER_TO_PARENT, &p, &log);
        check_common(&p, pid);
        EXPECT_ERR(p.unshare_user, EPERM);
        EXPECT_ERR(p.clone_net, EPERM);
        EXPECT_ERR(p.execve, EACCES);
        EXPECT_ERR(p.clone_sighand, EINVAL); /* routed, let continue, refused by the kernel */
        /* forks were routed, let continue, and worked; the thread was not */
        check_forks_work(&p);
        check_notified(&log, true);
        check_execs(&log);
}

/* With nobody listening, routed syscalls fail: denied either way. */
static void kernel_listener_closed(void **state)
{
        (void)state;
        struct probes p;
        struct notif_log log;

        pid_t pid = run_child(&procs_limit, LISTENER_CLOSED, &p, &log);
        check_common(&p, pid);
        EXPECT_ERR(p.unshare0, ENOSYS);
        EXPECT_ERR(p.unshare_user, ENOSYS);
        EXPECT_ERR(p.setns, ENOSYS);
        for (size_t i = 0; i < N_NS; i++)
                EXPECT_ERR(p.clone_ns[i], ENOSYS);
        EXPECT_ERR(p.clone_user, ENOSYS);
        EXPECT_ERR(p.clone_net, ENOSYS);
        EXPECT_ERR(p.clone_sighand, ENOSYS);
        EXPECT_ERR(p.fork_clone, ENOSYS);
        EXPECT_ERR(p.fork_sys, ENOSYS);
        EXPECT_ERR(p.vfork, ENOSYS);
        EXPECT_ERR(p.execve, ENOSYS);
        EXPECT_ERR(p.execveat, ENOSYS);
        assert_int_equal(log.n, 0);
}

/* Loading needs NO_NEW_PRIVS or CAP_SYS_ADMIN: without both, the error is
 * returned, not a half-loaded filter. */
static void load_needs_nnp(void **state)
{
        (void)state;
        struct sock_fprog prog;
        int pipefd[2];

        assert_int_equal(filter_export(&no_limits, &prog), 0);
        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int r[2];
                bool killable;
                /* drop CAP_SYS_ADMIN if we have it, keep NO_NEW_PRIVS off */
                struct __user_cap_header_struct { uint32_t version; int pid; } h = { 0x20080522, 0 };
                struct { uint32_t eff, perm, inh; } d[2] = { { 0, 0, 0 }, { 0, 0, 0 } };
                r[0] = (int)syscall(SYS_capset, &h, d);
                r[1] = filter_load_listener(&prog, &killable);
                ssize_t n = write(pipefd[1], r, sizeof(r));
                syscall(SYS_exit_group, n == sizeof(r) ? 0 : 1);
        }
        close(pipefd[1]);
        free(prog.filter);
        int r[2], status;
        assert_int_equal(read(pipefd[0], r, sizeof(r)), sizeof(r));
        close(pipefd[0]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_int_equal(r[0], 0);
        assert_int_equal(r[1], -EACCES);
}

static const struct CMUnitTest tests[] = {
        cmocka_unit_test(rules_no_limits),
        cmocka_unit_test(rules_procs_limit),
        cmocka_unit_test(rules_memory_limit),
        cmocka_unit_test(rules_enospc),
        cmocka_unit_test(build_and_export),
        cmocka_unit_test(bpf_no_limits),
        cmocka_unit_test(bpf_procs_limit),
        cmocka_unit_test(kernel_no_limits),
        cmocka_unit_test(kernel_procs_limit),
        cmocka_unit_test(kernel_listener_closed),
        cmocka_unit_test(load_needs_nnp),
};

UNIT_MAIN_NO_BUGS(tests)
