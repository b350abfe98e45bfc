/*
 * test_backend_local.c - the local backend loaded into the mock host,
 * running real processes.
 *
 * Each test makes a scratch directory with a FAKE Spark home: its
 * bin/spark-submit is a small shell script written here that records its
 * argv and environment, prints a Spark-like log (with the event-log line
 * that carries the application id), and then does what the job's first
 * argument says: ok, fail (a Python traceback), sleep N, stubborn (ignores
 * SIGTERM), log (bytes for the log-reading tests).  The fake lives only in
 * this test; the plugin runs it exactly as it runs the real one.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mock_host.h"
#include "unit_test.h"

#define PLUGIN_PATH TEST_BUILDDIR "/plugins/backend_local/.libs/backend_local.so"
#define WAIT_MS      15000
#define REAL_WAIT_MS 180000 /* a JVM start on a busy 2-core machine */

static const char fake_spark_submit[] =
    "#!/bin/sh\n"
    "printf '%s\\n' \"$@\" > argv.txt\n"
    "printf 'SPARK_HOME=%s\\nPYSPARK_PYTHON=%s\\nJAVA_HOME=%s\\n' \"$SPARK_HOME\" "
    "\"$PYSPARK_PYTHON\" \"$JAVA_HOME\" > env.txt\n"
    "while [ $# -gt 0 ]; do\n"
    "  case \"$1\" in --master|--name|--conf|--driver-memory|--class|--py-files|--jars)"
    " shift 2;; *) break;; esac\n"
    "done\n"
    "shift\n"
    "echo '26/11/23 14:11:04 INFO SparkContext: Running Spark version 4.0.0'\n"
    "echo '26/11/23 14:11:04 INFO SharedState: Warehouse path is file:/tmp/local-spark/wh'\n"
    "case \"$1\" in\n"
    "stubborn) trap '' TERM ;;\n"
    "esac\n"
    "echo '26/11/23 14:11:05 INFO RollingEventLogFilesWriter: Logging events to "
    "file:/w/events/eventlog_v2_local-123/events_1_local-123.zstd'\n"
    "case \"$1\" in\n"
    "ok) echo 'result 42'; exit 0 ;;\n"
    "fail) echo 'Traceback (most recent call last):' >&2\n"
    "  echo '  File \"/x/job.py\", line 5, in <module>' >&2\n"
    "  echo '    raise ValueError(\"boom-42\")' >&2\n"
    "  echo 'ValueError: boom-42' >&2\n"
    "  echo '26/11/23 14:11:06 INFO SparkContext: Successfully stopped SparkContext' >&2\n"
    "  exit 1 ;;\n"
    "sleep|stubborn) sleep \"$2\" & sleep \"$2\"; wait ;;\n"
    "log) printf 'caf\\303\\251 \\377end\\n'; exit 0 ;;\n"
    "esac\n";

typedef struct reply_box {
    int called;
    int status;
    json_t *doc;
    char message[512];
} reply_box;

typedef struct fixture {
    mock_host *host;
    const sp_backend_ops *ops;
    void *provider;
    char root[64];
    char path[512]; /* scratch for building paths */
    json_t *events;
    char err[512];
} fixture;

/* ---- fixture ----------------------------------------------------------- */

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
    snprintf(f->root, sizeof(f->root), "/tmp/sp-local-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(f->root));
    mkdir(fixture_path(f, "spark"), 0755);
    mkdir(fixture_path(f, "spark/bin"), 0755);
    mkdir(fixture_path(f, "apps"), 0755);
    write_file(fixture_path(f, "spark/bin/spark-submit"), fake_spark_submit, 0755);
    write_file(fixture_path(f, "apps/job.py"), "print('not run by the fake')\n", 0644);
    write_file(fixture_path(f, "apps/lib.py"), "\n", 0644);
    write_file(fixture_path(f, "apps/app.jar"), "PK\n", 0644);
    write_file(fixture_path(f, "apps/notes.txt"), "\n", 0644);
    f->events = json_array();
    f->host = mock_host_new();
    CU_ASSERT_EQUAL_FATAL(mock_host_load(f->host, PLUGIN_PATH, f->err, sizeof(f->err)), 0);
    mock_host_set_option(f->host, "work_directory", fixture_path(f, "work"));
    mock_host_set_option(f->host, "poll_interval", "50ms");
    mock_host_set_option(f->host, "python", "python-under-test");
}

