/* tracer/exec_audit.h: reading execve/execveat requests out of a task.
 *
 * A fake `struct target_mem` models an address space the way
 * process_vm_readv(2) sees it: pages at FAKE_BASE, each mapped or not; a
 * read copies from consecutive mapped pages and stops short at the first
 * unmapped one (-EFAULT if that is the first). One test reads this very
 * process through target_mem_process_vm. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "exec_audit.h"
#include "unit.h"

#define PG 4096u
#define FAKE_BASE 0x10000000ULL
#define FAKE_PAGES 64
#define FAKE_TID 4242

struct fake_mem {
        unsigned char bytes[FAKE_PAGES * PG];
        bool mapped[FAKE_PAGES];
        unsigned long reads;
        unsigned long bytes_read;
        bool wrong_tid;
};

static ssize_t fake_read(void *ctx, pid_t tid, uint64_t addr, void *buf, size_t len)
{
        struct fake_mem *f = ctx;
        size_t done = 0;

        f->reads++;
        if (tid != FAKE_TID)
                f->wrong_tid = true;
        while (done < len) {
                uint64_t a = addr + done;
                if (a < FAKE_BASE || a >= FAKE_BASE + sizeof(f->bytes) || !f->mapped[(a - FAKE_BASE) / PG])
                        break;
                size_t off = a - FAKE_BASE;
                size_t n = PG - off % PG;
                if (n > len - done)
                        n = len - done;
                memcpy((char *)buf + done, f->bytes + off, n);
                done += n;
        }
        f->bytes_read += done;
        return done ? (ssize_t)done : -EFAULT;
}

struct fixture {
        struct fake_mem *f;
        struct target_mem m;
        struct exec_record rec;
};

static int setup(void **state)
{
        struct fixture *x = calloc(1, sizeof(*x));
        if (!x || !(x->f = calloc(1, sizeof(*x->f))))
                return -1;
        for (int i = 0; i < FAKE_PAGES; i++)
                x->f->mapped[i] = true;
        x->m = (struct target_mem){ .read = fake_read, .ctx = x->f };
        *state = x;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *x = *state;
        exec_record_free(&x->rec);
        free(x->f);
        free(x);
        return 0;
}

static uint64_t page(int i)
{
        return FAKE_BASE + (uint64_t)i * PG;
}

static void unmap(struct fake_mem *f, int i)
{
        f->mapped[i] = false;
}

static void put(struct fake_mem *f, uint64_t addr, const void *p, size_t len)
{
        assert_true(addr >= FAKE_BASE && addr + len <= FAKE_BASE + sizeof(f->bytes));
        memcpy(f->bytes + (addr - FAKE_BASE), p, len);
}

static void put_str(struct fake_mem *f, uint64_t addr, const char *s)
{
        put(f, addr, s, strlen(s) + 1);
}

/* `n` bytes of `c` and a NUL at `addr`. */
static void put_fill(struct fake_mem *f, uint64_t addr, char c, size_t n)
{
        assert_true(addr >= FAKE_BASE && addr + n + 1 <= FAKE_BASE + sizeof(f->bytes));
        memset(f->bytes + (addr - FAKE_BASE), c, n);
        f->bytes[addr - FAKE_BASE + n] = 0;
}

static void put_ptrs(struct fake_mem *f, uint64_t addr, const uint64_t *v, size_t n)
{
        put(f, addr, v, n * sizeof(uint64_t));
}

static void read_execve(struct fixture *x, uint64_t path, uint64_t argv)
{
        uint64_t args[6] = { path, argv, 0, 0, 0, 0 };
        assert_int_equal(exec_read(&x->m, FAKE_TID, SYS_execve, args, &x->rec), 0);
        assert_false(x->f->wrong_tid);
}

static bool all_bytes(const char *s, char c, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (s[i] != c)
                        return false;
        return s[n] == 0;
}

/* --- layouts ---------------------------------------------------------------------- */

static void execve_basic(void **state)
{
        struct fixture *x = *state;
        uint64_t av[] = { page(1), page(1) + 16, page(1) + 32, 0 };

        put_str(x->f, page(0), "/usr/bin/env");
        put_str(x->f, page(1), "env");
        put_str(x->f, page(1) + 16, "-i");
        put_str(x->f, page(1) + 32, "");
        put_ptrs(x->f, page(2), av, 4);
        read_execve(x, page(0), page(2));

        assert_int_equal(x->rec.dirfd, AT_FDCWD);
        assert_string_equal(x->rec.path, "/usr/bin/env");
        assert_int_equal(x->rec.argc, 3);
        assert_string_equal(x->rec.argv[0], "env");
        assert_string_equal(x->rec.argv[1], "-i");
        assert_string_equal(x->rec.argv[2], "");  /* an empty argument is kept */
        assert_false(x->rec.truncated);
        assert_false(x->rec.unreadable);
}

