/*
 * test_process.c - child processes on a real event loop: output on both
 * streams, exit codes and signals, spawn errors, env and cwd, process
 * groups (a grandchild dies with its parent), large output delivered
 * before on_exit, many children at once, released owners and shutdown.
 */
#include "unit_test.h"

#include "process.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* What one child did, as its callbacks saw it. */
typedef struct child_record {
    char out[4096], err[4096];
    size_t out_len, err_len;
    size_t total_out; /* every byte, even past out[] */
    bool out_pattern_ok;
    int exit_code, term_signal;
    int exits;        /* on_exit calls */
    int lines;        /* newlines seen on stdout */
    size_t out_at_exit;
} child_record;

static void record_output(void *arg, int stream, const char *data, size_t len)
{
    child_record *r = arg;
    char *buf = stream == 1 ? r->out : r->err;
    size_t *used = stream == 1 ? &r->out_len : &r->err_len;
    size_t room = sizeof(r->out) - 1 - *used;
    size_t n = len < room ? len : room;
    memcpy(buf + *used, data, n);
    *used += n;
    buf[*used] = '\0';
    if (stream == 1) {
        /* `yes abcdefg` writes "abcdefg\n" over and over. */
        for (size_t i = 0; i < len; i++) {
            if (data[i] != "abcdefg\n"[(r->total_out + i) % 8])
                r->out_pattern_ok = false;
            r->lines += data[i] == '\n';
        }
        r->total_out += len;
    }
}

static int exits_total; /* on_exit calls of every child */

static void record_exit(void *arg, int exit_code, int term_signal)
{
    child_record *r = arg;
    exits_total++;
    r->exit_code = exit_code;
    r->term_signal = term_signal;
    r->out_at_exit = r->total_out;
    r->exits++;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    *(bool *)arg = true;
}

