/*
 * test_local_cluster.c - the local backend's Spark Connect clusters, loaded
 * into the mock host, running real processes.
 *
 * Each test makes a FAKE Spark home: bin/spark-class plays the standalone
 * master (listens on --port) and the worker (prints the registration line
 * Spark prints), bin/spark-submit plays the Spark Connect server (listens on
 * the port its --properties-file names).  Files in the Spark home switch on
 * misbehaviour: master-dies, server-dies, server-never (never listens),
 * worker-silent (never registers), stubborn (ignores SIGTERM).  Each fake
 * writes <name>.pid in the cluster directory (then execs, so the pid stays).
 * With SPARKPLANE_TEST_SPARK_HOME and SPARKPLANE_TEST_PYTHON set, one test
 * runs real Spark: a pyspark client queries the cluster before and after a
 * scale from 1 to 2 executors.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mock_host.h"
#include "unit_test.h"

#define PLUGIN_PATH  TEST_BUILDDIR "/plugins/backend_local/.libs/backend_local.so"
#define WAIT_MS      15000
#define REAL_WAIT_MS 300000
#define TOKEN        "tok-secret-4242"

#define LISTEN_PY                                                                                  \
    "import socket,sys,time\n"                                                                     \
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"                 \
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(16); time.sleep(3600)\n"

static const char fake_spark_class[] =
    "#!/bin/sh\n"
    "class=$1; shift\n"
    "echo \"$class $*\" >> calls.txt\n"
    "[ -f \"$SPARK_HOME/stubborn\" ] && trap '' TERM\n"
    "case \"$class\" in\n"
    "*Master)\n"
    "  echo $$ > master.pid; env > master-env.txt\n"
    "  while [ $# -gt 0 ]; do [ \"$1\" = --port ] && port=$2; shift; done\n"
    "  echo \"INFO Master: Starting Spark master at spark://127.0.0.1:$port\"\n"
    "  if [ -f \"$SPARK_HOME/master-dies\" ]; then\n"
    "    echo 'ERROR Master: Failed to bind MasterUI'; exit 1; fi\n"
    "  exec python3 -c \"" LISTEN_PY "\" \"$port\" ;;\n"
    "*Worker)\n"
    "  while [ $# -gt 0 ]; do [ \"$1\" = --work-dir ] && dir=$2; shift; done\n"
    "  echo $$ > \"$(basename \"$dir\").pid\"\n"
    "  mkdir -p \"$dir\"\n"
    "  [ -f \"$SPARK_HOME/worker-silent\" ] || "
    "echo 'INFO Worker: Successfully registered with master spark://127.0.0.1:1'\n"
    "  exec sleep 3600 ;;\n"
    "esac\n"
    "exit 2\n";

static const char fake_spark_submit[] =
    "#!/bin/sh\n"
    "echo $$ > server.pid\n"
    "printf '%s\\n' \"$@\" > server-argv.txt\n"
    "env > server-env.txt\n"
    "while [ $# -gt 0 ]; do [ \"$1\" = --properties-file ] && props=$2; shift; done\n"
    "port=$(sed -n 's/^spark.connect.grpc.binding.port=//p' \"$props\")\n"
    "echo \"INFO SparkConnectServer: Starting Spark Connect server on $port\"\n"
    "[ -f \"$SPARK_HOME/stubborn\" ] && trap '' TERM\n"
    "if [ -f \"$SPARK_HOME/server-dies\" ]; then\n"
    "  echo 'Exception in thread \"main\" java.net.BindException: Address already in use'\n"
    "  exit 1; fi\n"
    "[ -f \"$SPARK_HOME/server-never\" ] && exec sleep 3600\n"
    "exec python3 -c \"" LISTEN_PY "\" \"$port\"\n";

typedef struct reply_box {
    int called;
    int status;
    json_t *doc;
    char message[2048];
} reply_box;

typedef struct fixture {
    mock_host *host;
    const sp_backend_ops *ops;
    void *provider;
    char root[64];
    char path[512];
    json_t *events;
    char err[512];
} fixture;

/* ---- fixture ----------------------------------------------------------------- */

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static const char *fixture_path(fixture *f, const char *relative)
{
    snprintf(f->path, sizeof(f->path), "%s/%s", f->root, relative);
    return f->path;
}

/* A file in the fake Spark home that switches a misbehaviour on. */
static void fake_switch(fixture *f, const char *name)
{
    char relative[128];
    snprintf(relative, sizeof(relative), "spark/%s", name);
    write_file(fixture_path(f, relative), "", 0644);
}

static void on_event(void *arg, const char *json)
{
    fixture *f = arg;
    json_array_append_new(f->events, json_loads(json, 0, NULL));
}

