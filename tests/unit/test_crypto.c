/* Unit tests of src/crypto: sealing binds each value to its place; any change fails opaquely. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sodium.h>
#include <sys/stat.h>

#include "../testutil.h"
#include "crypto/crypto.h"

static const uint8_t store_a[16] = "store-aaaaaaaaaa";
static const uint8_t store_b[16] = "store-bbbbbbbbbb";

static crypto_key fixed_key(unsigned char fill)
{
	crypto_key k = {0};
	assert_int_equal(crypto_key_new(&k), COFFER_OK);
	memset(k.k, fill, CRYPTO_KEY_LEN);
	return k;
}

static void test_roundtrip_and_binding(void **state)
{
	crypto_key k = fixed_key(7), other = fixed_key(8);
	crypto_place pl = {store_a, 1, 42, "db.password", 11};
	const char pt[] = "bleak_dearest_hanged_reigns";
	uint8_t *sealed = NULL;
	size_t len = 0, outlen = 0;
	assert_int_equal(crypto_seal_value(&k, &pl, pt, sizeof pt, &sealed, &len), COFFER_OK);
	assert_int_equal(len, sizeof pt + CRYPTO_OVERHEAD);
	assert_null(memmem(sealed, len, "bleak", 5));
	char out[64];
	assert_int_equal(crypto_open_value(&k, &pl, sealed, len, out, &outlen), COFFER_OK);
	assert_int_equal(outlen, sizeof pt);
	assert_memory_equal(out, pt, sizeof pt);

	/* Each part of the place is bound: change any one and the value does not open. */
	crypto_place moved[] = {
	    {store_b, 1, 42, "db.password", 11},  {store_a, 2, 42, "db.password", 11},
	    {store_a, 1, 43, "db.password", 11},  {store_a, 1, 42, "db.passwore", 11},
	    {store_a, 1, 42, "db.password2", 12},
	};
	for (size_t i = 0; i < sizeof moved / sizeof moved[0]; i++) {
		memset(out, 'x', sizeof out);
		assert_int_equal(crypto_open_value(&k, &moved[i], sealed, len, out, &outlen),
		                 COFFER_EINTEGRITY);
		for (size_t j = 0; j < sizeof pt; j++)
			assert_int_equal(out[j], 0); /* partial plaintext wiped */
	}
	assert_int_equal(crypto_open_value(&other, &pl, sealed, len, out, &outlen),
	                 COFFER_EINTEGRITY);
	/* Every single flipped bit of every byte fails. */
	for (size_t i = 0; i < len; i++)
		for (int b = 0; b < 8; b++) {
			sealed[i] ^= (uint8_t)(1u << b);
			assert_int_equal(crypto_open_value(&k, &pl, sealed, len, out, &outlen),
			                 COFFER_EINTEGRITY);
			sealed[i] ^= (uint8_t)(1u << b);
		}
	/* Truncated blobs fail. */
	for (size_t n = 0; n < len; n++)
		assert_int_equal(crypto_open_value(&k, &pl, sealed, n, out, &outlen),
		                 COFFER_EINTEGRITY);
	free(sealed);
	crypto_key_free(&k);
	crypto_key_free(&other);
}

static void test_nonces_differ(void **state)
{
	crypto_key k = fixed_key(9);
	crypto_place pl = {store_a, 1, 1, "a", 1};
	uint8_t *s1, *s2;
	size_t l1, l2;
	assert_int_equal(crypto_seal_value(&k, &pl, "same", 4, &s1, &l1), COFFER_OK);
	assert_int_equal(crypto_seal_value(&k, &pl, "same", 4, &s2, &l2), COFFER_OK);
	assert_memory_not_equal(s1, s2, l1); /* random nonces: equal values do not look equal */
	free(s1);
	free(s2);
	crypto_key_free(&k);
}

static void test_keyring_sealing(void **state)
{
	crypto_key master = fixed_key(1), wrong = fixed_key(2), dk = fixed_key(3), out = {0};
	uint8_t sealed[CRYPTO_SEALED_KEY_LEN];
	assert_int_equal(crypto_seal_key(&master, store_a, 5, &dk, sealed), COFFER_OK);
	assert_int_equal(crypto_open_key(&master, store_a, 5, sealed, sizeof sealed, &out),
	                 COFFER_OK);
	assert_memory_equal(out.k, dk.k, CRYPTO_KEY_LEN);
	crypto_key_free(&out);
	assert_int_equal(crypto_open_key(&wrong, store_a, 5, sealed, sizeof sealed, &out),
	                 COFFER_EINTEGRITY);
	assert_null(out.k);
	assert_int_equal(crypto_open_key(&master, store_b, 5, sealed, sizeof sealed, &out),
	                 COFFER_EINTEGRITY);
	assert_int_equal(crypto_open_key(&master, store_a, 6, sealed, sizeof sealed, &out),
	                 COFFER_EINTEGRITY);
	assert_int_equal(crypto_open_key(&master, store_a, 5, sealed, sizeof sealed - 1, &out),
	                 COFFER_EINTEGRITY);
	crypto_key_free(&master);
	crypto_key_free(&wrong);
	crypto_key_free(&dk);
}