static void execveat_layout(void **state)
{
        struct fixture *x = *state;
        uint64_t av[] = { page(1), 0 };

        put_str(x->f, page(0), "script.sh");
        put_str(x->f, page(1), "script.sh");
        put_ptrs(x->f, page(2), av, 2);

        /* execveat(dirfd, path, argv, envp, flags) */
        uint64_t args[6] = { 5, page(0), page(2), 0, 0, AT_EMPTY_PATH };
        assert_int_equal(exec_read(&x->m, FAKE_TID, SYS_execveat, args, &x->rec), 0);
        assert_int_equal(x->rec.dirfd, 5);
        assert_string_equal(x->rec.path, "script.sh");
        assert_int_equal(x->rec.argc, 1);
        assert_string_equal(x->rec.argv[0], "script.sh");
        assert_false(x->rec.truncated || x->rec.unreadable);
        exec_record_free(&x->rec);

        /* the dirfd is an int: AT_FDCWD as the kernel sees it */
        args[0] = (uint64_t)(int64_t)AT_FDCWD;
        assert_int_equal(exec_read(&x->m, FAKE_TID, SYS_execveat, args, &x->rec), 0);
        assert_int_equal(x->rec.dirfd, AT_FDCWD);
        exec_record_free(&x->rec);
        args[0] = 0xffffffff00000007ULL;
        assert_int_equal(exec_read(&x->m, FAKE_TID, SYS_execveat, args, &x->rec), 0);
        assert_int_equal(x->rec.dirfd, 7);
        exec_record_free(&x->rec);

        /* execveat's argv is args[2]: args[1] is never taken for it */
        uint64_t wrong[6] = { 5, page(0), 0, page(2), 0, 0 };
        assert_int_equal(exec_read(&x->m, FAKE_TID, SYS_execveat, wrong, &x->rec), 0);
        assert_int_equal(x->rec.argc, 0);
}

/* A path and an argument that cross a page boundary, both pages mapped. */
static void spans_page_boundary(void **state)
{
        struct fixture *x = *state;
        uint64_t path = page(1) - 5, arg = page(3) - 1;
        uint64_t av[] = { arg, 0 };

        put_str(x->f, path, "/bin/true");         /* "/bin/" | "true" */
        put_str(x->f, arg, "xyz");                /* "x" | "yz" */
        /* the argv array itself straddles a boundary too */
        put_ptrs(x->f, page(5) - 8, av, 2);
        read_execve(x, path, page(5) - 8);
        assert_string_equal(x->rec.path, "/bin/true");
        assert_int_equal(x->rec.argc, 1);
        assert_string_equal(x->rec.argv[0], "xyz");
        assert_false(x->rec.truncated || x->rec.unreadable);
}

/* A string whose NUL is the last byte before an unmapped page is whole. */
static void ends_at_mapping_end(void **state)
{
        struct fixture *x = *state;
        uint64_t path = page(2) - 8;

        put_str(x->f, path, "/bin/ls");  /* 7 bytes + NUL end the page */
        unmap(x->f, 2);
        read_execve(x, path, 0);
        assert_string_equal(x->rec.path, "/bin/ls");
        assert_false(x->rec.truncated || x->rec.unreadable);
        assert_int_equal(x->rec.argc, 0);
}

/* Unterminated at the end of a mapping: what could be read is kept. */
static void unterminated_at_mapping_end(void **state)
{
        struct fixture *x = *state;
        uint64_t path = page(2) - 7;

        put(x->f, path, "/bin/sh", 7);  /* no NUL before page 2 */
        unmap(x->f, 2);
        read_execve(x, path, 0);
        assert_string_equal(x->rec.path, "/bin/sh");
}

static void null_and_unmapped_pointers(void **state)
{
        struct fixture *x = *state;

        /* a NULL path */
        read_execve(x, 0, 0);
        assert_true(x->rec.unreadable);
        assert_string_equal(x->rec.path, "");
        assert_int_equal(x->rec.argc, 0);
        exec_record_free(&x->rec);

        /* a path on an unmapped page */
        unmap(x->f, 9);
        read_execve(x, page(9) + 100, 0);
        assert_true(x->rec.unreadable);
        assert_string_equal(x->rec.path, "");
        exec_record_free(&x->rec);

        /* argv NULL: no arguments, nothing unreadable (Linux allows it) */
        put_str(x->f, page(0), "/bin/true");
        read_execve(x, page(0), 0);
        assert_string_equal(x->rec.path, "/bin/true");
        assert_int_equal(x->rec.argc, 0);
        assert_false(x->rec.unreadable || x->rec.truncated);
        exec_record_free(&x->rec);

        /* argv points at an unmapped page */
        read_execve(x, page(0), page(9));
        assert_true(x->rec.unreadable);
        assert_int_equal(x->rec.argc, 0);
        assert_string_equal(x->rec.path, "/bin/true");
}

