/*
 * What the fault tests check a store against: values derived from a number (so a log line is
 * enough to know what was put), a fingerprint of the database's rows, SQLite's integrity check
 * and the files left in the store folder.
 */
#ifndef COFFER_TEST_FAULT_ORACLE_H
#define COFFER_TEST_FAULT_ORACLE_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "coffer.h"

static inline uint64_t oracle_mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* The value of put number j of run `seed`: 1 byte to ~20 KiB (a few span many pages). */
static inline size_t oracle_value(uint64_t seed, uint64_t j, unsigned char *buf, size_t cap)
{
	uint64_t h = oracle_mix(seed * 1000003u + j);
	size_t len = (h % 16 == 0) ? 4000 + h % 16000 : 1 + h % 700;
	if (len > cap)
		len = cap;
	uint64_t s = h;
	for (size_t i = 0; i < len; i++) {
		if (i % 8 == 0)
			s = oracle_mix(s);
		buf[i] = (unsigned char)(s >> (8 * (i % 8)));
	}
	return len;
}

/* 1 if the secret's version `version` holds exactly value j of run seed. *rc gets access's rc. */
static inline int oracle_reads(coffer_store *st, const char *name, const char *version,
                               uint64_t seed, uint64_t j, int *rc)
{
	static unsigned char want[32768];
	size_t wlen = oracle_value(seed, j, want, sizeof want);
	coffer_secret *sec = NULL;
	*rc = coffer_secret_ref(st, name, COFFER_ACCESS, &sec);
	if (*rc != COFFER_OK)
		return 0;
	coffer_value *v = NULL;
	*rc = coffer_access(sec, version, &v);
	int ok = 0;
	if (*rc == COFFER_OK) {
		size_t len = 0;
		const void *d = coffer_value_data(v, &len);
		ok = len == wlen && memcmp(d, want, len) == 0;
		coffer_value_free(v);
	}
	coffer_secret_free(sec);
	return ok;
}

/* PRAGMA integrity_check on the store's database, through the plain "unix" VFS. 1 if "ok". */
static inline int oracle_integrity(const char *dir, char *msg, size_t msglen)
{
	char path[4200];
	if (snprintf(path, sizeof path, "%s/coffer.db", dir) >= (int)sizeof path)
		return 0;
	sqlite3 *db = NULL;
	int ok = 0;
	snprintf(msg, msglen, "cannot open");
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "unix") == SQLITE_OK) {
		sqlite3_stmt *q = NULL;
		sqlite3_busy_timeout(db, 5000);
		if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK &&
		    sqlite3_step(q) == SQLITE_ROW) {
			const char *r = (const char *)sqlite3_column_text(q, 0);
			snprintf(msg, msglen, "%s", r != NULL ? r : "(null)");
			ok = r != NULL && strcmp(r, "ok") == 0;
		} else {
			snprintf(msg, msglen, "%s", sqlite3_errmsg(db));
		}
		sqlite3_finalize(q);
	}
	sqlite3_close(db);
	return ok;
}

/* A hash of every row of every table (in a fixed order), read through the "unix" VFS. The
 * generation counter is left out when skip_gen (it is not store content). Returns 0 on success.
 */
static inline int oracle_fingerprint(const char *dir, int skip_gen, unsigned char out[32])
{
	static const char *const tables[] = {
	    "SELECT * FROM header", "SELECT * FROM keyring ORDER BY id",
	    "SELECT * FROM secrets ORDER BY id", "SELECT * FROM versions ORDER BY 1, 2",
	    "SELECT * FROM gen"};
	char path[4200];
	if (snprintf(path, sizeof path, "%s/coffer.db", dir) >= (int)sizeof path)
		return -1;
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, "unix") != SQLITE_OK) {
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 5000);
	crypto_generichash_state h;
	crypto_generichash_init(&h, NULL, 0, 32);
	int rc = 0;
	for (size_t t = 0; t < sizeof tables / sizeof *tables && rc == 0; t++) {
		if (skip_gen && t == 4)
			break;
		sqlite3_stmt *q = NULL;
		if (sqlite3_prepare_v2(db, tables[t], -1, &q, NULL) != SQLITE_OK) {
			rc = -1;
			break;
		}
		int s;
		while ((s = sqlite3_step(q)) == SQLITE_ROW) {
			for (int c = 0; c < sqlite3_column_count(q); c++) {
				const void *b = sqlite3_column_blob(q, c);
				int n = sqlite3_column_bytes(q, c);
				unsigned char tag[8] = {(unsigned char)sqlite3_column_type(q, c),
				                        (unsigned char)n, (unsigned char)(n >> 8),
				                        (unsigned char)(n >> 16)};
				crypto_generichash_update(&h, tag, sizeof tag);
				if (n > 0)
					crypto_generichash_update(&h, b, (size_t)n);
			}
		}
		if (s != SQLITE_DONE)
			rc = -1;
		sqlite3_finalize(q);
		crypto_generichash_update(&h, (const unsigned char *)"|", 1);
	}
	sqlite3_close(db);
	crypto_generichash_final(&h, out, 32);
	return rc;
}

/* Files in the store folder other than the ones a store has (coffer.db, -wal, -shm, -journal,
 * coffer.gen, master.key and the names in `allow`, a space-separated list). Returns the count,
 * and names the first in `first`. */
static inline int oracle_stray_files(const char *dir, const char *allow, char *first, size_t len)
{
	static const char *const known[] = {"coffer.db",         "coffer.db-wal", "coffer.db-shm",
	                                    "coffer.db-journal", "coffer.gen",    "master.key"};
	DIR *d = opendir(dir);
	int n = 0;
	if (d == NULL)
		return -1;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		int ok = 0;
		for (size_t i = 0; i < sizeof known / sizeof *known; i++)
			ok |= strcmp(e->d_name, known[i]) == 0;
		if (allow != NULL) {
			const char *p = strstr(allow, e->d_name);
			size_t l = strlen(e->d_name);
			ok |=
			    p != NULL && (p == allow || p[-1] == ' ') && (p[l] == ' ' || p[l] == 0);
		}
		if (!ok && n++ == 0)
			snprintf(first, len, "%s", e->d_name);
	}
	closedir(d);
	return n;
}

#endif
