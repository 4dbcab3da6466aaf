/* The per-sandbox reaper: a small process of the broker's credentials that
 * is the parent of the sandbox root and, as PR_SET_CHILD_SUBREAPER, of every
 * orphan the sandbox leaves, double-forked daemons included. When the root
 * exits, or the broker asks, or the broker dies, it SIGKILLs every process
 * below it until it has no child left, so no process of the sandbox
 * outlives the run. It talks to the broker over one SOCK_SEQPACKET socket
 * with fixed-size `struct reaper_msg` packets. */
#pragma once
#include <stdint.h>
#include <sys/types.h>

enum reaper_msg_type {
        REAPER_ROOT_PID = 1,  /* reaper -> broker: value = root pid */
        REAPER_ROOT_EXIT,     /* reaper -> broker: value = wait status */
        REAPER_SIGNAL,        /* broker -> reaper: value = signal number */
        REAPER_KILL,          /* broker -> reaper: end the sandbox now */
};

struct reaper_msg {
        uint32_t type;
        int32_t value;
};

/* Send one message; returns 0 or -errno. */
int reaper_send(int sock, enum reaper_msg_type type, int32_t value);

/* Receive one message (past a connection reset, to what the peer sent
 * before it); returns 0, -ECONNRESET on EOF, -EBADMSG on a packet of the
 * wrong size or type, or -errno. */
int reaper_recv(int sock, struct reaper_msg *m);

/* Run the reaper in a freshly forked child whose descriptors are laid out as
 * 0-2 = sandbox stdio, 3 = spawn socket (handed to the root), 4 = broker
 * socket. `root_main` runs in the root's child process and must not return.
 * Never returns; exits 0 once every sandbox process is reaped. */
_Noreturn void reaper_main(void (*root_main)(void *ud), void *ud);

/* SIGKILL every child of the calling process, reap it, and repeat until
 * none is left (orphans reparented to a subreaper mid-way are caught in the
 * next round). If `root` is reaped on the way, its status goes to
 * *root_status and *root_reaped is set. */
void reaper_kill_all(pid_t root, int *root_status, int *root_reaped);
