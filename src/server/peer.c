/*
 * peer.c -- the owner of a loopback TCP peer (sock_diag) or of a Unix socket peer (SO_PEERCRED);
 * see peer.h.
 */
#include "peer.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#define DIAG_STALE_MAX 8 /* replies to earlier, timed-out requests skipped before giving up */

int peer_diag_open(void)
{
	/* The kernel answers within our send(); the timeout only bounds a kernel that does not. */
	struct timeval tv = {1, 0};
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Address and port of sa into the diag id's src (or dst) fields, which are network order. */
static void id_side(const struct sockaddr_storage *sa, __be32 addr[4], __be16 *port)
{
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		memcpy(&addr[0], &in->sin_addr, 4);
		*port = in->sin_port;
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		memcpy(addr, &in6->sin6_addr, 16);
		*port = in6->sin6_port;
	}
}

/* The reply names exactly the socket asked for (not a listener, not another connection). */
static int same_id(const struct inet_diag_sockid *a, const struct inet_diag_sockid *b, int family)
{
	size_t alen = family == AF_INET ? 4 : 16;
	return a->idiag_sport == b->idiag_sport && a->idiag_dport == b->idiag_dport &&
	       memcmp(a->idiag_src, b->idiag_src, alen) == 0 &&
	       memcmp(a->idiag_dst, b->idiag_dst, alen) == 0;
}

/*
 * One reply message for our request: PEER_OK with *uid, another status, or -1 when this message
 * is not the answer (a different sequence number or type).
 */
static int diag_answer(const struct nlmsghdr *h, uint32_t seq, const struct inet_diag_req_v2 *req,
                       uid_t *uid, int *err)
{
	if (h->nlmsg_seq != seq)
		return -1;
	if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
		const struct nlmsgerr *e = NLMSG_DATA(h);
		if (e->error == -ENOENT)
			return PEER_NOT_FOUND;
		*err = e->error < 0 ? -e->error : EPROTO;
		return PEER_ERROR;
	}
	if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
	    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
		return -1;
	const struct inet_diag_msg *m = NLMSG_DATA(h);
	if (m->idiag_family != req->sdiag_family || !same_id(&m->id, &req->id, m->idiag_family))
		return PEER_NOT_FOUND;
	/*
	 * Only a socket that a process still holds has a meaningful owner. Once its process closed
	 * it, the kernel may keep it as a time-wait socket, which it reports as uid 0: a client
	 * that sent its requests and closed at once would pass for root. No inode: no owner.
	 */
	if (m->idiag_inode == 0)
		return PEER_NO_OWNER;
	*uid = (uid_t)m->idiag_uid;
	return PEER_OK;
}

static peer_status diag_query(int diag, uint32_t seq, const struct inet_diag_req_v2 *req,
                              uid_t *uid, int *err)
{
	struct {
		struct nlmsghdr h;
		struct inet_diag_req_v2 r;
	} msg;
	union {
		struct nlmsghdr h;
		uint8_t bytes[8192];
	} buf;

	memset(&msg, 0, sizeof(msg));
	msg.h.nlmsg_len = sizeof(msg);
	msg.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.h.nlmsg_flags = NLM_F_REQUEST; /* no NLM_F_DUMP: one socket, by its exact id */
	msg.h.nlmsg_seq = seq;
	msg.r = *req;
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	if (sendto(diag, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		*err = errno;
		return PEER_ERROR;
	}
	for (int tries = 0; tries < DIAG_STALE_MAX; tries++) {
		ssize_t n = recv(diag, buf.bytes, sizeof(buf.bytes), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*err = errno == EAGAIN ? ETIMEDOUT : errno;
			return PEER_ERROR;
		}
		size_t left = (size_t)n;
		for (const struct nlmsghdr *h = &buf.h; NLMSG_OK(h, left);
		     h = NLMSG_NEXT(h, left)) {
			int rc = diag_answer(h, seq, req, uid, err);
			if (rc >= 0)
				return (peer_status)rc;
		}
	}
	*err = EPROTO;
	return PEER_ERROR;
}

peer_status peer_tcp_uid(int diag, uint32_t *seq, int fd, uid_t *uid, int *err)
{
	struct sockaddr_storage local, remote;
	socklen_t llen = sizeof(local), rlen = sizeof(remote);
	struct inet_diag_req_v2 req;

	if (getsockname(fd, (struct sockaddr *)&local, &llen) != 0 ||
	    getpeername(fd, (struct sockaddr *)&remote, &rlen) != 0) {
		*err = errno;
		return PEER_ERROR;
	}
	if ((local.ss_family != AF_INET && local.ss_family != AF_INET6) ||
	    remote.ss_family != local.ss_family) {
		*err = EAFNOSUPPORT;
		return PEER_ERROR;
	}
	/* The peer's socket: its own address is our remote one, its remote address is ours. */
	memset(&req, 0, sizeof(req));
	req.sdiag_family = (uint8_t)local.ss_family;
	req.sdiag_protocol = IPPROTO_TCP;
	req.idiag_states = ~0u; /* any state: which ones have an owner is decided on the reply */
	id_side(&remote, req.id.idiag_src, &req.id.idiag_sport);
	id_side(&local, req.id.idiag_dst, &req.id.idiag_dport);
	req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	return diag_query(diag, ++*seq, &req, uid, err);
}

peer_status peer_unix_uid(int fd, uid_t *uid, int *err)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
		*err = errno != 0 ? errno : EPROTO;
		return PEER_ERROR;
	}
	*uid = cred.uid;
	return PEER_OK;
}

const char *peer_status_text(peer_status s, int err, char *buf, size_t len)
{
	switch (s) {
	case PEER_OK:
		return "found";
	case PEER_NOT_FOUND:
		return "no socket on this host has the peer's address";
	case PEER_NO_OWNER:
		return "the peer socket was already closed by its process";
	default:
		snprintf(buf, len, "asking the kernel for the peer's owner failed: %s",
		         strerror(err));
		return buf;
	}
}

/* A connection to ourselves on 127.0.0.1: the listener, the client end, and the accepted end. */
static int self_connection(int fds[3])
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	fds[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	fds[2] = -1;
	if (fds[0] < 0 || fds[1] < 0 || bind(fds[0], (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(fds[0], 1) != 0 || getsockname(fds[0], (struct sockaddr *)&a, &alen) != 0 ||
	    connect(fds[1], (struct sockaddr *)&a, sizeof(a)) != 0)
		return -1;
	fds[2] = accept4(fds[0], NULL, NULL, SOCK_CLOEXEC);
	return fds[2] < 0 ? -1 : 0;
}

int peer_selftest(char *err, size_t errlen)
{
	int fds[3] = {-1, -1, -1}, e = 0, rc = -1;
	uint32_t seq = 0;
	uid_t uid = (uid_t)-1;
	char why[160];
	int diag = peer_diag_open();
	if (diag < 0) {
		snprintf(err, errlen, "cannot open a sock_diag netlink socket: %s",
		         strerror(errno));
	} else if (self_connection(fds) != 0) {
		snprintf(err, errlen, "cannot connect to 127.0.0.1: %s", strerror(errno));
	} else {
		peer_status s = peer_tcp_uid(diag, &seq, fds[2], &uid, &e);
		if (s != PEER_OK)
			snprintf(err, errlen, "%s", peer_status_text(s, e, why, sizeof(why)));
		else if (uid != geteuid())
			snprintf(err, errlen, "sock_diag reports uid %u for our own socket, not %u",
			         (unsigned)uid, (unsigned)geteuid());
		else
			rc = 0;
	}
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (diag >= 0)
		close(diag);
	return rc;
}
