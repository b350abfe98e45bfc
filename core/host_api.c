/*
 * host_api.c - the sp_host_api table every plugin receives.
 *
 * Each entry is a thin adapter: it recovers the calling plugin from its
 * context (sp_plugin_context is the first member of loaded_plugin), then
 * calls the daemon service that does the work - logging, options, timers,
 * the HTTP client, the process manager, metrics, the store.  Timers are kept
 * here in one list with their owner, so host_api_release() can cancel what
 * an unloading plugin left behind.
 */
#include "host_api.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

static host_services host_services_bound;

struct sp_timer {
    struct event *event;
    loaded_plugin *owner;
    sp_timer_fn fn;
    void *arg;
    int repeat;
    int firing;         /* inside fn: cancel must not free */
    int cancelled;
    struct sp_timer *next;
};

static sp_timer *host_timers;

void host_api_bind(const host_services *services)
{
    host_services_bound = *services;
}

static loaded_plugin *host_plugin(sp_plugin_context *ctx)
{
    return (loaded_plugin *)ctx;
}

static void host_log(sp_plugin_context *ctx, sp_log_level level, const char *fmt, ...)
    SP_PRINTF(3, 4);

static void host_log(sp_plugin_context *ctx, sp_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_plugin(level, host_plugin(ctx)->name, fmt, ap);
    va_end(ap);
}

static const char *host_option_string(sp_plugin_context *ctx, const char *key)
{
    return plugin_options_string(host_plugin(ctx)->options, key);
}

static int64_t host_option_int(sp_plugin_context *ctx, const char *key)
{
    return plugin_options_int(host_plugin(ctx)->options, key);
}

static size_t host_option_list_count(sp_plugin_context *ctx, const char *key)
{
    return plugin_options_list_count(host_plugin(ctx)->options, key);
}

static const char *host_option_list_item(sp_plugin_context *ctx, const char *key, size_t index)
{
    return plugin_options_list_item(host_plugin(ctx)->options, key, index);
}

/* ---- timers --------------------------------------------------------- */

static void timer_unlink_free(sp_timer *timer)
{
    for (sp_timer **p = &host_timers; *p; p = &(*p)->next) {
        if (*p == timer) {
            *p = timer->next;
            break;
        }
    }
    event_free(timer->event);
    free(timer);
}

static void timer_on_fire(evutil_socket_t fd, short what, void *arg)
{
    sp_timer *timer = arg;
    timer->firing = 1;
    timer->fn(timer->arg);
    timer->firing = 0;
    if (timer->cancelled || !timer->repeat)
        timer_unlink_free(timer);
}

static sp_timer *host_timer_start(sp_plugin_context *ctx, uint64_t delay_ms, int repeat,
                                  sp_timer_fn fn, void *arg)
{
    if (fn == NULL || host_services_bound.base == NULL)
        return NULL;
    sp_timer *timer = calloc(1, sizeof(*timer));
    if (timer == NULL)
        return NULL;
    timer->event = event_new(host_services_bound.base, -1, repeat ? EV_PERSIST : 0,
                             timer_on_fire, timer);
    if (timer->event == NULL) {
        free(timer);
        return NULL;
    }
    timer->owner = host_plugin(ctx);
    timer->fn = fn;
    timer->arg = arg;
    timer->repeat = repeat;
    struct timeval tv = {.tv_sec = (time_t)(delay_ms / 1000),
                         .tv_usec = (suseconds_t)(delay_ms % 1000) * 1000};
    event_add(timer->event, &tv);
    timer->next = host_timers;
    host_timers = timer;
    return timer;
}

static void host_timer_cancel(sp_timer *timer)
{
    if (timer == NULL)
        return;
    event_del(timer->event);
    if (timer->firing)
        timer->cancelled = 1;
    else
        timer_unlink_free(timer);
}

/* ---- HTTP and processes --------------------------------------------- */