/* Runs the loop until *count reaches want or timeout_ms passes. */
static void run_until(struct event_base *base, const int *count, int want, int timeout_ms)
{
    bool expired = false;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    struct event *deadline = evtimer_new(base, on_deadline, &expired);
    evtimer_add(deadline, &tv);
    while (*count < want && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(deadline);
}

static void run_for(struct event_base *base, int ms)
{
    int never = 0;
    run_until(base, &never, 1, ms);
}

static sp_process *spawn_sh(process_manager *pm, const char *script, child_record *r)
{
    const char *argv[] = {"sh", "-c", script, NULL};
    sp_process_spec spec = {.size = sizeof(spec), .argv = argv, .on_output = record_output,
                            .on_exit = record_exit, .arg = r};
    sp_process *process = NULL;
    char err[256] = "";
    r->out_pattern_ok = true;
    int rc = process_manager_spawn(pm, r, &spec, &process, err, sizeof(err));
    CU_ASSERT_EQUAL(rc, SP_OK);
    if (rc != SP_OK)
        fprintf(stderr, "spawn failed: %s\n", err);
    return process;
}

static void test_output_and_exit_code(void)
{
    struct event_base *base = event_base_new();
    process_manager *pm = process_manager_new(base);
    child_record r = {0};
    sp_process *p = spawn_sh(pm, "echo out; echo err >&2; exit 3", &r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT(process_manager_pid(p) > 0);
    CU_ASSERT_EQUAL(process_manager_running(pm), 1);
    run_until(base, &r.exits, 1, 5000);
    CU_ASSERT_EQUAL(r.exits, 1);
    CU_ASSERT_STRING_EQUAL(r.out, "out\n");
    CU_ASSERT_STRING_EQUAL(r.err, "err\n");
    CU_ASSERT_EQUAL(r.exit_code, 3);
    CU_ASSERT_EQUAL(r.term_signal, 0);
    CU_ASSERT_EQUAL(process_manager_running(pm), 0);
    process_manager_free(pm);
    event_base_free(base);
}

static void test_signal_reports_term_signal(void)
{
    struct event_base *base = event_base_new();
    process_manager *pm = process_manager_new(base);
    child_record r = {0};
    sp_process *p = spawn_sh(pm, "echo ready; sleep 30", &r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    run_until(base, &r.lines, 1, 5000);
    CU_ASSERT_EQUAL(r.lines, 1);
    CU_ASSERT_EQUAL(process_manager_signal(p, SIGTERM), SP_OK);
    run_until(base, &r.exits, 1, 5000);
    CU_ASSERT_EQUAL(r.exits, 1);
    CU_ASSERT_EQUAL(r.exit_code, -1);
    CU_ASSERT_EQUAL(r.term_signal, SIGTERM);
    process_manager_free(pm);
    event_base_free(base);
}

static void test_missing_binary_fails_spawn(void)
{
    struct event_base *base = event_base_new();
    process_manager *pm = process_manager_new(base);
    const char *argv[] = {"sparkplane-no-such-program", "x", NULL};
    child_record r = {0};
    sp_process_spec spec = {.size = sizeof(spec), .argv = argv, .on_exit = record_exit,
                            .arg = &r};
    sp_process *p = (sp_process *)&r;
    char err[256] = "";
    int rc = process_manager_spawn(pm, NULL, &spec, &p, err, sizeof(err));
    CU_ASSERT_NOT_EQUAL(rc, SP_OK);
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_STRING_EQUAL(err,
                           "cannot run 'sparkplane-no-such-program': No such file or directory");
    CU_ASSERT_EQUAL(process_manager_running(pm), 0);
    CU_ASSERT_EQUAL(r.exits, 0);
    process_manager_free(pm);
    event_base_free(base);
}

static void test_bad_spec_names_field(void)
{
    struct event_base *base = event_base_new();
    process_manager *pm = process_manager_new(base);
    const char *argv[] = {"true", NULL};
    const char *empty_argv[] = {NULL};
    const char *env[] = {"GOOD=1", "NOEQUALS", NULL};
    char err[256] = "";
    sp_process_spec spec = {.size = sizeof(spec), .argv = empty_argv};
    CU_ASSERT_EQUAL(process_manager_spawn(pm, NULL, &spec, NULL, err, sizeof(err)), SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "spec.argv"));
    spec.argv = argv;
    spec.env = env;
    CU_ASSERT_EQUAL(process_manager_spawn(pm, NULL, &spec, NULL, err, sizeof(err)), SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "spec.env[1]"));
    spec.env = NULL;
    spec.cwd = "/nonexistent/sparkplane-dir";
    CU_ASSERT_EQUAL(process_manager_spawn(pm, NULL, &spec, NULL, err, sizeof(err)), SP_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "spec.cwd '/nonexistent/sparkplane-dir'"));
    CU_ASSERT_EQUAL(process_manager_running(pm), 0);
    process_manager_free(pm);
    event_base_free(base);
}

static void test_env_and_cwd_applied(void)
{
    struct event_base *base = event_base_new();
    process_manager *pm = process_manager_new(base);
    char dir[] = "/tmp/sparkplane-proc-XXXXXX", real[PATH_MAX], want[PATH_MAX + 64];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(dir, real));
    const char *argv[] = {"sh", "-c", "echo \"$SPARKPLANE_TEST_VAR|$HOME|$(pwd -P)\"", NULL};
    const char *env[] = {"SPARKPLANE_TEST_VAR=hello world", "HOME=/overridden", NULL};
    child_record r = {0};
    sp_process_spec spec = {.size = sizeof(spec), .argv = argv, .env = env, .cwd = dir,
                            .on_output = record_output, .on_exit = record_exit, .arg = &r};
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(process_manager_spawn(pm, NULL, &spec, NULL, err, sizeof(err)), SP_OK);
    run_until(base, &r.exits, 1, 5000);
    snprintf(want, sizeof(want), "hello world|/overridden|%s\n", real);
    CU_ASSERT_STRING_EQUAL(r.out, want);
    CU_ASSERT_EQUAL(r.exit_code, 0);
    rmdir(dir);
    process_manager_free(pm);
    event_base_free(base);
}