static int fixture_init(fixture *f)
{
    int rc = mock_host_init(f->host, f->err, sizeof(f->err));
    f->ops = mock_host_provider(f->host, SP_KIND_BACKEND, "local", &f->provider);
    if (rc == SP_OK && f->ops != NULL)
        f->ops->attach(f->provider, on_event, f);
    return rc;
}

static void fixture_open(fixture *f)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->root, sizeof(f->root), "/tmp/sp-cluster-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(f->root));
    mkdir(fixture_path(f, "spark"), 0755);
    mkdir(fixture_path(f, "spark/bin"), 0755);
    write_file(fixture_path(f, "spark/bin/spark-class"), fake_spark_class, 0755);
    write_file(fixture_path(f, "spark/bin/spark-submit"), fake_spark_submit, 0755);
    f->events = json_array();
    f->host = mock_host_new();
    CU_ASSERT_EQUAL_FATAL(mock_host_load(f->host, PLUGIN_PATH, f->err, sizeof(f->err)), 0);
    mock_host_set_option(f->host, "work_directory", fixture_path(f, "work"));
    mock_host_set_option(f->host, "poll_interval", "50ms");
    mock_host_set_option(f->host, "cancel_grace_period", "2s");
}

static void fixture_close(fixture *f)
{
    char command[128];
    mock_host_free(f->host);
    json_decref(f->events);
    snprintf(command, sizeof(command), "rm -rf '%s'", f->root);
    CU_ASSERT_EQUAL(system(command), 0);
}

/* ---- driving the plugin ------------------------------------------------------- */

static void on_reply(void *arg, int status, const char *json, const char *message)
{
    reply_box *box = arg;
    box->called++;
    box->status = status;
    box->doc = json != NULL ? json_loads(json, 0, NULL) : NULL;
    snprintf(box->message, sizeof(box->message), "%s", message != NULL ? message : "");
}

static int reply_arrived(void *arg)
{
    return ((reply_box *)arg)->called > 0;
}

static void reply_wait_within(fixture *f, reply_box *box, uint64_t timeout_ms)
{
    CU_ASSERT_TRUE(mock_host_run(f->host, reply_arrived, box, timeout_ms));
    CU_ASSERT_EQUAL(box->called, 1);
}

static void box_clear(reply_box *box)
{
    json_decref(box->doc);
    memset(box, 0, sizeof(*box));
}

/* The document the core sends; `executors` workers of 2 cores / 2g. */
static json_t *cluster_doc(fixture *f, const char *id, int executors)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:{s:i,s:s},s:i,s:{s:i,s:s}},s:{s:s},s:s,"
                     "s:{s:s,s:s}}",
                     "id", id, "team", "data", "environment", "dev", "region", "local", "namespace",
                     "sjns-data-dev-local", "resources", "driver", "cores", 1, "memory", "512m",
                     "executors", executors, "executor", "cores", 2, "memory", "2g", "conf",
                     "spark.sql.shuffle.partitions", "4", "token", TOKEN, "runtime",
                     "spark_version", "4.0", "spark_home", fixture_path(f, "spark"));
}

static void start_doc_within(fixture *f, json_t *doc, reply_box *box, uint64_t timeout_ms)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    memset(box, 0, sizeof(*box));
    CU_ASSERT_EQUAL(f->ops->cluster_start(f->provider, text, on_reply, box), SP_OK);
    reply_wait_within(f, box, timeout_ms);
    free(text);
}

static void start(fixture *f, const char *id, int executors, reply_box *box)
{
    json_t *doc = cluster_doc(f, id, executors);
    start_doc_within(f, doc, box, WAIT_MS);
    json_decref(doc);
}

static void scale_within(fixture *f, const char *id, const char *scale_json, reply_box *box,
                         uint64_t timeout_ms)
{
    memset(box, 0, sizeof(*box));
    CU_ASSERT_EQUAL(f->ops->cluster_scale(f->provider, id, scale_json, on_reply, box), SP_OK);
    reply_wait_within(f, box, timeout_ms);
}

static void stop(fixture *f, const char *id, reply_box *box)
{
    memset(box, 0, sizeof(*box));
    CU_ASSERT_EQUAL(f->ops->cluster_stop(f->provider, id, on_reply, box), SP_OK);
    reply_wait_within(f, box, WAIT_MS);
}

static void endpoint(fixture *f, const char *id, reply_box *box)
{
    memset(box, 0, sizeof(*box));
    CU_ASSERT_EQUAL(f->ops->cluster_endpoint(f->provider, id, on_reply, box), SP_OK);
    reply_wait_within(f, box, WAIT_MS);
}

