/*
 * notify.h -- telling systemd (Type=notify) how the server is doing, through libsystemd's
 * sd_notify(). Built without libsystemd (-DCOFFER_WITH_SYSTEMD=OFF, or libsystemd-dev missing),
 * each is a no-op; with it, each is a no-op too unless $NOTIFY_SOCKET is set (not under systemd).
 */
#ifndef COFFER_SERVER_NOTIFY_H
#define COFFER_SERVER_NOTIFY_H

/* READY=1 with a STATUS= line: every listener is bound and every worker runs. */
void notify_ready(const char *status);
/* STOPPING=1: SIGTERM/SIGINT arrived, in-flight calls are draining. */
void notify_stopping(void);
/* RELOADING=1 (follow with notify_ready() once the reload is done or refused). */
void notify_reloading(void);
/* 1 if built with libsystemd. */
int notify_available(void);

#endif
