/*
 * I/O errors: for each operation (open, put, put_batch, access, versions, list, destroy,
 * rotate-key, reencrypt, rekey), each kind of call (read, write, sync, truncate, lock) and each
 * mode (one-shot, persistent), fail the Nth such call for N = 1, 2, ... until the operation
 * completes without reaching the fault. Each round starts from a copy of the same store:
 *   - the call returns OK or an error from the list (a crash, abort or leak fails the test:
 *     LeakSanitizer runs at exit in the sanitizer build);
 *   - a failed operation leaves the store's rows exactly as they were (fingerprint; a read
 *     changes nothing either way);
 *   - once the fault clears, every acknowledged value reads back, on the same handle and after a
 *     reopen, with the master key the store now names (the new one only after a rekey that
 *     returned OK), and no key material is left in files (a failed rekey removes its new key
 *     file).
 *   test_ioerr [OP]   only that operation
 *
 * Built a second time as test_nomem (FAULT_NOMEM): the same rounds with the Nth allocation
 * failing (failmalloc.h: libcoffer's own allocations and SQLite's), plus the gRPC request path
 * (the fuzz target's driver over the saved corpus: HTTP/2 framing, protobuf-c decoding with the
 * wiping allocator, replies), where a failure must be an error answer or a dropped connection.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "coffer.h"
#include "faultvfs.h"
#ifdef FAULT_NOMEM
#include "failmalloc.h"
#define NKINDS       1
#define KIND_NAME(k) "allocation"
#define ARM(k, n, p) failmalloc_arm(n, p)
#define CLEAR()      failmalloc_clear()
#define INJECTED()   failmalloc_injected()
#define FAULT_WORD   "allocation failures"
#else
#define NKINDS       FV_NOPS
#define KIND_NAME(k) faultvfs_op_name(k)
#define ARM(k, n, p) faultvfs_ioerr(k, n, p)
#define CLEAR()      faultvfs_clear()
#define INJECTED()   faultvfs_injected()
#define FAULT_WORD   "I/O errors"
#endif
#include "oracle.h"
#include "testutil.h"

#define SEED 77

enum op {
	OP_OPEN,
	OP_PUT,
	OP_BATCH,
	OP_ACCESS,
	OP_VERSIONS,
	OP_LIST,
	OP_DESTROY,
	OP_ROTATE,
	OP_REENCRYPT,
	OP_REKEY,
	OP_COUNT
};
static const char *const op_names[OP_COUNT] = {"open",      "put",  "put_batch", "access",
                                               "versions",  "list", "destroy",   "rotate-key",
                                               "reencrypt", "rekey"};
static const int op_writes[OP_COUNT] = {0, 1, 1, 0, 0, 0, 1, 1, 1, 1};
/* coffer_reencrypt() commits in transactions of bounded size (coffer.h: an interrupted pass can
 * simply be run again): a failure may leave the versions it moved so far, and nothing else. */
static const int op_one_txn[OP_COUNT] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 1};

/* What the template store holds: (secret, version, j). */
typedef struct known {
	const char *name;
	const char *version;
	uint64_t j;
	int gone; /* destroyed */
} known;
static known kn[16];
static int nkn;

static char base[4096], tmpl[4200], work[4200];
static long failures, rounds, injected_total, same_handle_stuck;

static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	char buf[65536];
	ssize_t n;
	if (in < 0 || out < 0)
		abort();
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n)
			abort();
	close(in);
	close(out);
}

static void restore(void)
{
	/* Without system(): a fork of a sanitizer process costs a tenth of a second. */
	DIR *d = opendir(work);
	struct dirent *e;
	while (d != NULL && (e = readdir(d)) != NULL) {
		char p[4600];
		snprintf(p, sizeof p, "%s/%s", work, e->d_name);
		if (e->d_name[0] != '.')
			unlink(p);
	}
	if (d != NULL)
		closedir(d);
	mkdir(work, 0700);
	static const char *const files[] = {"coffer.db", "coffer.gen"};
	for (int i = 0; i < 2; i++) {
		char a[4400], b[4400];
		snprintf(a, sizeof a, "%s/%s", tmpl, files[i]);
		snprintf(b, sizeof b, "%s/%s", work, files[i]);
		copy_file(a, b);
	}
}

static int open_store(coffer_store **st, const char *key_b64, const char *key_file)
{
	coffer_options o = {.master_key_b64 = key_b64,
	                    .key_file = key_file,
	                    .flags = COFFER_OPEN_NO_ENV | COFFER_OPEN_NO_CREATE};
	char err[256];
	return coffer_open(st, work, &o, err, sizeof err);
}