/* The argv array runs into an unmapped page before its NULL: the entries
 * before it are kept. */
static void argv_array_cut_by_unmapped_page(void **state)
{
        struct fixture *x = *state;
        uint64_t av[] = { page(0) + 16, page(0) + 32 };

        put_str(x->f, page(0), "/bin/echo");
        put_str(x->f, page(0) + 16, "echo");
        put_str(x->f, page(0) + 32, "hi");
        put_ptrs(x->f, page(4) - 16, av, 2);
        unmap(x->f, 4);
        read_execve(x, page(0), page(4) - 16);
        assert_int_equal(x->rec.argc, 2);
        assert_string_equal(x->rec.argv[0], "echo");
        assert_string_equal(x->rec.argv[1], "hi");
        assert_true(x->rec.unreadable);
}

/* An argv array that is not 8-byte aligned, with a pointer straddling a
 * page end: every entry is read whole. */
static void argv_pointer_across_page_end(void **state)
{
        struct fixture *x = *state;
        uint64_t av[] = { page(0) + 16, page(0) + 32, page(0) + 48, 0 };

        put_str(x->f, page(0), "/bin/echo");
        put_str(x->f, page(0) + 16, "echo");
        put_str(x->f, page(0) + 32, "a");
        put_str(x->f, page(0) + 48, "b");
        put_ptrs(x->f, page(5) - 12, av, 4);
        read_execve(x, page(0), page(5) - 12);
        assert_int_equal(x->rec.argc, 3);
        assert_string_equal(x->rec.argv[0], "echo");
        assert_string_equal(x->rec.argv[1], "a");
        assert_string_equal(x->rec.argv[2], "b");
        assert_false(x->rec.unreadable);
}

/* The argv array is read in runs (up to a page end, 64 pointers at most),
 * not one pointer per read: 100 arguments whose array crosses a page cost
 * the path, the strings and a handful of pointer reads. */
static void argv_pointers_read_in_runs(void **state)
{
        struct fixture *x = *state;
        uint64_t av[101];

        put_str(x->f, page(0), "/bin/echo");
        for (size_t i = 0; i < 100; i++) {
                char arg[8];
                snprintf(arg, sizeof(arg), "a%zu", i);
                put_str(x->f, page(1) + 8 * i, arg);
                av[i] = page(1) + 8 * i;
        }
        av[100] = 0;
        put_ptrs(x->f, page(4) - 200, av, 101);
        read_execve(x, page(0), page(4) - 200);
        assert_int_equal(x->rec.argc, 100);
        assert_string_equal(x->rec.argv[99], "a99");
        assert_false(x->rec.unreadable);
        assert_true(x->f->reads <= 1 + 100 + 3);
}

/* An argument pointer to an unmapped page: the earlier ones are kept. */
static void argv_entry_unreadable(void **state)
{
        struct fixture *x = *state;
        uint64_t av[] = { page(0) + 16, page(7) + 8, page(0) + 32, 0 };

        put_str(x->f, page(0), "/bin/echo");
        put_str(x->f, page(0) + 16, "echo");
        put_str(x->f, page(0) + 32, "after");
        put_ptrs(x->f, page(1), av, 4);
        unmap(x->f, 7);
        read_execve(x, page(0), page(1));
        assert_int_equal(x->rec.argc, 1);
        assert_string_equal(x->rec.argv[0], "echo");
        assert_true(x->rec.unreadable);
}

/* --- bounds -------------------------------------------------------------------------- */

/* argv of `n` entries (all the same short string) and its NULL. */
static void many_args(struct fixture *x, size_t n)
{
        uint64_t *av = calloc(n + 1, sizeof(uint64_t));
        assert_non_null(av);
        assert_true((n + 1) * 8 <= 40 * PG);
        for (size_t i = 0; i < n; i++)
                av[i] = page(0) + 16;
        put_str(x->f, page(0), "/bin/x");
        put_str(x->f, page(0) + 16, "a");
        put_ptrs(x->f, page(8), av, n + 1);
        free(av);
        read_execve(x, page(0), page(8));
}

static void argc_over_max(void **state)
{
        struct fixture *x = *state;

        many_args(x, EXEC_MAX_ARGS + 500);
        assert_int_equal(x->rec.argc, EXEC_MAX_ARGS);
        assert_true(x->rec.truncated);
        assert_false(x->rec.unreadable);
        assert_string_equal(x->rec.argv[EXEC_MAX_ARGS - 1], "a");
        exec_record_free(&x->rec);

        many_args(x, EXEC_MAX_ARGS + 1);
        assert_int_equal(x->rec.argc, EXEC_MAX_ARGS);
        assert_true(x->rec.truncated);
}

