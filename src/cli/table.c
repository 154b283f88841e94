/*
 * table.c -- every command and option of the coffer CLI in one table, the one parser that reads
 * them, and what is generated from them: help, `coffer help --json`, "did you mean", the exit
 * code table and shell completion.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#ifndef COFFER_WITH_SERVER
#define SERVE_HIDDEN 1
#else
#define SERVE_HIDDEN 0
#endif

const opt_def cli_opts[O_COUNT] = {
    [O_HELP] = {O_HELP, "help", 'h', ARG_NONE, NULL,
                "this help (or a command's: coffer CMD --help)", OPT_GLOBAL, 0, 0},
    [O_VERSION] = {O_VERSION, "version", 'v', ARG_NONE, NULL, "print coffer's version", OPT_GLOBAL,
                   0, 0},
    [O_STORE] = {O_STORE, "store", 's', ARG_STR, "DIR|URL",
                 "the store: a folder (SQLite; default ./.coffer, env COFFER_STORE)\n"
                 "or postgres://user@host/db",
                 OPT_GLOBAL | OPT_CONF, 0, 0},
    [O_KEY_FILE] = {O_KEY_FILE, "key-file", 'k', ARG_FILE, "FILE",
                    "master key file (env COFFER_KEY_FILE; default: the store's own,\n"
                    "DIR/master.key). COFFER_MASTER_KEY (base64 of 32 bytes) or\n"
                    "COFFER_PASSPHRASE (Argon2id, at least 12 characters) take\n"
                    "precedence over it",
                    OPT_GLOBAL | OPT_CONF, 0, 0},
    [O_MAX_VALUE] = {O_MAX_VALUE, "max-value", 0, ARG_UINT, "BYTES",
                     "largest value put (or serve) accepts (default 65536, at most\n"
                     "1048576; env COFFER_MAX_VALUE)",
                     OPT_GLOBAL | OPT_CONF, 1, COFFER_VALUE_HARD_MAX},
    [O_JSON] = {O_JSON, "json", 'j', ARG_NONE, NULL,
                "print the result as JSON, only once the command succeeded; errors\n"
                "as one JSON object on stderr (env COFFER_FORMAT=json)",
                OPT_GLOBAL, 0, 0},
    [O_SERVER] = {O_SERVER, "server", 0, ARG_STR, "HOST:PORT|unix:PATH",
                  "run the command against a running coffer serve there instead of a\n"
                  "local store (env COFFER_SERVER; see below which commands can); no\n"
                  "master key is needed or read. --store on the line overrides\n"
                  "COFFER_SERVER",
                  OPT_GLOBAL, 0, 0},
    [O_TOKEN_FILE] = {O_TOKEN_FILE, "token-file", 0, ARG_FILE, "FILE",
                      "read the bearer token for --server from FILE, first line (env\n"
                      "COFFER_TOKEN_FILE)",
                      OPT_GLOBAL, 0, 0},
    [O_TOKEN] = {O_TOKEN, "token", 0, ARG_STR, "TOKEN",
                 "the bearer token for --server. Visible to other local users (ps)\n"
                 "until coffer wipes it at start, and kept in shell history: prefer\n"
                 "COFFER_TOKEN or --token-file",
                 OPT_GLOBAL, 0, 0},
    [O_TLS] = {O_TLS, "tls", 0, ARG_NONE, NULL,
               "speak TLS to --server (env COFFER_TLS=1); the certificate is checked\n"
               "against the system's CAs or --ca-file, and the host name",
               OPT_GLOBAL, 0, 0},
    [O_CA_FILE] = {O_CA_FILE, "ca-file", 0, ARG_FILE, "FILE",
                   "PEM CA certificates to check --server's certificate (implies --tls;\n"
                   "env COFFER_CA_FILE)",
                   OPT_GLOBAL, 0, 0},
    [O_FILE] = {O_FILE, "file", 'f', ARG_FILE, "FILE",
                "read the value from FILE ('-': standard input)", 0, 0, 0},
    [O_TRIM] = {O_TRIM, "trim", 0, ARG_NONE, NULL,
                "drop one trailing newline (\\n or \\r\\n) from the value", 0, 0, 0},
    [O_NEW_KEY_FILE] = {O_NEW_KEY_FILE, "new-key-file", 0, ARG_FILE, "FILE",
                        "seal under a new key kept in FILE (created 0600 if missing), instead\n"
                        "of replacing the key file in use in place",
                        0, 0, 0},
    [O_TO] = {O_TO, "to", 0, ARG_STR, "DIR|URL",
              "the store to copy into: a folder or postgres://user@host/db\n"
              "(created if missing)",
              0, 0, 0},
    [O_TO_KEY_FILE] = {O_TO_KEY_FILE, "to-key-file", 0, ARG_FILE, "FILE",
                       "the target's master key file (default: the target's own,\n"
                       "DIR/master.key, created with a new key; PostgreSQL needs one)",
                       0, 0, 0},
    [O_ENV] = {O_ENV, "env", 'e', ARG_STR, "VAR=NAME[@VERSION]",
               "set VAR to that secret's value (repeatable, at least one)", OPT_MULTI, 0, 0},
    [O_LISTEN] = {O_LISTEN, "listen", 'l', ARG_STR, "[SERVICE=]ADDR",
                  "listen for the service SERVICE (default 'default') on HOST:PORT\n"
                  "or unix:PATH; repeatable, one port per service; default\n"
                  "127.0.0.1:50051. Port 0 picks a free port (printed at start).\n"
                  "localhost:PORT listens on 127.0.0.1 and [::1], the same port.\n"
                  "A Unix socket is plaintext h2c, mode 0600 (0666 with --allow-uid);\n"
                  "SDKs: SERVICE_ADDRESS=unix:PATH. A path that is not a socket is\n"
                  "never replaced; the socket is removed at exit.",
                  OPT_MULTI, 0, 0},
    [O_ALLOW_UID] = {O_ALLOW_UID, "allow-uid", 0, ARG_STR, "UID|USER",
                     "also serve this local user without a token (repeatable). Over\n"
                     "loopback TCP and Unix sockets, a call without a token is served\n"
                     "only for the server's own uid, root and these; others get\n"
                     "UNAUTHENTICATED (16).",
                     OPT_MULTI, 0, 0},
    [O_THREADS] = {O_THREADS, "threads", 0, ARG_UINT, "N",
                   "worker threads (default: the number of cores)", 0, 1, 64},
    [O_POLICY] = {O_POLICY, "policy", 0, ARG_FILE, "FILE",
                  "the operator's grants, one rule per line:\n"
                  "  allow SERVICE put|access|put,access SECRET...\n"
                  "  allow SERVICE admin *   (coffer's admin service: versions, list,\n"
                  "  destroy and the lifecycle commands for coffer --server; the\n"
                  "  whole store only)\n"
                  "('*': all services or secrets). Without it (development), a\n"
                  "service's own policy Declare grants it what it declared, and only\n"
                  "the service 'default' may use the admin service.",
                  0, 0, 0},
    [O_RECORD_POLICY] = {O_RECORD_POLICY, "record-policy", 0, ARG_STR, "FILE",
                         "development: at exit, write every declaration kept in the store\n"
                         "(coffer policy show) as a policy file for --policy",
                         0, 0, 0},
    [O_TOKENS] = {O_TOKENS, "tokens", 0, ARG_FILE, "FILE",
                  "bearer tokens, one 'PRINCIPAL TOKEN' per line; clients send\n"
                  "'authorization: Bearer TOKEN' and act as PRINCIPAL, whatever their\n"
                  "uid. Needs --policy.",
                  0, 0, 0},
    [O_TLS_CERT] = {O_TLS_CERT, "tls-cert", 0, ARG_FILE, "FILE",
                    "serve TLS (ALPN h2; TLS 1.3, or 1.2 with ECDHE and AES-GCM or\n"
                    "ChaCha20-Poly1305) instead of plaintext h2c; with --tls-key",
                    0, 0, 0},
    [O_TLS_KEY] = {O_TLS_KEY, "tls-key", 0, ARG_FILE, "FILE",
                   "the TLS private key: mode 0600 (or stricter), not a symlink", 0, 0, 0},
    [O_INSECURE] = {O_INSECURE, "insecure", 0, ARG_NONE, NULL,
                    "allow a non-loopback address without TLS and tokens", 0, 0, 0},
    [O_POLICY_WAIT] = {O_POLICY_WAIT, "policy-wait", 0, ARG_UINT, "MS",
                       "how long a call waits for its policy Declare (default 1000)", 0, 0, 60000},
    [O_IDLE_TIMEOUT] = {O_IDLE_TIMEOUT, "idle-timeout", 0, ARG_UINT, "SECS",
                        "close connections idle this long (default 120)", 0, 1, 86400},
    [O_HEADER_TIMEOUT] = {O_HEADER_TIMEOUT, "header-timeout", 0, ARG_UINT, "SECS",
                          "close connections whose headers stall this long (default 10)", 0, 1,
                          86400},
    [O_MAX_CONNS] = {O_MAX_CONNS, "max-conns", 0, ARG_UINT, "N",
                     "connections at once (default 1024)", 0, 1, 100000},
    [O_METRICS] = {O_METRICS, "metrics", 0, ARG_STR, "HOST:PORT",
                   "serve Prometheus metrics over HTTP at /metrics there (off by\n"
                   "default; keep it on loopback)",
                   0, 0, 0},
    [O_LOG_FORMAT] = {O_LOG_FORMAT, "log-format", 0, ARG_STR, "text|json",
                      "log lines as text (default) or JSON objects; each starts with an\n"
                      "RFC 3339 UTC time and a level",
                      0, 0, 0},
    [O_AUDIT] = {O_AUDIT, "audit", 0, ARG_NONE, NULL,
                 "record every request in the store's audit log before answering\n"
                 "it (docs/lifecycle.md)",
                 0, 0, 0},
    [O_AUDIT_SYNC] = {O_AUDIT_SYNC, "audit-sync", 0, ARG_STR, "full|os",
                      "with --audit: full (default) answers once its entry is on the\n"
                      "disk; os once it is written (a power loss can drop the newest\n"
                      "entries; a crash of coffer cannot)",
                      0, 0, 0},
    [O_QUIET] = {O_QUIET, "quiet", 'q', ARG_NONE, NULL, "no per-request log lines", 0, 0, 0},
    [O_CONFIG] = {O_CONFIG, "config", 0, ARG_FILE, "FILE",
                  "read settings from this coffer.conf ([serve] section, a key per\n"
                  "long option: listen = ..., tls-cert = ...; env COFFER_CONFIG;\n"
                  "default " SERVE_CONF_DEFAULT " if it exists). Flags beat the\n"
                  "environment, which beats the file. SIGHUP reads it again",
                  OPT_NOCONF, 0, 0},
    [O_PRINT_CONFIG] = {O_PRINT_CONFIG, "print-config", 0, ARG_NONE, NULL,
                        "print the effective settings, where each came from, and exit", OPT_NOCONF,
                        0, 0},
    [O_IF_VERSION] = {O_IF_VERSION, "if-version", 0, ARG_UINT, "N",
                      "check-and-set: store only if the secret's newest version id is N\n"
                      "(0: it has none); else nothing is stored and the exit code is 9",
                      0, 0, 4294967295UL},
    [O_REQUEST_ID] = {O_REQUEST_ID, "request-id", 0, ARG_STR, "ID",
                      "idempotent put: the same ID with the same value (within 24 hours)\n"
                      "answers the version the first put made and stores nothing; with\n"
                      "another value it is an error. Kept only as a keyed hash",
                      0, 0, 0},
    [O_DELETE_LABEL] = {O_DELETE_LABEL, "delete", 0, ARG_NONE, NULL,
                        "remove the label instead of setting it", 0, 0, 0},
    [O_RECOVERY_DAYS] = {O_RECOVERY_DAYS, "recovery-days", 0, ARG_UINT, "N",
                         "the recovery window: restore works for N days (1-30, default 7)", 0, 1,
                         COFFER_RECOVERY_DAYS_MAX},
    [O_FORCE] = {O_FORCE, "force", 0, ARG_NONE, NULL,
                 "no recovery window: destroy the secret and every version now", 0, 0, 0},
    [O_DESCRIPTION] = {O_DESCRIPTION, "description", 0, ARG_STR, "TEXT",
                       "set the description (\"\" clears it)", 0, 0, 0},
    [O_TAG] = {O_TAG, "tag", 0, ARG_STR, "KEY=VALUE",
               "set a tag (repeatable); KEY alone (no '=') removes that tag", OPT_MULTI, 0, 0},
    [O_MAX_VERSIONS] = {O_MAX_VERSIONS, "max-versions", 0, ARG_UINT, "N",
                        "keep at most N versions with a value; each put destroys the oldest\n"
                        "unlabelled ones beyond that (0: no limit)",
                        0, 0, 4294967295UL},
    [O_PREFIX] = {O_PREFIX, "prefix", 0, ARG_STR, "P", "only the names that begin with P", 0, 0, 0},
    [O_LIMIT] = {O_LIMIT, "limit", 0, ARG_UINT, "N",
                 "one page of at most N names (1-1000); the next page's token is\n"
                 "printed (JSON: next_page_token)",
                 0, 1, COFFER_PAGE_SIZE_MAX},
    [O_PAGE_TOKEN] = {O_PAGE_TOKEN, "page-token", 0, ARG_STR, "T",
                      "the page after the one that gave T (with --limit; default 100)", 0, 0, 0},
    [O_SINCE] = {O_SINCE, "since", 0, ARG_STR, "TIME",
                 "entries at or after TIME: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC),\n"
                 "or Unix seconds",
                 0, 0, 0},
    [O_SECRET] = {O_SECRET, "secret", 0, ARG_STR, "NAME", "only the entries about secret NAME", 0,
                  0, 0},
};

static const opt_id no_opts[] = {O_COUNT};
static const opt_id put_opts[] = {O_FILE, O_TRIM, O_IF_VERSION, O_REQUEST_ID, O_COUNT};
static const opt_id label_opts[] = {O_DELETE_LABEL, O_COUNT};
static const opt_id delete_opts[] = {O_RECOVERY_DAYS, O_FORCE, O_COUNT};
static const opt_id meta_opts[] = {O_DESCRIPTION, O_TAG, O_MAX_VERSIONS, O_COUNT};
static const opt_id list_opts[] = {O_PREFIX, O_LIMIT, O_PAGE_TOKEN, O_COUNT};
static const opt_id audit_opts[] = {O_SINCE, O_SECRET, O_COUNT};
static const opt_id rekey_opts[] = {O_NEW_KEY_FILE, O_COUNT};
static const opt_id copy_opts[] = {O_TO, O_TO_KEY_FILE, O_COUNT};
static const opt_id run_opts[] = {O_ENV, O_COUNT};
static const opt_id serve_opts[] = {
    O_LISTEN,    O_ALLOW_UID,    O_THREADS,    O_POLICY,      O_RECORD_POLICY, O_TOKENS,
    O_TLS_CERT,  O_TLS_KEY,      O_INSECURE,   O_POLICY_WAIT, O_IDLE_TIMEOUT,  O_HEADER_TIMEOUT,
    O_MAX_CONNS, O_METRICS,      O_LOG_FORMAT, O_AUDIT,       O_AUDIT_SYNC,    O_QUIET,
    O_CONFIG,    O_PRINT_CONFIG, O_COUNT};

const cmd_def cli_cmds[] = {
    {"init", "", "create the store and its master key",
     "init and put create a store; every other command needs one to exist.", 0, 0, no_opts,
     CMD_JSON | CMD_LOCAL, cmd_init, NULL},
    {"put", "NAME [VALUE|-]", "store a new version; prints its id",
     "The value comes from the argument, --file, or standard input (exact bytes; on a\n"
     "terminal it is read without echo, up to the newline). A value read from standard\n"
     "input that ends with a newline gets a warning (the newline is stored): --trim drops\n"
     "it. A value given as an argument is visible to other local users in the process\n"
     "list; prefer standard input or --file for real secrets.\n"
     "--if-version N stores only if the newest version id is N (exit 9 otherwise);\n"
     "--request-id ID makes a retry safe (the same ID answers the same version).\n"
     "JSON: {\"name\", \"version\", \"messages\"; with --request-id \"replayed\"}.",
     1, 2, put_opts, CMD_JSON | CMD_REMOTE, cmd_put, NULL},
    {"access", "NAME[@VERSION]", "write a value's exact bytes to standard output",
     "VERSION is 'latest' (the default, any letter case), an id such as 2, or a label\n"
     "('previous', or one set with coffer label). A disabled version: exit 8.\n"
     "JSON: {\"name\", \"version\" (the real id), \"value_b64\", and \"value\" when the\n"
     "bytes are UTF-8}.",
     1, 1, no_opts, CMD_JSON | CMD_REMOTE, cmd_access, NULL},
    {"versions", "NAME", "list a secret's versions",
     "Each version with its creation time (UTC), state (enabled, disabled, destroyed),\n"
     "size, the id of the data key that sealed it, and the labels that name it (latest,\n"
     "previous, custom ones). JSON: [{\"version\", \"created\", \"created_unix_ms\",\n"
     "\"state\", \"size\", \"key_id\", \"labels\"}]. With --server: needs an admin grant\n"
     "on the server.",
     1, 1, no_opts, CMD_JSON | CMD_REMOTE, cmd_versions, NULL},
    {"list", "", "list secret names and their readable versions",
     "Destroyed versions are not counted; secrets scheduled for deletion are hidden.\n"
     "Secrets a program declared to coffer serve that have no value yet are listed with\n"
     "0 (declared, no value yet; local stores, without --prefix or paging).\n"
     "JSON: [{\"name\", \"versions\", and \"declared\": true for those}]. One page\n"
     "(--limit or --page-token): {\"secrets\": [...], \"next_page_token\"} (\"\" on the\n"
     "last page); in text the next page's command is printed to stderr.\n"
     "With --server: needs an admin grant on the server.",
     0, 0, list_opts, CMD_JSON | CMD_REMOTE, cmd_list, NULL},
    {"policy", "show", "print the grants services declared to coffer serve",
     "Every (service, secret) a program declared to coffer serve, with the actions it\n"
     "asked for, as kept in the store. coffer serve --record-policy FILE writes them as\n"
     "a --policy file. JSON: [{\"service\", \"secret\", \"actions\": [\"put\", \"access\"]}].",
     1, 1, no_opts, CMD_JSON | CMD_LOCAL, cmd_policy, NULL},
    {"destroy", "NAME@VERSION", "delete a version's value for good",
     "VERSION is an id or latest. The id stays taken and listed as destroyed; latest moves\n"
     "back to the version before. JSON: {\"name\", \"version\", \"state\"}.\n"
     "With --server: needs an admin grant on the server.",
     1, 1, no_opts, CMD_JSON | CMD_REMOTE, cmd_destroy, NULL},
    {"disable", "NAME@VERSION", "keep a version's value but refuse every access of it",
     "VERSION is an id, latest or a label. latest then names the newest version still\n"
     "enabled; accessing the disabled one fails with exit 8 until coffer enable.\n"
     "JSON: {\"name\", \"version\", \"state\"}.",
     1, 1, no_opts, CMD_JSON | CMD_REMOTE, cmd_disable, NULL},
    {"enable", "NAME@VERSION", "undo a disable",
     "VERSION is an id or a label (not latest). A destroyed version stays destroyed.\n"
     "JSON: {\"name\", \"version\", \"state\"}.",
     1, 1, no_opts, CMD_JSON | CMD_REMOTE, cmd_enable, NULL},
    {"label", "NAME LABEL [VERSION]", "point a label at a version, or remove it",
     "Sets LABEL (or moves it, atomically) to VERSION (an id, latest, previous or another\n"
     "label); with --delete, removes it. A label is 1-63 characters of A-Z a-z 0-9 . _ -,\n"
     "a letter first; latest and previous are kept by coffer. NAME@LABEL then works\n"
     "wherever NAME@VERSION does. JSON: {\"name\", \"label\", \"version\"} (\"deleted\":\n"
     "true with --delete).",
     2, 3, label_opts, CMD_JSON | CMD_REMOTE, cmd_label, NULL},
    {"delete", "NAME", "schedule a secret for deletion (restore undoes it)",
     "The secret is hidden from list and refuses access and put (exit 8) until coffer\n"
     "restore, or until the recovery window (--recovery-days, default 7) has passed;\n"
     "then it is destroyed for good. --force destroys it now.\n"
     "JSON: {\"name\", \"purge_at\", \"purge_at_unix_ms\"} (0 with --force).",
     1, 1, delete_opts, CMD_JSON | CMD_REMOTE, cmd_delete, NULL},
    {"restore", "NAME", "bring back a secret scheduled for deletion",
     "The secret comes back as it was (versions, labels, metadata).\n"
     "JSON: {\"name\", \"restored\": true}.",
     1, 1, no_opts, CMD_JSON | CMD_REMOTE, cmd_restore, NULL},
    {"describe", "NAME", "print a secret's metadata",
     "Description, tags, created and updated times, the current (latest), previous and\n"
     "last version ids, max versions, labels, and the deletion time if it is scheduled.\n"
     "JSON: {\"name\", \"description\", \"tags\": {K: V}, \"created\", \"created_unix_ms\",\n"
     "\"updated\", \"updated_unix_ms\", \"current_version\", \"previous_version\",\n"
     "\"last_version\", \"max_versions\", \"labels\": {LABEL: VERSION}, \"deleted\",\n"
     "\"purge_at_unix_ms\"}. With --server: needs an admin grant on the server.",
     1, 1, no_opts, CMD_JSON | CMD_REMOTE, cmd_describe, NULL},
    {"meta", "NAME", "set a secret's description, tags or max versions",
     "--tag merges into the tags the secret has (KEY alone removes KEY). The secret must\n"
     "have a version. JSON: {\"name\", \"description\", \"tags\", \"max_versions\"} as\n"
     "they are afterwards.",
     1, 1, meta_opts, CMD_JSON | CMD_REMOTE, cmd_meta, NULL},
    {"audit", "[verify]", "read the audit log, or verify its chain",
     "Every put, access (coffer serve --audit), denial, lifecycle change and key\n"
     "operation: time, principal, action, secret, version, outcome; never a value, and\n"
     "request ids only as keyed hashes. 'coffer audit verify' checks the MAC chain and\n"
     "names the first broken entry (exit 5).\nJSON: [{\"id\", \"chain\", \"seq\", \"time\",\n"
     "\"time_unix_ms\", \"principal\", \"action\", \"secret\", \"version\", \"outcome\",\n"
     "\"error\", \"request_hash\"}]; verify: {\"ok\", \"entries\"}.",
     0, 1, audit_opts, CMD_JSON | CMD_REMOTE, cmd_audit, "audit"},
    {"run", "--env VAR=NAME[@VERSION]... [--] CMD [ARGS]",
     "run CMD with secrets in its environment",
     "CMD gets the caller's environment plus the VARs asked for, never coffer's own key\n"
     "variables. coffer execs CMD, so its exit code is CMD's own; 127 when CMD is not\n"
     "found, 126 when it cannot be executed. The first argument ends coffer's options.\n"
     "--json only makes coffer's errors JSON; CMD's output is its own.",
     1, -1, run_opts, CMD_STOP | CMD_REMOTE, cmd_run, "command"},
    {"rotate-key", "", "add a data key and re-encrypt every version with it",
     "First finishes an interrupted pass, and prunes the data keys no version uses.\n"
     "JSON: {\"key_id\", \"reencrypted\", \"finished_interrupted\"}.",
     0, 0, no_opts, CMD_JSON | CMD_LOCAL, cmd_rotate_key, NULL},
    {"rekey", "", "re-seal the keyring under a new master key",
     "Without --new-key-file, the key file the store opens with (DIR/master.key by\n"
     "default, or --key-file) gets a new key in place. With --new-key-file F, the store\n"
     "opens only with F from then on; rekey says what to do next. Running servers keep\n"
     "the old key: restart them with the new one.\n"
     "JSON: {\"key_file\", \"in_place\", \"next\"}.",
     0, 0, rekey_opts, CMD_JSON | CMD_LOCAL, cmd_rekey, NULL},
    {"backup", "FILE", "write a consistent, sealed backup of the store to FILE",
     "Taken in one snapshot while the store is in use (SQLite's online backup), never a\n"
     "plaintext value: written to FILE.tmp, synced, renamed; mode 0600, with a BLAKE2b\n"
     "checksum. The master key is NOT in it: back the key up apart. PostgreSQL: use\n"
     "pg_dump, or copy --to a folder (docs/operations.md). JSON: {\"file\", \"bytes\"}.",
     1, 1, no_opts, CMD_JSON | CMD_LOCAL, cmd_backup, NULL},
    {"restore-backup", "FILE", "make the store given by --store from a backup",
     "Checks FILE's checksum first; refuses a --store that already holds a store. The\n"
     "restored store opens with the master key of the store that was backed up.\n"
     "JSON: {\"file\", \"store\"}.",
     1, 1, no_opts, CMD_JSON | CMD_LOCAL, cmd_restore_backup, NULL},
    {"copy", "--to DIR|URL [--to-key-file FILE]", "copy every secret into another store",
     "Every version (same ids and states), label, description, tags, retention, the\n"
     "declarations and the audit log, re-sealed under the target's own master key and\n"
     "identity; no value is written to disk in clear. Each secret goes in whole or not at\n"
     "all: run it again after an interruption and it verifies what is there and goes on.\n"
     "Stop writers to the source first. Secrets scheduled for deletion are not copied.\n"
     "JSON: {\"to\", \"copied\", \"verified\", \"audit_entries\"}.",
     0, 0, copy_opts, CMD_JSON | CMD_LOCAL, cmd_copy, NULL},
    {"serve", "", "run the Nitric gRPC server",
     "Serves the store over Nitric's gRPC protocol (SecretManager Put/Access, Resources\n"
     "Declare), so Nitric SDKs work against it unmodified (set SERVICE_ADDRESS).\n"
     "Logs one line per request to stderr (method, principal, secret, version, status,\n"
     "microseconds), never a value. Answers grpc.health.v1.Health/Check to any caller.\n"
     "SIGTERM or SIGINT drains in-flight calls and exits 0 (systemd: READY=1, STOPPING=1).\n"
     "SIGHUP reads the policy, token and TLS files (and --config's file) again; a bad one\n"
     "is refused and the running ones kept (systemd: RELOADING=1, READY=1).\n"
     "The store: --store, else $COFFER_STORE, else $STATE_DIRECTORY (systemd), else\n"
     "./.coffer. See docs/server.md.",
     0, 0, serve_opts, CMD_LOCAL, cmd_serve, NULL},
    {"help", "[COMMAND]", "this help, or a command's",
     "JSON: every command with its usage and options, and the exit codes.", 0, 1, no_opts, CMD_JSON,
     cmd_help, "commands"},
    {"completion", "bash|zsh", "print a shell completion script",
     "bash: source <(coffer completion bash)   (or save it under\n"
     "      /usr/share/bash-completion/completions/coffer)\n"
     "zsh:  source <(coffer completion zsh)    (or save it as _coffer in your $fpath)",
     1, 1, no_opts, 0, cmd_completion, "shells"},
};
const size_t cli_ncmds = sizeof cli_cmds / sizeof cli_cmds[0];

static int cmd_hidden(const cmd_def *d)
{
	return SERVE_HIDDEN && strcmp(d->name, "serve") == 0;
}

const cmd_def *cli_find_cmd(const char *name)
{
	for (size_t i = 0; i < cli_ncmds; i++)
		if (strcmp(cli_cmds[i].name, name) == 0 && !cmd_hidden(&cli_cmds[i]))
			return &cli_cmds[i];
	return NULL;
}

static int cmd_takes(const cmd_def *d, opt_id id)
{
	if (cli_opts[id].flags & OPT_GLOBAL)
		return 1;
	for (const opt_id *o = d != NULL ? d->opts : no_opts; *o != O_COUNT; o++)
		if (*o == id)
			return 1;
	return 0;
}

/* ---- "did you mean" ----------------------------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 63 || lb > 63)
		return 99;
	size_t d[64][64];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
			size_t m = sub < del ? sub : del;
			m = m < ins ? m : ins;
			/* a swap of two neighbours counts as one edit */
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < m)
				m = d[i - 2][j - 2] + 1;
			d[i][j] = m;
		}
	return d[la][lb];
}

