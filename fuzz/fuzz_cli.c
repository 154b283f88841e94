/*
 * fuzz_cli.c -- the CLI's one argument parser (src/cli/table.c, cli_parse) on hostile command
 * lines: the input is split at NUL bytes into argv[1..] (at most 64 arguments), parsed, and
 * everything the parse allocated is freed. Nothing is run: a command's handler is never called.
 * Help, usage errors and "did you mean" go to /dev/null.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int quiet;
	if (!quiet) {
		quiet = 1;
		if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
			return 0;
		unsetenv("COFFER_FORMAT");
	}
	char *buf = malloc(size + 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	char *argv[MAX_ARGS + 2];
	int argc = 0;
	argv[argc++] = "coffer";
	for (size_t i = 0; i <= size && argc <= MAX_ARGS;) {
		argv[argc++] = buf + i;
		i += strlen(buf + i) + 1;
	}
	argv[argc] = NULL;
	cli c;
	memset(&c, 0, sizeof c);
	(void)cli_parse(&c, argc, argv);
	json_decref(c.messages);
	free(c.seen);
	free(c.args);
	free(buf);
	return 0;
}
