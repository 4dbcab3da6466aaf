#include "size.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Split "123.456suffix" into integer and fraction parts. At most 18 fraction
 * digits are kept exactly (10^18 < 2^63); more is refused as ambiguous. */
static int split_number(const char **p, uint64_t *ip, uint64_t *frac, uint64_t *frac_den)
{
        const char *s = *p;
        uint64_t v = 0;
        bool digits = false;

        while (isdigit((unsigned char)*s)) {
                unsigned d = *s - '0';
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
                s++;
                digits = true;
        }
        *frac = 0;
        *frac_den = 1;
        if (*s == '.') {
                s++;
                int n = 0;
                while (isdigit((unsigned char)*s)) {
                        if (++n > 18)
                                return -EINVAL;
                        *frac = *frac * 10 + (*s - '0');
                        *frac_den *= 10;
                        s++;
                        digits = true;
                }
        }
        if (!digits)
                return -EINVAL;
        *ip = v;
        *p = s;
        return 0;
}

/* v * num / den exactly, refusing overflow (-ERANGE) and a result that is
 * not whole (-EDOM). */
static int scale_exact(uint64_t ip, uint64_t frac, uint64_t den, uint64_t mult, uint64_t *out)
{
        unsigned __int128 whole = (unsigned __int128)ip * mult;
        unsigned __int128 part = (unsigned __int128)frac * mult;
        if (part % den)
                return -EDOM;
        whole += part / den;
        if (whole > UINT64_MAX)
                return -ERANGE;
        *out = (uint64_t)whole;
        return 0;
}

int parse_size(const char *s, uint64_t *out)
{
        static const char units[] = "KMGTPE";
        uint64_t ip, frac, den, mult = 1;
        int r;

        if (!s)
                return -EINVAL;
        r = split_number(&s, &ip, &frac, &den);
        if (r < 0)
                return r;

        if (*s) {
                const char *u = strchr(units, toupper((unsigned char)*s));
                if (u && *s) {
                        mult = 1ULL << (10 * (u - units + 1));
                        s++;
                        /* K, Ki, KiB, KB is refused: 1000 or 1024? */
                        if (strcmp(s, "i") == 0 || strcmp(s, "iB") == 0)
                                s += strlen(s);
                } else if (strcasecmp(s, "B") == 0) {
                        s++;
                }
                if (*s)
                        return -EINVAL;
        }
        r = scale_exact(ip, frac, den, mult, out);
        if (r < 0)
                return r;
        return *out == 0 ? -ERANGE : 0;
}

int parse_duration_ms(const char *s, uint64_t *out_ms)
{
        uint64_t ip, frac, den, mult = 1000, v;
        int r;

        if (!s)
                return -EINVAL;
        if (s[0] == '-') {
                /* a well-formed negative duration is out of range */
                const char *rest = s + 1;
                r = split_number(&rest, &ip, &frac, &den);
                return r == -EINVAL ? -EINVAL : -ERANGE;
        }
        r = split_number(&s, &ip, &frac, &den);
        if (r < 0)
                return r;
        if (*s) {
                switch (*s) {
                case 's': mult = 1000; break;
                case 'm': mult = 60 * 1000; break;
                case 'h': mult = 3600 * 1000; break;
                case 'd': mult = 86400 * 1000; break;
                default: return -EINVAL;
                }
                if (s[1])
                        return -EINVAL;
        }
        /* Sub-millisecond fractions round up: a timeout never fires early. */
        unsigned __int128 whole = (unsigned __int128)ip * mult;
        unsigned __int128 part = (unsigned __int128)frac * mult;
        whole += (part + den - 1) / den;
        if (whole > UINT64_MAX / 1000000) /* keep ns arithmetic safe */
                return -ERANGE;
        v = (uint64_t)whole;
        if (v == 0)
                return -ERANGE;
        *out_ms = v;
        return 0;
}

int parse_uint_range(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
        uint64_t v = 0;

        if (!s || !*s)
                return -EINVAL;
        for (; *s; s++) {
                if (!isdigit((unsigned char)*s))
                        return -EINVAL;
                unsigned d = *s - '0';
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        if (v < min || v > max)
                return -ERANGE;
        *out = v;
        return 0;
}

const char *format_size(uint64_t bytes, char *buf, size_t len)
{
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
        const unsigned last = sizeof(units) / sizeof(units[0]) - 1;
        unsigned u = 0;
        while (u < last && bytes >> (10 * (u + 1)))
                u++;
        /* tenths of the unit, rounded half up; 1023.96 MiB shows as 1 GiB */
        unsigned __int128 tenths = (((unsigned __int128)bytes * 10 << 1 >> (10 * u)) + 1) >> 1;
        if (tenths >= 10240 && u < last) {
                u++;
                tenths = (((unsigned __int128)bytes * 10 << 1 >> (10 * u)) + 1) >> 1;
        }
        unsigned long long t = (unsigned long long)tenths;
        if (t % 10)
                snprintf(buf, len, "%llu.%llu %s", t / 10, t % 10, units[u]);
        else
                snprintf(buf, len, "%llu %s", t / 10, units[u]);
        return buf;
}
