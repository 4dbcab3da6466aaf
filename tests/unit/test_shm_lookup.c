/* tracer/shm_lookup.h: shm_lookup_result() must answer a shmget(2) of an
 * existing key as ipc/util.c ipcget_public() does - the same error, in the
 * same order - since the call it answers never runs. shm_lookup() itself is
 * compared with the kernel in tests/integration/memory (bare and
 * sandboxed). A huge-page segment is charged whole huge pages of the size
 * its flags ask for (shm_segment_bytes, shm_huge_page_size). */
#include <errno.h>
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>

#include "kcompat.h"

#include "shm_lookup.h"
#include "unit.h"

#define SIZE (1 << 20)

/* nobody's segment of 1 MiB, group 100, mode 0640 */
static const struct shm_listing seg = {
        .shmid = 42, .size = SIZE, .mode = 0640, .uid = 65534, .cuid = 65534, .gid = 100, .cgid = 100,
};
static const struct ipc_caller owner = { .euid = 65534 };
static const struct ipc_caller member = { .euid = 1000, .in_gid = true };
static const struct ipc_caller other = { .euid = 1000 };

static void classes(void **state)
{
        (void)state;
        assert_int_equal(shm_lookup_result(&seg, SIZE, IPC_CREAT | 0600, &owner), 42);
        assert_int_equal(shm_lookup_result(&seg, SIZE, IPC_CREAT | 0700, &owner), -EACCES);
        assert_int_equal(shm_lookup_result(&seg, SIZE, IPC_CREAT | 0400, &member), 42);
        assert_int_equal(shm_lookup_result(&seg, SIZE, IPC_CREAT | 0600, &member), -EACCES);
        assert_int_equal(shm_lookup_result(&seg, SIZE, IPC_CREAT | 0004, &other), -EACCES);
        /* mode 0 asks for nothing */
        assert_int_equal(shm_lookup_result(&seg, SIZE, IPC_CREAT, &other), 42);
        /* every class of the mode asked is checked against the caller's
         * one class: 0060 from the owner asks for rw too */
        assert_int_equal(shm_lookup_result(&seg, SIZE, IPC_CREAT | 0060, &owner), 42);
        assert_int_equal(shm_lookup_result(&seg, SIZE, IPC_CREAT | 0006, &member), -EACCES);
}

static void owner_by_uid_or_creator(void **state)
{
        (void)state;
        /* IPC_SET gave the segment to uid 7: both 7 and the creator are
         * its owner; the owner class wins over the group class */
        struct shm_listing s = seg;
        s.uid = 7;
        s.mode = 0604;
        struct ipc_caller seven = { .euid = 7, .in_gid = true };
        assert_int_equal(shm_lookup_result(&s, SIZE, IPC_CREAT | 0600, &seven), 42);
        assert_int_equal(shm_lookup_result(&s, SIZE, IPC_CREAT | 0600, &owner), 42);
        assert_int_equal(shm_lookup_result(&s, SIZE, IPC_CREAT | 0040, &member), -EACCES);
        struct ipc_caller creator_group = { .euid = 1000, .in_cgid = true };
        s.mode = 0640;
        assert_int_equal(shm_lookup_result(&s, SIZE, IPC_CREAT | 0040, &creator_group), 42);
}

static void ipc_owner_capability(void **state)
{
        (void)state;
        struct ipc_caller cap = other;
        cap.ipc_owner = true;
        assert_int_equal(shm_lookup_result(&seg, SIZE, IPC_CREAT | 0666, &cap), 42);
        /* ...but not past the size or IPC_EXCL */
        assert_int_equal(shm_lookup_result(&seg, SIZE + 1, IPC_CREAT, &cap), -EINVAL);
        assert_int_equal(shm_lookup_result(&seg, SIZE, IPC_CREAT | IPC_EXCL, &cap), -EEXIST);
}

