/* The CLI's main.c with its main() renamed, for the fuzz target and replay.c, which bring their
 * own main(). */
#define main coffer_cli_main
#include "cli/main.c"
