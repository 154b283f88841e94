/* Helpers shared by the C tests: temporary stores and a fixed test master key. */
#ifndef COFFER_TESTUTIL_H
#define COFFER_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coffer.h"

/* base64 of 32 bytes 0x01..0x20: a fixed master key so runs are reproducible. */
#define TEST_MASTER_KEY "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
#define TEST_OTHER_KEY  "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="

/* A fresh temporary directory path (the store folder itself is created by coffer_open). */
static inline void test_tmpdir(char *buf, size_t len)
{
	const char *base = getenv("TMPDIR");
	snprintf(buf, len, "%s/coffer-test-XXXXXX", base != NULL ? base : "/tmp");
	if (mkdtemp(buf) == NULL)
		abort();
}

static inline void test_rmrf(const char *dir)
{
	char cmd[4200];
	if (snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir) >= (int)sizeof cmd)
		abort(); /* a test folder's path is short */
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", dir);
}

#endif
