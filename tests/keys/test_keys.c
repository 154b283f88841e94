/*
 * Key rotation and rekey across handles and processes (issue 14), on SQLite, or on PostgreSQL
 * with the argument "pg" (each case gets a fresh database from tests/pg/pg_server.sh).
 *
 *   test_keys [pg]             the deterministic cases (cmocka)
 *   test_keys [pg] race [SEED] two forked processes run every pair of key operations (add a
 *                              data key, rotate-key, rekey, re-encrypt, put, access) overlapped
 *                              at random points, many rounds; the seed is printed
 *
 * Master keys always come from key files in the test's folder, so the test knows which file
 * should open the store after each rekey.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "../testutil.h"
#include "core/internal.h"

#define STALE_MSG "master key of this store changed"

static int use_pg;
static char work[4096];     /* the test's folder: key files, SQLite stores */
static char location[4200]; /* the current case's store */
static int ncase;

/* ------------------------------------------------------------------------------------------ */
/* Stores and keys                                                                            */

/* A fresh store location: a new SQLite folder, or a new PostgreSQL database. */
static void fresh_store(const char *tag)
{
	ncase++;
	if (!use_pg) {
		snprintf(location, sizeof location, "%s/store-%s-%d", work, tag, ncase);
		return;
	}
	const char *script = getenv("COFFER_PG_SCRIPT"), *state = getenv("COFFER_PG_STATE");
	if (script == NULL || state == NULL) {
		fprintf(stderr, "COFFER_PG_SCRIPT / COFFER_PG_STATE not set: run through ctest\n");
		exit(1);
	}
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "'%s' newdb '%s' keys_%s_%d_%d", script, state, tag, ncase,
	         (int)getpid());
	FILE *p = popen(cmd, "r");
	if (p == NULL || fgets(location, sizeof location, p) == NULL) {
		fprintf(stderr, "cannot make a database: %s\n", cmd);
		exit(1);
	}
	pclose(p);
	location[strcspn(location, "\n")] = '\0';
}

static void key_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", work, name);
}

/* Open with the key file `name` (in the work folder); returns the code, *err the message. */
static int try_open(const char *name, coffer_store **out, char *err, size_t errlen)
{
	char kf[4300];
	key_path(kf, sizeof kf, name);
	coffer_options o = {.key_file = kf, .flags = COFFER_OPEN_NO_ENV};
	return coffer_open(out, location, &o, err, errlen);
}

static coffer_store *open_ok(const char *name)
{
	coffer_store *st = NULL;
	char err[512];
	int rc = try_open(name, &st, err, sizeof err);
	if (rc != COFFER_OK)
		fail_msg("open with %s: %s", name, err);
	return st;
}

static coffer_secret *ref(coffer_store *st, const char *name)
{
	coffer_secret *s = NULL;
	assert_int_equal(coffer_secret_ref(st, name, COFFER_PUT | COFFER_ACCESS, &s), COFFER_OK);
	return s;
}

static void put_str(coffer_store *st, const char *name, const char *value)
{
	coffer_secret *s = ref(st, name);
	int rc = coffer_put(s, value, strlen(value), NULL);
	if (rc != COFFER_OK)
		fail_msg("put %s: %s: %s", name, coffer_strerror(rc), coffer_errmsg(st));
	coffer_secret_free(s);
}

static int rekey_to(coffer_store *st, const char *name, char *err, size_t errlen)
{
	char kf[4300];
	key_path(kf, sizeof kf, name);
	coffer_options o = {.key_file = kf};
	return coffer_rotate_master_key(st, &o, err, errlen);
}

/* The key ids of a secret's versions, by version (index 0 unused). */
typedef struct key_ids {
	uint32_t id[4096];
	int state[4096];
	size_t n;
} key_ids;

static int collect_key(void *ctx, const coffer_version_info *vi)
{
	key_ids *k = ctx;
	unsigned long v = strtoul(vi->version, NULL, 10);
	if (v < 4096) {
		k->id[v] = vi->key_id;
		k->state[v] = vi->state;
		k->n = v > k->n ? v : k->n;
	}
	return 0;
}