/* The candidate closest to `word` when close enough (or the only one it is a prefix of). */
static const char *closest(const char *word, const char *const *cands, size_t n)
{
	const char *best = NULL, *prefix = NULL;
	size_t best_d = 99, nprefix = 0, wl = strlen(word);
	for (size_t i = 0; i < n; i++) {
		size_t dist = edit_distance(word, cands[i]);
		if (dist < best_d) {
			best_d = dist;
			best = cands[i];
		}
		if (wl > 0 && strncmp(cands[i], word, wl) == 0) {
			prefix = cands[i];
			nprefix++;
		}
	}
	size_t limit = wl <= 4 ? 1 : wl <= 8 ? 2 : 3;
	if (best != NULL && best_d <= limit)
		return best;
	return nprefix == 1 ? prefix : NULL;
}

const char *cli_suggest_cmd(const char *name)
{
	const char *names[32];
	size_t n = 0;
	for (size_t i = 0; i < cli_ncmds && n < 32; i++)
		if (!cmd_hidden(&cli_cmds[i]))
			names[n++] = cli_cmds[i].name;
	return closest(name, names, n);
}

static const char *suggest_opt(const cmd_def *d, const char *name)
{
	const char *names[O_COUNT];
	size_t n = 0;
	for (int i = 0; i < O_COUNT; i++)
		if (d == NULL || cmd_takes(d, (opt_id)i))
			names[n++] = cli_opts[i].name;
	return closest(name, names, n);
}

