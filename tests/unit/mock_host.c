/*
 * mock_host.c - the fake host behind mock_host.h.
 *
 * The context is the first member of struct mock_host, so every host API
 * call casts its ctx back to the mock (as host_api.c does with
 * loaded_plugin).  Everything is kept in small growable arrays; nothing
 * runs on its own, so a test decides when timers fire: all at once with
 * mock_host_fire_timers, or when due in real time with mock_host_run,
 * which also polls child processes (non-blocking pipe reads and
 * waitpid(WNOHANG) every few milliseconds - no event loop, so the mock
 * needs no library).  The value parsers are deliberately tiny copies of
 * the documented syntax: the mock must not depend on the daemon's code,
 * so a plugin can be tested on its own.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mock_host.h"

extern char **environ;

struct sp_timer {
    mock_host *host;
    uint64_t delay_ms;
    int repeat;
    int armed;
    sp_timer_fn fn;
    void *arg;
    uint64_t due_ms; /* monotonic; for mock_host_run */
};

struct sp_process {
    pid_t pid;
    int out_fd, err_fd; /* -1 after EOF */
    void (*on_output)(void *arg, int stream, const char *data, size_t len);
    void (*on_exit)(void *arg, int exit_code, int term_signal);
    void *arg;
};

struct sp_metric {
    sp_metric_type type;
    char *name;
    char *labels;
    double value;
};

typedef struct mock_option {
    char *key;
    char *value;
} mock_option;

typedef struct mock_provider {
    sp_plugin_kind kind;
    char *name;
    const void *ops;
    void *provider;
} mock_provider;

typedef struct mock_kv {
    char *key;
    char *value;
    size_t len;
} mock_kv;

struct mock_host {
    sp_plugin_context ctx; /* first: host API calls cast back */
    sp_host_api api;
    void *dl_handle;
    const sp_plugin_descriptor *descriptor;
    int initialised;
    mock_option *options;
    size_t option_count;
    char **logs;
    size_t log_count;
    sp_timer **timers;
    size_t timer_count;
    sp_metric **metrics;
    size_t metric_count;
    mock_provider *providers;
    size_t provider_count;
    mock_kv *kvs;
    size_t kv_count;
    sp_process **processes;
    size_t process_count;
};

/* Grows *array by one element of `size` bytes; returns the new slot or NULL. */
static void *mock_grow(void *array_ptr, size_t *count, size_t size)
{
    void **array = array_ptr;
    char *grown = realloc(*array, (*count + 1) * size);
    if (grown == NULL)
        return NULL;
    *array = grown;
    memset(grown + *count * size, 0, size);
    return grown + (*count)++ * size;
}

static mock_host *mock_from(sp_plugin_context *ctx)
{
    return (mock_host *)ctx;
}

/* ---- options ------------------------------------------------------------ */

static const sp_option_spec *mock_option_spec(const mock_host *host, const char *key)
{
    if (host->descriptor == NULL || host->descriptor->options == NULL)
        return NULL;
    for (const sp_option_spec *s = host->descriptor->options; s->key != NULL; s++)
        if (strcmp(s->key, key) == 0)
            return s;
    return NULL;
}

/* The text set by the test, else the descriptor's default, else NULL. */
static const char *mock_option_text(const mock_host *host, const char *key)
{
    const sp_option_spec *spec;
    for (size_t i = 0; i < host->option_count; i++)
        if (strcmp(host->options[i].key, key) == 0)
            return host->options[i].value;
    spec = mock_option_spec(host, key);
    return spec != NULL ? spec->default_value : NULL;
}