/* An older caller's spec stops before cwd: whatever follows must be ignored. */
static void test_short_spec_ignores_later_fields(void)
{
    struct event_base *base = event_base_new();
    process_manager *pm = process_manager_new(base);
    const char *argv[] = {"true", NULL};
    sp_process_spec spec = {.size = offsetof(sp_process_spec, cwd), .argv = argv,
                            .cwd = "/nonexistent/sparkplane-dir"};
    char err[256] = "";
    CU_ASSERT_EQUAL(process_manager_spawn(pm, NULL, &spec, NULL, err, sizeof(err)), SP_OK);
    spec.size = offsetof(sp_process_spec, argv);
    CU_ASSERT_EQUAL(process_manager_spawn(pm, NULL, &spec, NULL, err, sizeof(err)), SP_INVALID);
    for (int i = 0; i < 100 && process_manager_running(pm) > 0; i++)
        run_for(base, 50);
    CU_ASSERT_EQUAL(process_manager_running(pm), 0);
    process_manager_free(pm);
    event_base_free(base);
}

/* State from /proc: a zombie or a missing entry means the process is gone. */
static bool pid_is_running(long pid)
{
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool running = false;
    if (fgets(line, sizeof(line), f) != NULL) {
        const char *paren = strrchr(line, ')');
        running = paren != NULL && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
    }
    fclose(f);
    return running;
}

static void test_group_signal_kills_grandchild(void)
{
    struct event_base *base = event_base_new();
    process_manager *pm = process_manager_new(base);
    child_record r = {0};
    /* Orphans come to us, so the reaper also meets pids it does not know. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    sp_process *p = spawn_sh(pm, "sleep 60 & echo $!; wait", &r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    run_until(base, &r.lines, 1, 5000);
    long grandchild = strtol(r.out, NULL, 10);
    CU_ASSERT_FATAL(grandchild > 0);
    CU_ASSERT(pid_is_running(grandchild));
    CU_ASSERT_EQUAL(process_manager_signal(p, SIGKILL), SP_OK);
    run_until(base, &r.exits, 1, 5000);
    CU_ASSERT_EQUAL(r.exits, 1);
    CU_ASSERT_EQUAL(r.term_signal, SIGKILL);
    for (int i = 0; i < 100 && pid_is_running(grandchild); i++)
        usleep(20000);
    CU_ASSERT_FALSE(pid_is_running(grandchild));
    run_for(base, 100); /* let the reaper collect the orphan */
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    process_manager_free(pm);
    event_base_free(base);
}