/* ---- errors ------------------------------------------------------------------------------- */

__attribute__((format(printf, 3, 0))) static int usage_errorv(const cli *c, const cmd_def *d,
                                                              const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);
	char hint[128];
	snprintf(hint, sizeof hint, "coffer %s%s--help", d != NULL ? d->name : "",
	         d != NULL ? " " : "");
	if (c->json) {
		json_t *e = json_pack("{s:{s:s,s:s,s:i,s:s}}", "error", "code", "usage", "message",
		                      msg, "exit", 2, "help", hint);
		if (e != NULL) {
			json_dumpf(e, stderr, JSON_COMPACT);
			fputc('\n', stderr);
		}
		json_decref(e);
	} else {
		fprintf(stderr, "coffer: %s\nTry '%s'.\n", msg, hint);
	}
	return 2;
}

int cli_usage_error(const cli *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = usage_errorv(c, c->cmd, fmt, ap);
	va_end(ap);
	return rc;
}

static int parse_error(const cli *c, const cmd_def *d, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int parse_error(const cli *c, const cmd_def *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = usage_errorv(c, d, fmt, ap);
	va_end(ap);
	return rc;
}

/* ---- the parser --------------------------------------------------------------------------- */

static const opt_def *find_long(const char *name, size_t n)
{
	for (int i = 0; i < O_COUNT; i++)
		if (strlen(cli_opts[i].name) == n && strncmp(cli_opts[i].name, name, n) == 0)
			return &cli_opts[i];
	return NULL;
}

static const opt_def *find_short(char ch)
{
	for (int i = 0; i < O_COUNT; i++)
		if (ch != 0 && cli_opts[i].short_name == ch)
			return &cli_opts[i];
	return NULL;
}

static int parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	unsigned long v = 0;
	size_t i = 0;
	for (; s[i] >= '0' && s[i] <= '9' && i < 10; i++)
		v = v * 10 + (unsigned long)(s[i] - '0');
	if (i == 0 || s[i] != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static void opt_label(const opt_def *o, char *buf, size_t len)
{
	snprintf(buf, len, "--%s", o->name);
}

/* Whether --json is on: decided before parsing, so that even a parse error is JSON. */
static int wants_json(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "-j") == 0)
			return 1;
	}
	const char *f = getenv("COFFER_FORMAT");
	return f != NULL && strcmp(f, "json") == 0;
}

