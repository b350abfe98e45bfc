/*
 * log.h - structured logging to stderr, one line per event.
 *
 * Two formats chosen in config (log.format): "kv" (logfmt:
 * ts=... level=info subsystem=rest msg="..." key=value) and "json"
 * (one object per line).  Every line carries the subsystem ("core",
 * "rest", "store", or plugin=<name> for plugin lines).
 */
#ifndef SPARKPLANE_CORE_LOG_H
#define SPARKPLANE_CORE_LOG_H

#include <stdarg.h>
#include <sparkplane/host.h>

typedef enum log_format { LOG_FORMAT_KV = 0, LOG_FORMAT_JSON = 1 } log_format;

void log_configure(sp_log_level level, log_format format);
sp_log_level log_current_level(void);

/* Parse "error|warn|info|debug" and "kv|json"; return -1 when unknown. */
int log_level_parse(const char *text, sp_log_level *out);
int log_format_parse(const char *text, log_format *out);

/* A free-text message. */
void log_msg(sp_log_level level, const char *subsystem, const char *fmt, ...)
    SP_PRINTF(3, 4);
void log_vmsg(sp_log_level level, const char *subsystem, const char *fmt, va_list ap)
    SP_PRINTF(3, 0);

/*
 * A message with extra fields: pairs of (key, value) strings ended by NULL.
 *   log_fields(SP_LOG_INFO, "rest", "request", "method", "GET", "status", "200", NULL);
 */
void log_fields(sp_log_level level, const char *subsystem, const char *message, ...);

/* Same, with "plugin" as the tag key instead of "subsystem". */
void log_plugin(sp_log_level level, const char *plugin, const char *fmt, va_list ap)
    SP_PRINTF(3, 0);

#endif