static void fixture_close(fixture *f)
{
    char command[128];
    mock_host_free(f->host);
    json_decref(f->events);
    snprintf(command, sizeof(command), "rm -rf '%s'", f->root);
    CU_ASSERT_EQUAL(system(command), 0);
}

/* ---- driving the plugin ------------------------------------------------- */

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

static void reply_wait(fixture *f, reply_box *box)
{
    CU_ASSERT_TRUE(mock_host_run(f->host, reply_arrived, box, WAIT_MS));
    CU_ASSERT_EQUAL(box->called, 1);
}

static const char *reply_state(const reply_box *box)
{
    const char *state = json_string_value(json_object_get(box->doc, "state"));
    return state != NULL ? state : "";
}

/* A job document as the runner sends it; `extra` is merged into spec.application. */
static char *job_json(fixture *f, const char *id, const char *file, const char *mode,
                      const char *arg_in)
{
    char arg[512], *text;
    json_t *job;
    snprintf(arg, sizeof(arg), "%s", arg_in != NULL ? arg_in : ""); /* it may be f->path */
    job = json_pack("{s:s,s:i,s:{s:s,s:s,s:{s:s,s:[s,s*],s:{s:s}},s:{s:{s:i,s:s}}},s:{s:s}}",
                    "id", id, "attempt", 1, "spec", "name", "etl-daily", "team", "data",
                    "application", "file", fixture_path(f, file), "args", mode,
                    arg_in != NULL ? arg : NULL, "conf", "spark.sql.shuffle.partitions", "4",
                    "resources", "driver", "cores", 1, "memory", "512m", "runtime",
                    "spark_version", "4.0");
    json_object_set_new(json_object_get(job, "runtime"), "spark_home",
                        json_string(fixture_path(f, "spark")));
    text = json_dumps(job, JSON_COMPACT);
    json_decref(job);
    return text;
}

static void submit_doc(fixture *f, const char *text, reply_box *box)
{
    memset(box, 0, sizeof(*box));
    CU_ASSERT_EQUAL(f->ops->job_submit(f->provider, text, on_reply, box), SP_OK);
    reply_wait(f, box);
}

static void submit(fixture *f, const char *id, const char *mode, const char *arg, reply_box *box)
{
    char *text = job_json(f, id, "apps/job.py", mode, arg);
    submit_doc(f, text, box);
    free(text);
}

static void status(fixture *f, const char *id, reply_box *box)
{
    memset(box, 0, sizeof(*box));
    CU_ASSERT_EQUAL(f->ops->job_status(f->provider, id, on_reply, box), SP_OK);
    reply_wait(f, box);
}

static void box_clear(reply_box *box)
{
    json_decref(box->doc);
    memset(box, 0, sizeof(*box));
}

typedef struct event_wait {
    fixture *f;
    const char *id;
    const char *field; /* "state" final, or "spark_app_id" */
} event_wait;

static json_t *event_find(fixture *f, const char *id, const char *field)
{
    size_t i;
    json_t *event;
    json_array_foreach(f->events, i, event) {
        const char *state = json_string_value(json_object_get(event, "state"));
        if (strcmp(json_string_value(json_object_get(event, "id")), id) != 0)
            continue;
        if (strcmp(field, "spark_app_id") == 0 && json_object_get(event, field) != NULL)
            return event;
        if (strcmp(field, "state") == 0 && state != NULL && strcmp(state, "RUNNING") != 0)
            return event;
    }
    return NULL;
}

static int event_arrived(void *arg)
{
    event_wait *w = arg;
    return event_find(w->f, w->id, w->field) != NULL;
}

/* The job's final event (waits for it); NULL when none came. */
static json_t *final_event_within(fixture *f, const char *id, uint64_t timeout_ms)
{
    event_wait w = {f, id, "state"};
    mock_host_run(f->host, event_arrived, &w, timeout_ms);
    return event_find(f, id, "state");
}

static json_t *final_event(fixture *f, const char *id)
{
    return final_event_within(f, id, WAIT_MS);
}

static const char *final_state(fixture *f, const char *id)
{
    json_t *event = final_event(f, id);
    return event != NULL ? json_string_value(json_object_get(event, "state")) : "(none)";
}

