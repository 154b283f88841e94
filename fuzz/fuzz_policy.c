/*
 * fuzz_policy.c -- libFuzzer target over the server's operator files: the policy file (allow
 * PRINCIPAL put|access SECRET...) and the bearer-token file (PRINCIPAL TOKEN). The first byte
 * picks the parser and the mode; the rest is written to a 0600 file and loaded. A table that
 * loads is then queried, and the answers are checked against what a load guarantees.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[4096];

static void check(int ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (path[0] == '\0') {
		const char *tmp = getenv("TMPDIR");
		snprintf(path, sizeof path, "%s/coffer-fuzz-policy-%d", tmp != NULL ? tmp : "/tmp",
		         (int)getpid());
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return 0;
	if (write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) {
		close(fd);
		return 0;
	}
	close(fd);
	pol_table *t = pol_new(data[0] & 2);
	if (t == NULL)
		return 0;
	char err[512];
	err[0] = '\0';
	if (data[0] & 1) {
		int n = pol_load_tokens(t, path, err, sizeof err);
		check(n < 0 ? err[0] != '\0' : (size_t)n == pol_token_count(t));
		char who[64];
		/* A token of fewer than 16 characters is never accepted. */
		check(pol_token_principal(t, "short", 5, who, sizeof who) != 0);
	} else {
		int rc = pol_load_file(t, path, err, sizeof err);
		check(rc == 0 || err[0] != '\0');
		/* Queries on whatever loaded: any verdict, never a crash. */
		(void)pol_check(t, "svc", "db.password", WIRE_PERM_ACCESS);
		(void)pol_check(t, "svc", "db.password", WIRE_PERM_PUT);
		(void)pol_declare(t, "svc", "other", WIRE_PERM_ACCESS);
	}
	pol_free(t);
	unlink(path);
	return 0;
}
