/*
 * server.h -- the one entry point the coffer CLI uses to run the server.
 */
#ifndef COFFER_SERVER_SERVER_H
#define COFFER_SERVER_SERVER_H

/*
 * Run `coffer serve`: argv[0] is "serve", the rest are serve's options (see `coffer serve --help`).
 * The store comes from --store, else the environment variable COFFER_STORE, else ./.coffer.
 * Blocks until SIGTERM or SIGINT, drains in-flight calls, and returns the process exit code
 * (0 after a clean drain; 2 for a usage error; otherwise coffer_exit_code() of what failed).
 */
int coffer_serve_main(int argc, char **argv);

#endif
