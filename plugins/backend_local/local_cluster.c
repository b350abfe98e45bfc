/*
 * local_cluster.c - Spark Connect clusters on this machine.
 *
 * A local cluster is a Spark standalone cluster made of JVMs started with
 * the Spark home's own scripts (pyspark from pip has bin/ but no sbin/):
 *   master    bin/spark-class ...deploy.master.Master --host 127.0.0.1 --port P
 *   worker-K  bin/spark-class ...deploy.worker.Worker --cores C --memory M ...
 *             spark://127.0.0.1:P   (one per executor: a worker of C cores
 *             gives the application one executor of C cores)
 *   server    bin/spark-submit --class ...SparkConnectServer --master
 *             spark://127.0.0.1:P --properties-file <dir>/spark.properties
 * each through the host's process_spawn (its own process group) inside a
 * /bin/sh line that sends its output to <dir>/<name>.log, so the cluster
 * outlives a daemon that is killed.  The Spark Connect token lives only in
 * the 0600 properties file, never on a command line.
 *
 * A start runs the master, waits (a 250 ms watch timer, non-blocking
 * connects) until its port accepts, runs the workers and the server, and
 * answers once the Spark Connect port accepts.  A scale up waits for each
 * new worker's "Successfully registered with master" line; a scale down
 * stops the newest workers.  A stop goes server, workers, master: SIGTERM
 * to each group, SIGKILL after the grace period, the next stage once the
 * previous one is gone.  Every process is recorded in the kv store (key
 * "cluster:<id>", index "_clusters") with its pid and /proc start time, so
 * a restarted daemon adopts the cluster (local_record.c's checks).
 *
 * A cluster struct is freed only by its own watch timer once a stop is
 * complete, never inside an op or an event, so a host that calls back
 * into us from a reply or an event never finds a freed cluster.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "local_backend.h"

#define LOCAL_CLUSTER_MAX_WORKERS  32
#define LOCAL_CLUSTER_WATCH_MS     250
#define LOCAL_CLUSTER_REASON_MAX   1024
#define LOCAL_CLUSTER_ARGS_MAX     48
#define LOCAL_CLUSTERS_INDEX_KEY   "_clusters"
#define LOCAL_CLUSTER_REGISTERED   "Successfully registered with master"
#define LOCAL_CLUSTER_SERVER_CLASS "org.apache.spark.sql.connect.service.SparkConnectServer"

/* $1 is the log; the rest is the command, exec'd so the pid stays the JVM's. */
static const char local_cluster_wrapper[] =
    "log=$1; shift; exec </dev/null >\"$log\" 2>&1; exec \"$@\"";

typedef enum local_cluster_phase {
    LOCAL_CLUSTER_MASTER_STARTING, /* the master runs; waiting for its port */
    LOCAL_CLUSTER_SERVER_STARTING, /* workers and server run; waiting for the Connect port */
    LOCAL_CLUSTER_RUNNING,
    LOCAL_CLUSTER_SCALING,
    LOCAL_CLUSTER_STOPPING,
    LOCAL_CLUSTER_FAILED
} local_cluster_phase;

typedef struct local_cluster local_cluster;

typedef struct local_cluster_process {
    local_cluster *cluster;
    char name[24]; /* "master", "server", "worker-K"; also <name>.log */
    long pid;      /* leader of its process group */
    unsigned long long start_ticks;
    sp_process *process; /* while this daemon is its parent and it has not exited */
    int registered;      /* workers: logged LOCAL_CLUSTER_REGISTERED */
    int retiring;        /* workers: being stopped by a scale down */
    double signalled_at; /* SIGTERM sent (epoch s); 0: not yet */
    int killed;          /* SIGKILL sent */
} local_cluster_process;

typedef struct local_waiter {
    sp_backend_reply_fn fn;
    void *arg;
    struct local_waiter *next;
} local_waiter;

struct local_cluster {
    local_clusters *owner;
    char id[64];
    char *dir;
    char *spark_home;
    json_int_t executor_cores;
    char executor_memory[32];
    int master_port, master_webui_port, server_port;
    local_cluster_process *master, *server;
    local_cluster_process *workers[LOCAL_CLUSTER_MAX_WORKERS];
    size_t worker_count;
    size_t workers_wanted; /* a start: how many workers once the master listens */
    int next_worker;
    local_cluster_phase phase;
    char *reason;   /* FAILED: why; SCALING / a failed start: the error */
    double began;   /* the start or scale, for the deadline and the log */
    int probe_fd;   /* a connect in progress, or -1 */
    int stop_stage; /* 0 server, 1 workers, 2 master, 3 done */
    int kill_now;   /* a failed start or a dead cluster: no grace period */
    sp_backend_reply_fn start_fn, scale_fn;
    void *start_arg, *scale_arg;
    local_waiter *stop_waiters;
    sp_timer *watch;
    local_cluster *next;
};

struct local_clusters {
    sp_plugin_context *ctx;
    local_cluster_settings settings;
    local_reply *replies;
    local_cluster *list;
    sp_backend_event_fn on_event;
    void *event_arg;
    sp_metric *clusters_metric;
    sp_metric *workers_metric;
};

/* What cluster_start asked for, checked. */
typedef struct local_cluster_spec {
    const char *id;
    const char *token;
    const char *spark_home;
    json_int_t executors, executor_cores, driver_cores;
    char executor_memory[32], driver_memory[32];
    json_t *conf;
} local_cluster_spec;

/* A NULL-terminated argv or env of owned strings, fixed size: a cluster command is short. */
typedef struct local_args {
    char *items[LOCAL_CLUSTER_ARGS_MAX + 1];
    size_t count;
    int failed;
} local_args;

static void local_cluster_watch(void *arg);

/* ---- small helpers ---------------------------------------------------------- */

static double local_cluster_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void local_args_add(local_args *v, const char *fmt, ...) SP_PRINTF(2, 3);

static void local_args_add(local_args *v, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    if (s == NULL || v->count >= LOCAL_CLUSTER_ARGS_MAX) {
        free(s);
        v->failed = 1;
        return;
    }
    v->items[v->count++] = s;
    v->items[v->count] = NULL;
}

static void local_args_free(local_args *v)
{
    for (size_t i = 0; i < v->count; i++)
        free(v->items[i]);
    v->count = 0;
}

/* The host's name for a cluster: [a-z0-9-], 1..63 bytes (sparkplane/backend.h). */
static int local_cluster_id_valid(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;
    return n >= 1 && n <= 63 && strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/*
 * A free TCP port on 127.0.0.1: bind port 0, read what the kernel chose,
 * close.  Another process may take it before Spark binds it; that race is
 * accepted (the start then fails with Spark's bind error and can be retried).
 */
static int local_free_port(int *port, char *err, size_t err_size)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        snprintf(err, err_size, "no free port on 127.0.0.1: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return SP_UNAVAILABLE;
    }
    close(fd);
    *port = ntohs(addr.sin_port);
    return SP_OK;
}

/*
 * 1 once 127.0.0.1:port accepted a TCP connection.  Never blocks: a
 * connect still in progress is kept in *fd and looked at on the next tick.
 */
