/*
 * sparkplane/host.h - the host API: everything a plugin may ask of
 * sparkplaned, reached through ctx->host.
 *
 * Every call takes the plugin's context first, so the host knows who is
 * asking: log lines are tagged with the plugin name, timers, HTTP calls,
 * processes and registrations are released when the plugin unloads, and
 * the key/value store is private to the plugin.
 *
 * Everything runs on the daemon's single event loop.  Callbacks are called
 * from the loop, never from another thread; a plugin must not block.
 *
 * Tables passed in (sp_http_request, sp_process_spec) start with their
 * size, so the host can tell which fields an older plugin knew.  Set
 * `.size = sizeof(the struct)` and zero what you do not use.
 */
#ifndef SPARKPLANE_HOST_H
#define SPARKPLANE_HOST_H

#include <sparkplane/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sp_log_level {
    SP_LOG_ERROR = 0,
    SP_LOG_WARN = 1,
    SP_LOG_INFO = 2,
    SP_LOG_DEBUG = 3
} sp_log_level;

typedef struct sp_timer sp_timer;
typedef struct sp_http_call sp_http_call;
typedef struct sp_process sp_process;
typedef struct sp_metric sp_metric;

typedef void (*sp_timer_fn)(void *arg);

/* ---- outbound HTTP (libcurl multi on the event loop) ---------------- */

typedef struct sp_http_request {
    uint32_t size;
    const char *method;              /* "GET" when NULL */
    const char *url;                 /* for unix sockets: http://localhost/path */
    const char *const *headers;      /* "Name: value" strings, NULL-terminated */
    const void *body;
    size_t body_len;
    const char *unix_socket;         /* connect to this socket path instead */
    const char *ca_file;             /* trust these CAs (PEM) */
    const char *client_cert;         /* TLS client certificate (PEM file) */
    const char *client_key;          /* its key (PEM file) */
    int insecure_skip_tls_verify;    /* tests only */
    const char *aws_sigv4;           /* e.g. "aws:amz:us-east-1:emr-containers" */
    const char *aws_access_key_id;   /* with aws_sigv4 */
    const char *aws_secret_access_key;
    const char *aws_session_token;   /* optional, sent as X-Amz-Security-Token */
    uint32_t timeout_ms;             /* whole request; 0 = 30 s */
    size_t max_response_bytes;       /* 0 = 16 MiB; larger answers fail */
} sp_http_request;

typedef struct sp_http_response {
    uint32_t size;
    int status;                 /* SP_OK when an HTTP answer arrived */
    long http_status;           /* 200, 404, ...; 0 on transport failure */
    const char *body;           /* NUL-terminated copy; valid during callback */
    size_t body_len;
    const char *error_message;  /* transport error text, "" when none */
} sp_http_response;

typedef void (*sp_http_done_fn)(void *arg, const sp_http_response *response);

/* ---- child processes ------------------------------------------------- */

typedef struct sp_process_spec {
    uint32_t size;
    const char *const *argv;    /* argv[0] is looked up in PATH */
    const char *const *env;     /* "KEY=value" added to the daemon's env */
    const char *cwd;            /* NULL: the daemon's */
    /* Output as it arrives; stream is 1 (stdout) or 2 (stderr). May be NULL. */
    void (*on_output)(void *arg, int stream, const char *data, size_t len);
    /* Called once.  exit_code >= 0, or -1 with term_signal set. */
    void (*on_exit)(void *arg, int exit_code, int term_signal);
    void *arg;
} sp_process_spec;

/* ---- metrics ----------------------------------------------------------- */

typedef enum sp_metric_type {
    SP_METRIC_COUNTER = 1,
    SP_METRIC_GAUGE = 2,
    SP_METRIC_HISTOGRAM = 3
} sp_metric_type;

/* ---- the table --------------------------------------------------------- */

typedef struct sp_host_api {
    uint32_t size;
    uint16_t abi_major;
    uint16_t abi_minor;
    const char *daemon_version;

    /* Logging, tagged plugin=<name>. */
    void (*log)(sp_plugin_context *ctx, sp_log_level level, const char *fmt, ...)
        SP_PRINTF(3, 4);

    /* Validated options (defaults applied).  NULL / 0 when unset. */
    const char *(*option_string)(sp_plugin_context *ctx, const char *key);
    int64_t (*option_int)(sp_plugin_context *ctx, const char *key); /* INT, DURATION (ms), SIZE (bytes), BOOL (0/1) */
    size_t (*option_list_count)(sp_plugin_context *ctx, const char *key);
    const char *(*option_list_item)(sp_plugin_context *ctx, const char *key, size_t index);

    /* Timers.  repeat != 0 fires every delay_ms until cancelled. */
    sp_timer *(*timer_start)(sp_plugin_context *ctx, uint64_t delay_ms, int repeat,
                             sp_timer_fn fn, void *arg);
    void (*timer_cancel)(sp_timer *timer);

    /* Asynchronous HTTP.  `done` is called exactly once unless cancelled. */
    int (*http_request)(sp_plugin_context *ctx, const sp_http_request *request,
                        sp_http_done_fn done, void *arg, sp_http_call **call_out);
    void (*http_cancel)(sp_http_call *call);

    /* Child processes in their own process group. */
    int (*process_spawn)(sp_plugin_context *ctx, const sp_process_spec *spec,
                         sp_process **process_out, char *err, size_t err_size);
    /* Signal the whole process group. */
    int (*process_signal)(sp_process *process, int signal_number);
    long (*process_pid)(sp_process *process);

    /*
     * Metrics, exported on /metrics.  `name` must be a Prometheus name;
     * `labels` is NULL or a label set such as `backend="local",state="ok"`.
     * Registering the same name and labels twice returns the same metric.
     * Histograms use the host's latency buckets (seconds).
     */
    sp_metric *(*metric_register)(sp_plugin_context *ctx, sp_metric_type type,
                                  const char *name, const char *help,
                                  const char *labels);
    void (*metric_add)(sp_metric *metric, double value);     /* counter, gauge */
    void (*metric_set)(sp_metric *metric, double value);     /* gauge */
    void (*metric_observe)(sp_metric *metric, double value); /* histogram */

    /*
     * A small per-plugin key/value store in the daemon's database.
     * kv_get returns SP_NOT_FOUND when absent; *value_out is malloc'd and
     * NUL-terminated, the caller frees it with free().
     */
    int (*kv_put)(sp_plugin_context *ctx, const char *key, const void *value,
                  size_t len, char *err, size_t err_size);
    int (*kv_get)(sp_plugin_context *ctx, const char *key, char **value_out,
                  size_t *len_out);
    int (*kv_delete)(sp_plugin_context *ctx, const char *key);

    /*
     * Register what this plugin provides.  `ops` points to the kind's ops
     * table (sp_auth_ops, sp_backend_ops, ...), whose first field is its
     * size; `provider` is passed back as the first argument of every op.
     * Answers SP_NOT_SUPPORTED for a kind this host does not know and
     * SP_CONFLICT for a name already registered.
     */
    int (*register_provider)(sp_plugin_context *ctx, sp_plugin_kind kind,
                             const char *name, const void *ops, void *provider);
} sp_host_api;

#ifdef __cplusplus
}
#endif

#endif /* SPARKPLANE_HOST_H */