int cli_parse(cli *c, int argc, char **argv)
{
	int only_args = 0;
	c->json = wants_json(argc, argv);
	c->seen = calloc((size_t)argc + 1, sizeof *c->seen);
	c->args = calloc((size_t)argc + 1, sizeof *c->args);
	if (c->seen == NULL || c->args == NULL) {
		fprintf(stderr, "coffer: error: out of memory\n");
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (only_args || a[0] != '-' || strcmp(a, "-") == 0) {
			if (c->cmd == NULL) {
				c->cmd = cli_find_cmd(a);
				if (c->cmd == NULL) {
					const char *s = cli_suggest_cmd(a);
					return s != NULL
					           ? parse_error(c, NULL,
					                         "unknown command '%.60s'; did "
					                         "you mean '%s'?",
					                         a, s)
					           : parse_error(c, NULL, "unknown command '%.60s'",
					                         a);
				}
				continue;
			}
			c->args[c->nargs++] = argv[i];
			if (c->cmd->flags & CMD_STOP) /* the rest is the child's command line */
				while (++i < argc)
					c->args[c->nargs++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_args = 1;
			continue;
		}
		const opt_def *o;
		const char *val = NULL;
		char label[80];
		if (a[1] == '-') {
			const char *name = a + 2, *eq = strchr(name, '=');
			size_t n = eq != NULL ? (size_t)(eq - name) : strlen(name);
			o = find_long(name, n);
			if (o == NULL) {
				char word[64];
				snprintf(word, sizeof word, "%.*s", (int)(n < 63 ? n : 63), name);
				const char *s = suggest_opt(c->cmd, word);
				return s != NULL
				           ? parse_error(
				                 c, c->cmd,
				                 "unknown option '--%s'; did you mean '--%s'?",
				                 word, s)
				           : parse_error(c, c->cmd, "unknown option '--%s'", word);
			}
			if (eq != NULL) {
				if (o->kind == ARG_NONE)
					return parse_error(c, c->cmd,
					                   "option '--%s' takes no value", o->name);
				val = eq + 1;
			}
		} else {
			o = find_short(a[1]);
			if (o == NULL)
				return parse_error(c, c->cmd, "unknown option '-%c'", a[1]);
			if (a[2] != '\0') {
				if (o->kind == ARG_NONE)
					return parse_error(
					    c, c->cmd,
					    "unknown option '%.40s' (give short options "
					    "one at a time)",
					    a);
				val = a + 2;
			}
		}
		opt_label(o, label, sizeof label);
		if (o->kind != ARG_NONE && val == NULL) {
			if (i + 1 >= argc)
				return parse_error(c, c->cmd, "option '%s' needs a value (%s)",
				                   label, o->metavar);
			val = argv[++i];
		}
		if (o->kind == ARG_UINT && parse_uint(val, o->lo, o->hi, &c->num[o->id]) != 0)
			return parse_error(c, c->cmd,
			                   "%s wants a number from %lu to %lu, got '%.40s'", label,
			                   o->lo, o->hi, val);
		c->seen[c->nseen++] = (opt_seen){o->id, val};
	}
	if (cli_has(c, O_HELP)) {
		const cmd_def *d =
		    c->cmd != NULL && strcmp(c->cmd->name, "help") != 0 ? c->cmd : NULL;
		if (cli_has(c, O_JSON)) {
			int rc = cli_emit(c, cli_help_json(d));
			return rc != 0 ? rc : -1;
		}
		if (c->cmd != NULL)
			cli_help_cmd(c->cmd);
		else
			cli_help_global();
		return -1;
	}
	if (cli_has(c, O_VERSION)) {
		if (c->json)
			printf("{\"version\":\"%s\"}\n", coffer_libversion());
		else
			printf("coffer %s\n", coffer_libversion());
		return -1;
	}
	if (c->cmd == NULL)
		return parse_error(c, NULL, "missing command (coffer help lists them)");
	for (size_t k = 0; k < c->nseen; k++)
		if (!cmd_takes(c->cmd, c->seen[k].id))
			return parse_error(c, c->cmd, "'--%s' is not an option of 'coffer %s'",
			                   cli_opts[c->seen[k].id].name, c->cmd->name);
	/* Now that the options are known (a --json among run's CMD ARGS is CMD's): --json, or
	 * COFFER_FORMAT=json for the commands that have JSON. */
	const char *fmt = getenv("COFFER_FORMAT");
	c->json = cli_has(c, O_JSON) || (fmt != NULL && strcmp(fmt, "json") == 0 &&
	                                 (c->cmd->flags & (CMD_JSON | CMD_STOP)) != 0);
	if (cli_has(c, O_JSON) && !(c->cmd->flags & (CMD_JSON | CMD_STOP)))
		return parse_error(c, c->cmd, "'coffer %s' has no JSON output", c->cmd->name);
	if (c->nargs < c->cmd->min_args || (c->cmd->max_args >= 0 && c->nargs > c->cmd->max_args))
		return parse_error(c, c->cmd, "%s; usage: coffer %s%s%s",
		                   c->nargs < c->cmd->min_args ? "missing argument"
		                                               : "too many arguments",
		                   c->cmd->name, c->cmd->args[0] ? " " : "", c->cmd->args);
	return 0;
}

const char *cli_opt(const cli *c, opt_id id)
{
	const char *v = NULL;
	for (size_t k = 0; k < c->nseen; k++)
		if (c->seen[k].id == id)
			v = c->seen[k].val;
	return v;
}

int cli_has(const cli *c, opt_id id)
{
	for (size_t k = 0; k < c->nseen; k++)
		if (c->seen[k].id == id)
			return 1;
	return 0;
}

size_t cli_opt_all(const cli *c, opt_id id, const char **out, size_t max)
{
	size_t n = 0;
	for (size_t k = 0; k < c->nseen; k++)
		if (c->seen[k].id == id) {
			if (n < max)
				out[n] = c->seen[k].val;
			n++;
		}
	return n;
}

/* ---- help --------------------------------------------------------------------------------- */

/* Option help, reflowed into [indent, width): a '\n' is a space, except before a line that
 * starts with a space, which is printed as it is (a rule, an example). */
static void print_wrapped(FILE *f, const char *p, int indent, int width)
{
	int col = indent, space = 0;
	while (*p != '\0') {
		if (*p == '\n' && p[1] == ' ') {
			size_t len = strcspn(++p, "\n");
			fprintf(f, "\n%*s%.*s", indent, "", (int)len, p);
			p += len;
			col = width; /* what follows starts a new line */
			space = 0;
			continue;
		}
		if (*p == ' ' || *p == '\n') {
			p++;
			space = 1;
			continue;
		}
		int wl = (int)strcspn(p, " \n");
		if (col > indent && col + space + wl > width) {
			fprintf(f, "\n%*s", indent, "");
			col = indent;
		} else if (space && col > indent) {
			fputc(' ', f);
			col++;
		}
		fprintf(f, "%.*s", wl, p);
		col += wl;
		p += wl;
		space = 0;
	}
	fputc('\n', f);
}

#define HELP_INDENT 30
#define HELP_WIDTH  80

static void print_opt(FILE *f, const opt_def *o)
{
	char head[80];
	int n;
	if (o->short_name)
		n = snprintf(head, sizeof head, "  -%c, --%s%s%s", o->short_name, o->name,
		             o->metavar ? " " : "", o->metavar ? o->metavar : "");
	else /* "      --store" lines up with "  -s, --store" */
		n = snprintf(head, sizeof head, "      --%s%s%s", o->name, o->metavar ? " " : "",
		             o->metavar ? o->metavar : "");
	if (n > HELP_INDENT - 2)
		fprintf(f, "%s\n%*s", head, HELP_INDENT, "");
	else
		fprintf(f, "%-*s", HELP_INDENT, head);
	print_wrapped(f, o->help, HELP_INDENT, HELP_WIDTH);
}

static void print_exit_codes(FILE *f);

void cli_help_global(void)
{
	FILE *f = stdout;
	fprintf(f, "usage: coffer [OPTIONS] COMMAND [ARGS]\n\n"
	           "An encrypted, versioned secret store (the Nitric Secrets building block).\n\n"
	           "commands:\n");
	for (size_t i = 0; i < cli_ncmds; i++) {
		const cmd_def *d = &cli_cmds[i];
		char head[80];
		if (cmd_hidden(d))
			continue;
		int n = snprintf(head, sizeof head, "  %s%s%s", d->name, d->args[0] ? " " : "",
		                 d->args);
		if (n > HELP_INDENT - 2)
			fprintf(f, "%s\n%*s%s\n", head, HELP_INDENT, "", d->summary);
		else
			fprintf(f, "%-*s%s\n", HELP_INDENT, head, d->summary);
	}
	fprintf(f, "\nglobal options (anywhere on the line; --opt VALUE or --opt=VALUE):\n");
	for (int i = 0; i < O_COUNT; i++)
		if (cli_opts[i].flags & OPT_GLOBAL)
			print_opt(f, &cli_opts[i]);
	fprintf(f, "\nagainst a server (--server):");
	for (size_t i = 0; i < cli_ncmds; i++)
		if (cli_cmds[i].flags & CMD_REMOTE)
			fprintf(f, " %s", cli_cmds[i].name);
	fprintf(f,
	        "\n  (all but put, access and run need an admin grant on the server, and so does\n"
	        "  put with --if-version or --request-id)\n"
	        "on a local store only:");
	for (size_t i = 0; i < cli_ncmds; i++)
		if ((cli_cmds[i].flags & CMD_LOCAL) && !cmd_hidden(&cli_cmds[i]))
			fprintf(f, " %s", cli_cmds[i].name);
	fputc('\n', f);
	fprintf(f, "\n'coffer help COMMAND' (or coffer COMMAND --help) shows a command's options.\n"
	           "'--' ends the options. Names: 1-255 characters of A-Z a-z 0-9 . _ -, starting\n"
	           "with a letter or digit.\n\n");
	print_exit_codes(f);
}

void cli_help_cmd(const cmd_def *d)
{
	FILE *f = stdout;
	int has_own = d->opts[0] != O_COUNT;
	fprintf(f, "usage: coffer %s%s%s%s\n\n%c%s.\n", d->name, d->args[0] ? " " : "", d->args,
	        has_own && strncmp(d->args, "--", 2) != 0 ? " [OPTIONS]" : "",
	        d->summary[0] - 'a' + 'A', d->summary + 1);
	if (d->details != NULL)
		fprintf(f, "%s\n", d->details);
	if (has_own) {
		fprintf(f, "\noptions:\n");
		for (const opt_id *o = d->opts; *o != O_COUNT; o++)
			print_opt(f, &cli_opts[*o]);
	}
	fprintf(f, "\nglobal options: ");
	for (int i = 0, first = 1; i < O_COUNT; i++)
		if (cli_opts[i].flags & OPT_GLOBAL) {
			fprintf(f, "%s--%s", first ? "" : ", ", cli_opts[i].name);
			first = 0;
		}
	fprintf(f, "\n(see coffer help)\n");
}

/* ---- exit codes: the error list plus run's ------------------------------------------------ */

static const struct {
	int code;
	const char *meaning;
	const char *name; /* the error name of a code outside the error list */
} exit_meanings[] = {
    {0, "ok", NULL},
    {1, "other failure (also: a file not readable or writable)", NULL},
    {2, "usage error or invalid input", "usage"},
    {3, "not found (also: no store)", NULL},
    {4, "permission denied", NULL},
    {5, "key or integrity failure", NULL},
    {6, "store busy or unavailable", NULL},
    {7, "disk full", NULL},
    {8, "refused by the state of the version or secret (disabled, scheduled for deletion)", NULL},
    {9, "check-and-set mismatch", NULL},
    {126, "run: CMD was found but could not be executed", CLI_ERR_CANNOT_EXEC},
    {127, "run: CMD was not found", CLI_ERR_NO_CMD},
};

static const struct {
	const char *name;
	const char *msg;
	int exit;
} error_list[] = {
#define X(name, value, msg, grpc, exitcode) {#name, msg, exitcode},
    COFFER_ERROR_LIST(X)
#undef X
};

int cli_exit_code_of_errname(const char *name)
{
	for (size_t i = 0; i < sizeof error_list / sizeof error_list[0]; i++)
		if (strcmp(error_list[i].name, name) == 0)
			return error_list[i].exit;
	return 1;
}

static void print_exit_codes(FILE *f)
{
	fprintf(f, "exit codes (the COFFER_E* error behind each):\n");
	for (size_t m = 0; m < sizeof exit_meanings / sizeof exit_meanings[0]; m++) {
		char line[256];
		int n = snprintf(line, sizeof line, "  %-4d %s", exit_meanings[m].code,
		                 exit_meanings[m].meaning);
		const char *sep = " (";
		if (exit_meanings[m].name != NULL) {
			n += snprintf(line + n, sizeof line - (size_t)n, "%s%s", sep,
			              exit_meanings[m].name);
			sep = ", ";
		}
		for (size_t i = 1; i < sizeof error_list / sizeof error_list[0]; i++)
			if (error_list[i].exit == exit_meanings[m].code && n < (int)sizeof line) {
				n += snprintf(line + n, sizeof line - (size_t)n, "%s%s", sep,
				              error_list[i].name);
				sep = ", ";
			}
		fprintf(f, "%s%s\n", line, sep[0] == ',' ? ")" : "");
	}
	fprintf(f, "  N    run: CMD's own exit code, once it started\n");
}

void cli_print_exit_codes(FILE *f)
{
	print_exit_codes(f);
}

static json_t *opt_json(const opt_def *o)
{
	json_t *j = json_pack("{s:s,s:s,s:b,s:b}", "name", o->name, "help", o->help, "value",
	                      o->kind != ARG_NONE, "repeatable", (o->flags & OPT_MULTI) != 0);
	if (j != NULL && o->short_name) {
		char s[2] = {o->short_name, 0};
		json_object_set_new(j, "short", json_string(s));
	}
	if (j != NULL && o->metavar != NULL)
		json_object_set_new(j, "metavar", json_string(o->metavar));
	return j;
}

static json_t *cmd_json(const cmd_def *d)
{
	json_t *opts = json_array();
	for (const opt_id *o = d->opts; *o != O_COUNT; o++)
		json_array_append_new(opts, opt_json(&cli_opts[*o]));
	return json_pack("{s:s,s:s,s:s,s:o,s:b,s:b,s:b}", "name", d->name, "args", d->args,
	                 "summary", d->summary, "options", opts, "json", (d->flags & CMD_JSON) != 0,
	                 "local_only", (d->flags & CMD_LOCAL) != 0, "remote",
	                 (d->flags & CMD_REMOTE) != 0);
}

json_t *cli_help_json(const cmd_def *d)
{
	if (d != NULL)
		return cmd_json(d);
	json_t *cmds = json_array(), *globals = json_array(), *codes = json_array();
	for (size_t i = 0; i < cli_ncmds; i++)
		if (!cmd_hidden(&cli_cmds[i]))
			json_array_append_new(cmds, cmd_json(&cli_cmds[i]));
	for (int i = 0; i < O_COUNT; i++)
		if (cli_opts[i].flags & OPT_GLOBAL)
			json_array_append_new(globals, opt_json(&cli_opts[i]));
	for (size_t m = 0; m < sizeof exit_meanings / sizeof exit_meanings[0]; m++) {
		json_t *errs = json_array();
		if (exit_meanings[m].name != NULL)
			json_array_append_new(errs, json_string(exit_meanings[m].name));
		for (size_t i = 1; i < sizeof error_list / sizeof error_list[0]; i++)
			if (error_list[i].exit == exit_meanings[m].code)
				json_array_append_new(errs, json_string(error_list[i].name));
		json_array_append_new(codes, json_pack("{s:i,s:s,s:o}", "code",
		                                       exit_meanings[m].code, "meaning",
		                                       exit_meanings[m].meaning, "errors", errs));
	}
	return json_pack("{s:s,s:o,s:o,s:o}", "version", COFFER_VERSION_STRING, "commands", cmds,
	                 "global_options", globals, "exit_codes", codes);
}

/* ---- shell completion --------------------------------------------------------------------- */

static void opt_words(FILE *f, const opt_def *o)
{
	fprintf(f, " --%s", o->name);
	if (o->short_name)
		fprintf(f, " -%c", o->short_name);
}

static void words_where(FILE *f, int (*pred)(const opt_def *))
{
	for (int i = 0; i < O_COUNT; i++)
		if (pred(&cli_opts[i]))
			opt_words(f, &cli_opts[i]);
}

static int is_global(const opt_def *o)
{
	return (o->flags & OPT_GLOBAL) != 0;
}
static int takes_value(const opt_def *o)
{
	return o->kind != ARG_NONE;
}
static int takes_file(const opt_def *o)
{
	return o->kind == ARG_FILE;
}

static void cmd_words(FILE *f)
{
	for (size_t i = 0; i < cli_ncmds; i++)
		if (!cmd_hidden(&cli_cmds[i]))
			fprintf(f, "%s%s", i ? " " : "", cli_cmds[i].name);
}

/* The command's first argument: what it completes to, in shell syntax. */
static const char *arg_action(const cmd_def *d, int zsh)
{
	if (d->complete == NULL)
		return NULL;
	if (strcmp(d->complete, "commands") == 0)
		return zsh ? "_describe 'command' cmds"
		           : "COMPREPLY=($(compgen -W \"$cmds\" -- \"$cur\"))";
	if (strcmp(d->complete, "shells") == 0)
		return zsh ? "compadd bash zsh"
		           : "COMPREPLY=($(compgen -W \"bash zsh\" -- \"$cur\"))";
	if (strcmp(d->complete, "audit") == 0)
		return zsh ? "compadd verify" : "COMPREPLY=($(compgen -W \"verify\" -- \"$cur\"))";
	if (strcmp(d->complete, "command") == 0)
		return zsh ? "_command_names -e" : "COMPREPLY=($(compgen -c -- \"$cur\"))";
	return NULL;
}

static void bash_completion(FILE *f)
{
	fprintf(f,
	        "# bash completion for coffer %s, generated by 'coffer completion bash'.\n"
	        "_coffer() {\n"
	        "\tlocal cur prev cmd= i w skip=0\n"
	        "\tcur=${COMP_WORDS[COMP_CWORD]}\n"
	        "\tprev=${COMP_WORDS[COMP_CWORD-1]}\n"
	        "\tlocal cmds='",
	        COFFER_VERSION_STRING);
	cmd_words(f);
	fprintf(f, "'\n\tlocal global_opts='");
	words_where(f, is_global);
	fprintf(f, " '\n\tlocal value_opts=' ");
	words_where(f, takes_value);
	fprintf(f, " '\n\tlocal file_opts=' ");
	words_where(f, takes_file);
	fprintf(f, " '\n"
	           "\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
	           "\t\tw=${COMP_WORDS[i]}\n"
	           "\t\tif [ $skip = 1 ]; then skip=0; continue; fi\n"
	           "\t\tcase \"$value_opts\" in *\" $w \"*) skip=1; continue ;; esac\n"
	           "\t\tcase \"$w\" in -*) continue ;; esac\n"
	           "\t\tcmd=$w\n"
	           "\t\tbreak\n"
	           "\tdone\n"
	           "\tcase \"$file_opts\" in *\" $prev \"*) COMPREPLY=($(compgen -f -- \"$cur\")); "
	           "return ;; esac\n"
	           "\tcase \"$value_opts\" in *\" $prev \"*) COMPREPLY=(); return ;; esac\n"
	           "\tif [ -z \"$cmd\" ]; then\n"
	           "\t\tcase \"$cur\" in\n"
	           "\t\t-*) COMPREPLY=($(compgen -W \"$global_opts\" -- \"$cur\")) ;;\n"
	           "\t\t*) COMPREPLY=($(compgen -W \"$cmds\" -- \"$cur\")) ;;\n"
	           "\t\tesac\n"
	           "\t\treturn\n"
	           "\tfi\n"
	           "\tlocal opts=$global_opts\n"
	           "\tcase \"$cmd\" in\n");
	for (size_t i = 0; i < cli_ncmds; i++) {
		const cmd_def *d = &cli_cmds[i];
		if (cmd_hidden(d) || d->opts[0] == O_COUNT)
			continue;
		fprintf(f, "\t%s) opts=\"$opts", d->name);
		for (const opt_id *o = d->opts; *o != O_COUNT; o++)
			opt_words(f, &cli_opts[*o]);
		fprintf(f, "\" ;;\n");
	}
	fprintf(f, "\tesac\n"
	           "\tcase \"$cur\" in\n"
	           "\t-*) COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\")); return ;;\n"
	           "\tesac\n"
	           "\tcase \"$cmd\" in\n");
	for (size_t i = 0; i < cli_ncmds; i++) {
		const char *act = arg_action(&cli_cmds[i], 0);
		if (act != NULL && !cmd_hidden(&cli_cmds[i]))
			fprintf(f, "\t%s) %s ;;\n", cli_cmds[i].name, act);
	}
	fprintf(f, "\t*) COMPREPLY=() ;;\n"
	           "\tesac\n"
	           "}\n"
	           "complete -F _coffer coffer\n");
}

/* A zsh _describe entry: 'name:summary' with ' and : escaped. */
static void zsh_entry(FILE *f, const char *name, const char *desc)
{
	fprintf(f, "'%s:", name);
	for (const char *p = desc; *p; p++) {
		if (*p == '\'')
			fputs("'\\''", f);
		else if (*p == ':')
			fputs("\\:", f);
		else
			fputc(*p, f);
	}
	fputc('\'', f);
}

static void zsh_completion(FILE *f)
{
	fprintf(f,
	        "#compdef coffer\n"
	        "# zsh completion for coffer %s, generated by 'coffer completion zsh'.\n"
	        "_coffer() {\n"
	        "\tlocal -a cmds opts\n"
	        "\tcmds=(",
	        COFFER_VERSION_STRING);
	for (size_t i = 0; i < cli_ncmds; i++)
		if (!cmd_hidden(&cli_cmds[i])) {
			fputc(' ', f);
			zsh_entry(f, cli_cmds[i].name, cli_cmds[i].summary);
		}
	fprintf(f, " )\n\tlocal value_opts=' ");
	words_where(f, takes_value);
	fprintf(f, " '\n\tlocal file_opts=' ");
	words_where(f, takes_file);
	fprintf(f, " '\n\topts=(");
	words_where(f, is_global);
	fprintf(f, " )\n"
	           "\tlocal i w cmd= skip=0 prev=${words[CURRENT-1]}\n"
	           "\tfor (( i = 2; i < CURRENT; i++ )); do\n"
	           "\t\tw=${words[i]}\n"
	           "\t\tif (( skip )); then skip=0; continue; fi\n"
	           "\t\tif [[ $value_opts == *\" $w \"* ]]; then skip=1; continue; fi\n"
	           "\t\t[[ $w == -* ]] && continue\n"
	           "\t\tcmd=$w\n"
	           "\t\tbreak\n"
	           "\tdone\n"
	           "\tif [[ $file_opts == *\" $prev \"* ]]; then _files; return; fi\n"
	           "\tif [[ $value_opts == *\" $prev \"* ]]; then return; fi\n"
	           "\tcase $cmd in\n");
	for (size_t i = 0; i < cli_ncmds; i++) {
		const cmd_def *d = &cli_cmds[i];
		if (cmd_hidden(d) || d->opts[0] == O_COUNT)
			continue;
		fprintf(f, "\t%s) opts+=(", d->name);
		for (const opt_id *o = d->opts; *o != O_COUNT; o++)
			opt_words(f, &cli_opts[*o]);
		fprintf(f, " ) ;;\n");
	}
	fprintf(f, "\tesac\n"
	           "\tif [[ $PREFIX == -* ]]; then compadd -- $opts; return; fi\n"
	           "\tif [[ -z $cmd ]]; then _describe 'command' cmds; return; fi\n"
	           "\tcase $cmd in\n");
	for (size_t i = 0; i < cli_ncmds; i++) {
		const char *act = arg_action(&cli_cmds[i], 1);
		if (act != NULL && !cmd_hidden(&cli_cmds[i]))
			fprintf(f, "\t%s) %s ;;\n", cli_cmds[i].name, act);
	}
	fprintf(f, "\tesac\n"
	           "}\n"
	           "if [[ $funcstack[1] == _coffer ]]; then _coffer \"$@\"; else compdef _coffer "
	           "coffer; fi\n");
}

int cli_completion(const char *shell)
{
	if (strcmp(shell, "bash") == 0)
		bash_completion(stdout);
	else if (strcmp(shell, "zsh") == 0)
		zsh_completion(stdout);
	else
		return -1;
	return 0;
}