/* Data keys are sealed in the form that says "the store has a metadata key"; the older form
 * still opens (and says so); the metadata key's sealed form is never a data key's, either way. */
static void test_key_formats(void **state)
{
	crypto_key master = fixed_key(1), dk = fixed_key(3), mk = fixed_key(4), out = {0};
	uint8_t v1[CRYPTO_SEALED_KEY_LEN], v2[CRYPTO_SEALED_KEY_LEN], meta[CRYPTO_SEALED_KEY_LEN];
	int fmt = 0;
	assert_int_equal(crypto_seal_key(&master, store_a, 5, &dk, v2), COFFER_OK);
	assert_int_equal(crypto_seal_key_fmt(&master, store_a, 5, &dk, CRYPTO_KEYRING_V1, v1),
	                 COFFER_OK);
	assert_int_equal(crypto_open_key_fmt(&master, store_a, 5, v2, sizeof v2, &out, &fmt),
	                 COFFER_OK);
	assert_int_equal(fmt, CRYPTO_KEYRING_V2);
	crypto_key_free(&out);
	assert_int_equal(crypto_open_key_fmt(&master, store_a, 5, v1, sizeof v1, &out, &fmt),
	                 COFFER_OK);
	assert_int_equal(fmt, CRYPTO_KEYRING_V1);
	assert_memory_equal(out.k, dk.k, CRYPTO_KEY_LEN);
	crypto_key_free(&out);
	assert_int_equal(crypto_seal_meta_key(&master, store_a, &mk, meta), COFFER_OK);
	assert_int_equal(crypto_open_meta_key(&master, store_a, meta, sizeof meta, &out),
	                 COFFER_OK);
	assert_memory_equal(out.k, mk.k, CRYPTO_KEY_LEN);
	crypto_key_free(&out);
	assert_int_equal(crypto_open_meta_key(&master, store_b, meta, sizeof meta, &out),
	                 COFFER_EINTEGRITY);
	assert_int_equal(crypto_open_meta_key(&master, store_a, v2, sizeof v2, &out),
	                 COFFER_EINTEGRITY);
	assert_int_equal(crypto_open_meta_key(&master, store_a, v1, sizeof v1, &out),
	                 COFFER_EINTEGRITY);
	for (uint32_t id = 0; id < 8; id++)
		assert_int_equal(crypto_open_key(&master, store_a, id, meta, sizeof meta, &out),
		                 COFFER_EINTEGRITY);
	assert_null(out.k);
	crypto_key_free(&master);
	crypto_key_free(&dk);
	crypto_key_free(&mk);
}

/* A metadata MAC: any flipped bit of the message or the tag, or another key, fails. */
static void test_mac(void **state)
{
	crypto_key k = fixed_key(5), other = fixed_key(6);
	uint8_t msg[40], tag[CRYPTO_MAC_LEN];
	for (size_t i = 0; i < sizeof msg; i++)
		msg[i] = (uint8_t)(i * 7);
	crypto_mac(&k, msg, sizeof msg, tag);
	assert_int_equal(crypto_mac_verify(&k, msg, sizeof msg, tag), COFFER_OK);
	assert_int_equal(crypto_mac_verify(&other, msg, sizeof msg, tag), COFFER_EINTEGRITY);
	assert_int_equal(crypto_mac_verify(&k, msg, sizeof msg - 1, tag), COFFER_EINTEGRITY);
	for (size_t bit = 0; bit < 8 * sizeof msg; bit++) {
		msg[bit / 8] ^= (uint8_t)(1u << bit % 8);
		assert_int_equal(crypto_mac_verify(&k, msg, sizeof msg, tag), COFFER_EINTEGRITY);
		msg[bit / 8] ^= (uint8_t)(1u << bit % 8);
	}
	for (size_t bit = 0; bit < 8 * sizeof tag; bit++) {
		tag[bit / 8] ^= (uint8_t)(1u << bit % 8);
		assert_int_equal(crypto_mac_verify(&k, msg, sizeof msg, tag), COFFER_EINTEGRITY);
		tag[bit / 8] ^= (uint8_t)(1u << bit % 8);
	}
	crypto_key_free(&k);
	crypto_key_free(&other);
}