static long job_pid(fixture *f, const char *id)
{
    char relative[128];
    long pid = -1;
    FILE *file;
    snprintf(relative, sizeof(relative), "work/%s/pid", id);
    if ((file = fopen(fixture_path(f, relative), "r")) != NULL) {
        if (fscanf(file, "%ld", &pid) != 1)
            pid = -1;
        fclose(file);
    }
    return pid;
}

/*
 * No live process left in the group.  Zombies count as gone: they run
 * nothing, and an orphan's zombie waits for init to reap it (in some
 * containers init never does).
 */
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

/* A signalled process needs a moment to die; poll instead of racing it. */
static int group_gone_within(long pgid, int ms)
{
    for (int waited = 0; waited < ms; waited += 20) {
        if (group_gone(pgid))
            return 1;
        usleep(20 * 1000);
    }
    return group_gone(pgid);
}

static int file_has_line(fixture *f, const char *relative, const char *line_in)
{
    char buffer[1024], line[512];
    int found = 0;
    FILE *file;
    snprintf(line, sizeof(line), "%s", line_in); /* it may be f->path itself */
    file = fopen(fixture_path(f, relative), "r");
    while (file != NULL && !found && fgets(buffer, sizeof(buffer), file) != NULL) {
        buffer[strcspn(buffer, "\n")] = '\0';
        found = strcmp(buffer, line) == 0;
    }
    if (file != NULL)
        fclose(file);
    return found;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_success(void)
{
    fixture f;
    reply_box box;
    json_t *event;
    fixture_open(&f);
    mock_host_set_option(f.host, "cores_per_job", "2");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);

    submit(&f, "job-ok", "ok", NULL, &box);
    CU_ASSERT_EQUAL(box.status, SP_OK);
    CU_ASSERT_STRING_EQUAL(reply_state(&box), "RUNNING");
    box_clear(&box);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, "sparkplane_backend_local_jobs_running", NULL),
                    1);

    event = final_event(&f, "job-ok");
    CU_ASSERT_PTR_NOT_NULL_FATAL(event);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(event, "state")), "SUCCEEDED");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(event, "spark_app_id")),
                           "local-123");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(event, "exit_code")), 0);

    status(&f, "job-ok", &box);
    CU_ASSERT_STRING_EQUAL(reply_state(&box), "SUCCEEDED");
    box_clear(&box);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, "sparkplane_backend_local_jobs_running", NULL),
                    0);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, "sparkplane_backend_local_jobs_finished_total",
                                           "state=\"SUCCEEDED\""),
                    1);

    /* The command spark-submit received, and its environment. */
    CU_ASSERT_TRUE(file_has_line(&f, "work/job-ok/argv.txt", "local[2]"));
    CU_ASSERT_TRUE(file_has_line(&f, "work/job-ok/argv.txt", "etl-daily"));
    CU_ASSERT_TRUE(file_has_line(&f, "work/job-ok/argv.txt", "spark.sql.shuffle.partitions=4"));
    CU_ASSERT_TRUE(file_has_line(&f, "work/job-ok/argv.txt", "spark.ui.enabled=false"));
    CU_ASSERT_TRUE(file_has_line(&f, "work/job-ok/argv.txt", "spark.driver.cores=1"));
    CU_ASSERT_TRUE(file_has_line(&f, "work/job-ok/argv.txt", "512m"));
    CU_ASSERT_TRUE(file_has_line(&f, "work/job-ok/argv.txt", "spark.eventLog.enabled=true"));
    CU_ASSERT_TRUE(file_has_line(&f, "work/job-ok/argv.txt", fixture_path(&f, "apps/job.py")));
    CU_ASSERT_TRUE(file_has_line(&f, "work/job-ok/env.txt", "PYSPARK_PYTHON=python-under-test"));
    CU_ASSERT_TRUE(file_has_line(&f, "work/job-ok/exit_code", "0"));
    CU_ASSERT_TRUE(file_has_line(&f, "work/job-ok/driver.log", "result 42"));
    fixture_close(&f);
}

static void test_failure_reason(void)
{
    fixture f;
    json_t *event;
    reply_box box;
    const char *reason;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    submit(&f, "job-fail", "fail", NULL, &box);
    box_clear(&box);
    event = final_event(&f, "job-fail");
    CU_ASSERT_PTR_NOT_NULL_FATAL(event);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(event, "state")), "FAILED");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(event, "exit_code")), 1);
    reason = json_string_value(json_object_get(event, "reason"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(reason);
    CU_ASSERT_STRING_EQUAL(reason, "ValueError: boom-42"); /* not the INFO noise after it */
    status(&f, "job-fail", &box);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(box.doc, "reason")),
                           "ValueError: boom-42");
    box_clear(&box);
    CU_ASSERT_EQUAL(mock_host_metric_value(f.host, "sparkplane_backend_local_jobs_finished_total",
                                           "state=\"FAILED\""),
                    1);
    fixture_close(&f);
}

