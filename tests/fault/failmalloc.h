/*
 * failmalloc -- one hook that fails the Nth allocation (test-only).
 *
 * A test executable linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,
 * --wrap=sodium_malloc routes every allocation that libcoffer's (and the server's) own code
 * makes through here, with no hook in the product code; failmalloc_install() also makes SQLite
 * allocate through it (sqlite3_config(SQLITE_CONFIG_MALLOC), before SQLite is initialized).
 * Allocations made inside other shared libraries (libsodium's own, protobuf-c's default
 * allocator, libc's) are not counted.
 */
#ifndef COFFER_TEST_FAILMALLOC_H
#define COFFER_TEST_FAILMALLOC_H

/* Call first, before anything uses SQLite. 0 on success. */
int failmalloc_install(void);
/* Fail the nth allocation from now (once, or that one and every later one). */
void failmalloc_arm(long n, int persistent);
void failmalloc_clear(void);
long failmalloc_injected(void);
long failmalloc_count(void);

#endif
