/* Parsing of user-given quantities. Each parser either returns the exact
 * value the text says or refuses it; nothing wraps around or rounds. And
 * the one way sizes are shown to users. */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* Parse a byte size: digits with an optional fraction ("1.5G") and an
 * optional binary suffix K/M/G/T/P/E (also Ki/KiB/..., any case for the
 * letter, B for bytes). Powers of 1024. The result must be a whole number of
 * bytes in 1..UINT64_MAX.
 * Returns 0 and sets *out; -EINVAL for malformed text or unknown suffixes
 * ("12Q", "-1", "1KB"), -EDOM for a fraction of a byte ("0.1G", "1.3"),
 * -ERANGE for 0 or values above UINT64_MAX ("16E"). */
int parse_size(const char *s, uint64_t *out);

/* Parse a duration in seconds, as timeout(1) does: a decimal number with an
 * optional s/m/h/d suffix. Result in milliseconds, at least 1 ms.
 * Returns 0, -EINVAL (malformed) or -ERANGE (zero, negative, too large). */
int parse_duration_ms(const char *s, uint64_t *out_ms);

/* Parse a decimal unsigned integer in [min, max].
 * Returns 0, -EINVAL (malformed) or -ERANGE (outside the range). */
int parse_uint_range(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* `bytes` for people, in the largest binary unit that keeps the number at
 * or above 1: "512 B", "64 KiB", "13.3 MiB", "1.5 GiB" (one decimal,
 * dropped when it is 0). Writes at most `len` bytes (NUL included) into
 * `buf` and returns it. */
const char *format_size(uint64_t bytes, char *buf, size_t len);
