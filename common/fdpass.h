/* The fd channel: descriptors travel beside nng on an AF_UNIX SOCK_SEQPACKET
 * socket with SCM_RIGHTS (unix(7)). Each packet is one fixed header naming
 * a token plus up to FDCHAN_MAX_FDS descriptors; the nng message that needs
 * them carries the same token. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define FDCHAN_MAX_FDS 8

/* Send `nfds` descriptors (0..FDCHAN_MAX_FDS) under `token` on `sock`.
 * The caller keeps ownership of `fds` (the kernel duplicates them).
 * Returns 0 or -errno (-EINVAL for a bad count). */
int fdchan_send(int sock, uint64_t token, const int *fds, size_t nfds);

/* Receive one packet. On success *token is set, `fds` holds *nfds new
 * descriptors (O_CLOEXEC) owned by the caller. A packet that is malformed
 * (wrong size or magic, truncated control data, more than `max` fds, or a
 * non-fd control message) is dropped with every descriptor it carried
 * closed, and -EBADMSG is returned. Returns 0 on success, -ECONNRESET on
 * EOF (peer gone), or another -errno (-EAGAIN on a non-blocking socket). */
int fdchan_recv(int sock, uint64_t *token, int *fds, size_t max, size_t *nfds);

/* Close `n` descriptors in `fds` that are >= 0 and set them to -1. */
void fds_close(int *fds, size_t n);

/* Like fds_close(), but the closes happen in a detached thread, so the
 * caller never waits on them: a client's descriptor may be a file of a
 * stalled file system, and close(2) of a FUSE file waits for its FLUSH,
 * uninterruptibly. At most 256 such threads live at once (stuck ones
 * included); past that, or when no thread can be made, the descriptors are
 * left open (leaked) rather than closed here, and -EAGAIN is returned.
 * Returns 0 or -errno; `fds` are set to -1 either way. */
int fds_close_detached(int *fds, size_t n);

/* A random 64-bit token from getrandom(2); never 0. */
uint64_t fdchan_new_token(void);
