/*
 * peer.h -- which local user is at the other end of a connection.
 *
 * A TCP connection over loopback carries no identity: any user of the machine can open one. But
 * both ends are sockets of this kernel, and Linux reports the owner of a socket through the
 * sock_diag netlink interface (what `ss -e` shows): the socket whose local address is our peer's
 * and whose remote address is ours is the peer's, and its owner uid is the uid of the process that
 * created it. A Unix socket peer's credentials come with the connection (SO_PEERCRED).
 */
#ifndef COFFER_SERVER_PEER_H
#define COFFER_SERVER_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef enum peer_status {
	PEER_OK = 0,
	PEER_NOT_FOUND, /* the kernel knows no socket with the peer's address (not on this host) */
	PEER_NO_OWNER,  /* the peer socket was closed by its process: nobody owns it any more */
	PEER_ERROR,     /* the lookup itself failed (errno in *err) */
} peer_status;

/* A NETLINK_SOCK_DIAG socket for peer_tcp_uid(), close-on-exec. The fd, or -1 with errno. */
int peer_diag_open(void);

/*
 * The owner uid of the socket at the other end of the TCP connection `fd` (a connection accepted
 * from a peer on this host), looked up by the exact four-tuple. `diag` comes from
 * peer_diag_open(); `seq` is the caller's request counter for it (replies to earlier requests that
 * timed out are skipped). One request and one reply, no dump. On PEER_OK *uid is set; on
 * PEER_ERROR *err holds an errno value; otherwise neither is touched.
 */
peer_status peer_tcp_uid(int diag, uint32_t *seq, int fd, uid_t *uid, int *err);

/* The uid of a Unix socket peer, as it was when it connected (SO_PEERCRED). */
peer_status peer_unix_uid(int fd, uid_t *uid, int *err);

/* Why a lookup failed, for a message: "no socket on this host has the peer's address", ... */
const char *peer_status_text(peer_status s, int err, char *buf, size_t len);

/*
 * Check that peer_tcp_uid() works here (a kernel without inet_diag, a seccomp filter, no
 * loopback): look up both ends of a connection made to ourselves on 127.0.0.1. 0, or -1 with err.
 */
int peer_selftest(char *err, size_t errlen);

#endif
