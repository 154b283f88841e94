/* The error list of coffer.h, expanded into its three lookups. */
#include "coffer.h"

const char *coffer_strerror(int rc)
{
	switch (rc) {
#define X(name, value, msg, grpc, exitcode)                                                        \
	case COFFER_##name:                                                                        \
		return msg;
		COFFER_ERROR_LIST(X)
#undef X
	}
	return "unknown error";
}

int coffer_grpc_status(int rc)
{
	switch (rc) {
#define X(name, value, msg, grpc, exitcode)                                                        \
	case COFFER_##name:                                                                        \
		return grpc;
		COFFER_ERROR_LIST(X)
#undef X
	}
	return 2; /* UNKNOWN */
}

int coffer_exit_code(int rc)
{
	switch (rc) {
#define X(name, value, msg, grpc, exitcode)                                                        \
	case COFFER_##name:                                                                        \
		return exitcode;
		COFFER_ERROR_LIST(X)
#undef X
	}
	return 1;
}
