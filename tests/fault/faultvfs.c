/* faultvfs -- see faultvfs.h. Test code only: never linked into libcoffer. */
#include "faultvfs.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#define SECTOR 512

typedef struct pending {
	sqlite3_int64 off;
	int n;
	unsigned char *data;
	struct pending *next;
} pending;

typedef struct fv_file {
	sqlite3_file base;
	struct fv_file *next, *prev; /* every open file, for the crash */
	int buffered;                /* main db, WAL or journal: writes wait for xSync */
	pending *head, *tail;
	sqlite3_file *real; /* the wrapped file, right after this struct */
} fv_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fv_vfs;
static fv_file *open_files;

/* Power loss. */
static int pl_on;       /* buffering writes */
static long pl_crash;   /* crash at this sync (0: never) */
static long pl_syncs;   /* syncs seen */
static uint64_t pl_rng; /* xorshift state */

/* I/O errors. */
static int ie_on;
static enum faultvfs_op ie_op;
static long ie_n, ie_count, ie_injected;
static int ie_persistent;

static uint64_t rnd(void)
{
	uint64_t x = pl_rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return pl_rng = x;
}

const char *faultvfs_op_name(enum faultvfs_op op)
{
	static const char *const names[FV_NOPS] = {"read", "write", "sync", "truncate", "lock"};
	return op < FV_NOPS ? names[op] : "?";
}

/* 1 when this call of `op` must fail. */
static int inject(enum faultvfs_op op)
{
	if (!ie_on || op != ie_op)
		return 0;
	ie_count++;
	if (ie_count == ie_n || (ie_persistent && ie_count > ie_n)) {
		ie_injected++;
		return 1;
	}
	return 0;
}

void faultvfs_ioerr(enum faultvfs_op op, long n, int persistent)
{
	ie_on = 1;
	ie_op = op;
	ie_n = n;
	ie_count = 0;
	ie_injected = 0;
	ie_persistent = persistent;
}

void faultvfs_clear(void)
{
	ie_on = 0;
}

long faultvfs_injected(void)
{
	return ie_injected;
}

static void drop_pending(fv_file *f)
{
	while (f->head != NULL) {
		pending *p = f->head;
		f->head = p->next;
		free(p->data);
		free(p);
	}
	f->tail = NULL;
}

static int flush_pending(fv_file *f)
{
	int rc = SQLITE_OK;
	for (pending *p = f->head; p != NULL && rc == SQLITE_OK; p = p->next)
		rc = f->real->pMethods->xWrite(f->real, p->data, p->n, p->off);
	drop_pending(f);
	return rc;
}

long faultvfs_syncs(void)
{
	return pl_syncs;
}

void faultvfs_powerloss(long crash_at, uint64_t seed)
{
	if (crash_at < 0) {
		for (fv_file *f = open_files; f != NULL; f = f->next)
			(void)flush_pending(f);
		pl_on = 0;
		return;
	}
	pl_on = 1;
	pl_crash = crash_at;
	pl_syncs = 0;
	pl_rng = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
	if (pl_rng == 0)
		pl_rng = 1;
}

/* The machine stops: each unsynced sector is written, lost or garbled; then nothing more. */
static void power_loss(void)
{
	for (fv_file *f = open_files; f != NULL; f = f->next) {
		for (pending *p = f->head; p != NULL; p = p->next) {
			for (int o = 0; o < p->n; o += SECTOR) {
				int n = p->n - o < SECTOR ? p->n - o : SECTOR;
				unsigned char buf[SECTOR];
				uint64_t r = rnd() % 8;
				if (r < 4) { /* reached the disk */
					memcpy(buf, p->data + o, (size_t)n);
				} else if (r < 6) { /* never did */
					continue;
				} else { /* torn: garbage */
					for (int i = 0; i < n; i++)
						buf[i] = (unsigned char)rnd();
				}
				(void)f->real->pMethods->xWrite(f->real, buf, n, p->off + o);
			}
		}
	}
	_exit(FAULTVFS_POWER_LOST);
}

void faultvfs_crash_now(void)
{
	power_loss();
}