static void argc_below_max(void **state)
{
        struct fixture *x = *state;

        many_args(x, EXEC_MAX_ARGS - 1);
        assert_int_equal(x->rec.argc, EXEC_MAX_ARGS - 1);
        assert_false(x->rec.truncated);
}

/* EXEC_MAX_ARGS arguments: every one is kept, so nothing is truncated. */
static void bug_argc_exactly_max(void **state)
{
        struct fixture *x = *state;

        many_args(x, EXEC_MAX_ARGS);
        assert_int_equal(x->rec.argc, EXEC_MAX_ARGS);
        assert_false(x->rec.truncated);
}

/* One long argument: EXEC_MAX_ARG bytes of it are kept. */
static void arg_over_max(void **state)
{
        struct fixture *x = *state;
        uint64_t av[] = { page(0) + 16, page(2), page(0) + 32, 0 };

        put_str(x->f, page(0), "/bin/x");
        put_str(x->f, page(0) + 16, "first");
        put_str(x->f, page(0) + 32, "last");
        put_fill(x->f, page(2), 'b', EXEC_MAX_ARG + 1000);
        put_ptrs(x->f, page(1), av, 4);
        read_execve(x, page(0), page(1));
        assert_int_equal(x->rec.argc, 3);
        assert_string_equal(x->rec.argv[0], "first");
        assert_int_equal(strlen(x->rec.argv[1]), EXEC_MAX_ARG);
        assert_true(all_bytes(x->rec.argv[1], 'b', EXEC_MAX_ARG));
        assert_string_equal(x->rec.argv[2], "last");  /* reading goes on */
        assert_true(x->rec.truncated);
        assert_false(x->rec.unreadable);
}

static void arg_below_max(void **state)
{
        struct fixture *x = *state;
        uint64_t av[] = { page(2), 0 };

        put_str(x->f, page(0), "/bin/x");
        put_fill(x->f, page(2), 'c', EXEC_MAX_ARG - 1);
        put_ptrs(x->f, page(1), av, 2);
        read_execve(x, page(0), page(1));
        assert_int_equal(x->rec.argc, 1);
        assert_int_equal(strlen(x->rec.argv[0]), EXEC_MAX_ARG - 1);
        assert_false(x->rec.truncated);
}

/* An argument of exactly EXEC_MAX_ARG bytes is kept whole: nothing was
 * left out, so it is not truncated. */
static void bug_arg_exactly_max(void **state)
{
        struct fixture *x = *state;
        uint64_t av[] = { page(2), 0 };

        put_str(x->f, page(0), "/bin/x");
        put_fill(x->f, page(2), 'c', EXEC_MAX_ARG);
        put_ptrs(x->f, page(1), av, 2);
        read_execve(x, page(0), page(1));
        assert_int_equal(x->rec.argc, 1);
        assert_int_equal(strlen(x->rec.argv[0]), EXEC_MAX_ARG);
        assert_false(x->rec.truncated);
}

/* Arguments totalling more than EXEC_MAX_TOTAL: the last one kept is cut
 * to what is left, and the rest are dropped. */
static void total_over_max(void **state)
{
        struct fixture *x = *state;
        uint64_t av[21];

        put_str(x->f, page(0), "/bin/x");
        put_fill(x->f, page(2), 'd', 4000);
        for (int i = 0; i < 20; i++)
                av[i] = page(2);
        av[20] = 0;
        put_ptrs(x->f, page(1), av, 21);
        read_execve(x, page(0), page(1));
        /* 16 * 4000 = 64000 bytes, then 1536 of the 17th */
        assert_int_equal(x->rec.argc, 17);
        for (int i = 0; i < 16; i++)
                assert_true(all_bytes(x->rec.argv[i], 'd', 4000));
        assert_int_equal(strlen(x->rec.argv[16]), EXEC_MAX_TOTAL - 16 * 4000);
        assert_true(all_bytes(x->rec.argv[16], 'd', EXEC_MAX_TOTAL - 16 * 4000));
        assert_true(x->rec.truncated);
        assert_false(x->rec.unreadable);

        size_t total = 0;
        for (size_t i = 0; i < x->rec.argc; i++)
                total += strlen(x->rec.argv[i]);
        assert_int_equal(total, EXEC_MAX_TOTAL);
}

