/*
 * notify.h - the systemd notify protocol without libsystemd: a datagram to
 * $NOTIFY_SOCKET ("READY=1", "STATUS=...", "RELOADING=1", "STOPPING=1").
 * Without NOTIFY_SOCKET every call is a no-op, so the daemon runs the same
 * outside systemd.
 */
#ifndef SPARKPLANE_CORE_NOTIFY_H
#define SPARKPLANE_CORE_NOTIFY_H

/* Sends `state` (newline-separated assignments); 0 sent or not under systemd. */
int notify_send(const char *state);
int notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* RELOADING=1 with MONOTONIC_USEC, as Type=notify-reload expects. */
int notify_reloading(void);

#endif