static int local_port_accepts(int *fd, int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct pollfd ready;
    int error = 0;
    socklen_t len = sizeof(error);
    if (*fd >= 0) {
        ready = (struct pollfd){.fd = *fd, .events = POLLOUT};
        if (poll(&ready, 1, 0) == 0)
            return 0;
        if (getsockopt(*fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0)
            error = errno;
        close(*fd);
        *fd = -1;
        return error == 0;
    }
    if ((*fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        return 0;
    if (connect(*fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
        close(*fd);
        *fd = -1;
        return 1;
    }
    if (errno != EINPROGRESS) {
        close(*fd);
        *fd = -1;
    }
    return 0;
}

/* 1 when <path> contains `needle` (a worker log is small: read whole, at most 4 MiB). */
static int local_file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "re");
    char *buffer;
    size_t n;
    int found = 0;
    if (f == NULL)
        return 0;
    if ((buffer = malloc((4u << 20) + 1)) != NULL) {
        n = fread(buffer, 1, 4u << 20, f);
        buffer[n] = '\0';
        found = memmem(buffer, n, needle, strlen(needle)) != NULL;
        free(buffer);
    }
    fclose(f);
    return found;
}

/* ---- processes ----------------------------------------------------------------- */

/* Gone: not alive at its recorded start time, and (when ours) reaped by the host. */
static int local_member_gone(const local_cluster_process *p)
{
    return p == NULL || (p->process == NULL && !local_process_alive(p->pid, p->start_ticks));
}

static void local_member_signal(local_cluster_process *p, int signal_number)
{
    sp_plugin_context *ctx = p->cluster->owner->ctx;
    if (p->process != NULL)
        ctx->host->process_signal(p->process, signal_number);
    else if (local_process_alive(p->pid, p->start_ticks))
        kill(-(pid_t)p->pid, signal_number);
    if (signal_number == SIGKILL)
        p->killed = 1;
    else if (p->signalled_at == 0)
        p->signalled_at = local_cluster_now();
}

/* SIGTERM (SIGKILL without a grace period or when `now`); once each. */
static void local_member_stop(local_cluster_process *p, int now)
{
    if (p == NULL || p->killed || local_member_gone(p))
        return;
    if (now || p->cluster->owner->settings.grace_ms <= 0)
        local_member_signal(p, SIGKILL);
    else if (p->signalled_at == 0)
        local_member_signal(p, SIGTERM);
}

/* SIGKILL once the grace period since the SIGTERM has passed. */
static void local_member_escalate(local_cluster_process *p)
{
    local_clusters *c = p->cluster->owner;
    if (p->killed || p->signalled_at == 0 || local_member_gone(p) ||
        (local_cluster_now() - p->signalled_at) * 1000.0 < (double)c->settings.grace_ms)
        return;
    c->ctx->host->log(c->ctx, SP_LOG_WARN,
                      "cluster %s: %s still running after the grace "
                      "period: SIGKILL",
                      p->cluster->id, p->name);
    local_member_signal(p, SIGKILL);
}

static void local_member_on_exit(void *arg, int exit_code, int term_signal)
{
    local_cluster_process *p = arg;
    (void)exit_code;
    (void)term_signal;
    p->process = NULL; /* the host frees its handle; gone is now /proc's to say */
}

/* Frees a gone member; whatever its group left behind is killed first. */
static void local_member_free(local_cluster_process *p)
{
    if (p == NULL)
        return;
    if (p->pid > 0)
        kill(-(pid_t)p->pid, SIGKILL);
    free(p);
}

static char *local_member_log_path(const local_cluster_process *p)
{
    char *path = NULL;
    return asprintf(&path, "%s/%s.log", p->cluster->dir, p->name) < 0 ? NULL : path;
}

/* "<prefix>" and the last meaningful lines of the member's log. */
static char *local_member_reason(const local_cluster_process *p, const char *prefix)
{
    char *path = local_member_log_path(p);
    char *lines = path != NULL ? local_log_failure_lines(path, LOCAL_CLUSTER_REASON_MAX) : NULL;
    char *reason = NULL;
    if (asprintf(&reason, "%s%s%s", prefix, lines != NULL && lines[0] != '\0' ? "\n" : "",
                 lines != NULL ? lines : "") < 0)
        reason = NULL;
    free(path);
    free(lines);
    return reason;
}

/*
 * SPARK_DAEMON_MEMORY only for the master and workers: Spark's launcher
 * also gives it to a Spark Connect server, whose heap is the driver memory.
 */
static void local_cluster_env(const local_clusters *c, const local_cluster *cl, int is_daemon,
                              local_args *env)
{
    const local_cluster_settings *s = &c->settings;
    local_args_add(env, "SPARK_HOME=%s", cl->spark_home);
    if (is_daemon)
        local_args_add(env, "SPARK_DAEMON_MEMORY=%s", s->daemon_memory);
    local_args_add(env, "SPARK_LOCAL_IP=127.0.0.1");
    if (s->python != NULL && s->python[0] != '\0')
        local_args_add(env, "PYSPARK_PYTHON=%s", s->python);
    if (s->java_home != NULL && s->java_home[0] != '\0')
        local_args_add(env, "JAVA_HOME=%s", s->java_home);
}

/*
 * Runs `command` as the member `name` of the cluster, output to <name>.log
 * (truncated: a log belongs to one process).  NULL with err on failure.
 */
static local_cluster_process *local_member_spawn(local_cluster *cl, const char *name,
                                                 local_args *command, char *err, size_t err_size)
{
    local_clusters *c = cl->owner;
    local_cluster_process *p = calloc(1, sizeof(*p));
    local_args argv = {0}, env = {0};
    sp_process_spec spec = {.size = sizeof(spec), .cwd = cl->dir, .on_exit = local_member_on_exit};
    int rc;

    if (p == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    p->cluster = cl;
    snprintf(p->name, sizeof(p->name), "%s", name);
    local_args_add(&argv, "/bin/sh");
    local_args_add(&argv, "-c");
    local_args_add(&argv, "%s", local_cluster_wrapper);
    local_args_add(&argv, "sh");
    local_args_add(&argv, "%s/%s.log", cl->dir, name);
    for (size_t i = 0; i < command->count; i++)
        local_args_add(&argv, "%s", command->items[i]);
    local_cluster_env(c, cl, strcmp(name, "server") != 0, &env);
    spec.argv = (const char *const *)argv.items;
    spec.env = (const char *const *)env.items;
    spec.arg = p;
    if (argv.failed || env.failed) {
        snprintf(err, err_size, "out of memory");
        rc = SP_ERROR;
    } else {
        rc = c->ctx->host->process_spawn(c->ctx, &spec, &p->process, err, err_size);
    }
    local_args_free(&argv);
    local_args_free(&env);
    if (rc != SP_OK) {
        free(p);
        return NULL;
    }
    p->pid = c->ctx->host->process_pid(p->process);
    p->start_ticks = local_process_start_ticks(p->pid);
    c->ctx->host->log(c->ctx, SP_LOG_DEBUG, "cluster %s: %s started, pid %ld", cl->id, name,
                      p->pid);
    return p;
}

static local_cluster_process *local_master_spawn(local_cluster *cl, char *err, size_t err_size)
{
    local_args command = {0};
    local_cluster_process *p;
    local_args_add(&command, "%s/bin/spark-class", cl->spark_home);
    local_args_add(&command, "org.apache.spark.deploy.master.Master");
    local_args_add(&command, "--host");
    local_args_add(&command, "127.0.0.1");
    local_args_add(&command, "--port");
    local_args_add(&command, "%d", cl->master_port);
    local_args_add(&command, "--webui-port");
    local_args_add(&command, "%d", cl->master_webui_port);
    p = local_member_spawn(cl, "master", &command, err, err_size);
    local_args_free(&command);
    return p;
}

static local_cluster_process *local_worker_spawn(local_cluster *cl, char *err, size_t err_size)
{
    local_args command = {0};
    local_cluster_process *p;
    char name[24];
    int index = cl->next_worker++;
    snprintf(name, sizeof(name), "worker-%d", index);
    local_args_add(&command, "%s/bin/spark-class", cl->spark_home);
    local_args_add(&command, "org.apache.spark.deploy.worker.Worker");
    local_args_add(&command, "--cores");
    local_args_add(&command, "%" JSON_INTEGER_FORMAT, cl->executor_cores);
    local_args_add(&command, "--memory");
    local_args_add(&command, "%s", cl->executor_memory);
    local_args_add(&command, "--host");
    local_args_add(&command, "127.0.0.1");
    local_args_add(&command, "--webui-port");
    local_args_add(&command, "0");
    local_args_add(&command, "--work-dir");
    local_args_add(&command, "%s/%s", cl->dir, name);
    local_args_add(&command, "spark://127.0.0.1:%d", cl->master_port);
    p = local_member_spawn(cl, name, &command, err, err_size);
    local_args_free(&command);
    return p;
}

static local_cluster_process *local_server_spawn(local_cluster *cl, char *err, size_t err_size)
{
    local_args command = {0};
    local_cluster_process *p;
    local_args_add(&command, "%s/bin/spark-submit", cl->spark_home);
    local_args_add(&command, "--class");
    local_args_add(&command, LOCAL_CLUSTER_SERVER_CLASS);
    local_args_add(&command, "--master");
    local_args_add(&command, "spark://127.0.0.1:%d", cl->master_port);
    local_args_add(&command, "--name");
    local_args_add(&command, "sparkplane-%s", cl->id);
    local_args_add(&command, "--properties-file");
    local_args_add(&command, "%s/spark.properties", cl->dir);
    p = local_member_spawn(cl, "server", &command, err, err_size);
    local_args_free(&command);
    return p;
}

/* ---- the properties file (it holds the token: 0600, never argv) --------------- */

/* Java properties escaping: backslash, line breaks; in keys also ':', '=', '#', '!', space. */
static void local_properties_put(FILE *f, const char *text, int is_key)
{
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '\\')
            fputs("\\\\", f);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\r')
            fputs("\\r", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if ((is_key && strchr(":=#! ", *p) != NULL) || (p == text && *p == ' '))
            fprintf(f, "\\%c", *p);
        else
            fputc(*p, f);
    }
}

static void local_property(FILE *f, const char *key, const char *value)
{
    local_properties_put(f, key, 1);
    fputc('=', f);
    local_properties_put(f, value, 0);
    fputc('\n', f);
}

static void local_property_int(FILE *f, const char *key, json_int_t value)
{
    char text[32];
    snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, value);
    local_property(f, key, text);
}

/*
 * The server's settings: defaults, the document's conf, the plugin's
 * extra_conf, and last (so they win) what the plugin owns: where it
 * listens and its token.
 */
static void local_properties_write_settings(FILE *f, const local_clusters *c,
                                            const local_cluster *cl, const local_cluster_spec *spec)
{
    const char *key;
    json_t *value;
    char name[96];
    snprintf(name, sizeof(name), "sparkplane-%s", cl->id);
    local_property(f, "spark.app.name", name);
    local_property(f, "spark.driver.host", "127.0.0.1");
    local_property(f, "spark.driver.memory", spec->driver_memory);
    local_property_int(f, "spark.driver.cores", spec->driver_cores);
    local_property_int(f, "spark.executor.cores", spec->executor_cores);
    local_property(f, "spark.executor.memory", spec->executor_memory);
    if (c->settings.python != NULL && c->settings.python[0] != '\0')
        local_property(f, "spark.pyspark.python", c->settings.python);
    json_object_foreach(spec->conf, key, value) local_property(f, key, json_string_value(value));
    for (size_t i = 0; c->settings.extra_conf != NULL && c->settings.extra_conf[i] != NULL; i++) {
        const char *item = c->settings.extra_conf[i], *eq = strchr(item, '=');
        char *item_key = strndup(item, (size_t)(eq - item));
        if (item_key != NULL)
            local_property(f, item_key, eq + 1);
        free(item_key);
    }
    local_property(f, "spark.connect.grpc.binding.address", "127.0.0.1");
    local_property_int(f, "spark.connect.grpc.binding.port", cl->server_port);
    local_property(f, "spark.connect.authenticate.token", spec->token);
}

static int local_properties_write(const local_clusters *c, const local_cluster *cl,
                                  const local_cluster_spec *spec, char *err, size_t err_size)
{
    char path[4096];
    FILE *f;
    int fd, failed;
    snprintf(path, sizeof(path), "%s/spark.properties", cl->dir);
    unlink(path); /* a fresh file, so the 0600 below is its mode from the start */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        snprintf(err, err_size, "cannot write %.900s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return SP_ERROR;
    }
    fputs("# written by sparkplane's local backend; holds the Spark Connect token\n", f);
    local_properties_write_settings(f, c, cl, spec);
    failed = ferror(f);
    if (fclose(f) != 0 || failed) {
        snprintf(err, err_size, "cannot write %.900s: %s", path, strerror(errno));
        return SP_ERROR;
    }
    return SP_OK;
}

/* ---- records ------------------------------------------------------------------- */

static const char *local_cluster_state_name(local_cluster_phase phase)
{
    switch (phase) {
    case LOCAL_CLUSTER_MASTER_STARTING:
    case LOCAL_CLUSTER_SERVER_STARTING:
        return "STARTING";
    case LOCAL_CLUSTER_RUNNING:
    case LOCAL_CLUSTER_SCALING:
        return "RUNNING";
    case LOCAL_CLUSTER_STOPPING:
        return "STOPPING";
    default:
        return "FAILED";
    }
}

static size_t local_cluster_executors(const local_cluster *cl)
{
    size_t n = 0;
    for (size_t i = 0; i < cl->worker_count; i++)
        n += !cl->workers[i]->retiring;
    return n;
}

static char *local_record_key(const char *cluster_id)
{
    char *key = NULL;
    return asprintf(&key, "cluster:%s", cluster_id) < 0 ? NULL : key;
}

static void local_member_record(json_t *list, const local_cluster_process *p)
{
    if (p != NULL)
        json_array_append_new(list,
                              json_pack("{s:s,s:I,s:I}", "name", p->name, "pid", (json_int_t)p->pid,
                                        "start_ticks", (json_int_t)p->start_ticks));
}

static json_t *local_cluster_record(const local_cluster *cl)
{
    json_t *members = json_array();
    json_t *record;
    local_member_record(members, cl->master);
    for (size_t i = 0; i < cl->worker_count; i++)
        local_member_record(members, cl->workers[i]);
    local_member_record(members, cl->server);
    record =
        json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:{s:I,s:s},s:i,s:o}", "id", cl->id, "dir", cl->dir,
                  "spark_home", cl->spark_home, "state", local_cluster_state_name(cl->phase),
                  "master_port", cl->master_port, "master_webui_port", cl->master_webui_port,
                  "server_port", cl->server_port, "executor", "cores", cl->executor_cores, "memory",
                  cl->executor_memory, "next_worker", cl->next_worker, "processes", members);
    if (record != NULL && cl->reason != NULL)
        json_object_set_new(record, "reason", json_string(cl->reason));
    return record;
}