/* Arguments that fill EXEC_MAX_TOTAL exactly are all kept: not truncated. */
static void bug_total_exactly_max(void **state)
{
        struct fixture *x = *state;
        uint64_t av[33];

        put_str(x->f, page(0), "/bin/x");
        put_fill(x->f, page(2), 'e', EXEC_MAX_TOTAL / 32);
        for (int i = 0; i < 32; i++)
                av[i] = page(2);
        av[32] = 0;
        put_ptrs(x->f, page(1), av, 33);
        read_execve(x, page(0), page(1));
        assert_int_equal(x->rec.argc, 32);
        assert_int_equal(strlen(x->rec.argv[31]), EXEC_MAX_TOTAL / 32);
        assert_false(x->rec.truncated);
}

static void path_over_max(void **state)
{
        struct fixture *x = *state;

        put_fill(x->f, page(0), '/', EXEC_MAX_PATH + 10);
        read_execve(x, page(0), 0);
        assert_int_equal(strlen(x->rec.path), EXEC_MAX_PATH);
        assert_true(x->rec.truncated);
        assert_false(x->rec.unreadable);
        exec_record_free(&x->rec);

        put_fill(x->f, page(0), '/', EXEC_MAX_PATH - 1);  /* PATH_MAX with its NUL */
        read_execve(x, page(0), 0);
        assert_int_equal(strlen(x->rec.path), EXEC_MAX_PATH - 1);
        assert_false(x->rec.truncated);
}

/* Reading is bounded by the limits, not by the (hostile) data: a huge
 * argv costs a bounded number of reads. */
static void reads_are_bounded(void **state)
{
        struct fixture *x = *state;

        many_args(x, 4000);
        assert_true(x->f->reads <= 4 * (EXEC_MAX_ARGS + 2));
        assert_true(x->f->bytes_read <= EXEC_MAX_PATH + EXEC_MAX_TOTAL + 2 * 8 * (EXEC_MAX_ARGS + 1) +
                                            (EXEC_MAX_ARGS + 1) * PG);
}

/* Bytes that are not UTF-8 reach the record as U+FFFD; a cut in the middle
 * of a character leaves valid UTF-8 behind. */
static void sanitized_strings(void **state)
{
        struct fixture *x = *state;
        uint64_t av[] = { page(1), page(1) + 64, page(2), 0 };

        put_str(x->f, page(0), "/tmp/\xff\xfe");
        put_str(x->f, page(1), "caf\xc3\xa9 \xe2\x82\xac");
        put_str(x->f, page(1) + 64, "\x80" "bad" "\xc0\xaf");
        /* EXEC_MAX_ARG - 1 ASCII bytes then a 2-byte character: cut after
         * its first byte */
        put_fill(x->f, page(2), 'a', EXEC_MAX_ARG + 4);
        put(x->f, page(2) + EXEC_MAX_ARG - 1, "\xc3\xa9", 2);
        put_ptrs(x->f, page(5), av, 4);
        read_execve(x, page(0), page(5));

        assert_string_equal(x->rec.path, "/tmp/\xef\xbf\xbd\xef\xbf\xbd");
        assert_int_equal(x->rec.argc, 3);
        assert_string_equal(x->rec.argv[0], "caf\xc3\xa9 \xe2\x82\xac");
        assert_string_equal(x->rec.argv[1], "\xef\xbf\xbd" "bad" "\xef\xbf\xbd\xef\xbf\xbd");
        assert_int_equal(strlen(x->rec.argv[2]), EXEC_MAX_ARG - 1 + 3);
        assert_string_equal(x->rec.argv[2] + EXEC_MAX_ARG - 1, "\xef\xbf\xbd");
        assert_true(x->rec.truncated);
}

/* --- utf8_sanitize ---------------------------------------------------------------------- */

static void check_sanitize(const char *in, size_t len, const char *want)
{
        char *out = utf8_sanitize(in, len);
        assert_non_null(out);
        if (strcmp(out, want) != 0) {
                print_error("utf8_sanitize(");
                for (size_t i = 0; i < len; i++)
                        print_error("%02x", (unsigned char)in[i]);
                print_error(")\n");
        }
        assert_string_equal(out, want);
        free(out);
}

#define SAN(lit, want) check_sanitize(lit, sizeof(lit) - 1, want)
#define R "\xef\xbf\xbd" /* U+FFFD */

