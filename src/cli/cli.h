/*
 * cli.h -- the coffer CLI's command table, its one argument parser, and the "target" its
 * commands run against.
 *
 * Adding a command: one row in the table in table.c (name, arguments, help, options, flags)
 * and one handler `int cmd_x(cli *c)` returning the process exit code. Help, `coffer help
 * --json`, suggestions and shell completion all come from that row. A new option is one row
 * in cli_opts (and an opt_id). A command that reads or changes secrets does it through
 * c->tgt (cli_target_open()), never through a coffer_store of its own, so that it can run
 * against a server later: a new kind of operation is one more member of target_ops (for the
 * local target, one libcoffer call in main.c).
 *
 * Remote mode (remote.c): with --server (or COFFER_SERVER), cli_target_open() returns a target
 * whose ops speak to a running `coffer serve` through libcoffer_client, for the commands flagged
 * CMD_REMOTE; CMD_LOCAL ones are refused before they run (cli_remote_check()). A command flagged
 * CMD_REMOTE must therefore use only c->tgt->ops, never c->tgt->st (NULL there).
 */
#ifndef COFFER_CLI_H
#define COFFER_CLI_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "coffer.h"

/* Every option any command takes. An option's name and arity are the same everywhere. */
typedef enum opt_id {
	O_HELP,
	O_VERSION,
	O_STORE,
	O_KEY_FILE,
	O_MAX_VALUE,
	O_JSON,
	/* remote mode */
	O_SERVER,
	O_TOKEN_FILE,
	O_TOKEN,
	O_TLS,
	O_CA_FILE,
	O_FILE,
	O_TRIM,
	O_NEW_KEY_FILE,
	O_TO,
	O_TO_KEY_FILE,
	O_ENV,
	/* serve */
	O_LISTEN,
	O_ALLOW_UID,
	O_THREADS,
	O_POLICY,
	O_RECORD_POLICY,
	O_TOKENS,
	O_TLS_CERT,
	O_TLS_KEY,
	O_INSECURE,
	O_POLICY_WAIT,
	O_IDLE_TIMEOUT,
	O_HEADER_TIMEOUT,
	O_MAX_CONNS,
	O_METRICS,
	O_LOG_FORMAT,
	O_AUDIT,
	O_AUDIT_SYNC,
	O_QUIET,
	O_CONFIG,
	O_PRINT_CONFIG,
	/* the lifecycle (docs/lifecycle.md) */
	O_IF_VERSION,
	O_REQUEST_ID,
	O_DELETE_LABEL,
	O_RECOVERY_DAYS,
	O_FORCE,
	O_DESCRIPTION,
	O_TAG,
	O_MAX_VERSIONS,
	O_PREFIX,
	O_LIMIT,
	O_PAGE_TOKEN,
	O_SINCE,
	O_SECRET,
	O_COUNT
} opt_id;

typedef enum arg_kind {
	ARG_NONE, /* a flag */
	ARG_STR,
	ARG_FILE, /* a path: completed as a file name */
	ARG_UINT, /* a decimal number in [lo, hi] */
} arg_kind;

#define OPT_GLOBAL 0x1u /* accepted by every command, anywhere on the line */
#define OPT_MULTI  0x2u /* may be given more than once (each is kept) */
/* coffer.conf (serve --config): every option of serve's own is a key of its [serve] section
 * under its long name, but for those flagged OPT_NOCONF; of the global options, only those
 * flagged OPT_CONF are. */
#define OPT_CONF   0x4u
#define OPT_NOCONF 0x8u

typedef struct opt_def {
	opt_id id;
	const char *name; /* long name, without "--" */
	char short_name;  /* 0: none */
	arg_kind kind;
	const char *metavar;
	const char *help; /* may hold '\n' for further lines */
	unsigned flags;
	unsigned long lo, hi; /* ARG_UINT */
} opt_def;

typedef struct cli cli;

#define CMD_JSON   0x1u /* has a JSON form of its output */
#define CMD_STOP   0x2u /* the first argument ends the options (run: the rest is CMD ARGS) */
#define CMD_LOCAL  0x4u /* needs the store itself (never against a server) */
#define CMD_REMOTE 0x8u /* runs against a server through a target with --server (remote.c) */