/* "250ms" "30s" "5m" "2h" "7d"; "1MiB" "512k" "4096"; true/false... */
static int64_t mock_parse_number(const char *text, sp_option_type type)
{
    static const struct { const char *suffix; int64_t factor; } durations[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}, {"", 1}};
    static const struct { const char *suffix; int64_t factor; } sizes[] = {
        {"KiB", 1024}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"k", 1000}, {"K", 1000},
        {"M", 1000000}, {"G", 1000000000}, {"", 1}};
    char *end = NULL;
    int64_t n;

    if (type == SP_OPTION_BOOL)
        return strcasecmp(text, "true") == 0 || strcasecmp(text, "yes") == 0 ||
               strcasecmp(text, "on") == 0;
    n = strtoll(text, &end, 10);
    if (type == SP_OPTION_DURATION)
        for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++)
            if (strcmp(end, durations[i].suffix) == 0)
                return n * durations[i].factor;
    if (type == SP_OPTION_SIZE)
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
            if (strcmp(end, sizes[i].suffix) == 0)
                return n * sizes[i].factor;
    return n;
}

static const char *mock_option_string(sp_plugin_context *ctx, const char *key)
{
    return mock_option_text(mock_from(ctx), key);
}

static int64_t mock_option_int(sp_plugin_context *ctx, const char *key)
{
    mock_host *host = mock_from(ctx);
    const sp_option_spec *spec = mock_option_spec(host, key);
    const char *text = mock_option_text(host, key);
    return text == NULL ? 0 : mock_parse_number(text, spec != NULL ? spec->type : SP_OPTION_INT);
}

/*
 * Lists are set as comma-separated text in the mock; a YAML flow list
 * ("[a, b]", as descriptor defaults are written) is read the same way,
 * without its brackets and with items trimmed.
 */
static const char *mock_list_text(sp_plugin_context *ctx, const char *key, size_t *len)
{
    const char *text = mock_option_text(mock_from(ctx), key);
    if (text == NULL)
        return NULL;
    *len = strlen(text);
    if (*len >= 2 && text[0] == '[' && text[*len - 1] == ']') {
        text++;
        *len -= 2;
    }
    while (*len > 0 && text[0] == ' ')
        text++, (*len)--;
    return text;
}

