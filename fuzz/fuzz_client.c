/*
 * fuzz_client.c -- libFuzzer target over libcoffer_client's handling of what a server sends: the
 * input is the byte stream a server writes after its SETTINGS frame, on a Unix socket served by a
 * thread of this process. Every public call (access, put, versions, list, destroy) is made, each
 * on a connection that receives the same stream, so HTTP/2, gRPC framing, status mapping and
 * every response decoder run on it. The same function is replayed over the saved corpus in every
 * build (client_fuzz_corpus).
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "coffer_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t settings[] = {0, 0, 0, 4, 0, 0, 0, 0, 0};

static char sock_path[108];
static int lfd = -1;
static const uint8_t *input;
static size_t input_len;
static volatile int stopping;

static void send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k <= 0)
			return;
		p += k;
		n -= (size_t)k;
	}
}

static int recv_all(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = recv(fd, p, n, 0);
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* The client's preface and frames, up to the end of its first request (END_STREAM). */
static int read_request(int fd)
{
	static uint8_t payload[1 << 16];
	uint8_t h[9];
	if (recv_all(fd, payload, 24) != 0)
		return -1;
	for (;;) {
		if (recv_all(fd, h, 9) != 0)
			return -1;
		size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
		if (len > sizeof(payload) || recv_all(fd, payload, len) != 0)
			return -1;
		if ((h[3] == 0 || h[3] == 1) && (h[4] & 1))
			return 0;
	}
}

/* Each connection gets SETTINGS, then (once the client's request is in) the input and our end of
 * the stream; the client's bytes are read until it hangs up. */
static void *serve(void *arg)
{
	uint8_t junk[4096];
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		if (stopping) {
			close(fd);
			return NULL;
		}
		send_all(fd, settings, sizeof(settings));
		if (read_request(fd) == 0)
			send_all(fd, input, input_len);
		shutdown(fd, SHUT_WR);
		while (recv(fd, junk, sizeof(junk), 0) > 0)
			;
		close(fd);
	}
}

static int setup(void)
{
	struct sockaddr_un sun;
	snprintf(sock_path, sizeof(sock_path), "/tmp/coffer-fuzz-client-%d.sock", (int)getpid());
	unlink(sock_path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || listen(lfd, 16) != 0)
		return -1;
	return 0;
}

static int versions_cb(void *ctx, const coffer_version_info *info)
{
	return info->version[0] == '\0' ? -1 : 0;
}

static int list_cb(void *ctx, const char *name, size_t n)
{
	return ++*(int *)ctx > 5000 ? 1 : 0; /* a server that never ends its pages */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	char addr[120], err[256], ver[COFFER_VERSION_MAX];
	if (!ready) {
		if (setup() != 0)
			return 0;
		ready = 1;
	}
	if (size > 65536)
		return 0;
	input = data;
	input_len = size;
	stopping = 0;
	pthread_t th;
	if (pthread_create(&th, NULL, serve, NULL) != 0)
		return 0;
	snprintf(addr, sizeof(addr), "unix:%s", sock_path);
	coffer_client *c = NULL;
	coffer_client_options o = {.token = "fuzz-token-0123456789", .timeout_ms = 2000};
	/* Each call on its own connection, so that each decoder sees the stream as its answer. */
	int rc[5] = {1, 1, 1, 1, 1};
	for (int i = 0; i < 5; i++) {
		coffer_client_value *v = NULL;
		int n = 0;
		if (coffer_client_connect(&c, addr, &o, err, sizeof(err)) != COFFER_OK) {
			rc[i] = -100;
			continue;
		}
		if (i == 0)
			rc[i] = coffer_client_access(c, "k", "latest", &v);
		else if (i == 1)
			rc[i] = coffer_client_put(c, "k", "v", 1, ver);
		else if (i == 2)
			rc[i] = coffer_client_versions(c, "k", versions_cb, NULL);
		else if (i == 3)
			rc[i] = coffer_client_list(c, list_cb, &n);
		else
			rc[i] = coffer_client_destroy(c, "k", "latest", ver);
		if (v != NULL) {
			size_t len;
			const uint8_t *p = coffer_client_value_data(v, &len);
			if (p[len] != '\0' || coffer_client_value_version(v)[0] == '\0')
				__builtin_trap();
			coffer_client_value_free(v);
		}
		coffer_client_close(c);
	}
	/* FUZZ_CLIENT_VERBOSE=1: what each call returned (access put versions list destroy) */
	if (getenv("FUZZ_CLIENT_VERBOSE") != NULL)
		fprintf(stderr, "fuzz_client: %d %d %d %d %d\n", rc[0], rc[1], rc[2], rc[3], rc[4]);
	/* Wake the accept() and let the thread go. */
	stopping = 1;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
	if (s >= 0 && connect(s, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		pthread_join(th, NULL);
	else
		pthread_detach(th);
	if (s >= 0)
		close(s);
	return 0;
}