static void versions_of(coffer_store *st, const char *name, key_ids *k)
{
	memset(k, 0, sizeof *k);
	coffer_secret *s = ref(st, name);
	assert_int_equal(coffer_list_versions(s, collect_key, k), COFFER_OK);
	coffer_secret_free(s);
}

/* Every enabled version of every secret opens (through a handle of its own). */
static int check_all_open(coffer_store *st, char *why, size_t len);

static void all_versions_open(coffer_store *st)
{
	char why[600];
	if (check_all_open(st, why, sizeof why) != 0)
		fail_msg("%s", why);
}

/* ------------------------------------------------------------------------------------------ */
/* The deterministic cases                                                                    */

/* Defect 1: a handle opened before another process's rekey must not add a data key sealed under
 * the old master key; it gets a clear error, and the store opens with the new key only. */
static void test_rotate_after_rekey(void **state)
{
	(void)state;
	fresh_store("stalerot");
	coffer_store *a = open_ok("k0"), *b = open_ok("k0");
	put_str(a, "s", "one");
	put_str(a, "s", "two");
	char err[512];
	assert_int_equal(rekey_to(b, "k1", err, sizeof err), COFFER_OK);
	uint32_t id = 0;
	int rc = coffer_rotate_data_key(a, &id);
	if (rc != COFFER_EKEY || strstr(coffer_errmsg(a), STALE_MSG) == NULL)
		fail_msg("rotate through a handle with the old master key after a rekey: want "
		         "COFFER_EKEY '%s', got %d (%s) '%s'",
		         STALE_MSG, rc, coffer_strerror(rc), coffer_errmsg(a));
	size_t moved = 0;
	rc = coffer_reencrypt(a, &moved); /* harmless either way: the data keys are unchanged */
	assert_true(rc == COFFER_OK || rc == COFFER_EKEY);
	coffer_store *c = NULL;
	assert_int_equal(try_open("k0", &c, err, sizeof err), COFFER_EKEY);
	c = open_ok("k1");
	all_versions_open(c);
	coffer_close(c);
	coffer_close(a);
	coffer_close(b);
}

/* Defect 2: a handle that only writes (a server's committer) seals with the newest data key
 * from the first put after another handle's rotation committed. */
static void test_put_after_rotation(void **state)
{
	(void)state;
	fresh_store("putrot");
	coffer_store *writer = open_ok("k0"), *rot = open_ok("k0");
	put_str(writer, "w", "before");
	uint32_t id = 0;
	assert_int_equal(coffer_rotate_data_key(rot, &id), COFFER_OK);
	assert_true(id > 1);
	put_str(writer, "w", "after");
	coffer_secret *s = ref(writer, "w");
	coffer_put_item items[2] = {{.secret = s, .value = "b1", .len = 2},
	                            {.secret = s, .value = "b2", .len = 2}};
	assert_int_equal(coffer_put_batch(writer, items, 2), COFFER_OK);
	coffer_secret_free(s);
	key_ids k;
	versions_of(rot, "w", &k);
	assert_int_equal(k.n, 4);
	if (k.id[2] != id || k.id[3] != id || k.id[4] != id)
		fail_msg("puts after the rotation to key %u were sealed with keys %u %u %u",
		         (unsigned)id, (unsigned)k.id[2], (unsigned)k.id[3], (unsigned)k.id[4]);
	assert_int_equal(k.id[1], 1);
	coffer_close(writer);
	coffer_close(rot);
}

/* Defect 3: a rotation landing while a re-encrypt pass runs must not make it run forever; every
 * row ends under the newest key of the moment its batch committed. */
#define RE_ROWS 600
static coffer_store *re_other;
static uint32_t re_newer;
static size_t re_resealed;

static int reencrypt_hook(int phase)
{
	if (phase == 0) {
		/* Another process rotates and seals one value with the newer key, in the secret
		 * that the pass visits first. */
		assert_int_equal(coffer_rotate_data_key(re_other, &re_newer), COFFER_OK);
		put_str(re_other, "a-first", "sealed with the newer key");
		return 0;
	}
	return ++re_resealed > 3 * (RE_ROWS + 2); /* the pass goes round and round: stop it */
}

