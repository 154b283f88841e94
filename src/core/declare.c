/*
 * declare.c -- declarations kept in the store (see coffer.h): validated here, stored by the
 * backend (store.h decl_add / decl_list).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#define DECL_SERVICE_MAX 63

static int service_ok(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;
	if (n == 0 || n > DECL_SERVICE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return 0;
	}
	return 1;
}

int coffer_declare(coffer_store *st, const coffer_declaration *d, size_t n)
{
	if (st == NULL || (d == NULL && n > 0))
		return COFFER_EMISUSE;
	if (n == 0)
		return COFFER_OK;
	for (size_t i = 0; i < n; i++) {
		if (!service_ok(d[i].service) || d[i].secret == NULL ||
		    coffer_name_check(d[i].secret, strlen(d[i].secret)) != COFFER_OK ||
		    (d[i].actions & ~(COFFER_DECL_PUT | COFFER_DECL_ACCESS)) != 0) {
			pthread_mutex_lock(&st->mu);
			core_set_err(st,
			             "a declaration has a bad service name, secret name or action");
			pthread_mutex_unlock(&st->mu);
			return COFFER_EINVAL;
		}
	}
	store_decl *items = calloc(n, sizeof(*items));
	if (items == NULL)
		return COFFER_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		items[i].service = d[i].service;
		items[i].secret = d[i].secret;
		items[i].actions = d[i].actions;
	}
	pthread_mutex_lock(&st->mu);
	int rc;
	if (st->ops->decl_add == NULL) {
		core_set_err(st, "this store keeps no declarations");
		rc = COFFER_EMISUSE;
	} else if ((rc = st->ops->decl_add(st->be, items, n)) < 0) {
		core_set_backend_err(st, rc);
	}
	pthread_mutex_unlock(&st->mu);
	free(items);
	return rc;
}

typedef struct decl_ctx {
	int (*cb)(void *ctx, const coffer_declaration *d);
	void *ctx;
} decl_ctx;

static int each_decl(void *ctx, const store_decl *sd)
{
	decl_ctx *c = ctx;
	coffer_declaration d = {sd->service, sd->secret, sd->actions, sd->declared_ms};
	return c->cb(c->ctx, &d);
}

int coffer_list_declarations(coffer_store *st, int (*cb)(void *ctx, const coffer_declaration *d),
                             void *ctx)
{
	if (st == NULL || cb == NULL)
		return COFFER_EMISUSE;
	decl_ctx c = {cb, ctx};
	pthread_mutex_lock(&st->mu);
	int rc;
	if (st->ops->decl_list == NULL) {
		core_set_err(st, "this store keeps no declarations");
		rc = COFFER_EMISUSE;
	} else if ((rc = st->ops->decl_list(st->be, each_decl, &c)) < 0) {
		core_set_backend_err(st, rc);
	}
	pthread_mutex_unlock(&st->mu);
	return rc;
}
