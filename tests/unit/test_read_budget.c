/* The per-user time budget of costly looks (tracer/read_budget.c). */
#include "unit.h"

#include "read_budget.h"

#define MS (1000ull * 1000)
#define S (1000 * MS)

static void fresh_user_allowed(void **state)
{
        (void)state;
        struct read_budget *l = NULL;
        assert_true(read_budget_allows(&l, 1000, 5 * S));
        read_budget_free(&l);
}

static void cheap_looks_never_throttled(void **state)
{
        (void)state;
        struct read_budget *l = NULL;
        /* 100 us looks every millisecond: 10 % of the time, paid as it goes */
        uint64_t t = 10 * S;
        for (int i = 0; i < 100000; i++, t += MS) {
                assert_true(read_budget_allows(&l, 1000, t));
                read_budget_spend(&l, 1000, t, t + 100 * 1000);
        }
        read_budget_free(&l);
}

static void a_costly_look_waits_ten_times_its_length(void **state)
{
        (void)state;
        struct read_budget *l = NULL;
        uint64_t t = 10 * S;
        /* the review's 1.5 s look: the next one 15 s later, less the burst */
        read_budget_spend(&l, 1000, t, t + 1500 * MS);
        uint64_t clear = t + 15 * S;
        assert_false(read_budget_allows(&l, 1000, t + 1500 * MS));
        assert_false(read_budget_allows(&l, 1000, clear - READ_BUDGET_BURST_NS - 1));
        assert_true(read_budget_allows(&l, 1000, clear - READ_BUDGET_BURST_NS));
        /* and says how long it waits */
        assert_int_equal(read_budget_wait_ns(&l, 1000, t + 1500 * MS), clear - READ_BUDGET_BURST_NS - (t + 1500 * MS));
        assert_int_equal(read_budget_wait_ns(&l, 1000, clear - READ_BUDGET_BURST_NS), 0);
        assert_int_equal(read_budget_wait_ns(&l, 1001, t), 0);
        /* another user is not held by it */
        assert_true(read_budget_allows(&l, 1001, t + 1500 * MS));
        read_budget_free(&l);
}

static void share_holds_over_time(void **state)
{
        (void)state;
        struct read_budget *l = NULL;
        /* a user looking whenever allowed, 50 ms a look, spends about a
         * tenth of 100 s, plus the burst */
        uint64_t t = 10 * S, end = t + 100 * S, spent = 0;
        while (t < end) {
                if (read_budget_allows(&l, 7, t)) {
                        read_budget_spend(&l, 7, t, t + 50 * MS);
                        spent += 50 * MS;
                        t += 50 * MS;
                } else {
                        t += MS;
                }
        }
        assert_true(spent <= 100 * S / READ_BUDGET_SHARE + READ_BUDGET_BURST_NS / READ_BUDGET_SHARE + 50 * MS);
        assert_true(spent >= 100 * S / READ_BUDGET_SHARE - 50 * MS);
        read_budget_free(&l);
}

static const struct CMUnitTest tests[] = {
        cmocka_unit_test(fresh_user_allowed),
        cmocka_unit_test(cheap_looks_never_throttled),
        cmocka_unit_test(a_costly_look_waits_ten_times_its_length),
        cmocka_unit_test(share_holds_over_time),
};

UNIT_MAIN_NO_BUGS(tests)