static void test_reencrypt_bounded(void **state)
{
	(void)state;
	fresh_store("rebound");
	coffer_store *st = open_ok("k0");
	re_other = open_ok("k0");
	put_str(st, "a-first", "first");
	coffer_secret *s = ref(st, "b-many");
	coffer_put_item *items = calloc(RE_ROWS, sizeof *items);
	char vals[RE_ROWS][16];
	for (int i = 0; i < RE_ROWS; i++) {
		snprintf(vals[i], sizeof vals[i], "value-%d", i);
		items[i] = (coffer_put_item){.secret = s, .value = vals[i], .len = strlen(vals[i])};
	}
	assert_int_equal(coffer_put_batch(st, items, RE_ROWS), COFFER_OK);
	free(items);
	coffer_secret_free(s);
	uint32_t k2 = 0;
	assert_int_equal(coffer_rotate_data_key(st, &k2), COFFER_OK);
	re_resealed = 0;
	core_reencrypt_hook = reencrypt_hook;
	size_t moved = 0;
	int rc = coffer_reencrypt(st, &moved);
	core_reencrypt_hook = NULL;
	if (rc != COFFER_OK)
		fail_msg(
		    "re-encrypt with a rotation landing at its start: %s (%s); %zu rows re-sealed "
		    "in a store of %d",
		    coffer_strerror(rc), coffer_errmsg(st), re_resealed, RE_ROWS + 2);
	assert_true(re_newer > k2);
	assert_int_equal(moved, RE_ROWS + 1); /* a-first@1 and b-many@1..600 */
	key_ids k;
	versions_of(st, "b-many", &k);
	for (size_t v = 1; v <= RE_ROWS; v++)
		if (k.id[v] != re_newer)
			fail_msg("b-many@%zu ended under key %u, not the newest %u", v,
			         (unsigned)k.id[v], (unsigned)re_newer);
	versions_of(st, "a-first", &k);
	assert_int_equal(k.id[1], re_newer);
	assert_int_equal(k.id[2], re_newer);
	all_versions_open(st);
	coffer_close(re_other);
	coffer_close(st);
}

/* Defect 5: rotations keep working past 64 when re-encryption finishes (unused keys are pruned),
 * and a keyring full of keys still in use says so (not "invalid argument"). */
static void test_keyring_prune(void **state)
{
	(void)state;
	fresh_store("prune");
	coffer_store *st = open_ok("k0");
	char v[32];
	for (int i = 0; i < 70; i++) {
		snprintf(v, sizeof v, "value-%d", i);
		put_str(st, "p", v);
		uint32_t id = 0;
		size_t moved = 0;
		int rc = coffer_rotate_data_key(st, &id);
		if (rc != COFFER_OK)
			fail_msg("rotation %d: %s: %s", i + 1, coffer_strerror(rc),
			         coffer_errmsg(st));
		assert_int_equal(coffer_reencrypt(st, &moved), COFFER_OK);
	}
	coffer_close(st);
	st = open_ok("k0"); /* a fresh handle loads a keyring that fits */
	all_versions_open(st);
	/* Fill it: every key but the newest sealed some version. */
	int rc = COFFER_OK, rotations = 0;
	for (; rotations < 80 && rc == COFFER_OK; rotations++) {
		put_str(st, "q", "keeps its key in use");
		rc = coffer_rotate_data_key(st, NULL);
	}
	if (rc != COFFER_EBUSY || strstr(coffer_errmsg(st), "keyring is full") == NULL)
		fail_msg("full keyring: want COFFER_EBUSY 'keyring is full', got %d (%s) '%s'", rc,
		         coffer_strerror(rc), coffer_errmsg(st));
	assert_true(rotations <= 64);
	size_t moved = 0;
	assert_int_equal(coffer_reencrypt(st, &moved), COFFER_OK);
	assert_int_equal(coffer_rotate_data_key(st, NULL), COFFER_OK);
	all_versions_open(st);
	coffer_close(st);
}

static int exists(const char *name)
{
	char p[4300];
	struct stat sb;
	key_path(p, sizeof p, name);
	return lstat(p, &sb) == 0;
}

static void plant(const char *name)
{
	char p[4300];
	key_path(p, sizeof p, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "AAAA\n", 5), 5);
	close(fd);
}