static size_t mock_option_list_count(sp_plugin_context *ctx, const char *key)
{
    size_t len = 0, n = 1;
    const char *text = mock_list_text(ctx, key, &len);
    if (text == NULL || len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        n += text[i] == ',';
    return n;
}

static const char *mock_option_list_item(sp_plugin_context *ctx, const char *key, size_t index)
{
    static char item[1024]; /* valid until the next call: enough for a test */
    size_t len = 0, item_len;
    const char *text = mock_list_text(ctx, key, &len), *end, *stop;
    if (text == NULL || index >= mock_option_list_count(ctx, key))
        return NULL;
    stop = text + len;
    for (; index > 0; index--)
        text = (const char *)memchr(text, ',', (size_t)(stop - text)) + 1;
    end = memchr(text, ',', (size_t)(stop - text));
    end = end != NULL ? end : stop;
    while (text < end && *text == ' ')
        text++;
    while (end > text && end[-1] == ' ')
        end--;
    item_len = (size_t)(end - text);
    snprintf(item, sizeof(item), "%.*s", (int)item_len, text);
    return item;
}

int mock_host_set_option(mock_host *host, const char *key, const char *value)
{
    mock_option *slot = NULL;
    char *copy = strdup(value);

    if (copy == NULL)
        return -1;
    for (size_t i = 0; i < host->option_count && slot == NULL; i++)
        if (strcmp(host->options[i].key, key) == 0)
            slot = &host->options[i];
    if (slot == NULL) {
        slot = mock_grow(&host->options, &host->option_count, sizeof(*slot));
        if (slot == NULL || (slot->key = strdup(key)) == NULL) {
            free(copy);
            return -1;
        }
    }
    free(slot->value);
    slot->value = copy;
    return 0;
}

/* ---- logging ------------------------------------------------------------ */

static const char *const mock_level_names[] = {"error", "warn", "info", "debug"};

static void mock_log(sp_plugin_context *ctx, sp_log_level level, const char *fmt, ...)
{
    mock_host *host = mock_from(ctx);
    char message[2048];
    char **slot;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    slot = mock_grow(&host->logs, &host->log_count, sizeof(*slot));
    if (slot == NULL)
        return;
    *slot = malloc(strlen(message) + 8);
    if (*slot != NULL)
        sprintf(*slot, "%s %s", mock_level_names[(unsigned)level & 3u], message);
}

size_t mock_host_log_count(const mock_host *host)
{
    return host->log_count;
}

const char *mock_host_log_line(const mock_host *host, size_t index)
{
    return index < host->log_count ? host->logs[index] : NULL;
}

int mock_host_logged(const mock_host *host, sp_log_level level, const char *needle)
{
    const char *name = mock_level_names[(unsigned)level & 3u];
    size_t name_len = strlen(name);
    for (size_t i = 0; i < host->log_count; i++) {
        const char *line = host->logs[i];
        if (line != NULL && strncmp(line, name, name_len) == 0 && line[name_len] == ' ' &&
            strstr(line + name_len + 1, needle) != NULL)
            return 1;
    }
    return 0;
}

void mock_host_log_clear(mock_host *host)
{
    for (size_t i = 0; i < host->log_count; i++)
        free(host->logs[i]);
    free(host->logs);
    host->logs = NULL;
    host->log_count = 0;
}

/* ---- timers ------------------------------------------------------------- */

static uint64_t mock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static sp_timer *mock_timer_start(sp_plugin_context *ctx, uint64_t delay_ms, int repeat,
                                  sp_timer_fn fn, void *arg)
{
    mock_host *host = mock_from(ctx);
    sp_timer *timer = calloc(1, sizeof(*timer));
    sp_timer **slot = timer != NULL
                          ? mock_grow(&host->timers, &host->timer_count, sizeof(*slot))
                          : NULL;
    if (slot == NULL) {
        free(timer);
        return NULL;
    }
    *timer = (sp_timer){host, delay_ms, repeat, 1, fn, arg, mock_now_ms() + delay_ms};
    *slot = timer;
    return timer;
}

/* Cancelled timers stay allocated until mock_host_free: a cancel from inside fn is safe. */
static void mock_timer_cancel(sp_timer *timer)
{
    if (timer != NULL)
        timer->armed = 0;
}

size_t mock_host_timer_count(const mock_host *host)
{
    size_t n = 0;
    for (size_t i = 0; i < host->timer_count; i++)
        n += host->timers[i]->armed != 0;
    return n;
}

uint64_t mock_host_timer_delay(const mock_host *host, size_t index)
{
    for (size_t i = 0; i < host->timer_count; i++)
        if (host->timers[i]->armed && index-- == 0)
            return host->timers[i]->delay_ms;
    return 0;
}

size_t mock_host_fire_timers(mock_host *host)
{
    size_t fired = 0, count = host->timer_count; /* not those armed while firing */

    for (size_t i = 0; i < count; i++) {
        sp_timer *timer = host->timers[i];
        if (!timer->armed)
            continue;
        if (!timer->repeat)
            timer->armed = 0;
        timer->fn(timer->arg);
        fired++;
    }
    return fired;
}

/* ---- metrics ------------------------------------------------------------ */

static int mock_same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static sp_metric *mock_metric_find(const mock_host *host, const char *name, const char *labels)
{
    for (size_t i = 0; i < host->metric_count; i++)
        if (strcmp(host->metrics[i]->name, name) == 0 &&
            mock_same(host->metrics[i]->labels, labels))
            return host->metrics[i];
    return NULL;
}

static sp_metric *mock_metric_register(sp_plugin_context *ctx, sp_metric_type type,
                                       const char *name, const char *help, const char *labels)
{
    mock_host *host = mock_from(ctx);
    sp_metric *metric = mock_metric_find(host, name, labels);
    sp_metric **slot;

    if (metric != NULL)
        return metric;
    metric = calloc(1, sizeof(*metric));
    slot = metric != NULL ? mock_grow(&host->metrics, &host->metric_count, sizeof(*slot)) : NULL;
    if (slot == NULL) {
        free(metric);
        return NULL;
    }
    metric->type = type;
    metric->name = strdup(name);
    metric->labels = labels != NULL ? strdup(labels) : NULL;
    *slot = metric;
    return metric;
}

static void mock_metric_add(sp_metric *metric, double value)
{
    if (metric != NULL)
        metric->value += value;
}

static void mock_metric_set(sp_metric *metric, double value)
{
    if (metric != NULL)
        metric->value = value;
}

double mock_host_metric_value(const mock_host *host, const char *name, const char *labels)
{
    const sp_metric *metric = mock_metric_find(host, name, labels);
    return metric != NULL ? metric->value : -1;
}

/* ---- key/value, HTTP, processes ----------------------------------------- */

static mock_kv *mock_kv_find(mock_host *host, const char *key)
{
    for (size_t i = 0; i < host->kv_count; i++)
        if (host->kvs[i].key != NULL && strcmp(host->kvs[i].key, key) == 0)
            return &host->kvs[i];
    return NULL;
}

static int mock_kv_put(sp_plugin_context *ctx, const char *key, const void *value, size_t len,
                       char *err, size_t err_size)
{
    mock_host *host = mock_from(ctx);
    mock_kv *kv = mock_kv_find(host, key);
    char *copy = malloc(len + 1);

    if (copy == NULL || (kv == NULL && (kv = mock_grow(&host->kvs, &host->kv_count,
                                                       sizeof(*kv))) == NULL)) {
        free(copy);
        snprintf(err, err_size, "kv_put: out of memory");
        return SP_ERROR;
    }
    if (kv->key == NULL)
        kv->key = strdup(key);
    memcpy(copy, value, len);
    copy[len] = '\0';
    free(kv->value);
    kv->value = copy;
    kv->len = len;
    return SP_OK;
}

static int mock_kv_get(sp_plugin_context *ctx, const char *key, char **value_out, size_t *len_out)
{
    mock_kv *kv = mock_kv_find(mock_from(ctx), key);
    if (kv == NULL || kv->value == NULL)
        return SP_NOT_FOUND;
    *value_out = malloc(kv->len + 1);
    if (*value_out == NULL)
        return SP_ERROR;
    memcpy(*value_out, kv->value, kv->len + 1);
    if (len_out != NULL)
        *len_out = kv->len;
    return SP_OK;
}

static int mock_kv_delete(sp_plugin_context *ctx, const char *key)
{
    mock_kv *kv = mock_kv_find(mock_from(ctx), key);
    if (kv == NULL || kv->value == NULL)
        return SP_NOT_FOUND;
    free(kv->value);
    kv->value = NULL;
    return SP_OK;
}

static int mock_http_request(sp_plugin_context *ctx, const sp_http_request *request,
                             sp_http_done_fn done, void *arg, sp_http_call **call_out)
{
    return SP_UNAVAILABLE;
}

static void mock_http_cancel(sp_http_call *call)
{
}

/* environ plus spec->env (which wins); the strings are borrowed. */
static char **mock_env_build(const char *const *extra)
{
    size_t count = 0, extra_count = 0, n = 0;
    char **envp;
    while (environ[count] != NULL)
        count++;
    while (extra != NULL && extra[extra_count] != NULL)
        extra_count++;
    if ((envp = calloc(count + extra_count + 1, sizeof(*envp))) == NULL)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        size_t key_len = strcspn(environ[i], "=");
        int overridden = 0;
        for (size_t j = 0; j < extra_count; j++)
            overridden |= strncmp(environ[i], extra[j], key_len) == 0 && extra[j][key_len] == '=';
        if (!overridden)
            envp[n++] = environ[i];
    }
    for (size_t j = 0; j < extra_count; j++)
        envp[n++] = (char *)extra[j];
    return envp;
}

