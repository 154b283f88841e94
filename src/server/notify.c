/*
 * notify.c -- sd_notify() for Type=notify units (see notify.h).
 */
#include "notify.h"

#include <stdio.h>
#include <time.h>

#ifdef COFFER_WITH_SYSTEMD
#include <systemd/sd-daemon.h>

void notify_ready(const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", status != NULL ? status : "serving");
}

void notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=draining in-flight calls");
}

void notify_reloading(void)
{
	/* MONOTONIC_USEC lets systemd (Type=notify-reload, v253+) match this reload. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
	           (unsigned long long)ts.tv_sec * 1000000ull +
	               (unsigned long long)ts.tv_nsec / 1000ull);
}

int notify_available(void)
{
	return 1;
}
#else
void notify_ready(const char *status)
{
	(void)status;
}

void notify_stopping(void)
{
}

void notify_reloading(void)
{
}

int notify_available(void)
{
	return 0;
}
#endif
