/* The table that maps URL schemes to storage backends: the one place a new backend is named. */
#include <string.h>

#include "store/store.h"

extern const store_ops sqlite_store_ops;
#ifdef COFFER_WITH_POSTGRES
extern const store_ops postgres_store_ops;
#endif

static const struct {
	const char *prefix; /* matched at the start of the location */
	const store_ops *ops;
	int strip; /* 1: hand the backend what follows the prefix; 0: the whole location */
} registry[] = {
    {"sqlite://", &sqlite_store_ops, 1},
    {"sqlite:", &sqlite_store_ops, 1},
#ifdef COFFER_WITH_POSTGRES
    {"postgres://", &postgres_store_ops, 0},
    {"postgresql://", &postgres_store_ops, 0},
#endif
};

const store_ops *store_lookup(const char *location, const char **rest)
{
	for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++) {
		size_t n = strlen(registry[i].prefix);
		if (strncmp(location, registry[i].prefix, n) == 0) {
			*rest = registry[i].strip ? location + n : location;
			return registry[i].ops;
		}
	}
	/* Any other "scheme://" is an error, not a directory named "scheme:". */
	if (strstr(location, "://") != NULL)
		return NULL;
	*rest = location;
	return &sqlite_store_ops;
}