static json_t *reconcile(fixture *f)
{
    reply_box box = {0};
    json_t *clusters;
    CU_ASSERT_EQUAL(f->ops->reconcile(f->provider, on_reply, &box), SP_OK);
    reply_wait_within(f, &box, WAIT_MS);
    clusters = json_incref(json_object_get(box.doc, "clusters"));
    box_clear(&box);
    return clusters;
}

static const char *doc_string(const reply_box *box, const char *key)
{
    const char *value = json_string_value(json_object_get(box->doc, key));
    return value != NULL ? value : "";
}

/* ---- looking at processes and files ------------------------------------------- */

static long member_pid(fixture *f, const char *cluster_id, const char *name)
{
    char relative[256];
    long pid = -1;
    FILE *file;
    snprintf(relative, sizeof(relative), "work/clusters/%s/%s.pid", cluster_id, name);
    if ((file = fopen(fixture_path(f, relative), "r")) != NULL) {
        if (fscanf(file, "%ld", &pid) != 1)
            pid = -1;
        fclose(file);
    }
    return pid;
}

/* No live (non-zombie) process left in the group. */
static int group_gone(long pgid)
{
    DIR *proc = opendir("/proc");
    struct dirent *entry;
    int live = 0;
    if (pgid <= 0 || proc == NULL) {
        if (proc != NULL)
            closedir(proc);
        return 0;
    }
    while ((entry = readdir(proc)) != NULL) {
        char path[300], buffer[512], state = '?', *p;
        long group = -1;
        FILE *file;
        size_t n;
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", entry->d_name);
        if ((file = fopen(path, "r")) == NULL)
            continue;
        n = fread(buffer, 1, sizeof(buffer) - 1, file);
        fclose(file);
        buffer[n] = '\0';
        if ((p = strrchr(buffer, ')')) != NULL && sscanf(p + 1, " %c %*d %ld", &state, &group) == 2)
            live += group == pgid && state != 'Z' && state != 'X';
    }
    closedir(proc);
    return live == 0;
}

static int group_gone_within(long pgid, int ms)
{
    for (int waited = 0; waited < ms; waited += 20) {
        if (group_gone(pgid))
            return 1;
        usleep(20 * 1000);
    }
    return group_gone(pgid);
}

static int file_contains(fixture *f, const char *relative, const char *needle_in)
{
    char buffer[65536], needle[512];
    size_t n;
    FILE *file;
    snprintf(needle, sizeof(needle), "%s", needle_in); /* it may be f->path itself */
    if ((file = fopen(fixture_path(f, relative), "r")) == NULL)
        return 0;
    n = fread(buffer, 1, sizeof(buffer) - 1, file);
    fclose(file);
    buffer[n] = '\0';
    return strstr(buffer, needle) != NULL;
}

static int port_accepts(const char *endpoint_text)
{
    const char *colon = strrchr(endpoint_text, ':');
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
    if (colon == NULL || fd < 0)
        return 0;
    addr.sin_port = htons((uint16_t)atoi(colon + 1));
    ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return ok;
}

typedef struct group_wait {
    long pgid;
} group_wait;

static int group_wait_done(void *arg)
{
    return group_gone(((group_wait *)arg)->pgid);
}

/* Gone while the host runs (the plugin's stop works from its timers). */
static int group_gone_running(fixture *f, long pgid, uint64_t ms)
{
    group_wait w = {pgid};
    return mock_host_run(f->host, group_wait_done, &w, ms);
}

typedef struct event_wait {
    fixture *f;
    const char *id;
} event_wait;

static json_t *event_find(fixture *f, const char *id)
{
    size_t i;
    json_t *event;
    json_array_foreach(f->events, i, event)
    {
        if (strcmp(json_string_value(json_object_get(event, "kind")) ?: "", "cluster") == 0 &&
            strcmp(json_string_value(json_object_get(event, "id")) ?: "", id) == 0)
            return event;
    }
    return NULL;
}