/*
 * fork + exec in a new process group, stdout/stderr on pipes: what the
 * daemon does with posix_spawnp (plain POSIX here, as this file is built
 * without _GNU_SOURCE).  An exec failure is exit status 127.
 */
static int mock_spawn_child(const sp_process_spec *spec, int out[2], int errp[2], pid_t *pid)
{
    char **envp = mock_env_build(spec->env);
    int null_fd;
    if (envp == NULL)
        return ENOMEM;
    if ((*pid = fork()) < 0) {
        free(envp);
        return errno;
    }
    if (*pid > 0) {
        setpgid(*pid, *pid); /* also in the child: whichever runs first */
        free(envp);
        return 0;
    }
    setpgid(0, 0);
    null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out[1], 1) < 0 || dup2(errp[1], 2) < 0 ||
        (spec->cwd != NULL && chdir(spec->cwd) != 0))
        _exit(127);
    signal(SIGPIPE, SIG_DFL);
    environ = envp;
    execvp(spec->argv[0], (char *const *)spec->argv);
    _exit(127);
}

/* A pipe whose ends are closed on exec (the child's copies are dup2'd to 1 and 2). */
static int mock_pipe(int fds[2])
{
    if (pipe(fds) != 0)
        return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
}

static int mock_process_spawn(sp_plugin_context *ctx, const sp_process_spec *spec,
                              sp_process **process_out, char *err, size_t err_size)
{
    mock_host *host = mock_from(ctx);
    int out[2] = {-1, -1}, errp[2] = {-1, -1}, rc;
    sp_process *process, **slot;

    if (spec == NULL || spec->argv == NULL || spec->argv[0] == NULL) {
        snprintf(err, err_size, "spec.argv must name a program");
        return SP_INVALID;
    }
    process = calloc(1, sizeof(*process));
    if (process == NULL || mock_pipe(out) != 0 || mock_pipe(errp) != 0) {
        snprintf(err, err_size, "cannot create pipes: %s", strerror(errno));
        rc = SP_ERROR;
        goto fail;
    }
    if ((rc = mock_spawn_child(spec, out, errp, &process->pid)) != 0) {
        snprintf(err, err_size, "cannot run '%s': %s", spec->argv[0], strerror(rc));
        rc = SP_ERROR;
        goto fail;
    }
    close(out[1]);
    close(errp[1]);
    process->out_fd = out[0];
    process->err_fd = errp[0];
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(errp[0], F_SETFL, O_NONBLOCK);
    process->on_output = spec->on_output;
    process->on_exit = spec->on_exit;
    process->arg = spec->arg;
    slot = mock_grow(&host->processes, &host->process_count, sizeof(*slot));
    if (slot != NULL)
        *slot = process;
    if (process_out != NULL)
        *process_out = process;
    return SP_OK;
fail:
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0)
            close(out[i]);
        if (errp[i] >= 0)
            close(errp[i]);
    }
    free(process);
    return rc;
}