static void put_j(coffer_store *st, const char *name, uint64_t j, char ver[COFFER_VERSION_MAX])
{
	static unsigned char v[32768];
	coffer_secret *s = NULL;
	if (coffer_secret_ref(st, name, COFFER_PUT, &s) != COFFER_OK ||
	    coffer_put(s, v, oracle_value(SEED, j, v, sizeof v), ver) != COFFER_OK)
		abort();
	coffer_secret_free(s);
}

static void make_template(void)
{
	test_tmpdir(base, sizeof base);
	snprintf(tmpl, sizeof tmpl, "%s/tmpl", base);
	snprintf(work, sizeof work, "%s/work", base);
	coffer_options o = {.master_key_b64 = TEST_MASTER_KEY, .flags = COFFER_OPEN_NO_ENV};
	coffer_store *st = NULL;
	char err[256];
	if (coffer_open(&st, tmpl, &o, err, sizeof err) != COFFER_OK)
		abort();
	static const char *const names[] = {"io.a", "io.b", "io.a", "io.c", "io.b"};
	static char vers[8][COFFER_VERSION_MAX];
	for (int i = 0; i < 5; i++) {
		if (i == 3 && coffer_rotate_data_key(st, NULL) != COFFER_OK) /* two data keys */
			abort();
		/* j 16 is one of the large values (several pages). */
		uint64_t j = i == 1 ? 16 : (uint64_t)i + 1;
		put_j(st, names[i], j, vers[i]);
		kn[nkn++] = (known){names[i], vers[i], j, 0};
	}
	coffer_close(st);
}

static int check_known(coffer_store *st, int verbose)
{
	int bad = 0;
	for (int i = 0; i < nkn; i++) {
		int rc = 0;
		int ok = oracle_reads(st, kn[i].name, kn[i].version, SEED, kn[i].j, &rc);
		if (kn[i].gone ? rc != COFFER_ENOTFOUND : !ok) {
			if (verbose)
				fprintf(stderr, "    %s@%s: rc %d (%s)\n", kn[i].name,
				        kn[i].version, rc, coffer_errmsg(st));
			bad = 1;
		}
	}
	return bad;
}

static int in_list(int rc)
{
	return rc <= 0 && rc >= COFFER_EFULL;
}

static int count_cb(void *ctx, const char *name, size_t n)
{
	++*(int *)ctx;
	return 0;
}
static int vcount_cb(void *ctx, const coffer_version_info *i)
{
	++*(int *)ctx;
	return 0;
}