static int event_arrived(void *arg)
{
    event_wait *w = arg;
    return event_find(w->f, w->id) != NULL;
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_start_stop(void)
{
    fixture f;
    reply_box box;
    struct stat st;
    long pids[4];
    const char *names[4] = {"master", "worker-1", "worker-2", "server"};
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);

    start(&f, "c-one", 2, &box);
    CU_ASSERT_EQUAL_FATAL(box.status, SP_OK);
    CU_ASSERT_EQUAL(strncmp(doc_string(&box, "endpoint"), "127.0.0.1:", 10), 0);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(box.doc, "executors")), 2);
    CU_ASSERT_TRUE(port_accepts(doc_string(&box, "endpoint")));
    box_clear(&box);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_TRUE((pids[i] = member_pid(&f, "c-one", names[i])) > 0);

    /* The commands: workers sized from resources.executor; the token only in the 0600 file. */
    CU_ASSERT_TRUE(file_contains(&f, "work/clusters/c-one/calls.txt",
                                 "org.apache.spark.deploy.worker.Worker --cores 2 --memory 2g "
                                 "--host 127.0.0.1"));
    CU_ASSERT_TRUE(file_contains(&f, "work/clusters/c-one/server-argv.txt",
                                 "org.apache.spark.sql.connect.service.SparkConnectServer"));
    CU_ASSERT_TRUE(file_contains(&f, "work/clusters/c-one/server-argv.txt", "--properties-file"));
    CU_ASSERT_FALSE(file_contains(&f, "work/clusters/c-one/server-argv.txt", TOKEN));
    CU_ASSERT_FALSE(file_contains(&f, "work/clusters/c-one/calls.txt", TOKEN));
    CU_ASSERT_FALSE(file_contains(&f, "work/clusters/c-one/server-env.txt", TOKEN));
    CU_ASSERT_TRUE(
        file_contains(&f, "work/clusters/c-one/master-env.txt", "SPARK_DAEMON_MEMORY=256m"));
    CU_ASSERT_FALSE(file_contains(&f, "work/clusters/c-one/server-env.txt", /* its heap: 512m */
                                  "SPARK_DAEMON_MEMORY"));
    CU_ASSERT_EQUAL(stat(fixture_path(&f, "work/clusters/c-one/spark.properties"), &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    CU_ASSERT_TRUE(file_contains(&f, "work/clusters/c-one/spark.properties",
                                 "\nspark.connect.authenticate.token=" TOKEN "\n"));
    CU_ASSERT_TRUE(file_contains(&f, "work/clusters/c-one/spark.properties",
                                 "\nspark.sql.shuffle.partitions=4\n"));
    CU_ASSERT_TRUE(
        file_contains(&f, "work/clusters/c-one/spark.properties", "\nspark.executor.memory=2g\n"));
    CU_ASSERT_TRUE(
        file_contains(&f, "work/clusters/c-one/spark.properties", "\nspark.driver.memory=512m\n"));
    CU_ASSERT_TRUE(file_contains(&f, "work/clusters/c-one/spark.properties",
                                 "\nspark.ui.enabled=false\n")); /* extra_conf */
    CU_ASSERT_TRUE(file_contains(&f, "work/clusters/c-one/worker-2.log",
                                 "Successfully registered with master"));
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, "sparkplane_backend_local_clusters", NULL), 1);

    endpoint(&f, "c-one", &box);
    CU_ASSERT_EQUAL(box.status, SP_OK);
    CU_ASSERT_STRING_EQUAL(doc_string(&box, "state"), "RUNNING");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(box.doc, "executors")), 2);
    box_clear(&box);

    start(&f, "c-one", 1, &box); /* the same id again */
    CU_ASSERT_EQUAL(box.status, SP_CONFLICT);
    CU_ASSERT_PTR_NOT_NULL(strstr(box.message, "already exists"));
    box_clear(&box);

    stop(&f, "c-one", &box);
    CU_ASSERT_EQUAL(box.status, SP_OK);
    box_clear(&box);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_TRUE(group_gone_within(pids[i], 2000));
    endpoint(&f, "c-one", &box);
    CU_ASSERT_EQUAL(box.status, SP_NOT_FOUND);
    box_clear(&box);
    stop(&f, "c-one", &box);
    CU_ASSERT_EQUAL(box.status, SP_NOT_FOUND);
    box_clear(&box);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, "sparkplane_backend_local_clusters", NULL), 0);
    fixture_close(&f);
}