static void test_cancel(void)
{
    fixture f;
    reply_box box;
    event_wait w;
    long pid;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    submit(&f, "job-long", "sleep", "300", &box);
    box_clear(&box);
    /* The application id is reported while the job still runs. */
    w = (event_wait){&f, "job-long", "spark_app_id"};
    CU_ASSERT_TRUE(mock_host_run(f.host, event_arrived, &w, WAIT_MS));
    pid = job_pid(&f, "job-long");
    CU_ASSERT_TRUE(pid > 0 && !group_gone(pid));

    memset(&box, 0, sizeof(box));
    CU_ASSERT_EQUAL(f.ops->job_cancel(f.provider, "job-long", on_reply, &box), SP_OK);
    reply_wait(&f, &box);
    CU_ASSERT_EQUAL(box.status, SP_OK);
    CU_ASSERT_STRING_EQUAL(reply_state(&box), "CANCELLING");
    box_clear(&box);
    CU_ASSERT_STRING_EQUAL(final_state(&f, "job-long"), "CANCELLED");
    CU_ASSERT_TRUE(group_gone_within(pid, 3000)); /* the sleeping grandchildren too */

    /* Cancelling again answers the final state. */
    CU_ASSERT_EQUAL(f.ops->job_cancel(f.provider, "job-long", on_reply, &box), SP_OK);
    reply_wait(&f, &box);
    CU_ASSERT_STRING_EQUAL(reply_state(&box), "CANCELLED");
    box_clear(&box);
    fixture_close(&f);
}

static void test_cancel_escalates(void)
{
    fixture f;
    reply_box box;
    event_wait w;
    long pid;
    fixture_open(&f);
    mock_host_set_option(f.host, "cancel_grace_period", "300ms");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    submit(&f, "job-stubborn", "stubborn", "300", &box);
    box_clear(&box);
    w = (event_wait){&f, "job-stubborn", "spark_app_id"}; /* past its trap */
    CU_ASSERT_TRUE(mock_host_run(f.host, event_arrived, &w, WAIT_MS));
    pid = job_pid(&f, "job-stubborn");
    CU_ASSERT_EQUAL(f.ops->job_cancel(f.provider, "job-stubborn", on_reply, &box), SP_OK);
    reply_wait(&f, &box);
    box_clear(&box);
    mock_host_run(f.host, NULL, NULL, 150);
    CU_ASSERT_FALSE(group_gone(pid)); /* SIGTERM is ignored... */
    CU_ASSERT_STRING_EQUAL(final_state(&f, "job-stubborn"), "CANCELLED");
    CU_ASSERT_TRUE(group_gone_within(pid, 3000)); /* ...SIGKILL after the grace period is not */
    CU_ASSERT_TRUE(mock_host_logged(f.host, SP_LOG_WARN, "SIGKILL"));
    fixture_close(&f);
}

static void test_capacity(void)
{
    fixture f;
    reply_box box;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    submit(&f, "job-a", "sleep", "300", &box);
    box_clear(&box);
    submit(&f, "job-b", "sleep", "300", &box);
    box_clear(&box);
    submit(&f, "job-c", "sleep", "300", &box);
    CU_ASSERT_EQUAL(box.status, SP_AGAIN);
    CU_ASSERT_STRING_EQUAL(box.message, "local backend at capacity (2 jobs running)");
    box_clear(&box);
    /* A repeated submit of a running job starts nothing new. */
    submit(&f, "job-a", "sleep", "300", &box);
    CU_ASSERT_EQUAL(box.status, SP_OK);
    CU_ASSERT_EQUAL(mock_host_process_count(f.host), 2);
    box_clear(&box);
    CU_ASSERT_EQUAL(f.ops->job_cancel(f.provider, "job-a", on_reply, &box), SP_OK);
    reply_wait(&f, &box);
    box_clear(&box);
    CU_ASSERT_STRING_EQUAL(final_state(&f, "job-a"), "CANCELLED");
    submit(&f, "job-c", "sleep", "300", &box); /* room again */
    CU_ASSERT_EQUAL(box.status, SP_OK);
    box_clear(&box);
    fixture_close(&f);
}