/* Defect 8: what killed key operations leave (key file temporaries holding random keys) is
 * removed at the next open; only our own pattern, nothing else. */
static void test_tmp_debris(void **state)
{
	(void)state;
	fresh_store("debris");
	coffer_close(open_ok("kd"));
	plant("kd.tmpAbC123");
	plant("kd.new.tmpXyZ789");
	plant("kd.tmpAB");            /* not our pattern: too short */
	plant("kd.tmpAbC123x");       /* too long */
	plant("other.key.tmpQwE456"); /* another file's */
	coffer_close(open_ok("kd"));
	assert_false(exists("kd.tmpAbC123"));
	assert_false(exists("kd.new.tmpXyZ789"));
	assert_true(exists("kd.tmpAB"));
	assert_true(exists("kd.tmpAbC123x"));
	assert_true(exists("other.key.tmpQwE456"));
	assert_true(exists("kd"));
}

/* Defect 8: a rekey that fails leaves no new key file (nor temporaries) behind; the one that
 * lost the race says why. */
static void test_failed_rekey_clean(void **state)
{
	(void)state;
	fresh_store("failrekey");
	coffer_store *a = open_ok("kf0"), *b = open_ok("kf0");
	put_str(a, "x", "value");
	char err[512];
	assert_int_equal(rekey_to(b, "kf1", err, sizeof err), COFFER_OK);
	int rc = rekey_to(a, "kf2", err, sizeof err);
	assert_int_equal(rc, COFFER_EKEY);
	if (strstr(err, STALE_MSG) == NULL)
		fail_msg("stale rekey: want '%s', got '%s'", STALE_MSG, err);
	assert_false(exists("kf2"));
	DIR *d = opendir(work);
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, "kf2.tmp", 7) == 0)
			fail_msg("debris left: %s", e->d_name);
	closedir(d);
	coffer_close(a);
	coffer_close(b);
	coffer_store *c = open_ok("kf1");
	all_versions_open(c);
	coffer_close(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Checking a whole store                                                                     */

typedef struct open_walk {
	coffer_store *st;
	coffer_secret *sec;
	char *why;
	size_t len;
	int bad;
} open_walk;

/* A version listing holds the handle's lock: collect the ids, open them afterwards. */
typedef struct ver_list {
	char (*ids)[COFFER_VERSION_MAX];
	uint32_t *keys;
	size_t n, cap;
} ver_list;

static int list_version(void *ctx, const coffer_version_info *vi)
{
	ver_list *vl = ctx;
	if (vi->state != COFFER_STATE_ENABLED)
		return 0;
	if (vl->n == vl->cap) {
		vl->cap = vl->cap ? 2 * vl->cap : 64;
		vl->ids = realloc(vl->ids, vl->cap * sizeof *vl->ids);
		vl->keys = realloc(vl->keys, vl->cap * sizeof *vl->keys);
		if (vl->ids == NULL || vl->keys == NULL)
			abort();
	}
	snprintf(vl->ids[vl->n], COFFER_VERSION_MAX, "%s", vi->version);
	vl->keys[vl->n++] = vi->key_id;
	return 0;
}

static void open_versions(open_walk *w, const char *name)
{
	ver_list vl = {0};
	if (coffer_secret_ref(w->st, name, COFFER_ACCESS, &w->sec) != COFFER_OK ||
	    coffer_list_versions(w->sec, list_version, &vl) != COFFER_OK) {
		snprintf(w->why, w->len, "cannot list %s: %s", name, coffer_errmsg(w->st));
		w->bad = 1;
	}
	for (size_t i = 0; i < vl.n && !w->bad; i++) {
		coffer_value *v = NULL;
		int rc = coffer_access(w->sec, vl.ids[i], &v);
		coffer_value_free(v);
		if (rc != COFFER_OK) {
			snprintf(w->why, w->len, "%s@%s (key %u) does not open: %s: %s", name,
			         vl.ids[i], (unsigned)vl.keys[i], coffer_strerror(rc),
			         coffer_errmsg(w->st));
			w->bad = 1;
		}
	}
	coffer_secret_free(w->sec);
	w->sec = NULL;
	free(vl.ids);
	free(vl.keys);
}

typedef struct name_list {
	char **names;
	size_t n;
} name_list;

static int list_name(void *ctx, const char *name, size_t nversions)
{
	(void)nversions;
	name_list *nl = ctx;
	nl->names = realloc(nl->names, (nl->n + 1) * sizeof *nl->names);
	if (nl->names == NULL || (nl->names[nl->n] = strdup(name)) == NULL)
		abort();
	nl->n++;
	return 0;
}

static int check_all_open(coffer_store *st, char *why, size_t len)
{
	open_walk w = {st, NULL, why, len, 0};
	name_list nl = {0};
	int rc = coffer_list_secrets(st, list_name, &nl);
	if (rc != COFFER_OK) {
		snprintf(why, len, "listing failed: %s", coffer_errmsg(st));
		w.bad = 1;
	}
	for (size_t i = 0; i < nl.n; i++) {
		if (!w.bad)
			open_versions(&w, nl.names[i]);
		free(nl.names[i]);
	}
	free(nl.names);
	return w.bad;
}

/* ------------------------------------------------------------------------------------------ */
/* The race: two processes, every pair of key operations                                      */

enum { OP_PUT, OP_ACCESS, OP_ADD_KEY, OP_ROTATE_KEY, OP_REKEY, OP_REENCRYPT, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"put",        "access", "add-key",
                                               "rotate-key", "rekey",  "re-encrypt"};

#define RACE_PUTS 6

/* Shared by the parent and both children of a round (MAP_SHARED). */
typedef struct race_shm {
	uint32_t rotated; /* the newest data key id whose rotation has returned, 0 if none */
} race_shm;

/* What a child reports to the parent through its pipe. */
typedef struct race_report {
	int rekeyed; /* 1: its rekey committed */
	int nputs;
	uint64_t version[RACE_PUTS];
	uint32_t min_key[RACE_PUTS]; /* the key id the version must be sealed with, at least */
} race_report;

static race_shm *shm;

static uint32_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 11);
}

