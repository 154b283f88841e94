/*
 * version.c -- coffer_libversion(): the version compiled into the library itself.
 */
#include "coffer.h"

COFFER_API const char *coffer_libversion(void)
{
	return COFFER_VERSION_STRING;
}
