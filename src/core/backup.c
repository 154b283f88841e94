/*
 * backup.c -- coffer_backup() and coffer_restore_backup(): a store's sealed image in one file
 * with a checksum (format in docs/operations.md, "Backup file format").
 *
 * The file: a 64-byte header, then the image the backend wrote (SQLite: the database file).
 *   0  "COFFERBK"                 magic
 *   8  u32 big-endian             format version (1)
 *  12  u32 big-endian             kind of image (1: SQLite database)
 *  16  u64 big-endian             image length in bytes
 *  24  u64 big-endian             when it was taken (Unix ms)
 *  32  32 bytes                   BLAKE2b-256 (unkeyed) of bytes 0..31 and then the image
 * The checksum finds damage (a truncated copy, flipped bits) before anything is restored; the
 * image itself holds only what the store holds (values sealed, keys sealed under the master
 * key, metadata MAC'd), so a backup is as safe to keep as the store's own files, and useless
 * without the master key, which is NOT in it.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/internal.h"

#define BK_MAGIC    "COFFERBK"
#define BK_VERSION  1u
#define BK_KIND_SQL 1u
#define BK_HDR_LEN  64
#define BK_HASH_OFF 32

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int io_rc(int e)
{
	return e == ENOSPC || e == EDQUOT ? COFFER_EFULL : COFFER_EIO;
}

static void sync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* Hash (and, with out >= 0, copy to out) len bytes of in from its current offset. */
static int pump(int in, int out, uint64_t len, crypto_generichash_state *h, char *err,
                size_t errlen)
{
	uint8_t buf[16384];
	while (len > 0) {
		size_t want = len < sizeof buf ? (size_t)len : sizeof buf;
		ssize_t r = read(in, buf, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "cannot read: %s",
			         r < 0 ? strerror(errno) : "short file");
			return COFFER_EIO;
		}
		crypto_generichash_update(h, buf, (size_t)r);
		if (out >= 0 && write_all(out, buf, (size_t)r) != 0) {
			int e = errno;
			snprintf(err, errlen, "cannot write: %s", strerror(e));
			return io_rc(e);
		}
		len -= (uint64_t)r;
	}
	return COFFER_OK;
}

/* An error message naming paths: cut to errlen like any other (vsnprintf, so the compiler does not
 * flag the paths' possible length; a cut path still says which file). */
__attribute__((format(printf, 3, 4))) static void errf(char *err, size_t errlen, const char *fmt,
                                                       ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* FILE.tmp = header + image, fsync'd, renamed to FILE. */
static int compose(const char *image, const char *file, char *err, size_t errlen)
{
	char tmp[PATH_MAX + 8];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", file) >= (int)sizeof tmp) {
		snprintf(err, errlen, "backup path is too long");
		return COFFER_EINVAL;
	}
	int in = open(image, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		snprintf(err, errlen, "cannot read the image: %s", strerror(errno));
		return COFFER_EIO;
	}
	struct stat sb;
	if (fstat(in, &sb) != 0) {
		close(in);
		snprintf(err, errlen, "cannot read the image: %s", strerror(errno));
		return COFFER_EIO;
	}
	/* O_EXCL: a FILE.tmp left by an interrupted backup is removed first, never followed. */
	(void)unlink(tmp);
	int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		int e = errno;
		close(in);
		errf(err, errlen, "cannot create '%s': %s", tmp, strerror(e));
		return io_rc(e);
	}
	uint8_t hdr[BK_HDR_LEN] = {0};
	memcpy(hdr, BK_MAGIC, 8);
	put32(hdr + 8, BK_VERSION);
	put32(hdr + 12, BK_KIND_SQL);
	put64(hdr + 16, (uint64_t)sb.st_size);
	put64(hdr + 24, (uint64_t)core_now_ms());
	crypto_generichash_state h;
	crypto_generichash_init(&h, NULL, 0, 32);
	crypto_generichash_update(&h, hdr, BK_HASH_OFF);
	int rc = COFFER_OK;
	if (write_all(out, hdr, BK_HDR_LEN) != 0) {
		int e = errno;
		errf(err, errlen, "cannot write '%s': %s", tmp, strerror(e));
		rc = io_rc(e);
	}
	if (rc == COFFER_OK)
		rc = pump(in, out, (uint64_t)sb.st_size, &h, err, errlen);
	close(in);
	if (rc == COFFER_OK) {
		crypto_generichash_final(&h, hdr + BK_HASH_OFF, 32);
		if (pwrite(out, hdr + BK_HASH_OFF, 32, BK_HASH_OFF) != 32 || fsync(out) != 0) {
			int e = errno;
			errf(err, errlen, "cannot write '%s': %s", tmp, strerror(e));
			rc = io_rc(e);
		}
	}
	close(out);
	if (rc == COFFER_OK && rename(tmp, file) != 0) {
		errf(err, errlen, "cannot rename '%s' to '%s': %s", tmp, file, strerror(errno));
		rc = COFFER_EIO;
	}
	if (rc != COFFER_OK)
		(void)unlink(tmp);
	else
		sync_dir_of(file);
	return rc;
}

