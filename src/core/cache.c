/*
 * A small cache of sealed rows for access(latest): the hot path skips the storage query while
 * the backend's generation token is unchanged. Values stay sealed here; each hit still
 * authenticates and decrypts. Bounded in entries and bytes: when full it is simply emptied.
 */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

core_cache *core_cache_new(void)
{
	return calloc(1, sizeof(core_cache));
}

static void clear(core_cache *c)
{
	for (size_t i = 0; i < CORE_CACHE_SLOTS; i++) {
		free(c->slots[i].name);
		free(c->slots[i].sealed);
	}
	memset(c, 0, sizeof *c);
}

void core_cache_free(core_cache *c)
{
	if (c != NULL) {
		clear(c);
		free(c);
	}
}

static core_cache_entry *find(core_cache *c, const char *name, size_t len)
{
	size_t i = (size_t)store_name_hash(name, len) & (CORE_CACHE_SLOTS - 1);
	for (;; i = (i + 1) & (CORE_CACHE_SLOTS - 1)) {
		core_cache_entry *e = &c->slots[i];
		/* Terminates: the table is never more than 3/4 full. */
		if (e->name == NULL || (e->name_len == len && memcmp(e->name, name, len) == 0))
			return e;
	}
}

/* Process-wide counts for coffer_cache_stats(). */
static uint64_t cache_hits, cache_misses;

const core_cache_entry *core_cache_get(core_cache *c, const char *name, size_t len, uint64_t gen)
{
	if (c == NULL)
		return NULL;
	core_cache_entry *e = find(c, name, len);
	return e->name != NULL && e->gen == gen ? e : NULL;
}

void core_cache_count(int hit)
{
	__atomic_fetch_add(hit ? &cache_hits : &cache_misses, 1, __ATOMIC_RELAXED);
}

COFFER_API void coffer_cache_stats(uint64_t *hits, uint64_t *misses)
{
	if (hits != NULL)
		*hits = __atomic_load_n(&cache_hits, __ATOMIC_RELAXED);
	if (misses != NULL)
		*misses = __atomic_load_n(&cache_misses, __ATOMIC_RELAXED);
}

void core_cache_put(core_cache *c, const char *name, size_t len, store_row *row)
{
	if (c == NULL || row->sealed_len > CORE_CACHE_MAX_BYTES / 8)
		return;
	if (c->entries >= CORE_CACHE_MAX_ENTRIES ||
	    c->bytes + row->sealed_len > CORE_CACHE_MAX_BYTES)
		clear(c);
	core_cache_entry *e = find(c, name, len);
	if (e->name == NULL) {
		e->name = malloc(len);
		if (e->name == NULL)
			return;
		memcpy(e->name, name, len);
		e->name_len = len;
		c->entries++;
	} else {
		c->bytes -= e->sealed_len;
		free(e->sealed);
	}
	e->gen = row->gen;
	e->version = row->version;
	e->key_id = row->key_id;
	e->sealed = row->sealed;
	e->sealed_len = row->sealed_len;
	c->bytes += row->sealed_len;
	row->sealed = NULL;
}