static json_t *local_clusters_index_load(sp_plugin_context *ctx)
{
    char *text = NULL;
    size_t len = 0;
    json_t *index = NULL;
    if (ctx->host->kv_get(ctx, LOCAL_CLUSTERS_INDEX_KEY, &text, &len) == SP_OK)
        index = json_loadb(text, len, 0, NULL);
    free(text);
    if (!json_is_array(index)) {
        json_decref(index);
        index = json_array();
    }
    return index;
}

static int local_clusters_index_update(sp_plugin_context *ctx, const char *cluster_id, int present)
{
    json_t *index = local_clusters_index_load(ctx), *item;
    size_t i, found = (size_t)-1;
    char err[256], *text;
    int rc = SP_OK;
    json_array_foreach(index, i, item)
    {
        if (json_is_string(item) && strcmp(json_string_value(item), cluster_id) == 0)
            found = i;
    }
    if (present && found == (size_t)-1)
        json_array_append_new(index, json_string(cluster_id));
    else if (!present && found != (size_t)-1)
        json_array_remove(index, found);
    else
        goto done;
    text = json_dumps(index, JSON_COMPACT);
    rc = text != NULL ? ctx->host->kv_put(ctx, LOCAL_CLUSTERS_INDEX_KEY, text, strlen(text), err,
                                          sizeof(err))
                      : SP_ERROR;
    free(text);
done:
    json_decref(index);
    return rc;
}

/* Records the cluster as it is now; SP_OK or a message in err. */
static int local_cluster_save(local_cluster *cl, char *err, size_t err_size)
{
    sp_plugin_context *ctx = cl->owner->ctx;
    json_t *record = local_cluster_record(cl);
    char *key = local_record_key(cl->id);
    int rc = SP_ERROR;
    snprintf(err, err_size, "out of memory");
    if (record != NULL && key != NULL)
        rc = local_record_put(ctx, key, record, err, err_size);
    if (rc == SP_OK)
        rc = local_clusters_index_update(ctx, cl->id, 1);
    json_decref(record);
    free(key);
    if (rc != SP_OK)
        ctx->host->log(ctx, SP_LOG_WARN, "cannot record cluster %s: %s", cl->id, err);
    return rc;
}

static void local_cluster_forget_record(local_cluster *cl)
{
    sp_plugin_context *ctx = cl->owner->ctx;
    char *key = local_record_key(cl->id);
    if (key != NULL)
        ctx->host->kv_delete(ctx, key);
    free(key);
    local_clusters_index_update(ctx, cl->id, 0);
}

/* ---- the cluster list ------------------------------------------------------------ */

static void local_clusters_count(local_clusters *c)
{
    size_t clusters = 0, workers = 0;
    for (local_cluster *cl = c->list; cl != NULL; cl = cl->next) {
        clusters++;
        workers += cl->worker_count;
    }
    c->ctx->host->metric_set(c->clusters_metric, (double)clusters);
    c->ctx->host->metric_set(c->workers_metric, (double)workers);
}

static local_cluster *local_cluster_find(local_clusters *c, const char *cluster_id)
{
    for (local_cluster *cl = c->list; cl != NULL && cluster_id != NULL; cl = cl->next)
        if (strcmp(cl->id, cluster_id) == 0)
            return cl;
    return NULL;
}

static local_cluster *local_cluster_new(local_clusters *c, const char *cluster_id,
                                        const char *spark_home)
{
    local_cluster *cl = calloc(1, sizeof(*cl));
    if (cl == NULL)
        return NULL;
    cl->owner = c;
    cl->probe_fd = -1;
    snprintf(cl->id, sizeof(cl->id), "%s", cluster_id);
    cl->spark_home = strdup(spark_home);
    if (cl->spark_home == NULL || asprintf(&cl->dir, "%s/" LOCAL_CLUSTERS_DIRECTORY "/%s",
                                           c->settings.work_directory, cluster_id) < 0) {
        free(cl->spark_home);
        free(cl);
        return NULL;
    }
    cl->next = c->list;
    c->list = cl;
    return cl;
}