static void test_scale(void)
{
    fixture f;
    reply_box box;
    long worker2, worker3;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    start(&f, "c-scale", 1, &box);
    CU_ASSERT_EQUAL_FATAL(box.status, SP_OK);
    box_clear(&box);

    scale_within(&f, "c-scale", "{\"executors\": 3, \"executor\": {\"cores\": 2}}", &box, WAIT_MS);
    CU_ASSERT_EQUAL(box.status, SP_OK);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(box.doc, "executors")), 3);
    box_clear(&box);
    CU_ASSERT_TRUE(file_contains(&f, "work/clusters/c-scale/worker-3.log",
                                 "Successfully registered with master"));
    worker2 = member_pid(&f, "c-scale", "worker-2");
    worker3 = member_pid(&f, "c-scale", "worker-3");
    CU_ASSERT_FALSE(group_gone(worker3));
    CU_ASSERT_EQUAL(
        mock_host_metric_value(f.host, "sparkplane_backend_local_cluster_workers", NULL), 3);

    /* Down to 1: the newest workers go, the first stays. */
    scale_within(&f, "c-scale", "{\"executors\": 1}", &box, WAIT_MS);
    CU_ASSERT_EQUAL(box.status, SP_OK);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(box.doc, "executors")), 1);
    box_clear(&box);
    CU_ASSERT_TRUE(group_gone(worker2) && group_gone(worker3));
    CU_ASSERT_FALSE(group_gone(member_pid(&f, "c-scale", "worker-1")));
    endpoint(&f, "c-scale", &box);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(box.doc, "executors")), 1);
    box_clear(&box);

    /* What cannot be: another executor size, a bad count, an unknown cluster. */
    scale_within(&f, "c-scale", "{\"executors\": 2, \"executor\": {\"memory\": \"4g\"}}", &box,
                 WAIT_MS);
    CU_ASSERT_EQUAL(box.status, SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(box.message, "executor.memory"));
    box_clear(&box);
    scale_within(&f, "c-scale", "{\"executors\": \"2\"}", &box, WAIT_MS);
    CU_ASSERT_EQUAL(box.status, SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(box.message, "executors"));
    box_clear(&box);
    scale_within(&f, "nobody", "{\"executors\": 2}", &box, WAIT_MS);
    CU_ASSERT_EQUAL(box.status, SP_NOT_FOUND);
    box_clear(&box);

    stop(&f, "c-scale", &box);
    CU_ASSERT_EQUAL(box.status, SP_OK);
    box_clear(&box);
    fixture_close(&f);
}

static void test_scale_worker_never_registers(void)
{
    fixture f;
    reply_box box;
    long worker2;
    fixture_open(&f);
    mock_host_set_option(f.host, "cluster_start_timeout", "3s");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    start(&f, "c-silent", 1, &box);
    if (box.status != SP_OK)
        fprintf(stderr, "\n  start: %s\n", box.message);
    CU_ASSERT_EQUAL_FATAL(box.status, SP_OK);
    box_clear(&box);
    fake_switch(&f, "worker-silent");
    scale_within(&f, "c-silent", "{\"executors\": 2}", &box, WAIT_MS);
    CU_ASSERT_EQUAL(box.status, SP_ERROR);
    CU_ASSERT_PTR_NOT_NULL(strstr(box.message, "worker-2 did not register with the master"));
    box_clear(&box);
    worker2 = member_pid(&f, "c-silent", "worker-2");
    CU_ASSERT_TRUE(group_gone_within(worker2, 2000)); /* the unregistered worker is stopped */
    endpoint(&f, "c-silent", &box);
    CU_ASSERT_STRING_EQUAL(doc_string(&box, "state"), "RUNNING");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(box.doc, "executors")), 1);
    box_clear(&box);
    stop(&f, "c-silent", &box);
    box_clear(&box);
    fixture_close(&f);
}

static void expect_invalid(fixture *f, json_t *doc, const char *field)
{
    reply_box box;
    start_doc_within(f, doc, &box, WAIT_MS);
    CU_ASSERT_EQUAL(box.status, SP_INVALID);
    if (strstr(box.message, field) == NULL)
        fprintf(stderr, "\n  expected '%s' in: %s\n", field, box.message);
    CU_ASSERT_PTR_NOT_NULL(strstr(box.message, field));
    box_clear(&box);
    json_decref(doc);
}

static void test_invalid_documents(void)
{
    fixture f;
    json_t *doc;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);

    doc = cluster_doc(&f, "c-bad", 1);
    json_object_set_new(doc, "id", json_string("Upper_Case"));
    expect_invalid(&f, doc, "id must be");
    doc = cluster_doc(&f, "c-bad", 1);
    json_object_del(doc, "resources");
    expect_invalid(&f, doc, "resources must be");
    doc = cluster_doc(&f, "c-bad", 1);
    json_object_set_new(json_object_get(doc, "resources"), "executors", json_string("2"));
    expect_invalid(&f, doc, "resources.executors");
    doc = cluster_doc(&f, "c-bad", 99);
    expect_invalid(&f, doc, "resources.executors");
    doc = cluster_doc(&f, "c-bad", 1);
    json_object_set_new(json_object_get(json_object_get(doc, "resources"), "executor"), "memory",
                        json_string("lots"));
    expect_invalid(&f, doc, "resources.executor.memory");
    doc = cluster_doc(&f, "c-bad", 1);
    json_object_set_new(json_object_get(json_object_get(doc, "resources"), "driver"), "cores",
                        json_integer(0));
    expect_invalid(&f, doc, "resources.driver.cores");
    doc = cluster_doc(&f, "c-bad", 1);
    json_object_set_new(json_object_get(doc, "conf"), "spark.x", json_integer(3));
    expect_invalid(&f, doc, "conf.spark.x must be a string");
    doc = cluster_doc(&f, "c-bad", 1);
    json_object_del(doc, "token");
    expect_invalid(&f, doc, "token");
    doc = cluster_doc(&f, "c-bad", 1);
    json_object_set_new(json_object_get(doc, "runtime"), "spark_home",
                        json_string(fixture_path(&f, "work")));
    expect_invalid(&f, doc, "runtime.spark_home");
    /* Nothing was started or recorded for any of them. */
    CU_ASSERT_EQUAL(mock_host_process_count(f.host), 0);
    CU_ASSERT_NOT_EQUAL(access(fixture_path(&f, "work/clusters/c-bad"), F_OK), 0);
    fixture_close(&f);
}