static void expect_invalid(fixture *f, const char *text, const char *needle)
{
    reply_box box;
    submit_doc(f, text, &box);
    CU_ASSERT_EQUAL(box.status, SP_INVALID);
    if (strstr(box.message, needle) == NULL)
        fprintf(stderr, "\n  expected '%s' in '%s'\n", needle, box.message);
    CU_ASSERT_PTR_NOT_NULL(strstr(box.message, needle));
    box_clear(&box);
}

/* Edits one field of a good document and expects SP_INVALID naming it. */
static void expect_invalid_edit(fixture *f, const char *pointer, json_t *value,
                                const char *needle)
{
    char *good = job_json(f, "job-bad", "apps/job.py", "ok", NULL), *text;
    json_t *doc = json_loads(good, 0, NULL), *parent = doc;
    char path[128], *key, *save = NULL;
    snprintf(path, sizeof(path), "%s", pointer);
    for (key = strtok_r(path, ".", &save); key != NULL; key = strtok_r(NULL, ".", &save)) {
        if (save == NULL || *save == '\0') {
            json_object_set_new(parent, key, value);
            break;
        }
        parent = json_object_get(parent, key);
    }
    text = json_dumps(doc, JSON_COMPACT);
    expect_invalid(f, text, needle);
    free(text);
    free(good);
    json_decref(doc);
}

static void test_invalid_specs(void)
{
    fixture f;
    struct stat st;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    expect_invalid(&f, "not json", "not a JSON object");
    expect_invalid(&f, "{\"id\":\"../etc\",\"spec\":{}}", "id must be");
    expect_invalid_edit(&f, "runtime.spark_home", json_string(""), "runtime.spark_home");
    expect_invalid_edit(&f, "runtime.spark_home", json_string(fixture_path(&f, "apps")),
                        "runtime.spark_home");
    expect_invalid_edit(&f, "spec.application.file", json_string(fixture_path(&f, "none.py")),
                        "application.file");
    expect_invalid_edit(&f, "spec.application.file", json_string(fixture_path(&f,
                                                                              "apps/notes.txt")),
                        "application.file");
    expect_invalid_edit(&f, "spec.application.file", json_string("relative/job.py"),
                        "application.file");
    expect_invalid_edit(&f, "spec.application.file", json_string(fixture_path(&f, "apps/app.jar")),
                        "application.class is required");
    expect_invalid_edit(&f, "spec.application.args", json_pack("[{}]"), "application.args[0]");
    expect_invalid_edit(&f, "spec.application.py_files",
                        json_pack("[s]", fixture_path(&f, "apps/gone.py")),
                        "application.py_files[0]");
    expect_invalid_edit(&f, "spec.application.conf", json_pack("{s:{}}", "spark.x"),
                        "application.conf.spark.x");
    expect_invalid_edit(&f, "spec.resources.driver.memory", json_string("lots"),
                        "resources.driver.memory");
    expect_invalid_edit(&f, "spec.application", json_string("x"), "application must be");
    /* Nothing was started or created for the refused job. */
    CU_ASSERT_EQUAL(mock_host_process_count(f.host), 0);
    CU_ASSERT_NOT_EQUAL(stat(fixture_path(&f, "work/job-bad"), &st), 0);
    fixture_close(&f);
}

static void test_jar_command(void)
{
    fixture f;
    reply_box box;
    char *text;
    json_t *doc;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    text = job_json(&f, "job-jar", "apps/app.jar", "ok", NULL);
    doc = json_loads(text, 0, NULL);
    free(text);
    json_object_set_new(json_object_get(json_object_get(doc, "spec"), "application"), "class",
                        json_string("com.example.Etl"));
    json_object_set_new(json_object_get(json_object_get(doc, "spec"), "application"), "jars",
                        json_pack("[s]", fixture_path(&f, "apps/app.jar")));
    text = json_dumps(doc, JSON_COMPACT);
    submit_doc(&f, text, &box);
    CU_ASSERT_EQUAL(box.status, SP_OK);
    box_clear(&box);
    CU_ASSERT_STRING_EQUAL(final_state(&f, "job-jar"), "SUCCEEDED");
    CU_ASSERT_TRUE(file_has_line(&f, "work/job-jar/argv.txt", "--class"));
    CU_ASSERT_TRUE(file_has_line(&f, "work/job-jar/argv.txt", "com.example.Etl"));
    CU_ASSERT_TRUE(file_has_line(&f, "work/job-jar/argv.txt", "--jars"));
    CU_ASSERT_TRUE(file_has_line(&f, "work/job-jar/env.txt", "PYSPARK_PYTHON="));
    free(text);
    json_decref(doc);
    fixture_close(&f);
}

