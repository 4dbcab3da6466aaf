/* Setting up a freshly forked child before it runs or execs. */
#pragma once

/* Reset every signal to its default disposition and unblock all, move
 * fds[i] to descriptor i for 0 <= i < n (safely, whatever numbers they had),
 * and close every descriptor from n up (close_range(2)). A closed or
 * negative fds[i] becomes /dev/null. Only for a child
 * of fork(2): it changes process-wide state. Returns 0 or -errno. */
int child_setup(int *fds, int n);