static void pause_us(uint64_t *seed, uint32_t max)
{
	struct timespec ts = {0, (long)(rnd(seed) % max) * 1000L};
	nanosleep(&ts, NULL);
}

static void child_fail(int child, const char *what, int rc, coffer_store *st)
{
	fprintf(stderr, "child %d: %s: %s: %s\n", child, what, coffer_strerror(rc),
	        st != NULL ? coffer_errmsg(st) : "");
	_exit(1);
}

/* A handle whose master key went stale (the other child's rekey committed) may be refused,
 * with the clear message; anything else must succeed. */
static void child_check(int child, const char *what, int rc, coffer_store *st)
{
	if (rc == COFFER_OK)
		return;
	if (rc == COFFER_EKEY && strstr(coffer_errmsg(st), STALE_MSG) != NULL)
		return;
	child_fail(child, what, rc, st);
}

static void child_puts(int child, int round, coffer_store *st, race_report *rep, int n,
                       uint64_t *seed)
{
	char name[64], val[64], ver[COFFER_VERSION_MAX];
	snprintf(name, sizeof name, "r%d-c%d", round, child);
	coffer_secret *s = NULL;
	if (coffer_secret_ref(st, name, COFFER_PUT, &s) != COFFER_OK)
		child_fail(child, "ref", COFFER_EMISUSE, st);
	for (int i = 0; i < n && rep->nputs < RACE_PUTS; i++) {
		uint32_t min = __atomic_load_n(&shm->rotated, __ATOMIC_SEQ_CST);
		snprintf(val, sizeof val, "round %d child %d put %d", round, child, rep->nputs);
		int rc = coffer_put(s, val, strlen(val), ver);
		child_check(child, "put", rc, st);
		if (rc == COFFER_OK) {
			rep->version[rep->nputs] = strtoull(ver, NULL, 10);
			rep->min_key[rep->nputs] = min;
			rep->nputs++;
		}
		pause_us(seed, 800);
	}
	coffer_secret_free(s);
}