static void logs(fixture *f, const char *id, uint64_t offset, uint64_t limit, reply_box *box)
{
    memset(box, 0, sizeof(*box));
    CU_ASSERT_EQUAL(f->ops->job_logs(f->provider, id, offset, limit, on_reply, box), SP_OK);
    reply_wait(f, box);
}

static void test_logs(void)
{
    fixture f;
    reply_box box;
    char text[4096] = "";
    uint64_t offset = 0;
    int complete = 0;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    submit(&f, "job-log", "log", NULL, &box);
    box_clear(&box);
    CU_ASSERT_STRING_EQUAL(final_state(&f, "job-log"), "SUCCEEDED");
    /* 7-byte slices: one ends inside "é", which must come whole in the next slice. */
    for (int rounds = 0; !complete && rounds < 200; rounds++) {
        logs(&f, "job-log", offset, 7, &box);
        CU_ASSERT_EQUAL_FATAL(box.status, SP_OK);
        strncat(text, json_string_value(json_object_get(box.doc, "data")),
                sizeof(text) - strlen(text) - 1);
        CU_ASSERT_TRUE(json_integer_value(json_object_get(box.doc, "next_offset")) >
                           (json_int_t)offset ||
                       json_is_true(json_object_get(box.doc, "complete")));
        offset = (uint64_t)json_integer_value(json_object_get(box.doc, "next_offset"));
        complete = json_is_true(json_object_get(box.doc, "complete"));
        box_clear(&box);
    }
    CU_ASSERT_TRUE(complete);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "INFO SparkContext: Running Spark version 4.0.0\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "caf\xc3\xa9 \xef\xbf\xbd" "end\n"));
    /* An offset past the end: nothing, complete. */
    logs(&f, "job-log", offset + 100, 10, &box);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(box.doc, "data")), "");
    box_clear(&box);
    logs(&f, "job-nobody", 0, 10, &box);
    CU_ASSERT_EQUAL(box.status, SP_NOT_FOUND);
    box_clear(&box);
    status(&f, "job-nobody", &box);
    CU_ASSERT_EQUAL(box.status, SP_NOT_FOUND);
    box_clear(&box);
    fixture_close(&f);
}

static void test_logs_running_not_complete(void)
{
    fixture f;
    reply_box box;
    event_wait w;
    fixture_open(&f);
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    submit(&f, "job-run", "sleep", "300", &box);
    box_clear(&box);
    w = (event_wait){&f, "job-run", "spark_app_id"};
    CU_ASSERT_TRUE(mock_host_run(f.host, event_arrived, &w, WAIT_MS));
    logs(&f, "job-run", 0, 1 << 20, &box);
    CU_ASSERT_PTR_NOT_NULL(strstr(json_string_value(json_object_get(box.doc, "data")),
                                  "local-123"));
    CU_ASSERT_TRUE(json_is_false(json_object_get(box.doc, "complete")));
    box_clear(&box);
    fixture_close(&f);
}

/* A "restart": the plugin unloads (its processes keep running) and a new instance re-attaches. */
static void restart(fixture *f)
{
    mock_host_fini(f->host);
    json_array_clear(f->events);
    CU_ASSERT_EQUAL_FATAL(fixture_init(f), SP_OK);
}