static void test_start_fails_when_server_dies(void)
{
    fixture f;
    reply_box box;
    long master;
    fixture_open(&f);
    fake_switch(&f, "server-dies");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    start(&f, "c-dies", 1, &box);
    CU_ASSERT_EQUAL(box.status, SP_ERROR);
    CU_ASSERT_PTR_NOT_NULL(strstr(box.message, "server exited before the Spark Connect port"));
    CU_ASSERT_PTR_NOT_NULL(strstr(box.message, "java.net.BindException: Address already in use"));
    box_clear(&box);
    master = member_pid(&f, "c-dies", "master");
    CU_ASSERT_TRUE(group_gone_within(master, 2000));
    CU_ASSERT_TRUE(group_gone_within(member_pid(&f, "c-dies", "worker-1"), 2000));
    endpoint(&f, "c-dies", &box);
    CU_ASSERT_EQUAL(box.status, SP_NOT_FOUND); /* stopped and forgotten */
    box_clear(&box);
    fixture_close(&f);
}

static void test_start_fails_when_master_dies(void)
{
    fixture f;
    reply_box box;
    fixture_open(&f);
    fake_switch(&f, "master-dies");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    start(&f, "c-nomaster", 1, &box);
    CU_ASSERT_EQUAL(box.status, SP_ERROR);
    CU_ASSERT_PTR_NOT_NULL(strstr(box.message, "master exited"));
    CU_ASSERT_PTR_NOT_NULL(strstr(box.message, "Failed to bind MasterUI"));
    box_clear(&box);
    CU_ASSERT_NOT_EQUAL(access(fixture_path(&f, "work/clusters/c-nomaster/server.pid"), F_OK), 0);
    fixture_close(&f);
}

static void test_start_timeout(void)
{
    fixture f;
    reply_box box;
    struct timespec t0, t1;
    fixture_open(&f);
    fake_switch(&f, "server-never");
    mock_host_set_option(f.host, "cluster_start_timeout", "2s");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    start(&f, "c-slow", 1, &box);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CU_ASSERT_EQUAL(box.status, SP_ERROR);
    CU_ASSERT_PTR_NOT_NULL(strstr(box.message, "did not open within 2 s"));
    box_clear(&box);
    CU_ASSERT_TRUE(t1.tv_sec - t0.tv_sec >= 2);
    /* On a slow machine the deadline may come before the server was even started. */
    if (member_pid(&f, "c-slow", "server") > 0)
        CU_ASSERT_TRUE(group_gone_within(member_pid(&f, "c-slow", "server"), 2000));
    CU_ASSERT_TRUE(group_gone_within(member_pid(&f, "c-slow", "master"), 2000));
    fixture_close(&f);
}

static void test_dying_server_is_reported(void)
{
    fixture f;
    reply_box box;
    event_wait w = {&f, "c-crash"};
    json_t *event;
    long master;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    start(&f, "c-crash", 1, &box);
    CU_ASSERT_EQUAL_FATAL(box.status, SP_OK);
    box_clear(&box);
    master = member_pid(&f, "c-crash", "master");
    kill(-(pid_t)member_pid(&f, "c-crash", "server"), SIGKILL);

    CU_ASSERT_TRUE(mock_host_run(f.host, event_arrived, &w, WAIT_MS));
    event = event_find(&f, "c-crash");
    CU_ASSERT_PTR_NOT_NULL_FATAL(event);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(event, "state")), "FAILED");
    CU_ASSERT_PTR_NOT_NULL(
        strstr(json_string_value(json_object_get(event, "reason")), "Spark Connect server"));
    CU_ASSERT_TRUE(group_gone_within(master, 2000)); /* what was left is killed */
    endpoint(&f, "c-crash", &box);
    CU_ASSERT_EQUAL(box.status, SP_OK);
    CU_ASSERT_STRING_EQUAL(doc_string(&box, "state"), "FAILED");
    CU_ASSERT_PTR_NOT_NULL(strstr(doc_string(&box, "reason"), "exited"));
    box_clear(&box);
    stop(&f, "c-crash", &box);
    CU_ASSERT_EQUAL(box.status, SP_OK);
    box_clear(&box);
    fixture_close(&f);
}

