/* common/size.h: parse_size, parse_duration_ms, parse_uint_range. Every
 * case is checked for the exact value or the exact error. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "size.h"
#include "unit.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define TiB (1ULL << 40)
#define PiB (1ULL << 50)
#define EiB (1ULL << 60)

struct num_case {
        const char *in;
        int r;       /* expected return */
        uint64_t v;  /* expected value when r == 0 */
};

#define SENTINEL 0x5a5a5a5a5a5a5a5aULL

static void check_cases(const char *fn, int (*parse)(const char *, uint64_t *),
                        const struct num_case *c, size_t n)
{
        int failures = 0;

        for (size_t i = 0; i < n; i++) {
                uint64_t v = SENTINEL;
                int r = parse(c[i].in, &v);
                if (r != c[i].r || (r == 0 && v != c[i].v)) {
                        print_error("%s(%s%s%s) = %d (%s), value %" PRIu64 "; want %d (%s), value %" PRIu64 "\n",
                                    fn, c[i].in ? "\"" : "", c[i].in ? c[i].in : "NULL", c[i].in ? "\"" : "",
                                    r, r ? strerror(-r) : "ok", v, c[i].r, c[i].r ? strerror(-c[i].r) : "ok",
                                    c[i].v);
                        failures++;
                }
        }
        assert_int_equal(failures, 0);
}

static int size_fn(const char *s, uint64_t *v) { return parse_size(s, v); }
static int duration_fn(const char *s, uint64_t *v) { return parse_duration_ms(s, v); }

#define CHECK(fn, cases) check_cases(#fn, fn, cases, sizeof(cases) / sizeof(cases[0]))

/* --- parse_size ------------------------------------------------------------- */

static void size_valid(void **state)
{
        (void)state;
        static const struct num_case cases[] = {
                { "1", 0, 1 },
                { "4096", 0, 4096 },
                { "0001", 0, 1 },
                { "512M", 0, 536870912ULL },
                { "1.5G", 0, 1610612736ULL },
                { "2GiB", 0, 2147483648ULL },
                { "1K", 0, KiB },
                { "1k", 0, KiB },
                { "1Ki", 0, KiB },
                { "1KiB", 0, KiB },
                { "1kiB", 0, KiB },
                { "3M", 0, 3 * MiB },
                { "3m", 0, 3 * MiB },
                { "3Mi", 0, 3 * MiB },
                { "1T", 0, TiB },
                { "1TiB", 0, TiB },
                { "1P", 0, PiB },
                { "1E", 0, EiB },
                { "1e", 0, EiB },
                { "1B", 0, 1 },
                { "1b", 0, 1 },
                { "100B", 0, 100 },
                { "0.5K", 0, 512 },
                { ".5K", 0, 512 },
                { "1.25K", 0, 1280 },
                { "1.", 0, 1 },
                { "1.0", 0, 1 },
                { "0.0009765625K", 0, 1 },            /* 2^-10 KiB: exactly one byte */
                { "2.000000000000000000K", 0, 2048 },  /* 18 fraction digits: kept */
                { "0.25E", 0, EiB / 4 },
                /* the largest values */
                { "15E", 0, 15 * EiB },
                { "15.75E", 0, 15 * EiB + 3 * EiB / 4 },
                { "16383P", 0, 16383 * PiB },
                { "18014398509481983K", 0, UINT64_MAX - 1023 },
                { "18446744073709551615", 0, UINT64_MAX },
                { "18446744073709551615B", 0, UINT64_MAX },
                { "18446744073709551615.0", 0, UINT64_MAX },
        };
        CHECK(size_fn, cases);
}

static void size_range(void **state)
{
        (void)state;
        static const struct num_case cases[] = {
                { "0", -ERANGE, 0 },
                { "0K", -ERANGE, 0 },
                { "0.0", -ERANGE, 0 },
                { "0.000G", -ERANGE, 0 },
                { "0B", -ERANGE, 0 },
                { "16E", -ERANGE, 0 },
                { "16EiB", -ERANGE, 0 },
                { "16384P", -ERANGE, 0 },
                { "15.9999999999999999999E", -EINVAL, 0 }, /* 19 fraction digits */
                { "18014398509481984K", -ERANGE, 0 },        /* 2^64 */
                { "18446744073709551616", -ERANGE, 0 },      /* UINT64_MAX + 1 */
                { "18446744073709551615K", -ERANGE, 0 },
                { "99999999999999999999", -ERANGE, 0 },
                { "340282366920938463463374607431768211456", -ERANGE, 0 }, /* 2^128 */
        };
        CHECK(size_fn, cases);
}

