/* Shared helpers of the cmocka unit tests.
 *
 * Known bugs: a test that shows a bug in the code under test asserts the
 * documented behaviour and goes in the module's `known_bugs` group, not in
 * its main group. `test_x --known-bug NAME` runs that one test; CMake
 * registers each with WILL_FAIL (tests/unit/CMakeLists.txt), so the suite
 * stays green while the bug is there, and ctest reports the test as failing
 * the day the bug is fixed: then move the test to the main group and drop
 * its WILL_FAIL line. */
#pragma once
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <string.h>

/* Descriptors open in this process: entries of /proc/self/fd, without the
 * one opendir() itself holds. */
static inline int unit_count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        assert_non_null(d);
        for (struct dirent *e; (e = readdir(d));)
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1;
}

/* A small deterministic PRNG (xorshift64*), so that "random" inputs are the
 * same on every run and a failure can be reproduced from its index. */
static inline uint64_t unit_rand(uint64_t *state)
{
        uint64_t x = *state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        return x * 0x2545f4914f6cdd1dULL;
}

static inline int unit_main(int argc, char **argv, const char *name,
                            const struct CMUnitTest *tests, size_t ntests,
                            const struct CMUnitTest *bugs, size_t nbugs)
{
        if (argc == 3 && strcmp(argv[1], "--known-bug") == 0) {
                if (nbugs == 0)
                        return 1;
                cmocka_set_test_filter(argv[2]);
                return _cmocka_run_group_tests("known_bugs", bugs, nbugs, NULL, NULL);
        }
        if (argc != 1)
                return 2;
        return _cmocka_run_group_tests(name, tests, ntests, NULL, NULL);
}

#define UNIT_MAIN(tests, bugs)                                                  \
        int main(int argc, char **argv)                                         \
        {                                                                       \
                return unit_main(argc, argv, #tests, tests,                     \
                                 sizeof(tests) / sizeof((tests)[0]), bugs,      \
                                 sizeof(bugs) / sizeof((bugs)[0]));             \
        }

#define UNIT_MAIN_NO_BUGS(tests)                                                \
        int main(int argc, char **argv)                                         \
        {                                                                       \
                return unit_main(argc, argv, #tests, tests,                     \
                                 sizeof(tests) / sizeof((tests)[0]), NULL, 0);  \
        }