/* A "restart": the plugin unloads (its processes keep running) and a new instance adopts. */
static void restart(fixture *f)
{
    mock_host_fini(f->host);
    json_array_clear(f->events);
    CU_ASSERT_EQUAL_FATAL(fixture_init(f), SP_OK);
}

static void test_adoption_after_restart(void)
{
    fixture f;
    reply_box box;
    json_t *clusters;
    char endpoint_text[64];
    long kept[3], broken_master;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    start(&f, "c-kept", 2, &box);
    CU_ASSERT_EQUAL_FATAL(box.status, SP_OK);
    snprintf(endpoint_text, sizeof(endpoint_text), "%s", doc_string(&box, "endpoint"));
    box_clear(&box);
    start(&f, "c-broken", 1, &box);
    CU_ASSERT_EQUAL_FATAL(box.status, SP_OK);
    box_clear(&box);
    kept[0] = member_pid(&f, "c-kept", "master");
    kept[1] = member_pid(&f, "c-kept", "worker-2");
    kept[2] = member_pid(&f, "c-kept", "server");
    broken_master = member_pid(&f, "c-broken", "master");

    restart(&f);
    /* While "the daemon was down", one cluster's server died. */
    kill(-(pid_t)member_pid(&f, "c-broken", "server"), SIGKILL);
    CU_ASSERT_TRUE(group_gone_within(member_pid(&f, "c-broken", "server"), 2000));
    clusters = reconcile(&f);
    CU_ASSERT_EQUAL(json_array_size(clusters), 1);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(clusters, 0), "id")),
                           "c-kept");
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(json_array_get(clusters, 0), "endpoint")), endpoint_text);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(clusters, 0), "executors")),
                    2);
    json_decref(clusters);
    CU_ASSERT_TRUE(group_gone_running(&f, broken_master, 3000)); /* the partly dead one stops */

    endpoint(&f, "c-kept", &box);
    CU_ASSERT_STRING_EQUAL(doc_string(&box, "state"), "RUNNING");
    box_clear(&box);
    scale_within(&f, "c-kept", "{\"executors\": 1}", &box, WAIT_MS); /* adopted workers too */
    CU_ASSERT_EQUAL(box.status, SP_OK);
    box_clear(&box);
    CU_ASSERT_TRUE(group_gone(kept[1]));

    stop(&f, "c-kept", &box); /* adopted: signalled by process group */
    CU_ASSERT_EQUAL(box.status, SP_OK);
    box_clear(&box);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_TRUE(group_gone_within(kept[i], 2000));
    restart(&f);
    clusters = reconcile(&f);
    CU_ASSERT_EQUAL(json_array_size(clusters), 0);
    json_decref(clusters);
    fixture_close(&f);
}

static void test_stop_escalates(void)
{
    fixture f;
    reply_box box;
    struct timespec t0, t1;
    long server;
    fixture_open(&f);
    fake_switch(&f, "stubborn");
    mock_host_set_option(f.host, "cancel_grace_period", "500ms");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    start(&f, "c-stubborn", 1, &box);
    CU_ASSERT_EQUAL_FATAL(box.status, SP_OK);
    box_clear(&box);
    server = member_pid(&f, "c-stubborn", "server");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    stop(&f, "c-stubborn", &box);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CU_ASSERT_EQUAL(box.status, SP_OK);
    box_clear(&box);
    CU_ASSERT_TRUE(group_gone(server));
    /* server, workers, master: each got the grace period before its SIGKILL */
    CU_ASSERT_TRUE((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 1500);
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_WARN, "server still running after the grace"));
    fixture_close(&f);
}

/* ---- real Spark ------------------------------------------------------------------------ */