/* Frees the struct only: its processes run on (unload) or are gone (a finished stop). */
static void local_cluster_free(local_cluster *cl, int processes_gone)
{
    local_clusters *c = cl->owner;
    for (local_cluster **link = &c->list; *link != NULL; link = &(*link)->next) {
        if (*link == cl) {
            *link = cl->next;
            break;
        }
    }
    if (cl->watch != NULL)
        c->ctx->host->timer_cancel(cl->watch);
    if (cl->probe_fd >= 0)
        close(cl->probe_fd);
    if (processes_gone) {
        local_member_free(cl->master);
        local_member_free(cl->server);
        for (size_t i = 0; i < cl->worker_count; i++)
            local_member_free(cl->workers[i]);
    } else {
        free(cl->master);
        free(cl->server);
        for (size_t i = 0; i < cl->worker_count; i++)
            free(cl->workers[i]);
    }
    while (cl->stop_waiters != NULL) {
        local_waiter *w = cl->stop_waiters;
        cl->stop_waiters = w->next;
        free(w);
    }
    free(cl->reason);
    free(cl->dir);
    free(cl->spark_home);
    free(cl);
    local_clusters_count(c);
}

static void local_cluster_watch_begin(local_cluster *cl)
{
    sp_plugin_context *ctx = cl->owner->ctx;
    if (cl->watch == NULL)
        cl->watch = ctx->host->timer_start(ctx, LOCAL_CLUSTER_WATCH_MS, 1, local_cluster_watch, cl);
}

static void local_cluster_watch_end(local_cluster *cl)
{
    if (cl->watch != NULL)
        cl->owner->ctx->host->timer_cancel(cl->watch);
    cl->watch = NULL;
}

static void local_cluster_set_reason(local_cluster *cl, char *reason_owned)
{
    free(cl->reason);
    cl->reason = reason_owned != NULL ? reason_owned : strdup("(out of memory)");
}

static json_t *local_cluster_endpoint_doc(const local_cluster *cl)
{
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%d", cl->server_port);
    return json_pack("{s:s,s:I}", "endpoint", endpoint, "executors",
                     (json_int_t)local_cluster_executors(cl));
}

static void local_cluster_reply(local_cluster *cl, sp_backend_reply_fn fn, void *arg, int status,
                                json_t *doc, const char *message)
{
    local_clusters *c = cl->owner;
    local_reply_later(c->ctx, &c->replies, fn, arg, status, doc, message);
}

/* ---- stopping ---------------------------------------------------------------------- */

/* Stage 0: the server; 1: the workers; 2: the master. */
static int local_stage_gone(const local_cluster *cl, int stage)
{
    if (stage == 0)
        return local_member_gone(cl->server);
    if (stage == 2)
        return local_member_gone(cl->master);
    for (size_t i = 0; i < cl->worker_count; i++)
        if (!local_member_gone(cl->workers[i]))
            return 0;
    return 1;
}

static void local_stage_each(local_cluster *cl, int stage, void (*fn)(local_cluster_process *))
{
    if (stage == 0 && cl->server != NULL)
        fn(cl->server);
    if (stage == 2 && cl->master != NULL)
        fn(cl->master);
    for (size_t i = 0; stage == 1 && i < cl->worker_count; i++)
        fn(cl->workers[i]);
}

static void local_member_stop_graceful(local_cluster_process *p)
{
    local_member_stop(p, p->cluster->kill_now);
}

/*
 * Starts the stop: server first.  `kill_now`: no grace period (a start
 * that failed, a cluster found dead).  Idempotent.
 */
static void local_cluster_begin_stop(local_cluster *cl, int kill_now)
{
    char err[256];
    if (cl->phase == LOCAL_CLUSTER_STOPPING) {
        cl->kill_now |= kill_now;
        return;
    }
    cl->phase = LOCAL_CLUSTER_STOPPING;
    cl->kill_now = kill_now;
    cl->stop_stage = 0;
    local_stage_each(cl, 0, local_member_stop_graceful);
    local_cluster_save(cl, err, sizeof(err)); /* a restart finishes the stop */
    local_cluster_watch_begin(cl);
}

/* Everything is gone: answer whoever waited, forget the cluster. */
static void local_cluster_finish_stop(local_cluster *cl)
{
    local_clusters *c = cl->owner;
    c->ctx->host->log(c->ctx, SP_LOG_INFO, "cluster %s stopped%s%s", cl->id,
                      cl->start_fn != NULL ? ": " : "",
                      cl->start_fn != NULL && cl->reason != NULL ? cl->reason : "");
    if (cl->start_fn != NULL)
        local_cluster_reply(cl, cl->start_fn, cl->start_arg, SP_ERROR, NULL,
                            cl->reason != NULL ? cl->reason : "stopped while starting");
    if (cl->scale_fn != NULL)
        local_cluster_reply(cl, cl->scale_fn, cl->scale_arg, SP_ERROR, NULL,
                            "the cluster was stopped during the scale");
    for (local_waiter *w = cl->stop_waiters; w != NULL; w = w->next)
        local_cluster_reply(cl, w->fn, w->arg, SP_OK, json_pack("{s:s}", "state", "STOPPED"), NULL);
    local_cluster_forget_record(cl);
    local_cluster_free(cl, 1);
}

/* One watch tick of a stop; frees the cluster once everything is gone. */
static void local_cluster_watch_stop(local_cluster *cl)
{
    while (cl->stop_stage < 3 && local_stage_gone(cl, cl->stop_stage)) {
        cl->stop_stage++;
        if (cl->stop_stage < 3)
            local_stage_each(cl, cl->stop_stage, local_member_stop_graceful);
    }
    if (cl->stop_stage < 3) {
        local_stage_each(cl, cl->stop_stage, local_member_escalate);
        return;
    }
    local_cluster_finish_stop(cl);
}

/* ---- failures ------------------------------------------------------------------------- */

/* A start that cannot finish: everything is killed, then start_fn gets SP_ERROR `reason`. */
static void local_cluster_fail_start(local_cluster *cl, char *reason_owned)
{
    local_clusters *c = cl->owner;
    local_cluster_set_reason(cl, reason_owned);
    c->ctx->host->log(c->ctx, SP_LOG_WARN, "cluster %s did not start: %s", cl->id, cl->reason);
    local_cluster_begin_stop(cl, 1);
}

static void local_clusters_emit(local_clusters *c, const char *cluster_id, const char *reason)
{
    json_t *doc = json_pack("{s:s,s:s,s:s,s:s}", "kind", "cluster", "id", cluster_id, "state",
                            "FAILED", "reason", reason);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    if (text != NULL && c->on_event != NULL)
        c->on_event(c->event_arg, text);
    free(text);
}

/*
 * A running cluster lost its server or master: FAILED, the rest killed,
 * the record kept (cluster_endpoint answers FAILED until cluster_stop),
 * the host told.  Emits last: the host may call back into us.
 */
static void local_cluster_fail(local_cluster *cl, char *reason_owned)
{
    local_clusters *c = cl->owner;
    char err[256], id[64];
    cl->phase = LOCAL_CLUSTER_FAILED;
    cl->kill_now = 1;
    local_cluster_set_reason(cl, reason_owned);
    for (int stage = 0; stage < 3; stage++)
        local_stage_each(cl, stage, local_member_stop_graceful);
    if (cl->scale_fn != NULL)
        local_cluster_reply(cl, cl->scale_fn, cl->scale_arg, SP_ERROR, NULL, cl->reason);
    cl->scale_fn = NULL;
    local_cluster_watch_end(cl);
    local_cluster_save(cl, err, sizeof(err));
    c->ctx->host->log(c->ctx, SP_LOG_WARN, "cluster %s FAILED: %s", cl->id, cl->reason);
    snprintf(id, sizeof(id), "%s", cl->id);
    local_clusters_emit(c, id, cl->reason);
}

/* Why a running cluster is dead, or NULL while its master and server live. */
static char *local_cluster_death_reason(const local_cluster *cl)
{
    char prefix[128];
    const local_cluster_process *dead = local_member_gone(cl->server) ? cl->server : cl->master;
    if (!local_member_gone(cl->server) && !local_member_gone(cl->master))
        return NULL;
    snprintf(prefix, sizeof(prefix), "%s (pid %ld) exited",
             dead == cl->server ? "the Spark Connect server" : "the standalone master",
             dead != NULL ? dead->pid : 0L);
    return dead != NULL ? local_member_reason(dead, prefix) : strdup(prefix);
}

/* ---- cluster_start: the document ---------------------------------------------------- */