static int fv_close(sqlite3_file *file)
{
	fv_file *f = (fv_file *)file;
	/* Written back by the OS eventually: the close of a file is not a power loss. */
	(void)flush_pending(f);
	if (f->prev != NULL)
		f->prev->next = f->next;
	else
		open_files = f->next;
	if (f->next != NULL)
		f->next->prev = f->prev;
	return f->real->pMethods->xClose(f->real);
}

static int fv_read(sqlite3_file *file, void *buf, int n, sqlite3_int64 off)
{
	fv_file *f = (fv_file *)file;
	if (inject(FV_READ))
		return SQLITE_IOERR_READ;
	int rc = f->real->pMethods->xRead(f->real, buf, n, off);
	if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
		return rc;
	if (f->head == NULL)
		return rc;
	sqlite3_int64 size = 0;
	if (f->real->pMethods->xFileSize(f->real, &size) != SQLITE_OK)
		return SQLITE_IOERR_READ;
	for (pending *p = f->head; p != NULL; p = p->next) {
		sqlite3_int64 a = p->off > off ? p->off : off;
		sqlite3_int64 b = p->off + p->n < off + n ? p->off + p->n : off + n;
		if (a < b)
			memcpy((unsigned char *)buf + (a - off), p->data + (a - p->off),
			       (size_t)(b - a));
		if (p->off + p->n > size)
			size = p->off + p->n;
	}
	return off + n <= size ? SQLITE_OK : SQLITE_IOERR_SHORT_READ;
}

static int fv_write(sqlite3_file *file, const void *buf, int n, sqlite3_int64 off)
{
	fv_file *f = (fv_file *)file;
	if (inject(FV_WRITE))
		return SQLITE_IOERR_WRITE;
	if (!pl_on || !f->buffered)
		return f->real->pMethods->xWrite(f->real, buf, n, off);
	pending *p = malloc(sizeof *p);
	unsigned char *d = malloc((size_t)n);
	if (p == NULL || d == NULL) {
		free(p);
		free(d);
		return SQLITE_IOERR_NOMEM;
	}
	memcpy(d, buf, (size_t)n);
	*p = (pending){.off = off, .n = n, .data = d, .next = NULL};
	if (f->tail != NULL)
		f->tail->next = p;
	else
		f->head = p;
	f->tail = p;
	return SQLITE_OK;
}

static int fv_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	fv_file *f = (fv_file *)file;
	if (inject(FV_TRUNC))
		return SQLITE_IOERR_TRUNCATE;
	/* Buffered writes beyond the new end are cut (kept in order: a later write may extend). */
	for (pending *p = f->head; p != NULL; p = p->next)
		if (p->off >= size)
			p->n = 0;
		else if (p->off + p->n > size)
			p->n = (int)(size - p->off);
	return f->real->pMethods->xTruncate(f->real, size);
}

static int fv_sync(sqlite3_file *file, int flags)
{
	fv_file *f = (fv_file *)file;
	if (inject(FV_SYNC))
		return SQLITE_IOERR_FSYNC;
	if (pl_on) {
		pl_syncs++;
		if (pl_crash > 0 && pl_syncs == pl_crash)
			power_loss();
		/* Simulated durability: what is on the real file counts as synced (a real fsync
		 * would only make the test slow). */
		return flush_pending(f);
	}
	return f->real->pMethods->xSync(f->real, flags);
}

static int fv_file_size(sqlite3_file *file, sqlite3_int64 *out)
{
	fv_file *f = (fv_file *)file;
	int rc = f->real->pMethods->xFileSize(f->real, out);
	if (rc == SQLITE_OK)
		for (pending *p = f->head; p != NULL; p = p->next)
			if (p->n > 0 && p->off + p->n > *out)
				*out = p->off + p->n;
	return rc;
}

static int fv_lock(sqlite3_file *file, int lock)
{
	fv_file *f = (fv_file *)file;
	if (inject(FV_LOCK))
		return SQLITE_IOERR_LOCK;
	return f->real->pMethods->xLock(f->real, lock);
}

static int fv_unlock(sqlite3_file *file, int lock)
{
	fv_file *f = (fv_file *)file;
	return f->real->pMethods->xUnlock(f->real, lock);
}