/* Runs a pyspark client against the cluster; its last output line, or "" on failure. */
static void real_query(const char *python, const char *endpoint_text, const char *code, char *out,
                       size_t out_size)
{
    char command[4096], line[1024];
    const char *port = strrchr(endpoint_text, ':');
    FILE *p;
    snprintf(command, sizeof(command),
             "%s -c 'from pyspark.sql import SparkSession\n"
             "s = SparkSession.builder.remote(\"sc://localhost%s/;token=%s\").getOrCreate()\n"
             "%s' 2>&1",
             python, port != NULL ? port : ":0", TOKEN, code);
    out[0] = '\0';
    if ((p = popen(command, "r")) == NULL)
        return;
    while (fgets(line, sizeof(line), p) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(out, out_size, "%s", line);
    }
    pclose(p);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static const char real_work_dirs[] =
    "import os\n"
    "from pyspark.sql.functions import udf\n"
    "cwd = udf(lambda x: os.getcwd())\n"
    "rows = s.range(0, 64, 1, 16).select(cwd(\"id\").alias(\"d\")).distinct().collect()\n"
    "print(\"dirs\", len(rows), sorted([p for p in r.d.split(\"/\") if "
    "p.startswith(\"worker-\")][0] "
    "for r in rows))";

static void test_real_spark_cluster(void)
{
    const char *spark_home = getenv("SPARKPLANE_TEST_SPARK_HOME");
    const char *python = getenv("SPARKPLANE_TEST_PYTHON");
    fixture f;
    reply_box box;
    json_t *doc;
    char endpoint_text[64], out[1024];
    struct timespec t0;

    if (spark_home == NULL || python == NULL) {
        fprintf(stderr, "(skipped: SPARKPLANE_TEST_SPARK_HOME and SPARKPLANE_TEST_PYTHON unset) ");
        return;
    }
    fixture_open(&f);
    mock_host_set_option(f.host, "python", python);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    doc = cluster_doc(&f, "c-real", 1);
    json_object_set_new(json_object_get(doc, "runtime"), "spark_home", json_string(spark_home));
    json_object_set_new(json_object_get(json_object_get(doc, "resources"), "executor"), "cores",
                        json_integer(1));
    json_object_set_new(json_object_get(json_object_get(doc, "resources"), "executor"), "memory",
                        json_string("512m"));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    start_doc_within(&f, doc, &box, REAL_WAIT_MS);
    json_decref(doc);
    fprintf(stderr, "\n  cold start: %.1f s (%s: %s)\n", seconds_since(&t0),
            box.status == SP_OK ? "OK" : "failed", box.message);
    CU_ASSERT_EQUAL_FATAL(box.status, SP_OK);
    snprintf(endpoint_text, sizeof(endpoint_text), "%s", doc_string(&box, "endpoint"));
    box_clear(&box);
    /* No JVM (nor anything else) shows the token on its command line. */
    CU_ASSERT_NOT_EQUAL(system("ps -eo args | grep -v grep | grep -q " TOKEN), 0);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    real_query(python, endpoint_text, "print(s.range(10).count())", out, sizeof(out));
    fprintf(stderr, "  count on 1 executor: %s (%.1f s)\n", out, seconds_since(&t0));
    CU_ASSERT_STRING_EQUAL(out, "10");
    real_query(python, endpoint_text, real_work_dirs, out, sizeof(out));
    fprintf(stderr, "  1 executor: %s\n", out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "dirs 1 ['worker-1']"));

    clock_gettime(CLOCK_MONOTONIC, &t0);
    scale_within(&f, "c-real", "{\"executors\": 2}", &box, REAL_WAIT_MS);
    fprintf(stderr, "  scale 1 -> 2: %.1f s (%s)\n", seconds_since(&t0), box.message);
    CU_ASSERT_EQUAL(box.status, SP_OK);
    box_clear(&box);
    sleep(5); /* the master gives the application an executor on the new worker */
    real_query(python, endpoint_text, real_work_dirs, out, sizeof(out));
    fprintf(stderr, "  2 executors: %s\n", out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "dirs 2 ['worker-1', 'worker-2']"));

    clock_gettime(CLOCK_MONOTONIC, &t0);
    stop(&f, "c-real", &box);
    fprintf(stderr, "  stop: %.1f s\n", seconds_since(&t0));
    CU_ASSERT_EQUAL(box.status, SP_OK);
    box_clear(&box);
    fixture_close(&f);
}

static const unit_test_case cases[] = {
    {"start answers the endpoint once the Connect port accepts; stop ends every process",
     test_start_stop},
    {"scale adds registered workers and removes the newest ones", test_scale},
    {"a scale whose new worker never registers fails and stops it",
     test_scale_worker_never_registers},
    {"bad cluster documents are INVALID naming the field", test_invalid_documents},
    {"a server that dies during the start: ERROR with its log, all stopped",
     test_start_fails_when_server_dies},
    {"a master that dies during the start: ERROR with its log", test_start_fails_when_master_dies},
    {"a start past cluster_start_timeout fails and stops everything", test_start_timeout},
    {"a running cluster whose server dies is reported FAILED", test_dying_server_is_reported},
    {"a restarted plugin adopts live clusters and stops partly dead ones",
     test_adoption_after_restart},
    {"stop escalates to SIGKILL after the grace period, stage by stage", test_stop_escalates},
    {"real Spark: start, query, scale to 2 executors, stop (when SPARKPLANE_TEST_SPARK_HOME "
     "is set)",
     test_real_spark_cluster},
    {NULL, NULL}};

UNIT_TEST_MAIN("backend_local_cluster", cases)