/* An optional integer field in [min, max]; `fallback` when absent. */
static int local_spec_int(json_t *parent, const char *key, const char *field, json_int_t min,
                          json_int_t max, json_int_t fallback, json_int_t *out, char *err,
                          size_t err_size)
{
    json_t *value = json_object_get(parent, key);
    *out = fallback;
    if (value == NULL)
        return SP_OK;
    if (!json_is_integer(value) || json_integer_value(value) < min ||
        json_integer_value(value) > max) {
        snprintf(err, err_size,
                 "%s must be an integer from %" JSON_INTEGER_FORMAT " to %" JSON_INTEGER_FORMAT,
                 field, min, max);
        return SP_INVALID;
    }
    *out = json_integer_value(value);
    return SP_OK;
}

/* An optional memory size ("1g" when absent) as Spark writes it. */
static int local_spec_memory(json_t *parent, const char *field, char *out, size_t out_size,
                             char *err, size_t err_size)
{
    json_t *value = json_object_get(parent, "memory");
    if (value == NULL) {
        snprintf(out, out_size, "1g");
        return SP_OK;
    }
    if (local_memory_text(value, out, out_size) != 0) {
        snprintf(err, err_size, "%s must be a size such as 512m, 2g or 1GiB", field);
        return SP_INVALID;
    }
    return SP_OK;
}

/* executor {cores, memory}: shared by cluster_start and cluster_scale. */
static int local_spec_executor(json_t *executor, const char *field, json_int_t *cores, char *memory,
                               size_t memory_size, char *err, size_t err_size)
{
    char name[64];
    if (executor != NULL && !json_is_object(executor)) {
        snprintf(err, err_size, "%s must be an object {cores, memory}", field);
        return SP_INVALID;
    }
    snprintf(name, sizeof(name), "%s.cores", field);
    if (local_spec_int(executor, "cores", name, 1, 256, 1, cores, err, err_size) != SP_OK)
        return SP_INVALID;
    snprintf(name, sizeof(name), "%s.memory", field);
    return local_spec_memory(executor, name, memory, memory_size, err, err_size);
}

static int local_spec_resources(json_t *doc, local_cluster_spec *spec, char *err, size_t err_size)
{
    json_t *resources = json_object_get(doc, "resources");
    json_t *driver = json_object_get(resources, "driver");
    int rc;
    if (!json_is_object(resources)) {
        snprintf(err, err_size, "resources must be an object {driver, executors, executor}");
        return SP_INVALID;
    }
    if (!json_is_integer(json_object_get(resources, "executors"))) {
        snprintf(err, err_size, "resources.executors must be an integer from 0 to %d",
                 LOCAL_CLUSTER_MAX_WORKERS);
        return SP_INVALID;
    }
    rc = local_spec_int(resources, "executors", "resources.executors", 0, LOCAL_CLUSTER_MAX_WORKERS,
                        0, &spec->executors, err, err_size);
    if (rc == SP_OK)
        rc = local_spec_executor(json_object_get(resources, "executor"), "resources.executor",
                                 &spec->executor_cores, spec->executor_memory,
                                 sizeof(spec->executor_memory), err, err_size);
    if (rc == SP_OK && driver != NULL && !json_is_object(driver)) {
        snprintf(err, err_size, "resources.driver must be an object {cores, memory}");
        rc = SP_INVALID;
    }
    if (rc == SP_OK)
        rc = local_spec_int(driver, "cores", "resources.driver.cores", 1, 256, 1,
                            &spec->driver_cores, err, err_size);
    if (rc == SP_OK)
        rc = local_spec_memory(driver, "resources.driver.memory", spec->driver_memory,
                               sizeof(spec->driver_memory), err, err_size);
    return rc;
}

/* conf: {"spark.x": "text"}; a key must be a plain setting name. */
static int local_spec_conf(json_t *doc, local_cluster_spec *spec, char *err, size_t err_size)
{
    const char *key;
    json_t *value;
    spec->conf = json_object_get(doc, "conf");
    if (spec->conf == NULL)
        return SP_OK;
    if (!json_is_object(spec->conf)) {
        snprintf(err, err_size, "conf must be an object of Spark settings");
        return SP_INVALID;
    }
    json_object_foreach(spec->conf, key, value)
    {
        if (key[0] == '\0' || strpbrk(key, "=: \t\r\n") != NULL) {
            snprintf(err, err_size, "conf key '%.200s' is not a Spark setting name", key);
            return SP_INVALID;
        }
        if (!json_is_string(value)) {
            snprintf(err, err_size, "conf.%.200s must be a string", key);
            return SP_INVALID;
        }
    }
    return SP_OK;
}

static int local_spec_runtime(json_t *doc, local_cluster_spec *spec, char *err, size_t err_size)
{
    char path[4096];
    spec->spark_home =
        json_string_value(json_object_get(json_object_get(doc, "runtime"), "spark_home"));
    if (spec->spark_home == NULL || spec->spark_home[0] != '/') {
        snprintf(err, err_size,
                 "runtime.spark_home must be an absolute path (configure "
                 "spark_versions.<version>.spark_home)");
        return SP_INVALID;
    }
    snprintf(path, sizeof(path), "%s/bin/spark-class", spec->spark_home);
    if (access(path, X_OK) != 0) {
        snprintf(err, err_size, "runtime.spark_home '%.900s' has no executable bin/spark-class",
                 spec->spark_home);
        return SP_INVALID;
    }
    snprintf(path, sizeof(path), "%s/bin/spark-submit", spec->spark_home);
    if (access(path, X_OK) != 0) {
        snprintf(err, err_size, "runtime.spark_home '%.900s' has no executable bin/spark-submit",
                 spec->spark_home);
        return SP_INVALID;
    }
    return SP_OK;
}

/* Reads and checks the cluster_start document; SP_INVALID names the field. */
static int local_spec_read(json_t *doc, local_cluster_spec *spec, char *err, size_t err_size)
{
    int rc;
    memset(spec, 0, sizeof(*spec));
    if (!json_is_object(doc)) {
        snprintf(err, err_size, "the cluster document is not a JSON object");
        return SP_INVALID;
    }
    spec->id = json_string_value(json_object_get(doc, "id"));
    spec->token = json_string_value(json_object_get(doc, "token"));
    if (!local_cluster_id_valid(spec->id)) {
        snprintf(err, err_size, "id must be 1-63 characters of [a-z0-9-]");
        return SP_INVALID;
    }
    if (spec->token == NULL || spec->token[0] == '\0' || strpbrk(spec->token, "\r\n") != NULL) {
        snprintf(err, err_size, "token must be a non-empty string on one line");
        return SP_INVALID;
    }
    if ((rc = local_spec_resources(doc, spec, err, err_size)) != SP_OK ||
        (rc = local_spec_conf(doc, spec, err, err_size)) != SP_OK)
        return rc;
    return local_spec_runtime(doc, spec, err, err_size);
}

/* ---- cluster_start: running it ------------------------------------------------------- */

static int local_cluster_dir_prepare(const local_clusters *c, const local_cluster *cl, char *err,
                                     size_t err_size)
{
    char parent[4096];
    snprintf(parent, sizeof(parent), "%s/" LOCAL_CLUSTERS_DIRECTORY, c->settings.work_directory);
    if ((mkdir(parent, 0750) != 0 && errno != EEXIST) ||
        (mkdir(cl->dir, 0750) != 0 && errno != EEXIST)) {
        snprintf(err, err_size, "cannot create %.900s: %s", cl->dir, strerror(errno));
        return SP_ERROR;
    }
    return SP_OK;
}

/* Directory, ports, properties file, the master; recorded before the reply can be lost. */
static int local_cluster_launch(local_cluster *cl, const local_cluster_spec *spec, char *err,
                                size_t err_size)
{
    local_clusters *c = cl->owner;
    int rc;
    cl->executor_cores = spec->executor_cores;
    cl->workers_wanted = (size_t)spec->executors;
    cl->next_worker = 1;
    snprintf(cl->executor_memory, sizeof(cl->executor_memory), "%s", spec->executor_memory);
    if ((rc = local_cluster_dir_prepare(c, cl, err, err_size)) != SP_OK ||
        (rc = local_free_port(&cl->master_port, err, err_size)) != SP_OK ||
        (rc = local_free_port(&cl->master_webui_port, err, err_size)) != SP_OK ||
        (rc = local_free_port(&cl->server_port, err, err_size)) != SP_OK ||
        (rc = local_properties_write(c, cl, spec, err, err_size)) != SP_OK)
        return rc;
    if ((cl->master = local_master_spawn(cl, err, err_size)) == NULL)
        return SP_UNAVAILABLE;
    cl->phase = LOCAL_CLUSTER_MASTER_STARTING;
    cl->began = local_cluster_now();
    if (local_cluster_save(cl, err, err_size) != SP_OK) {
        local_member_signal(cl->master, SIGKILL);
        snprintf(err, err_size, "cannot record cluster %s in the state store; not started", cl->id);
        return SP_UNAVAILABLE;
    }
    local_clusters_count(c);
    local_cluster_watch_begin(cl);
    return SP_OK;
}