static void test_big_output_before_exit(void)
{
    struct event_base *base = event_base_new();
    process_manager *pm = process_manager_new(base);
    child_record r = {0};
    const size_t want = 8 * 1000 * 1000;
    sp_process *p = spawn_sh(pm, "yes abcdefg | head -c 8000000; exit 0", &r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    run_until(base, &r.exits, 1, 20000);
    CU_ASSERT_EQUAL(r.exits, 1);
    CU_ASSERT_EQUAL(r.exit_code, 0);
    CU_ASSERT_EQUAL(r.out_at_exit, want);
    CU_ASSERT_EQUAL(r.total_out, want);
    CU_ASSERT(r.out_pattern_ok);
    process_manager_free(pm);
    event_base_free(base);
}

/* The leader exits at once; its background job still writes into the pipe. */
static void test_exit_waits_for_pipe_eof(void)
{
    struct event_base *base = event_base_new();
    process_manager *pm = process_manager_new(base);
    child_record r = {0};
    sp_process *p = spawn_sh(pm, "(sleep 0.3; echo late) & exit 2", &r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    run_until(base, &r.exits, 1, 5000);
    CU_ASSERT_EQUAL(r.exits, 1);
    CU_ASSERT_EQUAL(r.exit_code, 2);
    CU_ASSERT_STRING_EQUAL(r.out, "late\n");
    CU_ASSERT_EQUAL(r.out_at_exit, 5);
    process_manager_free(pm);
    event_base_free(base);
}

#define MANY 40

static void test_many_processes(void)
{
    struct event_base *base = event_base_new();
    process_manager *pm = process_manager_new(base);
    static child_record records[MANY];
    char scripts[MANY][64];
    int target = exits_total + MANY;
    memset(records, 0, sizeof(records));
    for (int i = 0; i < MANY; i++) {
        snprintf(scripts[i], sizeof(scripts[i]), "echo child-%d; exit %d", i, i % 7);
        CU_ASSERT_PTR_NOT_NULL(spawn_sh(pm, scripts[i], &records[i]));
    }
    CU_ASSERT_EQUAL(process_manager_running(pm), MANY);
    run_until(base, &exits_total, target, 20000);
    for (int i = 0; i < MANY; i++) {
        char want[32];
        snprintf(want, sizeof(want), "child-%d\n", i);
        CU_ASSERT_EQUAL(records[i].exits, 1);
        CU_ASSERT_STRING_EQUAL(records[i].out, want);
        CU_ASSERT_EQUAL(records[i].exit_code, i % 7);
    }
    CU_ASSERT_EQUAL(process_manager_running(pm), 0);
    process_manager_free(pm);
    event_base_free(base);
}

static void test_release_owner_detaches(void)
{
    struct event_base *base = event_base_new();
    process_manager *pm = process_manager_new(base);
    child_record released = {0}, kept = {0};
    CU_ASSERT_PTR_NOT_NULL(spawn_sh(pm, "sleep 0.2; echo late; exit 4", &released));
    CU_ASSERT_PTR_NOT_NULL(spawn_sh(pm, "sleep 0.4; exit 5", &kept));
    process_manager_release_owner(pm, &released); /* spawn_sh uses the record as owner */
    CU_ASSERT_EQUAL(process_manager_running(pm), 2);
    run_until(base, &kept.exits, 1, 5000);
    CU_ASSERT_EQUAL(kept.exits, 1);
    CU_ASSERT_EQUAL(kept.exit_code, 5);
    CU_ASSERT_EQUAL(released.exits, 0);
    CU_ASSERT_EQUAL(released.out_len, 0);
    CU_ASSERT_EQUAL(process_manager_running(pm), 0);
    process_manager_free(pm);
    event_base_free(base);
}

static void test_free_terminates_running_groups(void)
{
    struct event_base *base = event_base_new();
    process_manager *pm = process_manager_new(base);
    child_record r = {0};
    sp_process *p = spawn_sh(pm, "exec sleep 30", &r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    pid_t pid = (pid_t)process_manager_pid(p);
    process_manager_free(pm);
    int status = 0;
    pid_t got = waitpid(pid, &status, 0);
    if (got == pid) {
        CU_ASSERT(WIFSIGNALED(status));
        CU_ASSERT_EQUAL(WTERMSIG(status), SIGTERM);
    } else {
        CU_ASSERT_EQUAL(errno, ECHILD); /* reaped by process_manager_free itself */
    }
    CU_ASSERT_FALSE(pid_is_running(pid));
    CU_ASSERT_EQUAL(r.exits, 0);
    event_base_free(base);
}

/* A backend's job that was let go outlives the daemon's process manager. */
static void test_free_leaves_released_processes(void)
{
    struct event_base *base = event_base_new();
    process_manager *pm = process_manager_new(base);
    child_record r = {0};
    sp_process *p = spawn_sh(pm, "exec sleep 30", &r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    pid_t pid = (pid_t)process_manager_pid(p);
    process_manager_release_owner(pm, &r);
    process_manager_free(pm);
    CU_ASSERT_TRUE(pid_is_running(pid));
    kill(-pid, SIGKILL);
    int status = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_EQUAL(r.exits, 0);
    event_base_free(base);
}

static const unit_test_case cases[] = {
    {"stdout, stderr and the exit code arrive", test_output_and_exit_code},
    {"a signal is reported as term_signal", test_signal_reports_term_signal},
    {"a missing binary fails the spawn call", test_missing_binary_fails_spawn},
    {"a bad spec is refused naming the field", test_bad_spec_names_field},
    {"env entries and cwd are applied", test_env_and_cwd_applied},
    {"a short spec ignores fields it does not cover", test_short_spec_ignores_later_fields},
    {"signalling the group kills a grandchild", test_group_signal_kills_grandchild},
    {"8 MB of output arrive before on_exit", test_big_output_before_exit},
    {"on_exit waits for output written after the exit", test_exit_waits_for_pipe_eof},
    {"many processes at once", test_many_processes},
    {"release_owner detaches callbacks", test_release_owner_detaches},
    {"free sends SIGTERM to running groups", test_free_terminates_running_groups},
    {"free leaves released processes running", test_free_leaves_released_processes},
    {NULL, NULL}};

UNIT_TEST_MAIN("process", cases)