static void utf8_valid_kept(void **state)
{
        (void)state;
        SAN("", "");
        SAN("plain ascii ~\x7f", "plain ascii ~\x7f");
        SAN("\xc2\x80", "\xc2\x80");                    /* U+0080 */
        SAN("\xc3\xa9", "\xc3\xa9");                    /* é */
        SAN("\xdf\xbf", "\xdf\xbf");                    /* U+07FF */
        SAN("\xe0\xa0\x80", "\xe0\xa0\x80");            /* U+0800 */
        SAN("\xe2\x82\xac", "\xe2\x82\xac");            /* € */
        SAN("\xed\x9f\xbf", "\xed\x9f\xbf");            /* U+D7FF, before the surrogates */
        SAN("\xee\x80\x80", "\xee\x80\x80");            /* U+E000, after them */
        SAN("\xef\xbf\xbf", "\xef\xbf\xbf");            /* U+FFFF */
        SAN("\xf0\x90\x80\x80", "\xf0\x90\x80\x80");    /* U+10000 */
        SAN("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");    /* 😀 */
        SAN("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");    /* U+10FFFF */
        SAN(R, R);
}

static void utf8_invalid_replaced(void **state)
{
        (void)state;
        SAN("\xff", R);
        SAN("\xfe", R);
        SAN("\x80", R);                                  /* lone continuation */
        SAN("\xbf", R);
        SAN("a\x80" "b", "a" R "b");
        SAN("\xc0\xaf", R R);                            /* overlong '/' */
        SAN("\xc1\xbf", R R);                            /* overlong U+007F */
        SAN("\xe0\x80\xaf", R R R);                      /* overlong '/', 3 bytes */
        SAN("\xe0\x9f\xbf", R R R);                      /* overlong U+07FF */
        SAN("\xf0\x80\x80\xaf", R R R R);                /* overlong '/', 4 bytes */
        SAN("\xf0\x8f\xbf\xbf", R R R R);                /* overlong U+FFFF */
        SAN("\xed\xa0\x80", R R R);                      /* U+D800 */
        SAN("\xed\xbf\xbf", R R R);                      /* U+DFFF */
        SAN("\xed\xa0\xbd\xed\xb8\x80", R R R R R R);    /* a CESU-8 surrogate pair */
        SAN("\xf4\x90\x80\x80", R R R R);                /* U+110000 */
        SAN("\xf5\x80\x80\x80", R R R R);
        SAN("\xf8\x88\x80\x80\x80", R R R R R);          /* 5-byte form */
        SAN("\xc3", R);                                  /* cut at the end */
        SAN("\xe2\x82", R R);
        SAN("\xf0\x9f\x98", R R R);
        SAN("\xe2\x82" "A", R R "A");                    /* cut by the next character */
        SAN("\xc3\xc3\xa9", R "\xc3\xa9");
}