static int host_http_request(sp_plugin_context *ctx, const sp_http_request *request,
                             sp_http_done_fn done, void *arg, sp_http_call **call_out)
{
    char err[256];
    if (host_services_bound.http == NULL)
        return SP_UNAVAILABLE;
    int status = http_client_request(host_services_bound.http, host_plugin(ctx), request, done,
                                     arg, call_out, err, sizeof(err));
    if (status != SP_OK)
        host_log(ctx, SP_LOG_WARN, "http request refused: %s", err);
    return status;
}

static void host_http_cancel(sp_http_call *call)
{
    http_client_cancel(call);
}

static int host_process_spawn(sp_plugin_context *ctx, const sp_process_spec *spec,
                              sp_process **process_out, char *err, size_t err_size)
{
    if (host_services_bound.processes == NULL)
        return SP_UNAVAILABLE;
    return process_manager_spawn(host_services_bound.processes, host_plugin(ctx), spec,
                                 process_out, err, err_size);
}

/* ---- metrics, key/value, registration ------------------------------- */

static sp_metric *host_metric_register(sp_plugin_context *ctx, sp_metric_type type,
                                       const char *name, const char *help, const char *labels)
{
    return metrics_register(type, name, help, labels);
}

static int host_kv_put(sp_plugin_context *ctx, const char *key, const void *value, size_t len,
                       char *err, size_t err_size)
{
    if (host_services_bound.state == NULL)
        return SP_UNAVAILABLE;
    return store_kv_put(host_services_bound.state, host_plugin(ctx)->name, key, value, len, err,
                        err_size) == 0
               ? SP_OK
               : SP_ERROR;
}

static int host_kv_get(sp_plugin_context *ctx, const char *key, char **value_out,
                       size_t *len_out)
{
    if (host_services_bound.state == NULL)
        return SP_UNAVAILABLE;
    int rc = store_kv_get(host_services_bound.state, host_plugin(ctx)->name, key, value_out,
                          len_out);
    return rc == 0 ? SP_OK : rc == 1 ? SP_NOT_FOUND : SP_ERROR;
}

static int host_kv_delete(sp_plugin_context *ctx, const char *key)
{
    if (host_services_bound.state == NULL)
        return SP_UNAVAILABLE;
    int rc = store_kv_delete(host_services_bound.state, host_plugin(ctx)->name, key);
    return rc == 0 ? SP_OK : rc == 1 ? SP_NOT_FOUND : SP_ERROR;
}

static int host_register_provider(sp_plugin_context *ctx, sp_plugin_kind kind, const char *name,
                                  const void *ops, void *provider)
{
    return plugin_set_register(host_plugin(ctx), kind, name, ops, provider);
}

static const sp_host_api host_api = {
    .size = sizeof(sp_host_api),
    .abi_major = SP_ABI_MAJOR,
    .abi_minor = SP_ABI_MINOR,
    .daemon_version = PACKAGE_VERSION,
    .log = host_log,
    .option_string = host_option_string,
    .option_int = host_option_int,
    .option_list_count = host_option_list_count,
    .option_list_item = host_option_list_item,
    .timer_start = host_timer_start,
    .timer_cancel = host_timer_cancel,
    .http_request = host_http_request,
    .http_cancel = host_http_cancel,
    .process_spawn = host_process_spawn,
    .process_signal = process_manager_signal,
    .process_pid = process_manager_pid,
    .metric_register = host_metric_register,
    .metric_add = metrics_add,
    .metric_set = metrics_set,
    .metric_observe = metrics_observe,
    .kv_put = host_kv_put,
    .kv_get = host_kv_get,
    .kv_delete = host_kv_delete,
    .register_provider = host_register_provider,
};

const sp_host_api *host_api_table(void)
{
    return &host_api;
}

void host_api_release(loaded_plugin *plugin)
{
    sp_timer **p = &host_timers;
    while (*p) {
        sp_timer *timer = *p;
        if (timer->owner == plugin && !timer->firing) {
            *p = timer->next;
            event_free(timer->event);
            free(timer);
            continue;
        }
        if (timer->owner == plugin)
            timer->cancelled = 1;
        p = &timer->next;
    }
    if (host_services_bound.http)
        http_client_cancel_owner(host_services_bound.http, plugin);
    if (host_services_bound.processes)
        process_manager_release_owner(host_services_bound.processes, plugin);
}