static void order_of_errors(void **state)
{
        (void)state;
        /* EEXIST, then the size, then the mode */
        assert_int_equal(shm_lookup_result(&seg, 2 * SIZE, IPC_CREAT | IPC_EXCL | 0777, &other), -EEXIST);
        assert_int_equal(shm_lookup_result(&seg, 2 * SIZE, IPC_CREAT | 0777, &other), -EINVAL);
        /* smaller, equal and zero sizes look up */
        assert_int_equal(shm_lookup_result(&seg, 0, IPC_CREAT, &other), 42);
        assert_int_equal(shm_lookup_result(&seg, 1, IPC_CREAT, &other), 42);
        /* flags above the mode bits ask for nothing */
        assert_int_equal(shm_lookup_result(&seg, SIZE, IPC_CREAT | 04000 | 010000, &other), 42);
}


static void segment_bytes_rounding(void **state)
{
        (void)state;
        const uint64_t mib = 1 << 20, huge2m = 2 * mib, huge1g = 1024 * mib;
        /* 4 KiB pages without huge pages */
        assert_int_equal(shm_segment_bytes(1, 0), 4096);
        assert_int_equal(shm_segment_bytes(4096, 0), 4096);
        assert_int_equal(shm_segment_bytes(4097, 0), 8192);
        /* whole huge pages */
        assert_int_equal(shm_segment_bytes(1, huge2m), huge2m);
        assert_int_equal(shm_segment_bytes(huge2m, huge2m), huge2m);
        assert_int_equal(shm_segment_bytes(huge2m + 1, huge2m), 2 * huge2m);
        assert_int_equal(shm_segment_bytes(4096, huge1g), huge1g);
        assert_int_equal(shm_segment_bytes(3 * mib, 64 * 1024), 3 * mib);
        /* past what fits, or no such page size: more than any limit */
        assert_int_equal(shm_segment_bytes(UINT64_MAX - 100, 0), UINT64_MAX / 4);
        assert_int_equal(shm_segment_bytes(UINT64_MAX - huge2m + 2, huge2m), UINT64_MAX / 4);
        assert_int_equal(shm_segment_bytes(1, 3 * mib), UINT64_MAX / 4);
}

/* Whether this kernel has huge pages of `kb` KiB. */
static bool has_huge(unsigned long long kb)
{
        char path[96];
        struct stat st;
        snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB", kb);
        return stat(path, &st) == 0;
}

static void huge_page_size_from_flags(void **state)
{
        (void)state;
        assert_int_equal(shm_huge_page_size(IPC_CREAT | 0600), 0);
        /* the default: /proc/meminfo's */
        unsigned long long kb = 0;
        char line[256];
        FILE *f = fopen("/proc/meminfo", "re");
        assert_non_null(f);
        while (!kb && fgets(line, sizeof(line), f))
                if (sscanf(line, "Hugepagesize: %llu kB", &kb) != 1)
                        kb = 0;
        fclose(f);
        assert_int_equal(shm_huge_page_size(IPC_CREAT | SHM_HUGETLB | 0600), kb * 1024);
        /* a size asked for: what the kernel has, else none (EINVAL) */
        int huge_2mb = 21 << SHM_HUGE_SHIFT, huge_1gb = 30 << SHM_HUGE_SHIFT, huge_8kb = 13 << SHM_HUGE_SHIFT;
        assert_int_equal(shm_huge_page_size(SHM_HUGETLB | huge_2mb), has_huge(2048) ? 2 << 20 : 0);
        assert_int_equal(shm_huge_page_size(SHM_HUGETLB | huge_1gb), has_huge(1 << 20) ? 1ull << 30 : 0);
        assert_int_equal(shm_huge_page_size(SHM_HUGETLB | huge_8kb), 0);
        assert_int_equal(shm_huge_page_size(SHM_HUGETLB | (int)(63u << SHM_HUGE_SHIFT)), 0);
        /* the size bits mean nothing without SHM_HUGETLB */
        assert_int_equal(shm_huge_page_size(huge_1gb | IPC_CREAT), 0);
}

static const struct CMUnitTest tests[] = {
        cmocka_unit_test(classes),
        cmocka_unit_test(owner_by_uid_or_creator),
        cmocka_unit_test(ipc_owner_capability),
        cmocka_unit_test(order_of_errors),
        cmocka_unit_test(segment_bytes_rounding),
        cmocka_unit_test(huge_page_size_from_flags),
};

UNIT_MAIN_NO_BUGS(tests)