static void test_reattach(void)
{
    fixture f;
    reply_box box;
    long killed_pid, cancel_pid;
    fixture_open(&f);
    mock_host_set_option(f.host, "max_concurrent_jobs", "3");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    submit(&f, "job-finishes", "sleep", "1", &box);
    box_clear(&box);
    submit(&f, "job-killed", "sleep", "300", &box);
    box_clear(&box);
    submit(&f, "job-cancelled", "sleep", "300", &box);
    box_clear(&box);
    mock_host_run(f.host, NULL, NULL, 200);
    killed_pid = job_pid(&f, "job-killed");
    cancel_pid = job_pid(&f, "job-cancelled");

    restart(&f);
    /* While "the daemon was down", one job's processes were killed outright. */
    kill(-(pid_t)killed_pid, SIGKILL);
    memset(&box, 0, sizeof(box));
    CU_ASSERT_EQUAL(f.ops->reconcile(f.provider, on_reply, &box), SP_OK);
    reply_wait(&f, &box);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(box.doc, "jobs")), 3);
    box_clear(&box);

    status(&f, "job-finishes", &box);
    CU_ASSERT_STRING_EQUAL(reply_state(&box), "RUNNING");
    box_clear(&box);
    CU_ASSERT_STRING_EQUAL(final_state(&f, "job-finishes"), "SUCCEEDED");

    CU_ASSERT_STRING_EQUAL(final_state(&f, "job-killed"), "FAILED");
    status(&f, "job-killed", &box);
    CU_ASSERT_PTR_NOT_NULL(strstr(json_string_value(json_object_get(box.doc, "reason")),
                                  "driver process disappeared"));
    box_clear(&box);

    /* Cancel a re-attached job: its group is signalled directly. */
    CU_ASSERT_EQUAL(f.ops->job_cancel(f.provider, "job-cancelled", on_reply, &box), SP_OK);
    reply_wait(&f, &box);
    box_clear(&box);
    CU_ASSERT_STRING_EQUAL(final_state(&f, "job-cancelled"), "CANCELLED");
    CU_ASSERT_TRUE(group_gone_within(cancel_pid, 3000));

    /* A second restart: finished jobs are answered from their records, none is owned. */
    restart(&f);
    status(&f, "job-cancelled", &box);
    CU_ASSERT_STRING_EQUAL(reply_state(&box), "CANCELLED");
    box_clear(&box);
    CU_ASSERT_EQUAL(f.ops->reconcile(f.provider, on_reply, &box), SP_OK);
    reply_wait(&f, &box);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(box.doc, "jobs")), 0);
    box_clear(&box);
    fixture_close(&f);
}

static void test_cancel_survives_restart(void)
{
    fixture f;
    reply_box box;
    long pid;
    fixture_open(&f);
    mock_host_set_option(f.host, "cancel_grace_period", "5s");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    submit(&f, "job-x", "stubborn", "300", &box);
    box_clear(&box);
    mock_host_run(f.host, NULL, NULL, 300);
    pid = job_pid(&f, "job-x");
    CU_ASSERT_EQUAL(f.ops->job_cancel(f.provider, "job-x", on_reply, &box), SP_OK);
    reply_wait(&f, &box);
    box_clear(&box);
    /* The daemon dies before the SIGKILL; then the job's group is killed some other way. */
    restart(&f);
    kill(-(pid_t)pid, SIGKILL);
    CU_ASSERT_STRING_EQUAL(final_state(&f, "job-x"), "CANCELLED");
    fixture_close(&f);
}

static void test_options(void)
{
    fixture f;
    fixture_open(&f);
    mock_host_set_option(f.host, "extra_conf", "spark.ui.enabled");
    CU_ASSERT_EQUAL(fixture_init(&f), SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(f.err, "extra_conf[0]"));
    mock_host_set_option(f.host, "extra_conf", "a=1");
    mock_host_set_option(f.host, "work_directory", "relative/dir");
    CU_ASSERT_EQUAL(fixture_init(&f), SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(f.err, "work_directory"));
    fixture_close(&f);
}

/*
 * Real Spark, when the environment names it (scripts/test.sh can):
 *   SPARKPLANE_TEST_SPARK_HOME=<pyspark package dir> SPARKPLANE_TEST_PYTHON=.venv/bin/python
 * A PySpark job counts rows and writes the number; one raises; one is cancelled.
 */
static const char real_job[] =
    "import sys, time\n"
    "from pyspark.sql import SparkSession\n"
    "spark = SparkSession.builder.getOrCreate()\n"
    "mode = sys.argv[1]\n"
    "if mode == 'fail':\n"
    "    raise ValueError('boom-42')\n"
    "if mode == 'sleep':\n"
    "    time.sleep(600)\n"
    "n = spark.range(100000).filter('id % 7 = 0').count()\n"
    "open(sys.argv[2], 'w').write(str(n))\n"
    "spark.stop()\n";