typedef struct cmd_def {
	const char *name;
	const char *args;       /* usage after the name, e.g. "NAME [VALUE|-]" */
	const char *summary;    /* one line, for the command list */
	const char *details;    /* more text for `coffer help CMD`, or NULL */
	int min_args, max_args; /* max -1: any number */
	const opt_id *opts;     /* its own options, ending with O_COUNT */
	unsigned flags;         /* CMD_* */
	int (*run)(cli *c);
	const char *complete; /* what its first argument completes to: "commands", "shells", NULL */
} cmd_def;

extern const opt_def cli_opts[O_COUNT];
extern const cmd_def cli_cmds[];
extern const size_t cli_ncmds;

/* ---- the target: where a command's reads and writes go ---------------------------------- */

typedef struct target target;

typedef struct tgt_value {
	const unsigned char *data;
	size_t len;
	char version[COFFER_VERSION_MAX]; /* the real id ("latest" resolved) */
	void *priv;
} tgt_value;

typedef struct tgt_version {
	char version[COFFER_VERSION_MAX];
	int64_t created_unix_ms;
	int state;
	size_t size;
	uint32_t key_id;
} tgt_version;

typedef struct tgt_label {
	char label[64];
	char version[COFFER_VERSION_MAX];
} tgt_label;

typedef struct tgt_name {
	char *name;
	size_t nversions;
	int declared; /* no value yet: only declared by a service to coffer serve */
} tgt_name;

/* Every operation returns a coffer_rc; on failure errmsg() says why. Lists are malloc'd. */
typedef struct target_ops {
	int (*put)(target *t, const char *name, const void *val, size_t len,
	           char version[COFFER_VERSION_MAX]);
	int (*access)(target *t, const char *name, const char *version, tgt_value *out);
	void (*value_free)(target *t, tgt_value *v);
	int (*versions)(target *t, const char *name, tgt_version **out, size_t *n);
	int (*list)(target *t, tgt_name **out, size_t *n);
	int (*destroy)(target *t, const char *name, const char *version,
	               char version_out[COFFER_VERSION_MAX]);
	const char *(*errmsg)(target *t);
	void (*close)(target *t);
	/* The lifecycle (docs/lifecycle.md). A NULL op: the target cannot do it (the command says
	 * so). put_ex: put with check-and-set and/or a request id (opts as coffer_put_opts). */
	int (*put_ex)(target *t, const char *name, const void *val, size_t len,
	              const coffer_put_opts *opts, char version[COFFER_VERSION_MAX], int *replayed);
	/* enable: 1 enables, 0 disables */
	int (*set_state)(target *t, const char *name, const char *version, int enable,
	                 char version_out[COFFER_VERSION_MAX]);
	int (*label_set)(target *t, const char *name, const char *label, const char *version,
	                 char version_out[COFFER_VERSION_MAX]);
	int (*label_delete)(target *t, const char *name, const char *label);
	int (*labels)(target *t, const char *name, tgt_label **out, size_t *n);
	int (*del)(target *t, const char *name, unsigned recovery_days, int64_t *purge_at_ms);
	int (*restore)(target *t, const char *name);
	int (*describe)(target *t, const char *name, coffer_secret_info *out);
	/* description/tags: NULL leaves them; max_versions < 0 leaves it */
	int (*set_info)(target *t, const char *name, const char *description, const char *tags,
	                int64_t max_versions);
	int (*list_page)(target *t, const char *prefix, size_t limit, const char *token,
	                 tgt_name **out, size_t *n, char next_token[COFFER_PAGE_TOKEN_MAX]);
	int (*audit_list)(target *t, int64_t since_ms, const char *secret,
	                  int (*cb)(void *ctx, const coffer_audit_entry *e), void *ctx);
	int (*audit_verify)(target *t, uint64_t *entries, uint64_t *first_bad, char *err,
	                    size_t errlen);
} target_ops;

struct target {
	const target_ops *ops;
	coffer_store *st; /* the local store, or NULL for a remote target */
};

/* Growing arrays for the list operations of a target: {.size = sizeof(tgt_version)} with
 * cli_collect_version, {.size = sizeof(tgt_name)} with cli_collect_name (free: cli_names_free). */
