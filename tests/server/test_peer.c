/*
 * test_peer.c -- who is at the other end of a local connection: sock_diag for loopback TCP,
 * SO_PEERCRED for Unix sockets. Real sockets, real kernel; the other-user case needs root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "peer.h"

#define NOBODY 65534

typedef struct conn {
	int lst, cli, srv;
} conn;

/* A listener on the loopback address of `family`, port 0. -1 if that family has no loopback. */
static int listener(int family, struct sockaddr_storage *sa, socklen_t *len)
{
	memset(sa, 0, sizeof(*sa));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)sa;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		*len = sizeof(*in6);
	}
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)sa, *len) != 0 || listen(fd, 4) != 0 ||
	    getsockname(fd, (struct sockaddr *)sa, len) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int pair(int family, conn *c)
{
	struct sockaddr_storage sa;
	socklen_t len;
	c->lst = listener(family, &sa, &len);
	if (c->lst < 0)
		return -1;
	c->cli = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c->cli >= 0);
	assert_int_equal(connect(c->cli, (struct sockaddr *)&sa, len), 0);
	c->srv = accept(c->lst, NULL, NULL);
	assert_true(c->srv >= 0);
	return 0;
}

static void conn_close(conn *c)
{
	close(c->lst);
	if (c->cli >= 0)
		close(c->cli);
	close(c->srv);
}

static peer_status lookup(int fd, uid_t *uid)
{
	static uint32_t seq;
	int e = 0;
	int diag = peer_diag_open();
	assert_true(diag >= 0);
	peer_status s = peer_tcp_uid(diag, &seq, fd, uid, &e);
	close(diag);
	return s;
}

static void own_uid(int family)
{
	conn c;
	uid_t uid = (uid_t)-1;
	if (pair(family, &c) != 0) {
		skip(); /* no loopback for this family here */
		return;
	}
	assert_int_equal(lookup(c.srv, &uid), PEER_OK);
	assert_int_equal(uid, geteuid());
	/* The client end's peer is the server end: ours too. */
	assert_int_equal(lookup(c.cli, &uid), PEER_OK);
	assert_int_equal(uid, geteuid());
	conn_close(&c);
}

static void test_own_uid_v4(void **state)
{
	own_uid(AF_INET);
}

static void test_own_uid_v6(void **state)
{
	own_uid(AF_INET6);
}

/* Half-closed by its process (shutdown), the peer socket is still that process's. */
static void test_half_closed_peer_is_owned(void **state)
{
	conn c;
	uid_t uid = (uid_t)-1;
	assert_int_equal(pair(AF_INET, &c), 0);
	assert_int_equal(shutdown(c.cli, SHUT_WR), 0);
	assert_int_equal(lookup(c.srv, &uid), PEER_OK);
	assert_int_equal(uid, geteuid());
	conn_close(&c);
}

/*
 * A peer that sent and closed at once: its socket has no owner any more (orphaned, or a
 * time-wait socket the kernel reports as uid 0). It must not pass for anyone, root least of all.
 */
static void test_closed_peer_has_no_owner(void **state)
{
	conn c;
	uid_t uid = 4242;
	assert_int_equal(pair(AF_INET, &c), 0);
	assert_int_equal(write(c.cli, "x", 1), 1);
	close(c.cli);
	c.cli = -1;
	assert_int_equal(lookup(c.srv, &uid), PEER_NO_OWNER);
	assert_int_equal(uid, 4242); /* untouched */
	conn_close(&c);
}

/* Another user's connection is reported as that user's (root only: setuid in a child). */
static void test_other_uid(void **state)
{
	struct sockaddr_storage sa;
	socklen_t len;
	char b;
	uid_t uid = (uid_t)-1;
	if (geteuid() != 0) {
		skip();
		return;
	}
	int lst = listener(AF_INET, &sa, &len);
	assert_true(lst >= 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
			_exit(2);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, len) != 0)
			_exit(3);
		/* Hold the socket open until the parent has looked it up and closes its end. */
		_exit(read(fd, &b, 1) == 0 ? 0 : 4);
	}
	int srv = accept(lst, NULL, NULL);
	assert_true(srv >= 0);
	assert_int_equal(lookup(srv, &uid), PEER_OK);
	assert_int_equal(uid, NOBODY);
	close(srv);
	close(lst);
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_unix_peercred(void **state)
{
	int sv[2];
	uid_t uid = (uid_t)-1;
	int e = 0;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(peer_unix_uid(sv[0], &uid, &e), PEER_OK);
	assert_int_equal(uid, geteuid());
	close(sv[0]);
	close(sv[1]);
}

static void test_selftest(void **state)
{
	char err[256] = "";
	assert_int_equal(peer_selftest(err, sizeof(err)), 0);
}

static void test_not_a_socket(void **state)
{
	int fds[2], e = 0;
	uint32_t seq = 0;
	uid_t uid = 7;
	char buf[128];
	int diag = peer_diag_open();
	assert_true(diag >= 0);
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(peer_tcp_uid(diag, &seq, fds[0], &uid, &e), PEER_ERROR);
	assert_int_equal(uid, 7);
	assert_non_null(
	    strstr(peer_status_text(PEER_ERROR, e, buf, sizeof(buf)), "peer's owner failed: "));
	close(fds[0]);
	close(fds[1]);
	close(diag);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_own_uid_v4),
	    cmocka_unit_test(test_own_uid_v6),
	    cmocka_unit_test(test_half_closed_peer_is_owned),
	    cmocka_unit_test(test_closed_peer_has_no_owner),
	    cmocka_unit_test(test_other_uid),
	    cmocka_unit_test(test_unix_peercred),
	    cmocka_unit_test(test_selftest),
	    cmocka_unit_test(test_not_a_socket),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