int local_cluster_start(local_clusters *c, const char *cluster_json, sp_backend_reply_fn reply,
                        void *arg)
{
    json_t *doc = cluster_json != NULL ? json_loads(cluster_json, 0, NULL) : NULL;
    local_cluster_spec spec;
    local_cluster *cl = NULL;
    char err[1024] = "";
    int rc;

    if (c == NULL || reply == NULL) {
        json_decref(doc);
        return SP_INVALID;
    }
    rc = local_spec_read(doc, &spec, err, sizeof(err));
    if (rc == SP_OK && (cl = local_cluster_find(c, spec.id)) != NULL) {
        snprintf(err, sizeof(err), "cluster %s already exists here (%s); stop it first", spec.id,
                 local_cluster_state_name(cl->phase));
        rc = SP_CONFLICT;
    } else if (rc == SP_OK && (cl = local_cluster_new(c, spec.id, spec.spark_home)) == NULL) {
        snprintf(err, sizeof(err), "out of memory");
        rc = SP_ERROR;
    } else if (rc == SP_OK && (rc = local_cluster_launch(cl, &spec, err, sizeof(err))) != SP_OK) {
        if (cl->master != NULL) {
            local_cluster_begin_stop(cl, 1); /* the watch frees it once the master is gone */
        } else {
            local_cluster_forget_record(cl);
            local_cluster_free(cl, 1);
        }
    }
    if (rc == SP_OK) {
        cl->start_fn = reply;
        cl->start_arg = arg;
        c->ctx->host->log(c->ctx, SP_LOG_INFO,
                          "cluster %s starting: master :%d, Spark Connect "
                          ":%d, %" JSON_INTEGER_FORMAT " workers, %s",
                          spec.id, cl->master_port, cl->server_port, spec.executors, cl->dir);
    } else {
        local_reply_later(c->ctx, &c->replies, reply, arg, rc, NULL, err);
    }
    json_decref(doc);
    return SP_OK;
}

static int local_cluster_past_deadline(const local_cluster *cl)
{
    return (local_cluster_now() - cl->began) * 1000.0 >=
           (double)cl->owner->settings.start_timeout_ms;
}

/* A member that died while the cluster started: why, from its own log. */
static local_cluster_process *local_cluster_first_dead(local_cluster *cl)
{
    if (cl->master != NULL && local_member_gone(cl->master))
        return cl->master;
    if (cl->server != NULL && local_member_gone(cl->server))
        return cl->server;
    for (size_t i = 0; i < cl->worker_count; i++)
        if (local_member_gone(cl->workers[i]))
            return cl->workers[i];
    return NULL;
}

/* 1 (and the start failed) when a member died or the deadline passed. */
static int local_cluster_start_went_wrong(local_cluster *cl)
{
    local_cluster_process *dead = local_cluster_first_dead(cl);
    char prefix[256];
    if (dead != NULL) {
        snprintf(prefix, sizeof(prefix), "%s exited before the Spark Connect port %d opened",
                 dead->name, cl->server_port);
        local_cluster_fail_start(cl, local_member_reason(dead, prefix));
        return 1;
    }
    if (!local_cluster_past_deadline(cl))
        return 0;
    snprintf(prefix, sizeof(prefix), "the Spark Connect port %d did not open within %lld s",
             cl->server_port, (long long)(cl->owner->settings.start_timeout_ms / 1000));
    local_cluster_fail_start(cl, cl->server != NULL ? local_member_reason(cl->server, prefix)
                                                    : local_member_reason(cl->master, prefix));
    return 1;
}

/* The master listens: its workers and the Spark Connect server start. */
static void local_cluster_watch_master(local_cluster *cl)
{
    char err[512];
    if (local_cluster_start_went_wrong(cl) || !local_port_accepts(&cl->probe_fd, cl->master_port))
        return;
    while (cl->worker_count < cl->workers_wanted) {
        local_cluster_process *worker = local_worker_spawn(cl, err, sizeof(err));
        if (worker == NULL) {
            local_cluster_fail_start(cl, strdup(err));
            return;
        }
        cl->workers[cl->worker_count++] = worker;
    }
    if ((cl->server = local_server_spawn(cl, err, sizeof(err))) == NULL) {
        local_cluster_fail_start(cl, strdup(err));
        return;
    }
    cl->phase = LOCAL_CLUSTER_SERVER_STARTING;
    local_cluster_save(cl, err, sizeof(err));
    local_clusters_count(cl->owner);
}

/* The Spark Connect port accepts: the start is answered. */
static void local_cluster_watch_server(local_cluster *cl)
{
    local_clusters *c = cl->owner;
    char err[512];
    if (local_cluster_start_went_wrong(cl) || !local_port_accepts(&cl->probe_fd, cl->server_port))
        return;
    cl->phase = LOCAL_CLUSTER_RUNNING;
    local_cluster_watch_end(cl);
    local_cluster_save(cl, err, sizeof(err));
    c->ctx->host->log(c->ctx, SP_LOG_INFO,
                      "cluster %s running: Spark Connect on 127.0.0.1:%d "
                      "after %.1f s",
                      cl->id, cl->server_port, local_cluster_now() - cl->began);
    local_cluster_reply(cl, cl->start_fn, cl->start_arg, SP_OK, local_cluster_endpoint_doc(cl),
                        NULL);
    cl->start_fn = NULL;
}

/* ---- cluster_scale ----------------------------------------------------------------------- */

/* A scale up went wrong: the workers not registered yet are stopped; the scale answers `error`. */
static void local_scale_abandon(local_cluster *cl, char *error_owned)
{
    if (cl->reason == NULL)
        local_cluster_set_reason(cl, error_owned);
    else
        free(error_owned);
    for (size_t i = 0; i < cl->worker_count; i++) {
        if (!cl->workers[i]->registered && !cl->workers[i]->retiring) {
            cl->workers[i]->retiring = 1;
            local_member_stop(cl->workers[i], 1);
        }
    }
}

/* New workers: registered, dead, or late. */
static void local_scale_check_new_workers(local_cluster *cl)
{
    char prefix[256], *path;
    for (size_t i = 0; i < cl->worker_count; i++) {
        local_cluster_process *w = cl->workers[i];
        if (w->registered || w->retiring)
            continue;
        if (local_member_gone(w)) {
            snprintf(prefix, sizeof(prefix), "%s exited before it registered with the master",
                     w->name);
            local_scale_abandon(cl, local_member_reason(w, prefix));
            return;
        }
        if ((path = local_member_log_path(w)) != NULL)
            w->registered = local_file_contains(path, LOCAL_CLUSTER_REGISTERED);
        free(path);
    }
    for (size_t i = 0; i < cl->worker_count; i++) {
        if (!cl->workers[i]->registered && !cl->workers[i]->retiring &&
            local_cluster_past_deadline(cl)) {
            snprintf(prefix, sizeof(prefix), "%s did not register with the master within %lld s",
                     cl->workers[i]->name,
                     (long long)(cl->owner->settings.start_timeout_ms / 1000));
            local_scale_abandon(cl, local_member_reason(cl->workers[i], prefix));
            return;
        }
    }
}

/* Retiring workers: SIGKILL after the grace period; freed once gone.  1 while some remain. */
static int local_scale_reap_retiring(local_cluster *cl)
{
    size_t kept = 0;
    int remaining = 0;
    for (size_t i = 0; i < cl->worker_count; i++) {
        local_cluster_process *w = cl->workers[i];
        if (w->retiring && local_member_gone(w)) {
            local_member_free(w);
            continue;
        }
        if (w->retiring) {
            local_member_escalate(w);
            remaining = 1;
        }
        cl->workers[kept++] = w;
    }
    cl->worker_count = kept;
    return remaining;
}

static void local_cluster_watch_scale(local_cluster *cl)
{
    local_clusters *c = cl->owner;
    char err[256], *death = local_cluster_death_reason(cl), *error;
    size_t pending = 0;
    if (death != NULL) {
        local_cluster_fail(cl, death);
        return;
    }
    local_scale_check_new_workers(cl);
    for (size_t i = 0; i < cl->worker_count; i++)
        pending += !cl->workers[i]->registered && !cl->workers[i]->retiring;
    if (local_scale_reap_retiring(cl) || pending > 0)
        return;
    cl->phase = LOCAL_CLUSTER_RUNNING;
    error = cl->reason;
    cl->reason = NULL;
    local_cluster_watch_end(cl);
    local_cluster_save(cl, err, sizeof(err));
    local_clusters_count(c);
    c->ctx->host->log(c->ctx, error != NULL ? SP_LOG_WARN : SP_LOG_INFO,
                      "cluster %s scaled to %zu workers%s%s", cl->id, local_cluster_executors(cl),
                      error != NULL ? ": " : "", error != NULL ? error : "");
    if (error != NULL)
        local_cluster_reply(cl, cl->scale_fn, cl->scale_arg, SP_ERROR, NULL, error);
    else
        local_cluster_reply(
            cl, cl->scale_fn, cl->scale_arg, SP_OK,
            json_pack("{s:I}", "executors", (json_int_t)local_cluster_executors(cl)), NULL);
    cl->scale_fn = NULL;
    free(error);
}