static void real_submit(fixture *f, const char *id, const char *mode, const char *arg,
                        const char *spark_home)
{
    reply_box box;
    char *text = job_json(f, id, "apps/real.py", mode, arg);
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    json_object_set_new(json_object_get(doc, "runtime"), "spark_home", json_string(spark_home));
    text = json_dumps(doc, JSON_COMPACT);
    submit_doc(f, text, &box);
    CU_ASSERT_EQUAL(box.status, SP_OK);
    box_clear(&box);
    free(text);
    json_decref(doc);
}

static void test_real_spark(void)
{
    const char *spark_home = getenv("SPARKPLANE_TEST_SPARK_HOME");
    const char *python = getenv("SPARKPLANE_TEST_PYTHON");
    fixture f;
    json_t *event;
    event_wait w;
    reply_box box;
    char result[256] = "", app_id[64] = "";
    long pid;
    FILE *file;

    if (spark_home == NULL || python == NULL) {
        fprintf(stderr, "(skipped: SPARKPLANE_TEST_SPARK_HOME and SPARKPLANE_TEST_PYTHON unset) ");
        return;
    }
    fixture_open(&f);
    mock_host_set_option(f.host, "python", python);
    mock_host_set_option(f.host, "max_concurrent_jobs", "3");
    CU_ASSERT_EQUAL_FATAL(fixture_init(&f), SP_OK);
    write_file(fixture_path(&f, "apps/real.py"), real_job, 0644);

    real_submit(&f, "real-ok", "count", fixture_path(&f, "result.txt"), spark_home);
    event = final_event_within(&f, "real-ok", REAL_WAIT_MS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(event);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(event, "state")), "SUCCEEDED");
    snprintf(app_id, sizeof(app_id), "%s",
             json_string_value(json_object_get(event, "spark_app_id")) ?: "");
    CU_ASSERT_TRUE(strncmp(app_id, "local-", 6) == 0 && strlen(app_id) >= 19);
    if ((file = fopen(fixture_path(&f, "result.txt"), "r")) != NULL) {
        CU_ASSERT_PTR_NOT_NULL(fgets(result, sizeof(result), file));
        fclose(file);
    }
    CU_ASSERT_STRING_EQUAL(result, "14286");

    real_submit(&f, "real-fail", "fail", NULL, spark_home);
    event = final_event_within(&f, "real-fail", REAL_WAIT_MS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(event);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(event, "state")), "FAILED");
    CU_ASSERT_PTR_NOT_NULL(strstr(json_string_value(json_object_get(event, "reason")) ?: "",
                                  "ValueError: boom-42"));

    real_submit(&f, "real-cancel", "sleep", NULL, spark_home);
    w = (event_wait){&f, "real-cancel", "spark_app_id"};
    CU_ASSERT_TRUE(mock_host_run(f.host, event_arrived, &w, REAL_WAIT_MS));
    pid = job_pid(&f, "real-cancel");
    memset(&box, 0, sizeof(box));
    CU_ASSERT_EQUAL(f.ops->job_cancel(f.provider, "real-cancel", on_reply, &box), SP_OK);
    reply_wait(&f, &box);
    box_clear(&box);
    CU_ASSERT_STRING_EQUAL(final_state(&f, "real-cancel"), "CANCELLED");
    CU_ASSERT_TRUE(group_gone_within(pid, 3000)); /* the JVM and the Python driver */
    fixture_close(&f);
}

static const unit_test_case cases[] = {
    {"a job that exits 0 ends SUCCEEDED with its app id and command", test_success},
    {"a failing job ends FAILED with the exception line as reason", test_failure_reason},
    {"cancel stops the whole process group: CANCELLED", test_cancel},
    {"cancel escalates to SIGKILL after the grace period", test_cancel_escalates},
    {"beyond max_concurrent_jobs submit answers AGAIN", test_capacity},
    {"bad job documents are INVALID naming the field", test_invalid_specs},
    {"a .jar job gets --class and --jars", test_jar_command},
    {"logs come in UTF-8 slices by offset and end complete", test_logs},
    {"the log of a running job is not complete", test_logs_running_not_complete},
    {"a restarted plugin re-attaches from the kv store", test_reattach},
    {"a cancel survives a restart", test_cancel_survives_restart},
    {"bad options are refused naming the option", test_options},
    {"real Spark: count, raise, cancel (when SPARKPLANE_TEST_SPARK_HOME is set)",
     test_real_spark},
    {NULL, NULL}};

UNIT_TEST_MAIN("backend_local", cases)