/* A strict UTF-8 check, written independently of the code under test. */
static bool valid_utf8(const unsigned char *s, size_t len)
{
        size_t i = 0;
        while (i < len) {
                unsigned char c = s[i];
                size_t n;
                uint32_t cp, min;
                if (c < 0x80) {
                        i++;
                        continue;
                } else if (c >= 0xc2 && c <= 0xdf) {
                        n = 2, cp = c & 0x1f, min = 0x80;
                } else if (c >= 0xe0 && c <= 0xef) {
                        n = 3, cp = c & 0x0f, min = 0x800;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        n = 4, cp = c & 0x07, min = 0x10000;
                } else {
                        return false;
                }
                if (i + n > len)
                        return false;
                for (size_t k = 1; k < n; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (s[i + k] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += n;
        }
        return true;
}

/* Random bytes (fixed seed): the output is valid UTF-8, at most 3 bytes per
 * input byte, valid input comes out unchanged, sanitizing is idempotent,
 * and a strict JSON parser takes the string. */
static void utf8_random(void **state)
{
        (void)state;
        uint64_t seed = 0x75746638;
        unsigned char in[64];
        unsigned long valid_inputs = 0;
        json_tokener *tok = json_tokener_new();

        assert_non_null(tok);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        for (int iter = 0; iter < 20000; iter++) {
                size_t len = unit_rand(&seed) % sizeof(in);
                for (size_t i = 0; i < len; i++) {
                        uint64_t r = unit_rand(&seed);
                        /* mostly high bytes, where the cases are */
                        in[i] = (unsigned char)(r % 4 ? 0x80 | (r >> 8) : 0x20 + (r >> 8) % 0x5f);
                }
                char *out = utf8_sanitize((const char *)in, len);
                assert_non_null(out);
                size_t olen = strlen(out);
                if (!valid_utf8((const unsigned char *)out, olen))
                        fail_msg("iteration %d: output is not UTF-8", iter);
                assert_true(olen <= 3 * len);
                if (valid_utf8(in, len)) {
                        valid_inputs++;
                        assert_int_equal(olen, len);
                        assert_memory_equal(out, in, len);
                }
                char *again = utf8_sanitize(out, olen);
                assert_string_equal(again, out);
                free(again);

                json_object *s = json_object_new_string(out);
                const char *txt = json_object_to_json_string_ext(s, JSON_C_TO_STRING_PLAIN);
                json_tokener_reset(tok);
                json_object *back = json_tokener_parse_ex(tok, txt, (int)strlen(txt));
                if (!back)
                        fail_msg("iteration %d: JSON parser refused the sanitized string", iter);
                assert_string_equal(json_object_get_string(back), out);
                json_object_put(back);
                json_object_put(s);
                free(out);
        }
        json_tokener_free(tok);
        assert_true(valid_inputs > 0);
}

/* --- exec_record_json ------------------------------------------------------------------------ */

static void record_json(void **state)
{
        (void)state;
        char *argv[] = { "ls", "-l", "caf\xc3\xa9" };
        struct exec_record rec = { .dirfd = AT_FDCWD, .path = "/bin/ls", .argv = argv, .argc = 3 };

        json_object *o = exec_record_json(&rec);
        assert_non_null(o);
        assert_int_equal(json_object_object_length(o), 3);  /* no dirfd for execve */
        json_object *v;
        assert_true(json_object_object_get_ex(o, "path", &v));
        assert_string_equal(json_object_get_string(v), "/bin/ls");
        assert_true(json_object_object_get_ex(o, "argv", &v));
        assert_true(json_object_is_type(v, json_type_array));
        assert_int_equal(json_object_array_length(v), 3);
        for (int i = 0; i < 3; i++)
                assert_string_equal(json_object_get_string(json_object_array_get_idx(v, i)), argv[i]);
        assert_true(json_object_object_get_ex(o, "truncated", &v));
        assert_true(json_object_is_type(v, json_type_boolean));
        assert_false(json_object_get_boolean(v));
        assert_false(json_object_object_get_ex(o, "dirfd", NULL));

        /* the text parses back strictly */
        const char *txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        json_object *back = json_tokener_parse(txt);
        assert_non_null(back);
        assert_true(json_object_equal(back, o));
        json_object_put(back);
        json_object_put(o);

        /* execveat with a dirfd; truncated */
        rec.dirfd = 3;
        rec.truncated = true;
        o = exec_record_json(&rec);
        assert_int_equal(json_object_object_length(o), 4);
        assert_true(json_object_object_get_ex(o, "dirfd", &v));
        assert_int_equal(json_object_get_int(v), 3);
        assert_true(json_object_object_get_ex(o, "truncated", &v));
        assert_true(json_object_get_boolean(v));
        json_object_put(o);

        /* unreadable reads as truncated: something is missing */
        rec.dirfd = AT_FDCWD;
        rec.truncated = false;
        rec.unreadable = true;
        o = exec_record_json(&rec);
        assert_true(json_object_object_get_ex(o, "truncated", &v));
        assert_true(json_object_get_boolean(v));
        json_object_put(o);

        /* an empty record */
        struct exec_record empty = { .dirfd = AT_FDCWD };
        o = exec_record_json(&empty);
        assert_true(json_object_object_get_ex(o, "path", &v));
        assert_string_equal(json_object_get_string(v), "");
        assert_true(json_object_object_get_ex(o, "argv", &v));
        assert_int_equal(json_object_array_length(v), 0);
        json_object_put(o);
}

/* The whole way: fake memory → exec_read → exec_record_json. */
static void record_json_from_read(void **state)
{
        struct fixture *x = *state;
        uint64_t av[] = { page(1), 0 };

        put_str(x->f, page(0), "/bin/\xff");
        put_str(x->f, page(1), "a\"b\\c\n");
        put_ptrs(x->f, page(2), av, 2);
        uint64_t args[6] = { 9, page(0), page(2), 0, 0, 0 };
        assert_int_equal(exec_read(&x->m, FAKE_TID, SYS_execveat, args, &x->rec), 0);
        json_object *o = exec_record_json(&x->rec);
        const char *txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        json_object *back = json_tokener_parse(txt);
        assert_non_null(back);
        json_object *v;
        assert_true(json_object_object_get_ex(back, "path", &v));
        assert_string_equal(json_object_get_string(v), "/bin/" R);
        assert_true(json_object_object_get_ex(back, "argv", &v));
        assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 0)), "a\"b\\c\n");
        assert_true(json_object_object_get_ex(back, "dirfd", &v));
        assert_int_equal(json_object_get_int(v), 9);
        json_object_put(back);
        json_object_put(o);
}

static void free_is_idempotent(void **state)
{
        struct fixture *x = *state;

        put_str(x->f, page(0), "/bin/true");
        read_execve(x, page(0), 0);
        exec_record_free(&x->rec);
        assert_null(x->rec.path);
        assert_null(x->rec.argv);
        assert_int_equal(x->rec.argc, 0);
        exec_record_free(&x->rec);  /* a freed record frees again harmlessly */
}

/* --- the real reader, on this process --------------------------------------------------------- */