static int mock_process_signal(sp_process *process, int signal_number)
{
    if (process == NULL || process->pid <= 0)
        return SP_INVALID;
    if (kill(-process->pid, signal_number) == 0)
        return SP_OK;
    return errno == ESRCH ? SP_NOT_FOUND : SP_ERROR;
}

static long mock_process_pid(sp_process *process)
{
    return process != NULL ? (long)process->pid : -1;
}

/* Reads what is there; closes the pipe at EOF. */
static void mock_process_drain(sp_process *process, int *fd, int stream)
{
    char buffer[4096];
    ssize_t n;
    while (*fd >= 0 && (n = read(*fd, buffer, sizeof(buffer))) != 0) {
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            break;
        }
        if (process->on_output != NULL)
            process->on_output(process->arg, stream, buffer, (size_t)n);
    }
    close(*fd);
    *fd = -1;
}

/* One pass over the children: output read, the exited reaped and reported. */
static void mock_process_poll(mock_host *host)
{
    for (size_t i = 0; i < host->process_count;) {
        sp_process *process = host->processes[i];
        int status;
        mock_process_drain(process, &process->out_fd, 1);
        mock_process_drain(process, &process->err_fd, 2);
        if (waitpid(process->pid, &status, WNOHANG) != process->pid ||
            !(WIFEXITED(status) || WIFSIGNALED(status))) {
            i++;
            continue;
        }
        for (int fd_index = 0; fd_index < 2; fd_index++) {
            int *fd = fd_index == 0 ? &process->out_fd : &process->err_fd;
            if (*fd >= 0)
                close(*fd);
            *fd = -1;
        }
        host->processes[i] = host->processes[--host->process_count];
        if (process->on_exit != NULL)
            process->on_exit(process->arg, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                             WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        free(process);
    }
}

size_t mock_host_process_count(const mock_host *host)
{
    return host->process_count;
}

/* Timers whose delay has passed; those armed while firing wait for the next pass. */
static void mock_timers_fire_due(mock_host *host)
{
    size_t count = host->timer_count;
    for (size_t i = 0; i < count; i++) {
        sp_timer *timer = host->timers[i];
        if (!timer->armed || timer->due_ms > mock_now_ms())
            continue;
        if (timer->repeat)
            timer->due_ms = mock_now_ms() + (timer->delay_ms > 0 ? timer->delay_ms : 1);
        else
            timer->armed = 0;
        timer->fn(timer->arg);
    }
}

int mock_host_run(mock_host *host, int (*done)(void *arg), void *arg, uint64_t timeout_ms)
{
    uint64_t deadline = mock_now_ms() + timeout_ms;
    const struct timespec nap = {0, 5 * 1000 * 1000};
    for (;;) {
        mock_process_poll(host);
        mock_timers_fire_due(host);
        if (done != NULL && done(arg))
            return 1;
        if (mock_now_ms() >= deadline)
            return 0;
        nanosleep(&nap, NULL);
    }
}

/* ---- registration ------------------------------------------------------- */

/* Same answers as the real host: ABI 1.0 ops sizes, NOT_SUPPORTED, CONFLICT. */
static size_t mock_ops_min_size(sp_plugin_kind kind)
{
    switch (kind) {
    case SP_KIND_BACKEND:
        return sizeof(sp_backend_ops);
    case SP_KIND_AUTH:
        return sizeof(sp_auth_ops);
    case SP_KIND_POLICY:
        return sizeof(sp_policy_ops);
    case SP_KIND_MANIFEST:
        return sizeof(sp_manifest_ops);
    default:
        return 0;
    }
}

static int mock_register_provider(sp_plugin_context *ctx, sp_plugin_kind kind, const char *name,
                                  const void *ops, void *provider)
{
    mock_host *host = mock_from(ctx);
    size_t min_size = mock_ops_min_size(kind);
    mock_provider *slot;

    if (min_size == 0)
        return SP_NOT_SUPPORTED;
    if (name == NULL || ops == NULL || *(const uint32_t *)ops < min_size)
        return SP_INVALID;
    if (mock_host_provider(host, kind, name, NULL) != NULL)
        return SP_CONFLICT;
    slot = mock_grow(&host->providers, &host->provider_count, sizeof(*slot));
    if (slot == NULL || (slot->name = strdup(name)) == NULL)
        return SP_ERROR;
    slot->kind = kind;
    slot->ops = ops;
    slot->provider = provider;
    return SP_OK;
}

const void *mock_host_provider(const mock_host *host, sp_plugin_kind kind, const char *name,
                               void **provider_out)
{
    for (size_t i = 0; i < host->provider_count; i++) {
        const mock_provider *p = &host->providers[i];
        if (p->kind == kind && strcmp(p->name, name) == 0) {
            if (provider_out != NULL)
                *provider_out = p->provider;
            return p->ops;
        }
    }
    return NULL;
}

/* ---- lifecycle ---------------------------------------------------------- */

mock_host *mock_host_new(void)
{
    mock_host *host = calloc(1, sizeof(*host));
    if (host == NULL)
        return NULL;
    host->api = (sp_host_api){
        .size = sizeof(sp_host_api),
        .abi_major = SP_ABI_MAJOR,
        .abi_minor = SP_ABI_MINOR,
        .daemon_version = "mock",
        .log = mock_log,
        .option_string = mock_option_string,
        .option_int = mock_option_int,
        .option_list_count = mock_option_list_count,
        .option_list_item = mock_option_list_item,
        .timer_start = mock_timer_start,
        .timer_cancel = mock_timer_cancel,
        .http_request = mock_http_request,
        .http_cancel = mock_http_cancel,
        .process_spawn = mock_process_spawn,
        .process_signal = mock_process_signal,
        .process_pid = mock_process_pid,
        .metric_register = mock_metric_register,
        .metric_add = mock_metric_add,
        .metric_set = mock_metric_set,
        .metric_observe = mock_metric_add,
        .kv_put = mock_kv_put,
        .kv_get = mock_kv_get,
        .kv_delete = mock_kv_delete,
        .register_provider = mock_register_provider,
    };
    host->ctx.size = sizeof(host->ctx);
    host->ctx.host = &host->api;
    return host;
}

int mock_host_load(mock_host *host, const char *path, char *err, size_t err_size)
{
    const sp_plugin_descriptor *d;

    host->dl_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (host->dl_handle == NULL) {
        snprintf(err, err_size, "cannot load %s: %s", path, dlerror());
        return -1;
    }
    d = dlsym(host->dl_handle, SP_PLUGIN_SYMBOL_NAME);
    if (d == NULL || d->magic != SP_PLUGIN_MAGIC || d->abi_major != SP_ABI_MAJOR ||
        d->abi_minor > SP_ABI_MINOR || d->descriptor_size < sizeof(*d) || d->init == NULL) {
        snprintf(err, err_size, "%s: not a usable ABI %d.%d plugin", path, SP_ABI_MAJOR,
                 SP_ABI_MINOR);
        return -1;
    }
    host->descriptor = d;
    return 0;
}

const sp_plugin_descriptor *mock_host_descriptor(const mock_host *host)
{
    return host->descriptor;
}

sp_plugin_context *mock_host_context(mock_host *host)
{
    return &host->ctx;
}

int mock_host_init(mock_host *host, char *err, size_t err_size)
{
    int rc;

    if (host->descriptor == NULL) {
        snprintf(err, err_size, "no plugin loaded");
        return SP_ERROR;
    }
    err[0] = '\0';
    rc = host->descriptor->init(&host->ctx, err, err_size);
    host->initialised = rc == SP_OK;
    return rc;
}

/* Like an unload: fini, then registrations dropped and process callbacks detached. */
void mock_host_fini(mock_host *host)
{
    if (host->initialised && host->descriptor->fini != NULL)
        host->descriptor->fini(&host->ctx);
    host->initialised = 0;
    for (size_t i = 0; i < host->provider_count; i++)
        free(host->providers[i].name);
    free(host->providers);
    host->providers = NULL;
    host->provider_count = 0;
    for (size_t i = 0; i < host->process_count; i++) {
        host->processes[i]->on_output = NULL;
        host->processes[i]->on_exit = NULL;
        host->processes[i]->arg = NULL;
    }
}

static void mock_host_free_tables(mock_host *host)
{
    for (size_t i = 0; i < host->option_count; i++) {
        free(host->options[i].key);
        free(host->options[i].value);
    }
    for (size_t i = 0; i < host->timer_count; i++)
        free(host->timers[i]);
    for (size_t i = 0; i < host->metric_count; i++) {
        free(host->metrics[i]->name);
        free(host->metrics[i]->labels);
        free(host->metrics[i]);
    }
    for (size_t i = 0; i < host->provider_count; i++)
        free(host->providers[i].name);
    for (size_t i = 0; i < host->kv_count; i++) {
        free(host->kvs[i].key);
        free(host->kvs[i].value);
    }
    /* A child a test left running is killed with its group and reaped. */
    for (size_t i = 0; i < host->process_count; i++) {
        sp_process *process = host->processes[i];
        kill(-process->pid, SIGKILL);
        waitpid(process->pid, NULL, 0);
        if (process->out_fd >= 0)
            close(process->out_fd);
        if (process->err_fd >= 0)
            close(process->err_fd);
        free(process);
    }
    free(host->processes);
    free(host->options);
    free(host->timers);
    free(host->metrics);
    free(host->providers);
    free(host->kvs);
}

void mock_host_free(mock_host *host)
{
    const char *keep = getenv("SPARKPLANE_NO_DLCLOSE");

    if (host == NULL)
        return;
    mock_host_fini(host);
    mock_host_log_clear(host);
    mock_host_free_tables(host);
    if (host->dl_handle != NULL && !(keep != NULL && strcmp(keep, "1") == 0))
        dlclose(host->dl_handle);
    free(host);
}
