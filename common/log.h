/* One-line diagnostics on stderr, prefixed with the program name.
 * Functions return 0/-errno throughout the project; log_errno() passes the
 * error through so callers can write `return log_errno(r, "...")`. */
#pragma once
#include <stdbool.h>

/* Set the prefix printed before every line ("seccell", "seccell-broker"). */
void log_set_prog(const char *prog);

/* Enable LOG_DEBUG lines (also enabled by SECCELL_DEBUG=1 in the
 * environment). */
void log_set_debug(bool on);
bool log_debug_enabled(void);

void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A budget for lines a client can cause (a flood must not fill the log):
 * at most `burst` per `window_s` seconds; the first line of a new window
 * tells how many were left out. Zero-initialise, then set both. */
struct log_limit {
        unsigned burst, window_s;
        unsigned used, dropped;
        unsigned long long window_start_ns;
};

/* log_msg() within `l`'s budget. */
void log_limited(struct log_limit *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print "prog: <message>: <strerror(-r)>" and return r (which must be a
 * negative errno). */
int log_errno(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