static void process_vm_self(void **state)
{
        (void)state;
        char path[] = "/usr/bin/self-test";
        char a0[] = "self", a1[] = "arg with spaces";
        char *argv[] = { a0, a1, NULL };
        uint64_t args[6] = { (uintptr_t)path, (uintptr_t)argv, 0, 0, 0, 0 };
        struct exec_record rec;

        assert_int_equal(exec_read(&target_mem_process_vm, getpid(), SYS_execve, args, &rec), 0);
        assert_string_equal(rec.path, path);
        assert_int_equal(rec.argc, 2);
        assert_string_equal(rec.argv[0], "self");
        assert_string_equal(rec.argv[1], "arg with spaces");
        assert_false(rec.truncated || rec.unreadable);
        exec_record_free(&rec);

        /* real pages: a string across a boundary, one cut by an unmapped
         * page, and a pointer into it */
        long pg = sysconf(_SC_PAGESIZE);
        char *map = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(map != MAP_FAILED);
        assert_int_equal(munmap(map + 2 * pg, pg), 0);
        char *across = map + pg - 3;
        strcpy(across, "/opt/x");
        char *cut = map + 2 * pg - 4;
        memcpy(cut, "tail", 4);  /* no NUL before the hole */
        char *argv2[] = { across, cut, NULL };
        args[0] = (uintptr_t)across;
        args[1] = (uintptr_t)argv2;
        assert_int_equal(exec_read(&target_mem_process_vm, getpid(), SYS_execve, args, &rec), 0);
        assert_string_equal(rec.path, "/opt/x");
        assert_int_equal(rec.argc, 2);
        assert_string_equal(rec.argv[0], "/opt/x");
        assert_string_equal(rec.argv[1], "tail");
        exec_record_free(&rec);

        args[0] = (uintptr_t)(map + 2 * pg);  /* unmapped */
        args[1] = 0;
        assert_int_equal(exec_read(&target_mem_process_vm, getpid(), SYS_execve, args, &rec), 0);
        assert_true(rec.unreadable);
        assert_string_equal(rec.path, "");
        exec_record_free(&rec);

        /* the raw reader: short at the hole, -EFAULT inside it */
        char buf[16];
        assert_int_equal(target_mem_process_vm.read(target_mem_process_vm.ctx, getpid(), (uintptr_t)cut, buf, 16),
                         4);
        assert_int_equal(target_mem_process_vm.read(target_mem_process_vm.ctx, getpid(),
                                                    (uintptr_t)(map + 2 * pg), buf, 16),
                         -EFAULT);
        assert_int_equal(munmap(map, 2 * pg), 0);
}

/* A string unterminated at the end of a mapping is not what the kernel
 * will use (execve fails with EFAULT), so the record must say something
 * is missing. */
static void bug_unterminated_is_flagged(void **state)
{
        struct fixture *x = *state;
        uint64_t path = page(2) - 7;

        put(x->f, path, "/bin/sh", 7);
        unmap(x->f, 2);
        read_execve(x, path, 0);
        assert_true(x->rec.truncated || x->rec.unreadable);
        exec_record_free(&x->rec);

        /* the same for an argument */
        uint64_t av[] = { path, 0 };
        put_str(x->f, page(0), "/bin/sh");
        put_ptrs(x->f, page(1), av, 2);
        read_execve(x, page(0), page(1));
        assert_int_equal(x->rec.argc, 1);
        assert_true(x->rec.truncated || x->rec.unreadable);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

static const struct CMUnitTest tests[] = {
        T(execve_basic),
        T(execveat_layout),
        T(spans_page_boundary),
        T(ends_at_mapping_end),
        T(unterminated_at_mapping_end),
        T(null_and_unmapped_pointers),
        T(argv_array_cut_by_unmapped_page),
        T(argv_entry_unreadable),
        T(argc_over_max),
        T(argc_below_max),
        T(arg_over_max),
        T(arg_below_max),
        T(total_over_max),
        T(path_over_max),
        T(reads_are_bounded),
        T(argv_pointer_across_page_end),
        T(argv_pointers_read_in_runs),
        T(sanitized_strings),
        cmocka_unit_test(utf8_valid_kept),
        cmocka_unit_test(utf8_invalid_replaced),
        cmocka_unit_test(utf8_random),
        cmocka_unit_test(record_json),
        T(record_json_from_read),
        T(free_is_idempotent),
        cmocka_unit_test(process_vm_self),
        /* regressions: bugs found by these tests, now fixed */
        T(bug_argc_exactly_max),
        T(bug_arg_exactly_max),
        T(bug_total_exactly_max),
        T(bug_unterminated_is_flagged),
};

UNIT_MAIN_NO_BUGS(tests)