static void size_malformed(void **state)
{
        (void)state;
        static const struct num_case cases[] = {
                { NULL, -EINVAL, 0 },
                { "", -EINVAL, 0 },
                { "-1", -EINVAL, 0 },
                { "+1", -EINVAL, 0 },
                { "12Q", -EINVAL, 0 },
                { "1KB", -EINVAL, 0 },  /* 1000 or 1024? refused */
                { "1kb", -EINVAL, 0 },
                { "1MB", -EINVAL, 0 },
                { "1KiBB", -EINVAL, 0 },
                { "1Kx", -EINVAL, 0 },
                { "1iB", -EINVAL, 0 },
                { "1i", -EINVAL, 0 },
                { "1BB", -EINVAL, 0 },
                { "K", -EINVAL, 0 },
                { "KiB", -EINVAL, 0 },
                { ".", -EINVAL, 0 },
                { ".K", -EINVAL, 0 },
                { "1.5.5", -EINVAL, 0 },
                { "1,5K", -EINVAL, 0 },
                { "  1", -EINVAL, 0 },
                { "1 ", -EINVAL, 0 },
                { "1 K", -EINVAL, 0 },
                { "1K ", -EINVAL, 0 },
                { "\t1", -EINVAL, 0 },
                { "1\n", -EINVAL, 0 },
                { "0x10", -EINVAL, 0 },
                { "1e3", -EINVAL, 0 },
                { "1.3B", -EDOM, 0 },  /* not a whole number of bytes */
                { "1.3", -EDOM, 0 },
                { "0.5", -EDOM, 0 },
                { "0.1K", -EDOM, 0 },  /* 102.4 bytes */
                { "1.0000000000000000000K", -EINVAL, 0 }, /* 19 fraction digits */
                { "\xff", -EINVAL, 0 },
        };
        CHECK(size_fn, cases);
}

/* Every suffix letter, upper and lower case, with every accepted tail. */
static void size_all_suffixes(void **state)
{
        (void)state;
        static const char letters[] = "KMGTPE";
        static const char *const tails[] = { "", "i", "iB" };
        for (int i = 0; i < 6; i++)
                for (int lower = 0; lower < 2; lower++)
                        for (size_t t = 0; t < 3; t++) {
                                char buf[16];
                                uint64_t v = 0;
                                char l = lower ? (char)(letters[i] - 'A' + 'a') : letters[i];
                                snprintf(buf, sizeof(buf), "7%c%s", l, tails[t]);
                                int r = parse_size(buf, &v);
                                if (r != 0 || v != 7ULL << (10 * (i + 1)))
                                        fail_msg("parse_size(\"%s\") = %d, %" PRIu64, buf, r, v);
                        }
}

/* --- parse_duration_ms -------------------------------------------------------- */

static void duration_valid(void **state)
{
        (void)state;
        static const struct num_case cases[] = {
                { "1", 0, 1000 },
                { "1s", 0, 1000 },
                { "90", 0, 90000 },
                { "1.5", 0, 1500 },
                { "2m", 0, 120000 },
                { "0.5m", 0, 30000 },
                { "1h", 0, 3600000 },
                { "1d", 0, 86400000 },
                { "0.001", 0, 1 },
                { ".25s", 0, 250 },
                /* sub-millisecond fractions round up: never fire early */
                { "0.0001", 0, 1 },
                { "0.0015", 0, 2 },
                { "1.0001s", 0, 1001 },
                { "0.000000000000000001", 0, 1 },
                /* the largest: UINT64_MAX / 10^6 ms */
                { "18446744073.709", 0, 18446744073709ULL },
                { "307445734.5618166m", 0, 18446744073709ULL },
        };
        CHECK(duration_fn, cases);
}

static void duration_errors(void **state)
{
        (void)state;
        static const struct num_case cases[] = {
                { NULL, -EINVAL, 0 },
                { "", -EINVAL, 0 },
                { "s", -EINVAL, 0 },
                { ".", -EINVAL, 0 },
                { "1x", -EINVAL, 0 },
                { "1ms", -EINVAL, 0 },
                { "1ss", -EINVAL, 0 },
                { "1S", -EINVAL, 0 },
                { "1 ", -EINVAL, 0 },
                { " 1", -EINVAL, 0 },
                { "1 s", -EINVAL, 0 },
                { "+1", -EINVAL, 0 },
                { "1e3", -EINVAL, 0 },
                { "1.0000000000000000000", -EINVAL, 0 }, /* 19 fraction digits */
                { "0", -ERANGE, 0 },
                { "0s", -ERANGE, 0 },
                { "0.0", -ERANGE, 0 },
                { "0d", -ERANGE, 0 },
                { "18446744073.7091", -ERANGE, 0 }, /* rounds up past the limit */
                { "18446744073.710", -ERANGE, 0 },
                { "18446744073709", -ERANGE, 0 },
                { "307445734.5618167m", -ERANGE, 0 },
                { "213503982d", -ERANGE, 0 },
                { "18446744073709551615", -ERANGE, 0 },
                { "18446744073709551615d", -ERANGE, 0 },
                { "18446744073709551616", -ERANGE, 0 },
        };
        CHECK(duration_fn, cases);
}