/* {"executors": N, "executor"?: {cores, memory}}: the executor size cannot change. */
static int local_scale_read(const local_cluster *cl, json_t *doc, json_int_t *executors, char *err,
                            size_t err_size)
{
    json_t *executor = json_object_get(doc, "executor");
    json_int_t cores;
    char memory[32];
    if (!json_is_object(doc) || !json_is_integer(json_object_get(doc, "executors"))) {
        snprintf(err, err_size, "executors must be an integer from 0 to %d",
                 LOCAL_CLUSTER_MAX_WORKERS);
        return SP_INVALID;
    }
    if (local_spec_int(doc, "executors", "executors", 0, LOCAL_CLUSTER_MAX_WORKERS, 0, executors,
                       err, err_size) != SP_OK)
        return SP_INVALID;
    if (executor == NULL)
        return SP_OK;
    if (local_spec_executor(executor, "executor", &cores, memory, sizeof(memory), err, err_size) !=
        SP_OK)
        return SP_INVALID;
    if (json_object_get(executor, "cores") != NULL && cores != cl->executor_cores) {
        snprintf(err, err_size,
                 "executor.cores cannot change on a running local cluster "
                 "(it is %" JSON_INTEGER_FORMAT ")",
                 cl->executor_cores);
        return SP_INVALID;
    }
    if (json_object_get(executor, "memory") != NULL && strcmp(memory, cl->executor_memory) != 0) {
        snprintf(err, err_size,
                 "executor.memory cannot change on a running local cluster "
                 "(it is %s)",
                 cl->executor_memory);
        return SP_INVALID;
    }
    return SP_OK;
}

/* Starts workers or retires the newest ones; SP_OK once the scale is under way. */
static int local_scale_begin(local_cluster *cl, size_t wanted, char *err, size_t err_size)
{
    size_t have = local_cluster_executors(cl);
    for (; have < wanted; have++) {
        local_cluster_process *worker = local_worker_spawn(cl, err, err_size);
        if (worker == NULL)
            return SP_UNAVAILABLE;
        cl->workers[cl->worker_count++] = worker;
    }
    for (size_t i = cl->worker_count; i > 0 && have > wanted; i--) {
        local_cluster_process *w = cl->workers[i - 1];
        if (w->retiring)
            continue;
        w->retiring = 1;
        local_member_stop(w, 0);
        have--;
    }
    return SP_OK;
}

int local_cluster_scale(local_clusters *c, const char *cluster_id, const char *scale_json,
                        sp_backend_reply_fn reply, void *arg)
{
    local_cluster *cl = local_cluster_find(c, cluster_id);
    json_t *doc = scale_json != NULL ? json_loads(scale_json, 0, NULL) : NULL;
    json_int_t executors = 0;
    char err[1024] = "";
    int rc = SP_OK;

    if (c == NULL || reply == NULL) {
        json_decref(doc);
        return SP_INVALID;
    }
    if (cl == NULL) {
        snprintf(err, sizeof(err), "the local backend has no cluster '%.64s'",
                 cluster_id != NULL ? cluster_id : "");
        rc = SP_NOT_FOUND;
    } else if (cl->phase == LOCAL_CLUSTER_FAILED) {
        snprintf(err, sizeof(err), "cluster %s FAILED: %s", cl->id, cl->reason);
        rc = SP_ERROR;
    } else if (cl->phase != LOCAL_CLUSTER_RUNNING) {
        snprintf(err, sizeof(err), "cluster %s is %s; scale it once it is running", cl->id,
                 cl->phase == LOCAL_CLUSTER_SCALING ? "scaling"
                                                    : local_cluster_state_name(cl->phase));
        rc = SP_AGAIN;
    } else {
        rc = local_scale_read(cl, doc, &executors, err, sizeof(err));
    }
    if (rc == SP_OK && (size_t)executors == local_cluster_executors(cl)) {
        local_cluster_reply(cl, reply, arg, SP_OK, json_pack("{s:I}", "executors", executors),
                            NULL);
        json_decref(doc);
        return SP_OK;
    }
    if (rc == SP_OK) {
        cl->phase = LOCAL_CLUSTER_SCALING;
        cl->began = local_cluster_now();
        cl->scale_fn = reply;
        cl->scale_arg = arg;
        if (local_scale_begin(cl, (size_t)executors, err, sizeof(err)) != SP_OK)
            local_scale_abandon(cl, strdup(err)); /* answered by the watch, as an error */
        local_cluster_save(cl, err, sizeof(err));
        local_clusters_count(c);
        local_cluster_watch_begin(cl);
        c->ctx->host->log(c->ctx, SP_LOG_INFO,
                          "cluster %s: scaling to %" JSON_INTEGER_FORMAT " workers", cl->id,
                          executors);
    } else {
        local_reply_later(c->ctx, &c->replies, reply, arg, rc, NULL, err);
    }
    json_decref(doc);
    return SP_OK;
}

/* ---- cluster_stop, cluster_endpoint ------------------------------------------------------- */

int local_cluster_stop(local_clusters *c, const char *cluster_id, sp_backend_reply_fn reply,
                       void *arg)
{
    local_cluster *cl = local_cluster_find(c, cluster_id);
    local_waiter *waiter;
    char err[256];
    if (c == NULL || reply == NULL)
        return SP_INVALID;
    if (cl == NULL) {
        snprintf(err, sizeof(err), "the local backend has no cluster '%.64s'",
                 cluster_id != NULL ? cluster_id : "");
        local_reply_later(c->ctx, &c->replies, reply, arg, SP_NOT_FOUND, NULL, err);
        return SP_OK;
    }
    if ((waiter = calloc(1, sizeof(*waiter))) == NULL) {
        local_reply_later(c->ctx, &c->replies, reply, arg, SP_ERROR, NULL, "out of memory");
        return SP_OK;
    }
    *waiter = (local_waiter){reply, arg, cl->stop_waiters};
    cl->stop_waiters = waiter;
    if (cl->start_fn != NULL && cl->reason == NULL)
        local_cluster_set_reason(cl, strdup("stopped while starting"));
    c->ctx->host->log(c->ctx, SP_LOG_INFO, "cluster %s: stopping", cl->id);
    local_cluster_begin_stop(cl, cl->phase == LOCAL_CLUSTER_FAILED);
    return SP_OK;
}

int local_cluster_endpoint(local_clusters *c, const char *cluster_id, sp_backend_reply_fn reply,
                           void *arg)
{
    local_cluster *cl = local_cluster_find(c, cluster_id);
    json_t *doc;
    char err[256];
    if (c == NULL || reply == NULL)
        return SP_INVALID;
    if (cl == NULL) {
        snprintf(err, sizeof(err), "the local backend has no cluster '%.64s'",
                 cluster_id != NULL ? cluster_id : "");
        local_reply_later(c->ctx, &c->replies, reply, arg, SP_NOT_FOUND, NULL, err);
    } else if (cl->phase == LOCAL_CLUSTER_RUNNING || cl->phase == LOCAL_CLUSTER_SCALING ||
               cl->phase == LOCAL_CLUSTER_FAILED) {
        doc = local_cluster_endpoint_doc(cl);
        json_object_set_new(doc, "state", json_string(local_cluster_state_name(cl->phase)));
        if (cl->phase == LOCAL_CLUSTER_FAILED)
            json_object_set_new(doc, "reason", json_string(cl->reason));
        local_cluster_reply(cl, reply, arg, SP_OK, doc, NULL);
    } else {
        snprintf(err, sizeof(err), "cluster %s is %s", cl->id,
                 cl->phase == LOCAL_CLUSTER_STOPPING ? "stopping" : "starting");
        local_cluster_reply(cl, reply, arg, SP_AGAIN, NULL, err);
    }
    return SP_OK;
}

/* ---- the watch timer, the poll, reconcile ------------------------------------------------ */

static void local_cluster_watch(void *arg)
{
    local_cluster *cl = arg;
    switch (cl->phase) {
    case LOCAL_CLUSTER_MASTER_STARTING:
        local_cluster_watch_master(cl);
        break;
    case LOCAL_CLUSTER_SERVER_STARTING:
        local_cluster_watch_server(cl);
        break;
    case LOCAL_CLUSTER_SCALING:
        local_cluster_watch_scale(cl);
        break;
    case LOCAL_CLUSTER_STOPPING:
        local_cluster_watch_stop(cl); /* may free cl: nothing after this */
        break;
    default:
        local_cluster_watch_end(cl);
    }
}