/* One round. Returns 1 when the operation completed without reaching the fault. */
static int round_(enum op op, enum faultvfs_op kind, long n, int persistent)
{
	restore();
	rounds++;
	int nkn0 = nkn;
	unsigned char f0[32], f1[32];
	if (oracle_fingerprint(work, 0, f0) != 0)
		abort();
	coffer_store *st = NULL;
	char newkey[4400];
	snprintf(newkey, sizeof newkey, "%s/new.key", work);
	if (op != OP_OPEN && open_store(&st, TEST_MASTER_KEY, NULL) != COFFER_OK)
		abort();
	char ver[COFFER_VERSION_MAX], err[256];
	int rc = 0, cnt = 0;
	coffer_secret *s = NULL;
	static char put_ver[4][COFFER_VERSION_MAX];
	ARM(kind, n, persistent);
	switch (op) {
	case OP_OPEN:
		rc = open_store(&st, TEST_MASTER_KEY, NULL);
		break;
	case OP_PUT: {
		unsigned char v[32768];
		rc = coffer_secret_ref(st, "io.a", COFFER_PUT, &s);
		if (rc == COFFER_OK)
			rc = coffer_put(s, v, oracle_value(SEED, 100, v, sizeof v), put_ver[0]);
		if (rc == COFFER_OK)
			kn[nkn++] = (known){"io.a", put_ver[0], 100, 0};
		break;
	}
	case OP_BATCH: {
		static unsigned char v[3][32768];
		static const char *const names[3] = {"io.a", "io.new", "io.a"};
		coffer_secret *ss[3] = {0};
		coffer_put_item it[3];
		for (int i = 0; i < 3 && rc == COFFER_OK; i++) {
			rc = coffer_secret_ref(st, names[i], COFFER_PUT, &ss[i]);
			it[i] = (coffer_put_item){
			    .secret = ss[i],
			    .value = v[i],
			    .len = oracle_value(SEED, 200 + (uint64_t)i, v[i], sizeof v[i])};
		}
		if (rc == COFFER_OK)
			rc = coffer_put_batch(st, it, 3);
		for (int i = 0; i < 3; i++) {
			if (rc == COFFER_OK) {
				if (it[i].rc != COFFER_OK)
					abort();
				memcpy(put_ver[i], it[i].version, COFFER_VERSION_MAX);
				kn[nkn++] = (known){names[i], put_ver[i], 200 + (uint64_t)i, 0};
			}
			coffer_secret_free(ss[i]);
		}
		break;
	}
	case OP_ACCESS: {
		int ok = oracle_reads(st, "io.b", "latest", SEED, 5, &rc);
		if (rc == COFFER_OK && !ok) {
			fprintf(stderr, "    access returned a wrong value\n");
			rc = 1; /* not in the list: fails below */
		}
		break;
	}
	case OP_VERSIONS:
		rc = coffer_secret_ref(st, "io.a", COFFER_ACCESS, &s);
		if (rc == COFFER_OK)
			rc = coffer_list_versions(s, vcount_cb, &cnt);
		if (rc == COFFER_OK && cnt != 2)
			rc = 1;
		break;
	case OP_LIST:
		rc = coffer_list_secrets(st, count_cb, &cnt);
		if (rc == COFFER_OK && cnt != 3)
			rc = 1;
		break;
	case OP_DESTROY:
		rc = coffer_secret_ref(st, "io.a", COFFER_PUT, &s);
		if (rc == COFFER_OK)
			rc = coffer_destroy(s, "1", ver);
		if (rc == COFFER_OK)
			kn[0].gone = 1;
		break;
	case OP_ROTATE:
		rc = coffer_rotate_data_key(st, NULL);
		break;
	case OP_REENCRYPT: {
		size_t moved = 0;
		rc = coffer_reencrypt(st, &moved);
		break;
	}
	case OP_REKEY: {
		coffer_options nk = {.key_file = newkey};
		rc = coffer_rotate_master_key(st, &nk, err, sizeof err);
		break;
	}
	default:
		abort();
	}
	long hit = INJECTED();
	CLEAR();
	coffer_secret_free(s);
	injected_total += hit;
	int bad = 0;
	/* The rows as committed, read by another connection while the handle is still open. */
	if (oracle_fingerprint(work, 0, f1) != 0) {
		fprintf(stderr, "    cannot fingerprint the store\n");
		bad = 1;
	} else if (((rc != COFFER_OK && op_one_txn[op]) || !op_writes[op]) &&
	           memcmp(f0, f1, 32) != 0) {
		fprintf(stderr, "    the store changed (rc %d)\n", rc);
		bad = 1;
	}
	if (st != NULL && rc != COFFER_OK && op_writes[op]) {
		/* ... and can write again */
		coffer_secret *w = NULL;
		int wrc = coffer_secret_ref(st, "io.after", COFFER_PUT, &w);
		if (wrc == COFFER_OK)
			wrc = coffer_put(w, "x", 1, NULL);
		coffer_secret_free(w);
		if (wrc != COFFER_OK) {
			fprintf(stderr, "    the same handle cannot put after the fault: %d (%s)\n",
			        wrc, coffer_errmsg(st));
			bad = 1;
		}
	}
	if (!in_list(rc)) {
		fprintf(stderr, "    returned %d\n", rc);
		bad = 1;
	}
	/* After the fault: the same handle still reads everything acknowledged. */
	if (st != NULL && check_known(st, 1)) {
		/* e.g. a ROLLBACK that could not run left the transaction open: the handle read its
		 * own half-done put (a false integrity error) and refused every later write. */
		same_handle_stuck++;
		fprintf(stderr, "    the same handle does not read acknowledged data back\n");
		bad = 1;
	}
	coffer_close(st);
	st = NULL;
	/* The key the store names: the new one only after a rekey that succeeded. */
	int rekeyed = op == OP_REKEY && rc == COFFER_OK;
	char stray[256];
	if (oracle_stray_files(work, rekeyed ? "new.key" : NULL, stray, sizeof stray) != 0) {
		fprintf(stderr, "    stray file %s\n", stray);
		bad = 1;
	}
	int orc = rekeyed ? open_store(&st, NULL, newkey) : open_store(&st, TEST_MASTER_KEY, NULL);
	if (orc != COFFER_OK) {
		fprintf(stderr, "    reopen with the store's key: %d\n", orc);
		bad = 1;
	} else {
		if (check_known(st, 1)) {
			fprintf(stderr, "    acknowledged data does not read back\n");
			bad = 1;
		}
		coffer_close(st);
		/* ... and only with that key. */
		if (rekeyed ? open_store(&st, TEST_MASTER_KEY, NULL) != COFFER_EKEY
		            : (access(newkey, F_OK) == 0 &&
		               open_store(&st, NULL, newkey) != COFFER_EKEY)) {
			fprintf(stderr, "    the store opens with the other master key\n");
			bad = 1;
		}
	}
	if (bad) {
		failures++;
		fprintf(stderr, "FAIL %s, %s failing at call %ld (%s), rc %d\n", op_names[op],
		        KIND_NAME(kind), n, persistent ? "persistent" : "one-shot", rc);
	}
	/* The template's own list, as it was. */
	nkn = nkn0;
	kn[0].gone = 0;
	return rc == COFFER_OK && hit == 0;
}