static int fv_check_reserved(sqlite3_file *file, int *out)
{
	fv_file *f = (fv_file *)file;
	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int fv_file_control(sqlite3_file *file, int op, void *arg)
{
	fv_file *f = (fv_file *)file;
	return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int fv_sector_size(sqlite3_file *file)
{
	fv_file *f = (fv_file *)file;
	return f->real->pMethods->xSectorSize(f->real);
}

static int fv_device_characteristics(sqlite3_file *file)
{
	fv_file *f = (fv_file *)file;
	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int fv_shm_map(sqlite3_file *file, int pg, int pgsz, int extend, void volatile **pp)
{
	fv_file *f = (fv_file *)file;
	return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int fv_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	fv_file *f = (fv_file *)file;
	/* Taking a lock can fail; releasing one cannot (SQLite ignores the result, and a lock kept
	 * by mistake would block this very connection). */
	if ((flags & SQLITE_SHM_LOCK) && inject(FV_LOCK))
		return SQLITE_IOERR_SHMLOCK;
	return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void fv_shm_barrier(sqlite3_file *file)
{
	fv_file *f = (fv_file *)file;
	f->real->pMethods->xShmBarrier(f->real);
}

static int fv_shm_unmap(sqlite3_file *file, int del)
{
	fv_file *f = (fv_file *)file;
	return f->real->pMethods->xShmUnmap(f->real, del);
}

/* Version 2: no xFetch, so SQLite never reads the files through a memory map we cannot see. */
static const sqlite3_io_methods fv_io = {
    2,
    fv_close,
    fv_read,
    fv_write,
    fv_truncate,
    fv_sync,
    fv_file_size,
    fv_lock,
    fv_unlock,
    fv_check_reserved,
    fv_file_control,
    fv_sector_size,
    fv_device_characteristics,
    fv_shm_map,
    fv_shm_lock,
    fv_shm_barrier,
    fv_shm_unmap,
    NULL,
    NULL,
};

static int fv_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags,
                   int *out_flags)
{
	fv_file *f = (fv_file *)file;
	memset(f, 0, sizeof *f);
	f->real = (sqlite3_file *)(f + 1);
	int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
	if (f->real->pMethods == NULL) {
		f->base.pMethods = NULL;
		return rc;
	}
	f->base.pMethods = &fv_io;
	f->buffered =
	    (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL)) != 0;
	f->next = open_files;
	if (open_files != NULL)
		open_files->prev = f;
	open_files = f;
	return rc;
}

static int fv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int fv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int fv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static int fv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int fv_sleep(sqlite3_vfs *vfs, int us)
{
	/* While errors are injected, SQLite's retries (a failed WAL lock is retried for up to ~10 s
	 * of backoff) need no real time: there is no other process to wait for. */
	if (ie_on)
		return us;
	return real_vfs->xSleep(real_vfs, us);
}

static int fv_current_time(sqlite3_vfs *vfs, double *out)
{
	return real_vfs->xCurrentTime(real_vfs, out);
}

static int fv_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	return real_vfs->xGetLastError(real_vfs, n, out);
}

static int fv_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

int faultvfs_register(void)
{
	if (real_vfs != NULL)
		return SQLITE_OK;
	int rc = sqlite3_initialize();
	if (rc != SQLITE_OK)
		return rc;
	real_vfs = sqlite3_vfs_find("unix");
	if (real_vfs == NULL)
		return SQLITE_ERROR;
	fv_vfs = (sqlite3_vfs){
	    .iVersion = 2,
	    .szOsFile = (int)sizeof(fv_file) + real_vfs->szOsFile,
	    .mxPathname = real_vfs->mxPathname,
	    .zName = "faultvfs",
	    .xOpen = fv_open,
	    .xDelete = fv_delete,
	    .xAccess = fv_access,
	    .xFullPathname = fv_full_pathname,
	    .xRandomness = fv_randomness,
	    .xSleep = fv_sleep,
	    .xCurrentTime = fv_current_time,
	    .xGetLastError = fv_last_error,
	    .xCurrentTimeInt64 = fv_current_time64,
	};
	return sqlite3_vfs_register(&fv_vfs, 1);
}