/* Workers that died by themselves leave the cluster (less capacity, still running). */
static void local_cluster_drop_dead_workers(local_cluster *cl)
{
    local_clusters *c = cl->owner;
    size_t kept = 0, before = cl->worker_count;
    char err[256];
    for (size_t i = 0; i < cl->worker_count; i++) {
        if (local_member_gone(cl->workers[i])) {
            c->ctx->host->log(c->ctx, SP_LOG_WARN, "cluster %s: %s (pid %ld) exited by itself",
                              cl->id, cl->workers[i]->name, cl->workers[i]->pid);
            local_member_free(cl->workers[i]);
            continue;
        }
        cl->workers[kept++] = cl->workers[i];
    }
    cl->worker_count = kept;
    if (kept != before) {
        local_cluster_save(cl, err, sizeof(err));
        local_clusters_count(c);
    }
}

/* Walks a copy of the ids: a FAILED event may make the host call back into us. */
void local_clusters_poll(local_clusters *c)
{
    size_t count = 0, n = 0;
    char(*ids)[64];
    if (c == NULL)
        return;
    for (local_cluster *cl = c->list; cl != NULL; cl = cl->next)
        count++;
    if (count == 0 || (ids = calloc(count, sizeof(*ids))) == NULL)
        return;
    for (local_cluster *cl = c->list; cl != NULL && n < count; cl = cl->next)
        if (cl->phase == LOCAL_CLUSTER_RUNNING)
            memcpy(ids[n++], cl->id, sizeof(cl->id));
    for (size_t i = 0; i < n; i++) {
        local_cluster *cl = local_cluster_find(c, ids[i]);
        char *death;
        if (cl == NULL || cl->phase != LOCAL_CLUSTER_RUNNING)
            continue;
        if ((death = local_cluster_death_reason(cl)) != NULL)
            local_cluster_fail(cl, death);
        else
            local_cluster_drop_dead_workers(cl);
    }
    free(ids);
}

json_t *local_clusters_reconcile(local_clusters *c)
{
    json_t *alive = json_array();
    char *death;
    for (local_cluster *cl = c != NULL ? c->list : NULL; cl != NULL; cl = cl->next) {
        if (cl->phase == LOCAL_CLUSTER_FAILED) {
            local_cluster_begin_stop(cl, 1);
            continue;
        }
        if (cl->phase != LOCAL_CLUSTER_RUNNING && cl->phase != LOCAL_CLUSTER_SCALING)
            continue; /* starting: answered by its start; stopping: on its way out */
        if ((death = local_cluster_death_reason(cl)) != NULL) {
            c->ctx->host->log(c->ctx, SP_LOG_WARN,
                              "cluster %s is partly dead; stopping what is "
                              "left: %s",
                              cl->id, death);
            free(death);
            local_cluster_begin_stop(cl, 1);
            continue;
        }
        local_cluster_drop_dead_workers(cl);
        json_t *item = local_cluster_endpoint_doc(cl);
        json_object_set_new(item, "id", json_string(cl->id));
        json_array_append_new(alive, item);
    }
    return alive;
}

/* ---- adoption after a restart, new, free, attach ------------------------------------------ */

static local_cluster_process *local_member_adopt(local_cluster *cl, json_t *item)
{
    local_cluster_process *p;
    const char *name = json_string_value(json_object_get(item, "name"));
    if (name == NULL || !json_is_integer(json_object_get(item, "pid")) ||
        (p = calloc(1, sizeof(*p))) == NULL)
        return NULL;
    p->cluster = cl;
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->pid = (long)json_integer_value(json_object_get(item, "pid"));
    p->start_ticks = (unsigned long long)json_integer_value(json_object_get(item, "start_ticks"));
    p->registered = 1; /* it was running before the restart */
    return p;
}

/* Fills a cluster from its record; -1 when the record is not usable. */
static int local_cluster_fill(local_cluster *cl, json_t *record)
{
    json_t *executor = json_object_get(record, "executor"), *item;
    const char *state = json_string_value(json_object_get(record, "state"));
    size_t i;
    cl->master_port = (int)json_integer_value(json_object_get(record, "master_port"));
    cl->master_webui_port = (int)json_integer_value(json_object_get(record, "master_webui_port"));
    cl->server_port = (int)json_integer_value(json_object_get(record, "server_port"));
    cl->next_worker = (int)json_integer_value(json_object_get(record, "next_worker"));
    cl->executor_cores = json_integer_value(json_object_get(executor, "cores"));
    snprintf(cl->executor_memory, sizeof(cl->executor_memory), "%s",
             json_string_value(json_object_get(executor, "memory")) ?: "1g");
    json_array_foreach(json_object_get(record, "processes"), i, item)
    {
        local_cluster_process *p = local_member_adopt(cl, item);
        if (p == NULL)
            return -1;
        if (strcmp(p->name, "master") == 0 && cl->master == NULL)
            cl->master = p;
        else if (strcmp(p->name, "server") == 0 && cl->server == NULL)
            cl->server = p;
        else if (strncmp(p->name, "worker-", 7) == 0 &&
                 cl->worker_count < LOCAL_CLUSTER_MAX_WORKERS)
            cl->workers[cl->worker_count++] = p;
        else
            free(p);
    }
    if (json_is_string(json_object_get(record, "reason")))
        cl->reason = strdup(json_string_value(json_object_get(record, "reason")));
    cl->phase = state != NULL && strcmp(state, "FAILED") == 0 ? LOCAL_CLUSTER_FAILED
                                                              : LOCAL_CLUSTER_RUNNING;
    return cl->master_port > 0 && cl->server_port > 0 ? 0 : -1;
}

static void local_cluster_adopt(local_clusters *c, const char *cluster_id)
{
    json_t *record = NULL;
    char *key = local_record_key(cluster_id);
    const char *home, *state;
    local_cluster *cl = NULL;
    if (key != NULL && local_record_get(c->ctx, key, &record) == SP_OK &&
        (home = json_string_value(json_object_get(record, "spark_home"))) != NULL &&
        (cl = local_cluster_new(c, cluster_id, home)) != NULL &&
        local_cluster_fill(cl, record) == 0) {
        state = json_string_value(json_object_get(record, "state"));
        c->ctx->host->log(c->ctx, SP_LOG_INFO, "cluster %s adopted (recorded %s)", cluster_id,
                          state != NULL ? state : "?");
        if (state != NULL && strcmp(state, "STOPPING") == 0)
            local_cluster_begin_stop(cl, 0); /* the stop an earlier daemon began */
    } else {
        c->ctx->host->log(c->ctx, SP_LOG_WARN, "cluster %s: no usable record, not adopted",
                          cluster_id);
        if (cl != NULL)
            local_cluster_free(cl, 0);
        if (key != NULL)
            c->ctx->host->kv_delete(c->ctx, key);
        local_clusters_index_update(c->ctx, cluster_id, 0);
    }
    json_decref(record);
    free(key);
}

local_clusters *local_clusters_new(sp_plugin_context *ctx, const local_cluster_settings *settings)
{
    local_clusters *c = calloc(1, sizeof(*c));
    json_t *index, *item;
    size_t i;
    if (c == NULL)
        return NULL;
    c->ctx = ctx;
    c->settings = *settings;
    c->clusters_metric = ctx->host->metric_register(
        ctx, SP_METRIC_GAUGE, "sparkplane_backend_local_clusters",
        "Spark Connect clusters the local backend runs (any state)", NULL);
    c->workers_metric = ctx->host->metric_register(
        ctx, SP_METRIC_GAUGE, "sparkplane_backend_local_cluster_workers",
        "standalone workers (one executor each) of the local backend's clusters", NULL);
    index = local_clusters_index_load(ctx);
    json_array_foreach(index, i, item)
    {
        if (local_cluster_id_valid(json_string_value(item)) &&
            local_cluster_find(c, json_string_value(item)) == NULL)
            local_cluster_adopt(c, json_string_value(item));
    }
    json_decref(index);
    local_clusters_count(c);
    return c;
}

void local_clusters_free(local_clusters *c)
{
    if (c == NULL)
        return;
    while (c->list != NULL)
        local_cluster_free(c->list, 0); /* the JVMs run on; the next daemon adopts them */
    local_replies_drop(c->ctx, &c->replies);
    free(c);
}

void local_clusters_attach(local_clusters *c, sp_backend_event_fn on_event, void *host_arg)
{
    if (c == NULL)
        return;
    c->on_event = on_event;
    c->event_arg = host_arg;
}
