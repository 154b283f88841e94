/*
 * replay.c -- run a fuzz target's saved corpus as an ordinary test (any compiler, no libFuzzer):
 * every file under the given directories is fed once to LLVMFuzzerTestOneInput. A crash or a
 * sanitizer report fails the test; otherwise it prints the closing count line.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (1024 * 1024)

static int replay_file(const char *path)
{
	static uint8_t buf[REPLAY_MAX_INPUT];
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		perror(path);
		return -1;
	}
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	/* A fresh heap copy of the exact size, so ASan sees any read past the end. */
	uint8_t *copy = malloc(n > 0 ? n : 1);
	if (copy == NULL)
		return -1;
	memcpy(copy, buf, n);
	LLVMFuzzerTestOneInput(copy, n);
	free(copy);
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
	size_t files = 0, failed = 0;
	for (int i = 1; i < argc; i++) {
		struct dirent **list;
		int n = scandir(argv[i], &list, NULL, by_name);
		if (n < 0) {
			perror(argv[i]);
			return 1;
		}
		for (int k = 0; k < n; k++) {
			char path[4096];
			struct stat st;
			snprintf(path, sizeof(path), "%s/%s", argv[i], list[k]->d_name);
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
				files++;
				if (replay_file(path) != 0)
					failed++;
			}
			free(list[k]);
		}
		free(list);
	}
	printf("%zu passed, %zu failed\n", files - failed, failed);
	return failed == 0 && files > 0 ? 0 : 1;
}
