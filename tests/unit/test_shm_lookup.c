/* tracer/shm_lookup.h: shm_lookup_result() must answer a shmget(2) of an
 * existing key as ipc/util.c ipcget_public() does - the same error, in the
 * same order - since the call it answers never runs. shm_lookup() itself is
 * compared with the kernel in tests/integration/memory (bare and
 * sandboxed). */
#include <errno.h>
#include <sys/ipc.h>

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

static const struct CMUnitTest tests[] = {
        cmocka_unit_test(classes),
        cmocka_unit_test(owner_by_uid_or_creator),
        cmocka_unit_test(ipc_owner_capability),
        cmocka_unit_test(order_of_errors),
};

UNIT_MAIN_NO_BUGS(tests)