typedef struct cli_vec {
	void *items;
	size_t n, cap, size;
} cli_vec;
int cli_collect_version(void *ctx, const coffer_version_info *vi);
int cli_collect_name(void *ctx, const char *name, size_t nversions);
void cli_names_free(tgt_name *ns, size_t n);

/* ---- the parsed command line ------------------------------------------------------------ */

typedef struct opt_seen {
	opt_id id;
	const char *val;
} opt_seen;

struct cli {
	const cmd_def *cmd;
	opt_seen *seen; /* every option given, in order */
	size_t nseen;
	unsigned long num[O_COUNT]; /* ARG_UINT values (the last given) */
	char **args;                /* the command's arguments */
	int nargs;
	int json;         /* --json or COFFER_FORMAT=json */
	json_t *messages; /* JSON mode: notes and warnings, reported in the result */
	target *tgt;
	const char *server; /* remote mode: the server's address (--server, COFFER_SERVER) */
	char *token;        /* remote mode: the bearer token (a copy, wiped when freed) */
	int is_help;        /* `coffer help` / --help / --version done */
};

/* The error names of the exit codes outside the error list (run's). */
#define CLI_ERR_CANNOT_EXEC "ECANNOTEXEC"
#define CLI_ERR_NO_CMD      "ENOCMD"

/* table.c */
int cli_parse(cli *c, int argc, char **argv); /* 0, or an exit code (help: -1 for 0) */
const char *cli_opt(const cli *c, opt_id id); /* the last value given, or NULL */
int cli_has(const cli *c, opt_id id);
size_t cli_opt_all(const cli *c, opt_id id, const char **out, size_t max);
int cli_usage_error(const cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_help_global(void);
void cli_help_cmd(const cmd_def *d);
json_t *cli_help_json(const cmd_def *d);
const cmd_def *cli_find_cmd(const char *name);
const char *cli_suggest_cmd(const char *name);
int cli_completion(const char *shell);
int cli_exit_code_of_errname(const char *name);
void cli_print_exit_codes(FILE *f);

/* main.c */
int cli_fail(cli *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void cli_note(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_emit(cli *c, json_t *j); /* print and free a JSON result (steals j) */
/* The local store's location: --store, COFFER_STORE, else ./.coffer. */
const char *cli_store_location(const cli *c);
/* Open the local store (create: init, put, serve); 0 or the exit code after saying why. */
int cli_open_local(cli *c, int create, coffer_store **out);
/* Open what the command runs against into c->tgt; 0 or the exit code after saying why. */
int cli_target_open(cli *c, int create);

/* remote.c */
/* Decide local or remote mode (c->server) and check the options against it; take the token.
 * 0, or the exit code after saying why. */
int cli_remote_check(cli *c);
/* Connect to c->server as a target; 0 or the exit code after saying why. */
int cli_remote_open(cli *c, target **out);
void cli_remote_done(cli *c);

/* handlers (cmds.c) */
int cmd_init(cli *c);
int cmd_put(cli *c);
int cmd_access(cli *c);
int cmd_versions(cli *c);
int cmd_list(cli *c);
int cmd_destroy(cli *c);
int cmd_policy(cli *c);
int cmd_run(cli *c);
int cmd_rotate_key(cli *c);
int cmd_rekey(cli *c);
int cmd_backup(cli *c);
int cmd_restore_backup(cli *c);
int cmd_copy(cli *c);
int cmd_serve(cli *c);

/* serve_conf.c: `coffer serve`'s settings from flags, environment, coffer.conf and defaults. */
#define SERVE_CONF_DEFAULT "/etc/coffer/coffer.conf"
int serve_conf_run(cli *c); /* resolve, then --print-config or coffer_serve() */
int cmd_help(cli *c);
int cmd_completion(cli *c);
/* the lifecycle (cmds_life.c) */
int cmd_disable(cli *c);
int cmd_enable(cli *c);
int cmd_label(cli *c);
int cmd_delete(cli *c);
int cmd_restore(cli *c);
int cmd_describe(cli *c);
int cmd_meta(cli *c);
int cmd_audit(cli *c);
/* cmds.c, for cmds_life.c */
const char *cli_split_ref(const char *ref, char name[COFFER_NAME_MAX + 2]);
void cli_format_time(int64_t ms, char *buf, size_t len, int iso);

#endif
