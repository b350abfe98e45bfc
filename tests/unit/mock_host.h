/*
 * mock_host.h - a fake sparkplaned for testing one plugin without the daemon.
 *
 * A mock host loads one plugin .so, hands it a context whose host API
 * records everything: log lines, metrics, timers (never fired on their
 * own: the test fires them with mock_host_fire_timers), registrations and
 * a key/value store in memory.  Options are set as the text a YAML config
 * would hold; descriptor defaults fill the rest, and option_int parses
 * durations, sizes and booleans the way the daemon documents them.  HTTP
 * answers SP_UNAVAILABLE: a test that needs it belongs in tests/integration.
 *
 * Child processes are real (own process group, stdout/stderr on pipes, as
 * the daemon does), but nothing happens behind the test's back: only
 * mock_host_run() reads their output, reaps them (on_exit) and fires
 * timers whose delay has passed in real time.  mock_host_fini() acts like
 * an unload: it calls fini, drops the registrations and detaches the
 * callbacks of running processes, so mock_host_init() again is a restart
 * of the plugin with the same options and key/value store.
 *
 *   mock_host *host = mock_host_new();
 *   mock_host_load(host, TEST_BUILDDIR "/plugins/auth_token/.libs/auth_token.so", err, sizeof err);
 *   mock_host_set_option(host, "tokens_file", path);
 *   rc = mock_host_init(host, err, sizeof err);
 *   ops = mock_host_provider(host, SP_KIND_AUTH, "auth_token", &provider);
 *   ...
 *   mock_host_free(host);   (calls fini if init succeeded)
 */
#ifndef SPARKPLANE_TESTS_MOCK_HOST_H
#define SPARKPLANE_TESTS_MOCK_HOST_H

#include <stddef.h>
#include <stdint.h>
#include <sparkplane/sparkplane.h>

typedef struct mock_host mock_host;

mock_host *mock_host_new(void);
/* Calls fini (if init succeeded), frees timers, metrics, options, dlcloses. */
void mock_host_free(mock_host *host);

/* dlopens `path` and reads its descriptor (magic and major checked); 0 or -1 + err. */
int mock_host_load(mock_host *host, const char *path, char *err, size_t err_size);
const sp_plugin_descriptor *mock_host_descriptor(const mock_host *host);
/* Sets an option as YAML text ("5s", "true", "/tmp/x"); later calls replace. */
int mock_host_set_option(mock_host *host, const char *key, const char *value);
/* Calls the plugin's init; returns its status, message in err. */
int mock_host_init(mock_host *host, char *err, size_t err_size);
void mock_host_fini(mock_host *host);
sp_plugin_context *mock_host_context(mock_host *host);

/* The ops table registered for (kind, name), or NULL; *provider_out gets its pointer. */
const void *mock_host_provider(const mock_host *host, sp_plugin_kind kind, const char *name,
                               void **provider_out);

/* Log lines, formatted "<level> <message>" (level: error|warn|info|debug). */
size_t mock_host_log_count(const mock_host *host);
const char *mock_host_log_line(const mock_host *host, size_t index);
/* 1 when some line at `level` contains `needle`. */
int mock_host_logged(const mock_host *host, sp_log_level level, const char *needle);
void mock_host_log_clear(mock_host *host);

/* Timers still armed, and firing them by hand: each armed timer runs once. */
size_t mock_host_timer_count(const mock_host *host);
uint64_t mock_host_timer_delay(const mock_host *host, size_t index);
size_t mock_host_fire_timers(mock_host *host);

/*
 * Runs real time for up to timeout_ms: reads child output, reaps exited
 * children (on_exit), fires due timers.  Stops early once done(arg) is
 * non-zero (done may be NULL); returns 1 when it stopped because of done.
 */
int mock_host_run(mock_host *host, int (*done)(void *arg), void *arg, uint64_t timeout_ms);
/* Children spawned and not yet reaped. */
size_t mock_host_process_count(const mock_host *host);

/* A metric's value; -1 when not registered. */
double mock_host_metric_value(const mock_host *host, const char *name, const char *labels);

#endif
