/*
 * faultvfs -- a test-only SQLite VFS that wraps the default ("unix") one and injects faults.
 *
 * Registered as the default VFS, it is what the store's sqlite3_open_v2(..., NULL) gets, with no
 * hook in the product code.
 *
 * Power loss: once armed, writes to the database, WAL and journal files are kept in a buffer
 * (reads see them) and reach the real file only at the next xSync of that file. At the chosen
 * xSync (counted over all files) every write still buffered, in every file, is cut into
 * 512-byte sectors, each of which is written, dropped or overwritten with garbage, and then the
 * process _exit()s with FAULTVFS_POWER_LOST: the machine stopped.
 *
 * I/O errors: the Nth call of one kind (read, write, sync, truncate, lock) fails with that
 * kind's SQLITE_IOERR_* code, once (one-shot) or from then on (persistent).
 */
#ifndef COFFER_TEST_FAULTVFS_H
#define COFFER_TEST_FAULTVFS_H

#include <stdint.h>

#define FAULTVFS_POWER_LOST 42 /* the exit status of a process whose power was cut */

enum faultvfs_op { FV_READ, FV_WRITE, FV_SYNC, FV_TRUNC, FV_LOCK, FV_NOPS };

/* Register the shim as the default VFS (idempotent). Returns SQLITE_OK. */
int faultvfs_register(void);

/* Power loss at the crash_at'th xSync from now (0: buffer writes, never crash). */
void faultvfs_powerloss(long crash_at, uint64_t seed);
/* Cut the power now (buffering must be on): never returns. */
void faultvfs_crash_now(void);
/* xSync calls seen since the last faultvfs_powerloss(). */
long faultvfs_syncs(void);

/* Fail the nth call of `op` from now on (n >= 1); persistent: that one and every later one. */
void faultvfs_ioerr(enum faultvfs_op op, long n, int persistent);
/* Stop injecting errors (buffering for power loss is stopped by faultvfs_powerloss(-1, 0)). */
void faultvfs_clear(void);
/* Errors injected since the last faultvfs_ioerr(). */
long faultvfs_injected(void);

const char *faultvfs_op_name(enum faultvfs_op op);

#endif
