#include "read_budget.h"

#include <stdlib.h>

static struct read_budget *find(struct read_budget *list, uid_t uid)
{
        for (; list; list = list->next)
                if (list->uid == uid)
                        return list;
        return NULL;
}

bool read_budget_allows(struct read_budget **list, uid_t uid, uint64_t now_ns)
{
        const struct read_budget *b = find(*list, uid);
        return !b || b->clear_ns <= now_ns + READ_BUDGET_BURST_NS;
}

uint64_t read_budget_wait_ns(struct read_budget **list, uid_t uid, uint64_t now_ns)
{
        const struct read_budget *b = find(*list, uid);
        uint64_t at = b && b->clear_ns > READ_BUDGET_BURST_NS ? b->clear_ns - READ_BUDGET_BURST_NS : 0;
        return at > now_ns ? at - now_ns : 0;
}

void read_budget_spend(struct read_budget **list, uid_t uid, uint64_t start_ns, uint64_t end_ns)
{
        struct read_budget *b = find(*list, uid);
        if (!b) {
                b = calloc(1, sizeof(*b));
                if (!b)
                        return;
                b->uid = uid;
                b->next = *list;
                *list = b;
        }
        uint64_t spent = end_ns > start_ns ? end_ns - start_ns : 0;
        /* paid back from now on, or from when what it spent before is */
        uint64_t from = b->clear_ns > start_ns ? b->clear_ns : start_ns;
        b->clear_ns = from + spent * READ_BUDGET_SHARE;
}

void read_budget_free(struct read_budget **list)
{
        while (*list) {
                struct read_budget *b = *list;
                *list = b->next;
                free(b);
        }
}