static void child_access(int child, int round, coffer_store *st)
{
	char name[64];
	/* The other child's secret of the previous round, and this round's own. */
	for (int r = round - 1; r <= round; r++) {
		snprintf(name, sizeof name, "r%d-c%d", r, 1 - child);
		coffer_secret *s = NULL;
		coffer_value *v = NULL;
		if (coffer_secret_ref(st, name, COFFER_ACCESS, &s) != COFFER_OK)
			child_fail(child, "ref", COFFER_EMISUSE, st);
		int rc = coffer_access(s, "latest", &v);
		coffer_value_free(v);
		coffer_secret_free(s);
		if (rc != COFFER_ENOTFOUND)
			child_check(child, "access", rc, st);
	}
}

static void note_rotation(uint32_t id)
{
	uint32_t cur = __atomic_load_n(&shm->rotated, __ATOMIC_SEQ_CST);
	while (id > cur && !__atomic_compare_exchange_n(&shm->rotated, &cur, id, 0,
	                                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
}

static void child_op(int child, int round, int op, coffer_store *st, race_report *rep,
                     uint64_t *seed)
{
	uint32_t id = 0;
	size_t moved = 0;
	char err[512], kf[64];
	int rc = COFFER_OK;
	switch (op) {
	case OP_PUT:
		child_puts(child, round, st, rep, RACE_PUTS, seed);
		return;
	case OP_ACCESS:
		child_access(child, round, st);
		return;
	case OP_ADD_KEY:
		rc = coffer_rotate_data_key(st, &id);
		break;
	case OP_ROTATE_KEY: /* what `coffer rotate-key` does */
		rc = coffer_reencrypt(st, &moved);
		if (rc == COFFER_OK)
			rc = coffer_rotate_data_key(st, &id);
		if (rc == COFFER_OK)
			note_rotation(id);
		if (rc == COFFER_OK)
			rc = coffer_reencrypt(st, &moved);
		break;
	case OP_REKEY:
		snprintf(kf, sizeof kf, "key-%d-%d", round, child);
		rc = rekey_to(st, kf, err, sizeof err);
		if (rc != COFFER_OK && strstr(err, STALE_MSG) == NULL)
			child_fail(child, err, rc, NULL);
		rep->rekeyed = rc == COFFER_OK;
		return;
	case OP_REENCRYPT:
		rc = coffer_reencrypt(st, &moved);
		break;
	}
	if (rc == COFFER_OK && id != 0)
		note_rotation(id);
	child_check(child, op_names[op], rc, st);
}

/* One child: open with the current key, wait for the start, run a little traffic, the
 * operation, a little more traffic; report. */
static void child_main(int child, int round, int op, const char *keyname, int go_fd, int rep_fd,
                       uint64_t seed)
{
	coffer_store *st = NULL;
	char err[512];
	int rc = try_open(keyname, &st, err, sizeof err);
	if (rc != COFFER_OK) {
		fprintf(stderr, "child %d: open: %s\n", child, err);
		_exit(1);
	}
	char c;
	if (write(rep_fd, "r", 1) != 1 || read(go_fd, &c, 1) != 1)
		_exit(1);
	race_report rep = {0};
	child_puts(child, round, st, &rep, (int)(rnd(&seed) % 3), &seed);
	pause_us(&seed, 3000);
	child_op(child, round, op, st, &rep, &seed);
	child_puts(child, round, st, &rep, 2, &seed);
	if (write(rep_fd, &rep, sizeof rep) != (ssize_t)sizeof rep)
		_exit(1);
	coffer_close(st);
	_exit(0);
}

/* The parent's checks after a round: which key opens the store, and the children's puts. */
static int verify_round(int round, const char *cur, const char *old, const race_report rep[2])
{
	coffer_store *st = NULL;
	char err[512];
	if (strcmp(cur, old) != 0 && try_open(old, &st, err, sizeof err) != COFFER_EKEY) {
		fprintf(stderr, "round %d: the store still opens with the old key %s\n", round,
		        old);
		return 1;
	}
	coffer_close(st);
	st = NULL;
	if (try_open(cur, &st, err, sizeof err) != COFFER_OK) {
		fprintf(stderr, "round %d: the store does not open with %s: %s\n", round, cur, err);
		return 1;
	}
	int bad = 0;
	for (int c = 0; c < 2 && !bad; c++) {
		char name[64];
		snprintf(name, sizeof name, "r%d-c%d", round, c);
		key_ids *k = calloc(1, sizeof *k);
		coffer_secret *s = NULL;
		if (rep[c].nputs > 0 &&
		    (coffer_secret_ref(st, name, COFFER_ACCESS, &s) != COFFER_OK ||
		     coffer_list_versions(s, collect_key, k) != COFFER_OK))
			bad = fprintf(stderr, "round %d: cannot list %s\n", round, name) > 0;
		for (int i = 0; i < rep[c].nputs && !bad; i++) {
			uint64_t v = rep[c].version[i];
			char want[64], ver[COFFER_VERSION_MAX];
			snprintf(want, sizeof want, "round %d child %d put %d", round, c, i);
			snprintf(ver, sizeof ver, "%llu", (unsigned long long)v);
			coffer_value *val = NULL;
			int rc = coffer_access(s, ver, &val);
			size_t len = 0;
			const void *d = coffer_value_data(val, &len);
			if (rc != COFFER_OK || len != strlen(want) || memcmp(d, want, len) != 0)
				bad = fprintf(stderr, "round %d: %s@%s does not read back: %s\n",
				              round, name, ver, coffer_errmsg(st)) > 0;
			else if (v < 4096 && k->id[v] < rep[c].min_key[i])
				bad =
				    fprintf(stderr,
				            "round %d: %s@%s was put after data key %u was added, "
				            "but is sealed with key %u\n",
				            round, name, ver, (unsigned)rep[c].min_key[i],
				            (unsigned)k->id[v]) > 0;
			coffer_value_free(val);
		}
		coffer_secret_free(s);
		free(k);
	}
	coffer_close(st);
	return bad;
}

static int run_round(int round, int op0, int op1, char *cur, size_t curlen, uint64_t seed)
{
	int go[2], rp[2][2];
	pid_t pid[2];
	if (pipe(go) != 0 || pipe(rp[0]) != 0 || pipe(rp[1]) != 0)
		return 1;
	shm->rotated = 0;
	for (int c = 0; c < 2; c++) {
		pid[c] = fork();
		if (pid[c] == 0) {
			close(go[1]);
			child_main(c, round, c == 0 ? op0 : op1, cur, go[0], rp[c][1],
			           seed + 0x9e3779b97f4a7c15ull * (uint64_t)(c + 1));
		}
	}
	close(go[0]);
	race_report rep[2];
	memset(rep, 0, sizeof rep);
	int bad = 0;
	char c;
	for (int i = 0; i < 2; i++)
		bad |= read(rp[i][0], &c, 1) != 1; /* both opened: start them together */
	bad |= write(go[1], "gg", 2) != 2;
	for (int i = 0; i < 2; i++) {
		close(rp[i][1]);
		bad |= read(rp[i][0], &rep[i], sizeof rep[i]) != (ssize_t)sizeof rep[i];
		close(rp[i][0]);
	}
	close(go[1]);
	for (int i = 0; i < 2; i++) {
		int status = 0;
		waitpid(pid[i], &status, 0);
		bad |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	}
	if (bad) {
		fprintf(stderr, "round %d (%s | %s): a child failed\n", round, op_names[op0],
		        op_names[op1]);
		return 1;
	}
	char old[64];
	snprintf(old, sizeof old, "%s", cur);
	if (rep[0].rekeyed + rep[1].rekeyed > 1) {
		fprintf(stderr, "round %d: both rekeys committed\n", round);
		return 1;
	}
	for (int i = 0; i < 2; i++)
		if (rep[i].rekeyed)
			snprintf(cur, curlen, "key-%d-%d", round, i);
	if (verify_round(round, cur, old, rep) != 0) {
		fprintf(stderr, "round %d (%s | %s) failed\n", round, op_names[op0], op_names[op1]);
		return 1;
	}
	return 0;
}

static int race(uint64_t seed, int rounds)
{
	fprintf(stderr, "race: seed %llu, %d rounds on %s (rerun: test_keys %srace %llu)\n",
	        (unsigned long long)seed, rounds, use_pg ? "PostgreSQL" : "SQLite",
	        use_pg ? "pg " : "", (unsigned long long)seed);
	fresh_store("race");
	shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shm == MAP_FAILED)
		return 1;
	char cur[64] = "key-start";
	coffer_close(open_ok(cur));
	uint64_t s = seed | 1;
	for (int r = 0; r < rounds; r++) {
		int pair = r % (OP_COUNT * OP_COUNT);
		if (run_round(r, pair / OP_COUNT, pair % OP_COUNT, cur, sizeof cur, rnd(&s)) != 0) {
			fprintf(stderr, "race: FAILED (seed %llu)\n", (unsigned long long)seed);
			return 1;
		}
	}
	coffer_store *st = open_ok(cur);
	char why[600];
	int bad = check_all_open(st, why, sizeof why);
	if (bad)
		fprintf(stderr, "race: at the end, %s\n", why);
	coffer_close(st);
	fprintf(stderr, "race: %s\n", bad ? "FAILED" : "ok");
	return bad;
}

/* A rekey to a passphrase writes a fresh salt with the re-sealed keyring (on both backends): the
 * store then opens with the passphrase alone, the old key file no longer opens it, and a second
 * passphrase change works from that salt. */
static void test_rekey_to_passphrase(void **state)
{
	(void)state;
	fresh_store("passrekey");
	coffer_store *a = open_ok("kp0");
	put_str(a, "x", "value");
	char err[512];
	coffer_options shortp = {.passphrase = "too short"};
	assert_int_equal(coffer_rotate_master_key(a, &shortp, err, sizeof err), COFFER_EINVAL);
	coffer_options np = {.passphrase = "a passphrase long enough"};
	if (coffer_rotate_master_key(a, &np, err, sizeof err) != COFFER_OK)
		fail_msg("rekey to a passphrase: %s", err);
	coffer_close(a);
	coffer_store *b = NULL;
	assert_int_equal(try_open("kp0", &b, err, sizeof err), COFFER_EKEY);
	coffer_options po = {.passphrase = "a passphrase long enough", .flags = COFFER_OPEN_NO_ENV};
	if (coffer_open(&b, location, &po, err, sizeof err) != COFFER_OK)
		fail_msg("open with the new passphrase: %s", err);
	all_versions_open(b);
	coffer_options np2 = {.passphrase = "and then another passphrase"};
	if (coffer_rotate_master_key(b, &np2, err, sizeof err) != COFFER_OK)
		fail_msg("second passphrase change: %s", err);
	coffer_close(b);
	po.passphrase = "and then another passphrase";
	if (coffer_open(&b, location, &po, err, sizeof err) != COFFER_OK)
		fail_msg("open with the second passphrase: %s", err);
	all_versions_open(b);
	coffer_close(b);
}

int main(int argc, char **argv)
{
	int a = 1;
	if (a < argc && strcmp(argv[a], "pg") == 0) {
		use_pg = 1;
		a++;
	}
	test_tmpdir(work, sizeof work);
	int rc;
	if (a < argc && strcmp(argv[a], "race") == 0) {
		const char *env = getenv("COFFER_KEYS_SEED");
		uint64_t seed = a + 1 < argc  ? strtoull(argv[a + 1], NULL, 10)
		                : env != NULL ? strtoull(env, NULL, 10)
		                              : 14; /* fixed, so a run can be repeated */
		const char *n = getenv("COFFER_KEYS_ROUNDS");
		rc = race(seed, n != NULL ? (int)strtol(n, NULL, 10) : 2 * OP_COUNT * OP_COUNT);
	} else {
		const struct CMUnitTest tests[] = {
		    cmocka_unit_test(test_rotate_after_rekey),
		    cmocka_unit_test(test_put_after_rotation),
		    cmocka_unit_test(test_reencrypt_bounded),
		    cmocka_unit_test(test_keyring_prune),
		    cmocka_unit_test(test_tmp_debris),
		    cmocka_unit_test(test_failed_rekey_clean),
		    cmocka_unit_test(test_rekey_to_passphrase),
		};
		rc = cmocka_run_group_tests_name(use_pg ? "keys (PostgreSQL)" : "keys (SQLite)",
		                                 tests, NULL, NULL);
	}
	if (rc == 0)
		test_rmrf(work);
	return rc;
}