static void test_base64_keys(void **state)
{
	crypto_key k = {0};
	assert_int_equal(
	    crypto_key_from_base64(&k, TEST_MASTER_KEY "\n", strlen(TEST_MASTER_KEY) + 1),
	    COFFER_OK);
	for (int i = 0; i < 32; i++)
		assert_int_equal(k.k[i], i + 1);
	char b64[64];
	crypto_key_to_base64(&k, b64, sizeof b64);
	assert_string_equal(b64, TEST_MASTER_KEY);
	crypto_key_free(&k);
	static const char *const bad[] = {"", "AQID", "!!!!", TEST_MASTER_KEY "AA",
	                                  "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(crypto_key_from_base64(&k, bad[i], strlen(bad[i])), COFFER_EKEY);
		assert_null(k.k);
	}
}

static void test_key_files(void **state)
{
	char dir[4096], path[4200], link_path[4200], err[512];
	test_tmpdir(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/master.key", dir);
	crypto_key k = {0}, k2 = {0};
	int created = 0;
	assert_int_equal(crypto_key_file_read(path, &k, err, sizeof err), COFFER_ENOTFOUND);
	assert_int_equal(crypto_key_file_create(path, &k, &created, err, sizeof err), COFFER_OK);
	assert_int_equal(created, 1);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* A second create finds the first key instead of replacing it. */
	assert_int_equal(crypto_key_file_create(path, &k2, &created, err, sizeof err), COFFER_OK);
	assert_int_equal(created, 0);
	assert_memory_equal(k.k, k2.k, CRYPTO_KEY_LEN);
	crypto_key_free(&k2);
	/* Group/world access is refused with a message that says how to fix it. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(crypto_key_file_read(path, &k2, err, sizeof err), COFFER_EKEY);
	assert_non_null(strstr(err, "mode 0644"));
	assert_non_null(strstr(err, "chmod 600"));
	assert_null(k2.k);
	assert_int_equal(chmod(path, 0600), 0);
	/* A symlink is refused. */
	snprintf(link_path, sizeof link_path, "%s/link.key", dir);
	assert_int_equal(symlink(path, link_path), 0);
	assert_int_equal(crypto_key_file_read(link_path, &k2, err, sizeof err), COFFER_EKEY);
	assert_non_null(strstr(err, "symbolic link"));
	/* Garbage content is refused. */
	FILE *f = fopen(path, "w");
	fputs("not a key\n", f);
	fclose(f);
	assert_int_equal(crypto_key_file_read(path, &k2, err, sizeof err), COFFER_EKEY);
	assert_non_null(strstr(err, "does not hold"));
	crypto_key_free(&k);
	test_rmrf(dir);
}

static void test_passphrase(void **state)
{
	uint8_t salt[16] = "0123456789abcdef";
	crypto_key a = {0}, b = {0}, c = {0};
	uint64_t ops, mem;
	crypto_passphrase_defaults(&ops, &mem);
	assert_int_equal(crypto_key_from_passphrase(&a, "correct horse", 13, salt, ops, mem),
	                 COFFER_OK);
	assert_int_equal(crypto_key_from_passphrase(&b, "correct horse", 13, salt, ops, mem),
	                 COFFER_OK);
	assert_int_equal(crypto_key_from_passphrase(&c, "correct hors3", 13, salt, ops, mem),
	                 COFFER_OK);
	assert_memory_equal(a.k, b.k, CRYPTO_KEY_LEN);
	assert_memory_not_equal(a.k, c.k, CRYPTO_KEY_LEN);
	/* Hostile limits from a tampered header are refused, not obeyed. */
	crypto_key d = {0};
	assert_int_equal(crypto_key_from_passphrase(&d, "x", 1, salt, 1000000, mem),
	                 COFFER_ECORRUPT);
	assert_int_equal(crypto_key_from_passphrase(&d, "x", 1, salt, ops, (uint64_t)1 << 40),
	                 COFFER_ECORRUPT);
	crypto_key_free(&a);
	crypto_key_free(&b);
	crypto_key_free(&c);
}

int main(void)
{
	assert_int_equal(crypto_init(), COFFER_OK);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_and_binding),
	    cmocka_unit_test(test_nonces_differ),
	    cmocka_unit_test(test_keyring_sealing),
	    cmocka_unit_test(test_key_formats),
	    cmocka_unit_test(test_mac),
	    cmocka_unit_test(test_base64_keys),
	    cmocka_unit_test(test_key_files),
	    cmocka_unit_test(test_passphrase),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