int coffer_backup(coffer_store *st, const char *file)
{
	if (st == NULL || file == NULL || file[0] == '\0')
		return COFFER_EMISUSE;
	char image[PATH_MAX + 16] = "", err[CORE_ERRMSG_MAX];
	pthread_mutex_lock(&st->mu);
	st->errmsg[0] = '\0';
	int rc = COFFER_OK;
	if (st->ops->backup == NULL) {
		core_set_err(st,
		             "the %s backend has no online backup in coffer: use pg_dump (see "
		             "docs/operations.md), or coffer copy --to a folder and back that up",
		             st->ops->scheme);
		rc = COFFER_EMISUSE;
	} else if (snprintf(image, sizeof image, "%s.img.tmp", file) >= (int)sizeof image) {
		image[0] = '\0';
		core_set_err(st, "backup path is too long");
		rc = COFFER_EINVAL;
	}
	if (rc == COFFER_OK) {
		(void)unlink(image); /* left by an interrupted backup */
		rc = st->ops->backup(st->be, image);
		if (rc != COFFER_OK)
			core_set_backend_err(st, rc);
	}
	if (rc == COFFER_OK) {
		rc = compose(image, file, err, sizeof err);
		if (rc != COFFER_OK)
			core_set_err(st, "%s", err);
	}
	if (image[0] != '\0')
		(void)unlink(image);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

int coffer_restore_backup(const char *file, const char *location, char *errbuf, size_t errlen)
{
	char dummy[CORE_ERRMSG_MAX];
	if (errbuf == NULL || errlen == 0) {
		errbuf = dummy;
		errlen = sizeof dummy;
	}
	errbuf[0] = '\0';
	if (file == NULL || location == NULL) {
		snprintf(errbuf, errlen, "no backup file or no store given");
		return COFFER_EMISUSE;
	}
	if (crypto_init() != COFFER_OK) {
		snprintf(errbuf, errlen, "libsodium failed to initialize");
		return COFFER_EIO;
	}
	const char *rest = NULL;
	const store_ops *ops = store_lookup(location, &rest);
	if (ops == NULL) {
		snprintf(errbuf, errlen,
		         "unknown store scheme: use a folder path, sqlite:DIR or "
		         "postgres://");
		return COFFER_EINVAL;
	}
	if (ops->restore_image == NULL) {
		snprintf(
		    errbuf, errlen,
		    "a backup restores into a folder (SQLite) only: restore it into a new folder, "
		    "then coffer --store DIR copy --to %s store (docs/operations.md)",
		    ops->scheme);
		return COFFER_EMISUSE;
	}
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(errbuf, errlen, "cannot open backup '%s': %s", file, strerror(e));
		return e == ENOENT ? COFFER_ENOTFOUND : COFFER_EIO;
	}
	uint8_t hdr[BK_HDR_LEN], sum[32];
	struct stat sb;
	int rc = COFFER_OK;
	ssize_t got = read(fd, hdr, sizeof hdr);
	if (fstat(fd, &sb) != 0 || got != (ssize_t)sizeof hdr || memcmp(hdr, BK_MAGIC, 8) != 0) {
		snprintf(errbuf, errlen, "'%s' is not a coffer backup", file);
		rc = COFFER_ECORRUPT;
	} else if (get32(hdr + 8) != BK_VERSION || get32(hdr + 12) != BK_KIND_SQL) {
		snprintf(
		    errbuf, errlen,
		    "backup '%s' is of format %u, kind %u: this coffer reads format %u, kind %u",
		    file, get32(hdr + 8), get32(hdr + 12), BK_VERSION, BK_KIND_SQL);
		rc = COFFER_ECORRUPT;
	} else if ((uint64_t)sb.st_size != BK_HDR_LEN + get64(hdr + 16)) {
		snprintf(errbuf, errlen,
		         "backup '%s' is damaged: %lld bytes, its header says %llu (a truncated or "
		         "extended copy); nothing restored",
		         file, (long long)sb.st_size,
		         (unsigned long long)(BK_HDR_LEN + get64(hdr + 16)));
		rc = COFFER_ECORRUPT;
	}
	if (rc == COFFER_OK) {
		crypto_generichash_state h;
		crypto_generichash_init(&h, NULL, 0, 32);
		crypto_generichash_update(&h, hdr, BK_HASH_OFF);
		rc = pump(fd, -1, get64(hdr + 16), &h, errbuf, errlen);
		crypto_generichash_final(&h, sum, sizeof sum);
		if (rc == COFFER_OK && sodium_memcmp(sum, hdr + BK_HASH_OFF, 32) != 0) {
			snprintf(errbuf, errlen,
			         "backup '%s' is damaged: its BLAKE2b checksum does not match its "
			         "contents; nothing restored",
			         file);
			rc = COFFER_ECORRUPT;
		}
	}
	if (rc == COFFER_OK)
		rc = ops->restore_image(rest, fd, BK_HDR_LEN, get64(hdr + 16), errbuf, errlen);
	close(fd);
	return rc;
}