/* size.h: "-ERANGE (zero, negative, too large)". */
static void bug_duration_negative_is_erange(void **state)
{
        (void)state;
        uint64_t v;
        assert_int_equal(parse_duration_ms("-1", &v), -ERANGE);
        assert_int_equal(parse_duration_ms("-0.5s", &v), -ERANGE);
}

/* --- parse_uint_range ----------------------------------------------------------- */

struct range_case {
        const char *in;
        uint64_t min, max;
        int r;
        uint64_t v;
};

static void uint_range(void **state)
{
        (void)state;
        static const struct range_case cases[] = {
                { "5", 1, 10, 0, 5 },
                { "1", 1, 10, 0, 1 },
                { "10", 1, 10, 0, 10 },
                { "010", 1, 10, 0, 10 },
                { "0", 0, 0, 0, 0 },
                { "0", 1, 10, -ERANGE, 0 },
                { "11", 1, 10, -ERANGE, 0 },
                { "4194304", 1, 4194304, 0, 4194304 },
                { "4194305", 1, 4194304, -ERANGE, 0 },
                { "18446744073709551615", 0, UINT64_MAX, 0, UINT64_MAX },
                { "18446744073709551616", 0, UINT64_MAX, -ERANGE, 0 },
                { "99999999999999999999999", 0, UINT64_MAX, -ERANGE, 0 },
                { NULL, 0, 10, -EINVAL, 0 },
                { "", 0, 10, -EINVAL, 0 },
                { "-1", 0, 10, -EINVAL, 0 },
                { "+1", 0, 10, -EINVAL, 0 },
                { " 1", 0, 10, -EINVAL, 0 },
                { "1 ", 0, 10, -EINVAL, 0 },
                { "1.0", 0, 10, -EINVAL, 0 },
                { "1K", 0, 10000, -EINVAL, 0 },
                { "0x1", 0, 10, -EINVAL, 0 },
        };
        int failures = 0;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const struct range_case *c = &cases[i];
                uint64_t v = SENTINEL;
                int r = parse_uint_range(c->in, c->min, c->max, &v);
                if (r != c->r || (r == 0 && v != c->v)) {
                        print_error("parse_uint_range(\"%s\", %" PRIu64 ", %" PRIu64 ") = %d, %" PRIu64
                                    "; want %d, %" PRIu64 "\n",
                                    c->in ? c->in : "NULL", c->min, c->max, r, v, c->r, c->v);
                        failures++;
                }
        }
        assert_int_equal(failures, 0);
}

/* A refused value leaves the output alone where the parser fails before
 * producing one. */
static void errors_leave_output(void **state)
{
        (void)state;
        uint64_t v = SENTINEL;
        assert_int_equal(parse_size("12Q", &v), -EINVAL);
        assert_int_equal(v, SENTINEL);
        assert_int_equal(parse_duration_ms("1x", &v), -EINVAL);
        assert_int_equal(v, SENTINEL);
        assert_int_equal(parse_uint_range("11", 1, 10, &v), -ERANGE);
        assert_int_equal(v, SENTINEL);
}

static void format_sizes(void **state)
{
        (void)state;
        static const struct {
                uint64_t in;
                const char *out;
        } c[] = {
                { 0, "0 B" },
                { 1, "1 B" },
                { 1023, "1023 B" },
                { 1024, "1 KiB" },
                { 1536, "1.5 KiB" },
                { 64 * KiB, "64 KiB" },
                { 64 * KiB + 51, "64 KiB" },  /* 64.0498: rounds down */
                { 64 * KiB + 52, "64.1 KiB" }, /* 64.0508: rounds up */
                { 13 * MiB + 3 * MiB / 10 + 1, "13.3 MiB" },
                { 64 * MiB, "64 MiB" },
                { GiB - MiB / 25, "1 GiB" },  /* 1023.96 MiB */
                { GiB - MiB / 5, "1023.8 MiB" },
                { 3 * GiB / 2, "1.5 GiB" },
                { 2 * TiB, "2 TiB" },
                { UINT64_MAX, "16 EiB" },
        };
        for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
                char buf[32];
                assert_string_equal(format_size(c[i].in, buf, sizeof(buf)), c[i].out);
        }
        /* a short buffer is cut, never overrun */
        char small[4] = "xyz";
        format_size(13 * MiB, small, sizeof(small));
        assert_string_equal(small, "13 ");
}

static const struct CMUnitTest tests[] = {
        cmocka_unit_test(size_valid),
        cmocka_unit_test(size_range),
        cmocka_unit_test(size_malformed),
        cmocka_unit_test(size_all_suffixes),
        cmocka_unit_test(duration_valid),
        cmocka_unit_test(duration_errors),
        cmocka_unit_test(uint_range),
        cmocka_unit_test(errors_leave_output),
        cmocka_unit_test(format_sizes),
        /* regressions: bugs found by these tests, now fixed */
        cmocka_unit_test(bug_duration_negative_is_erange),
};

UNIT_MAIN_NO_BUGS(tests)