/* N = 1, 2, ... 64, then every stride'th from a random start (printed; stride 1, every N, with
 * COFFER_SOAK=1 or FAULT_STRIDE=1): the allocation loops over open alone are ~1,800 calls. */
static long stride = 1, offset;
static long next_n(long n)
{
	if (n < 64 || stride == 1)
		return n + 1;
	return n == 64 ? 64 + 1 + offset : n + stride;
}

#ifdef FAULT_NOMEM
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The gRPC request path: saved fuzz inputs (a client's bytes after the preface), each with the
 * Nth allocation failing, N = 1.. until one runs through without reaching it. */
static void grpc_rounds(const char *only)
{
	const char *dir = FAULT_GRPC_CORPUS;
	DIR *d = opendir(dir);
	if (d == NULL) {
		fprintf(stderr, "no corpus at %s\n", dir);
		failures++;
		return;
	}
	char *names[1024];
	int nn = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && nn < 1024)
		if (e->d_name[0] != '.')
			names[nn++] = strdup(e->d_name);
	closedir(d);
	qsort(names, (size_t)nn, sizeof *names, by_name);
	long r = 0;
	int used = 0;
	static uint8_t buf[16384];
	for (int i = 0; i < nn; i++) {
		char path[4400];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		FILE *f = fopen(path, "rb");
		size_t len = f != NULL ? fread(buf, 1, sizeof buf, f) : 0;
		if (f != NULL)
			fclose(f);
		/* Inputs of some size (whole requests), 12 of them, or the one named. */
		if (only != NULL ? strcmp(only, names[i]) != 0
		                 : (len < 200 || len > 4000 || used >= 12))
			continue;
		used++;
		for (int persistent = 0; persistent < 2; persistent++)
			for (long n = 1; n < 20000; n = next_n(n)) {
				r++;
				failmalloc_arm(n, persistent);
				LLVMFuzzerTestOneInput(buf, len);
				long hit = failmalloc_injected();
				failmalloc_clear();
				injected_total += hit;
				if (hit == 0)
					break;
			}
	}
	for (int i = 0; i < nn; i++)
		free(names[i]);
	printf("%-10s %5ld rounds over %d saved requests\n", "grpc", r, used);
	rounds += r;
}
#endif

int main(int argc, char **argv)
{
#ifdef FAULT_NOMEM
	if (failmalloc_install() != 0)
		return 1;
#endif
	if (faultvfs_register() != SQLITE_OK)
		return 1;
#ifdef FAULT_NOMEM
	stride = 7;
#endif
	const char *soak = getenv("COFFER_SOAK");
	if (soak != NULL && strcmp(soak, "1") == 0)
		stride = 1;
	if (getenv("FAULT_STRIDE") != NULL)
		stride = atol(getenv("FAULT_STRIDE"));
	if (stride < 1)
		stride = 1;
	offset = getenv("FAULT_SEED") != NULL ? atol(getenv("FAULT_SEED")) % stride
	                                      : (long)(time(NULL) % stride);
	printf("every N up to 64, then every %ld from %ld (FAULT_STRIDE=%ld FAULT_SEED=%ld)\n",
	       stride, 65 + offset, stride, offset);
	make_template();
	long per_op[OP_COUNT] = {0};
	for (int op = 0; op < OP_COUNT; op++) {
		if (argc > 1 && strcmp(argv[1], op_names[op]) != 0)
			continue;
		for (int kind = 0; kind < NKINDS; kind++)
			for (int persistent = 0; persistent < 2; persistent++)
				for (long n = 1; n < 20000; n = next_n(n)) {
					per_op[op]++;
					if (round_((enum op)op, (enum faultvfs_op)kind, n,
					           persistent))
						break;
				}
	}
	for (int op = 0; op < OP_COUNT; op++)
		if (per_op[op] > 0)
			printf("%-10s %5ld rounds\n", op_names[op], per_op[op]);
#ifdef FAULT_NOMEM
	if (argc <= 1 || strcmp(argv[1], "grpc") == 0)
		grpc_rounds(argc > 2 ? argv[2] : NULL);
#endif
	printf(FAULT_WORD ": %ld rounds, %ld errors injected, %ld failures (the same handle not "
	                  "reading acknowledged data back: %ld)\n",
	       rounds, injected_total, failures, same_handle_stuck);
	if (failures == 0)
		test_rmrf(base);
	return failures != 0;
}
