/*
 * process.c - child processes on the event loop.
 *
 * A child is started with posix_spawnp() in a new process group (so a
 * signal to -pgid reaches everything it started), stdin on /dev/null and
 * stdout/stderr on pipes; every other descriptor is closed in the child.
 * glibc's posix_spawnp reports an exec failure synchronously, so a missing
 * binary is an error of the spawn call, not a later exit code 127.
 *
 * The read ends are non-blocking and each has a persistent libevent read
 * event feeding on_output.  One SIGCHLD signal event per manager reaps with
 * waitpid(-1, WNOHANG) in a loop; pids nobody knows are ignored.  A process
 * finishes (on_exit, then freed) once its status is known and both pipes
 * reached EOF, so no output is lost.  A grandchild that keeps a pipe open
 * could hold that back forever, so after the exit we wait at most
 * PROCESS_EOF_GRACE_MS for EOF.
 */
#include "process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROCESS_READ_CHUNK   65536
#define PROCESS_EOF_GRACE_MS 5000

extern char **environ;

typedef struct process_pipe {
    sp_process *process;
    int stream; /* 1 stdout, 2 stderr */
    int fd;     /* -1 after EOF */
    struct event *event;
} process_pipe;

struct sp_process {
    process_manager *manager;
    void *owner;
    pid_t pid;
    bool exited;
    int exit_code, term_signal;
    process_pipe out, err;
    struct event *grace_timer;
    void (*on_output)(void *arg, int stream, const char *data, size_t len);
    void (*on_exit)(void *arg, int exit_code, int term_signal);
    void *arg;
    struct sp_process *prev, *next;
};

struct process_manager {
    struct event_base *base;
    struct event *sigchld;
    sp_process *processes;
    size_t running;
    process_manager *next_manager;
};

/* Every live manager: one reaper may collect another manager's child. */
static process_manager *process_managers;

static sp_process *process_find(pid_t pid)
{
    for (process_manager *m = process_managers; m != NULL; m = m->next_manager)
        for (sp_process *p = m->processes; p != NULL; p = p->next)
            if (p->pid == pid && !p->exited)
                return p;
    return NULL;
}

static void process_pipe_close(process_pipe *pipe_end)
{
    if (pipe_end->event != NULL)
        event_free(pipe_end->event);
    pipe_end->event = NULL;
    if (pipe_end->fd >= 0)
        close(pipe_end->fd);
    pipe_end->fd = -1;
}

static void process_unlink(sp_process *process)
{
    process_manager *manager = process->manager;
    if (process->prev != NULL)
        process->prev->next = process->next;
    else
        manager->processes = process->next;
    if (process->next != NULL)
        process->next->prev = process->prev;
}

static void process_free(sp_process *process)
{
    if (process == NULL)
        return;
    process_pipe_close(&process->out);
    process_pipe_close(&process->err);
    if (process->grace_timer != NULL)
        event_free(process->grace_timer);
    free(process);
}

/* Runs on_exit once the status is known and both pipes are closed. */
static void process_try_finish(sp_process *process)
{
    if (!process->exited || process->out.fd >= 0 || process->err.fd >= 0)
        return;
    process_unlink(process);
    if (process->on_exit != NULL)
        process->on_exit(process->arg, process->exit_code, process->term_signal);
    process_free(process);
}

/* Reads one chunk; returns false at EOF or on a hard error. */
static bool process_pipe_read(process_pipe *pipe_end)
{
    char buffer[PROCESS_READ_CHUNK];
    ssize_t n = read(pipe_end->fd, buffer, sizeof(buffer));
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    if (n == 0)
        return false;
    sp_process *process = pipe_end->process;
    if (process->on_output != NULL)
        process->on_output(process->arg, pipe_end->stream, buffer, (size_t)n);
    return true;
}

static void process_on_pipe_readable(evutil_socket_t fd, short what, void *arg)
{
    process_pipe *pipe_end = arg;
    if (process_pipe_read(pipe_end))
        return;
    process_pipe_close(pipe_end);
    process_try_finish(pipe_end->process);
}

/* The grace after exit ran out: take what is buffered and stop waiting for EOF. */
static void process_on_grace_timeout(evutil_socket_t fd, short what, void *arg)
{
    sp_process *process = arg;
    process_pipe *pipes[] = {&process->out, &process->err};
    for (size_t i = 0; i < 2; i++) {
        for (int chunks = 0; pipes[i]->fd >= 0 && chunks < 64; chunks++)
            if (!process_pipe_read(pipes[i]))
                break;
        process_pipe_close(pipes[i]);
    }
    process_try_finish(process);
}

static void process_record_exit(sp_process *process, int status)
{
    process->exited = true;
    process->manager->running--;
    if (WIFEXITED(status)) {
        process->exit_code = WEXITSTATUS(status);
        process->term_signal = 0;
    } else {
        process->exit_code = -1;
        process->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    if (process->out.fd >= 0 || process->err.fd >= 0) {
        struct timeval grace = {.tv_sec = PROCESS_EOF_GRACE_MS / 1000,
                                .tv_usec = (PROCESS_EOF_GRACE_MS % 1000) * 1000};
        process->grace_timer =
            evtimer_new(process->manager->base, process_on_grace_timeout, process);
        if (process->grace_timer != NULL)
            evtimer_add(process->grace_timer, &grace);
    }
    process_try_finish(process);
}

static void process_on_sigchld(evutil_socket_t fd, short what, void *arg)
{
    pid_t pid;
    int status;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (!WIFEXITED(status) && !WIFSIGNALED(status))
            continue;
        sp_process *process = process_find(pid);
        if (process != NULL)
            process_record_exit(process, status);
    }
}

process_manager *process_manager_new(struct event_base *base)
{
    process_manager *manager;
    if (base == NULL || (manager = calloc(1, sizeof(*manager))) == NULL)
        return NULL;
    manager->base = base;
    manager->sigchld = evsignal_new(base, SIGCHLD, process_on_sigchld, manager);
    if (manager->sigchld == NULL || evsignal_add(manager->sigchld, NULL) != 0) {
        if (manager->sigchld != NULL)
            event_free(manager->sigchld);
        free(manager);
        return NULL;
    }
    manager->next_manager = process_managers;
    process_managers = manager;
    return manager;
}

static void process_manager_forget(process_manager *manager)
{
    for (process_manager **link = &process_managers; *link != NULL;
         link = &(*link)->next_manager) {
        if (*link == manager) {
            *link = manager->next_manager;
            return;
        }
    }
}

void process_manager_free(process_manager *manager)
{
    if (manager == NULL)
        return;
    process_manager_forget(manager);
    while (manager->processes != NULL) {
        sp_process *process = manager->processes;
        int status;
        /*
         * A released process belongs to a plugin that let go of it on
         * purpose (a backend's job outlives the daemon and is re-attached
         * after a restart): leave it running.
         */
        if (!process->exited && process->owner != NULL && kill(-process->pid, SIGTERM) == 0)
            waitpid(process->pid, &status, WNOHANG); /* reap it now if it was quick */
        process_unlink(process);
        process_free(process);
    }
    event_free(manager->sigchld);
    free(manager);
}

/* The spec as this host knows it, with fields an older caller lacked zeroed. */
static void process_spec_normalize(const sp_process_spec *in, sp_process_spec *out)
{
    memset(out, 0, sizeof(*out));
    out->size = sizeof(*out);
#define PROCESS_COPY_FIELD(field)                                             \
    if (SP_HAS_FIELD(in, sp_process_spec, field))                             \
    out->field = in->field
    PROCESS_COPY_FIELD(argv);
    PROCESS_COPY_FIELD(env);
    PROCESS_COPY_FIELD(cwd);
    PROCESS_COPY_FIELD(on_output);
    PROCESS_COPY_FIELD(on_exit);
    PROCESS_COPY_FIELD(arg);
#undef PROCESS_COPY_FIELD
}

static int process_spec_validate(const sp_process_spec *spec, char *err, size_t err_size)
{
    struct stat st;
    if (spec->argv == NULL || spec->argv[0] == NULL || spec->argv[0][0] == '\0') {
        snprintf(err, err_size, "spec.argv must name a program");
        return SP_INVALID;
    }
    for (size_t i = 0; spec->env != NULL && spec->env[i] != NULL; i++) {
        const char *eq = strchr(spec->env[i], '=');
        if (eq == NULL || eq == spec->env[i]) {
            snprintf(err, err_size, "spec.env[%zu] '%s' is not KEY=value", i, spec->env[i]);
            return SP_INVALID;
        }
    }
    /* Checked here so the message can say it is the directory, not the program. */
    if (spec->cwd != NULL && stat(spec->cwd, &st) != 0) {
        snprintf(err, err_size, "spec.cwd '%s': %s", spec->cwd, strerror(errno));
        return SP_INVALID;
    }
    if (spec->cwd != NULL && !S_ISDIR(st.st_mode)) {
        snprintf(err, err_size, "spec.cwd '%s' is not a directory", spec->cwd);
        return SP_INVALID;
    }
    return SP_OK;
}

static bool process_env_overridden(const char *entry, const char *const *extra)
{
    size_t key_len = strcspn(entry, "=");
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        if (strncmp(entry, extra[i], key_len) == 0 && extra[i][key_len] == '=')
            return true;
    return false;
}

/* environ plus spec->env, where spec->env wins; the strings are borrowed. */
static char **process_env_build(const char *const *extra)
{
    size_t count = 0, extra_count = 0, n = 0;
    while (environ != NULL && environ[count] != NULL)
        count++;
    while (extra != NULL && extra[extra_count] != NULL)
        extra_count++;
    char **envp = calloc(count + extra_count + 1, sizeof(*envp));
    if (envp == NULL)
        return NULL;
    for (size_t i = 0; i < count; i++)
        if (!process_env_overridden(environ[i], extra))
            envp[n++] = environ[i];
    for (size_t i = 0; i < extra_count; i++)
        envp[n++] = (char *)extra[i];
    return envp;
}

static int process_spawn_attr_init(posix_spawnattr_t *attr)
{
    sigset_t empty, defaults;
    static const int reset[] = {SIGPIPE, SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGQUIT,
                                SIGUSR1, SIGUSR2, SIGXFSZ, SIGALRM};
    sigemptyset(&empty);
    sigemptyset(&defaults);
    for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
        sigaddset(&defaults, reset[i]);
    int rc = posix_spawnattr_init(attr);
    if (rc != 0)
        return rc;
    /* Own group (pgid = pid); default dispositions for what the daemon ignores. */
    if ((rc = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                 POSIX_SPAWN_SETSIGDEF)) == 0 &&
        (rc = posix_spawnattr_setpgroup(attr, 0)) == 0 &&
        (rc = posix_spawnattr_setsigmask(attr, &empty)) == 0)
        rc = posix_spawnattr_setsigdefault(attr, &defaults);
    if (rc != 0)
        posix_spawnattr_destroy(attr);
    return rc;
}

static int process_file_actions_init(posix_spawn_file_actions_t *actions, const int out[2],
                                     const int err[2], const char *cwd)
{
    int rc = posix_spawn_file_actions_init(actions);
    if (rc != 0)
        return rc;
    if ((rc = posix_spawn_file_actions_addopen(actions, 0, "/dev/null", O_RDONLY, 0)) == 0 &&
        (rc = posix_spawn_file_actions_adddup2(actions, out[1], 1)) == 0 &&
        (rc = posix_spawn_file_actions_adddup2(actions, err[1], 2)) == 0 &&
        (rc = posix_spawn_file_actions_addclosefrom_np(actions, 3)) == 0 && cwd != NULL)
        rc = posix_spawn_file_actions_addchdir_np(actions, cwd);
    if (rc != 0)
        posix_spawn_file_actions_destroy(actions);
    return rc;
}

static int process_pipe_open(sp_process *process, process_pipe *pipe_end, int stream,
                             int fds[2])
{
    /* CLOEXEC on both ends; dup2 in the child clears it on 1 and 2. */
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    pipe_end->process = process;
    pipe_end->stream = stream;
    pipe_end->fd = fds[0]; /* from here process_free closes it */
    if (fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0)
        return -1;
    pipe_end->event = event_new(process->manager->base, fds[0], EV_READ | EV_PERSIST,
                                process_on_pipe_readable, pipe_end);
    return pipe_end->event != NULL ? 0 : -1;
}

static int process_start(sp_process *process, const sp_process_spec *spec, const int out[2],
                         const int err[2], char *message, size_t message_size)
{
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t actions;
    char **envp = process_env_build(spec->env);
    int rc = envp != NULL ? process_spawn_attr_init(&attr) : ENOMEM;
    if (rc == 0) {
        rc = process_file_actions_init(&actions, out, err, spec->cwd);
        if (rc == 0) {
            rc = posix_spawnp(&process->pid, spec->argv[0], &actions, &attr,
                              (char *const *)spec->argv, envp);
            posix_spawn_file_actions_destroy(&actions);
        }
        posix_spawnattr_destroy(&attr);
    }
    free(envp);
    if (rc != 0)
        snprintf(message, message_size, "cannot run '%s': %s", spec->argv[0], strerror(rc));
    return rc == 0 ? SP_OK : SP_ERROR;
}

static void process_link(process_manager *manager, sp_process *process)
{
    process->next = manager->processes;
    if (manager->processes != NULL)
        manager->processes->prev = process;
    manager->processes = process;
    manager->running++;
}

int process_manager_spawn(process_manager *manager, void *owner, const sp_process_spec *spec,
                          sp_process **process_out, char *err, size_t err_size)
{
    sp_process_spec normalized;
    sp_process *process = NULL;
    int out[2] = {-1, -1}, errp[2] = {-1, -1};
    int status = SP_ERROR;
    if (process_out != NULL)
        *process_out = NULL;
    if (manager == NULL || spec == NULL) {
        snprintf(err, err_size, "process_manager_spawn needs a manager and a spec");
        return SP_INVALID;
    }
    process_spec_normalize(spec, &normalized);
    if ((status = process_spec_validate(&normalized, err, err_size)) != SP_OK)
        return status;
    status = SP_ERROR;
    if ((process = calloc(1, sizeof(*process))) == NULL) {
        snprintf(err, err_size, "out of memory for a process");
        goto fail;
    }
    process->out.fd = process->err.fd = -1;
    process->manager = manager;
    if (process_pipe_open(process, &process->out, 1, out) != 0 ||
        process_pipe_open(process, &process->err, 2, errp) != 0) {
        snprintf(err, err_size, "cannot create pipes for '%s': %s", normalized.argv[0],
                 strerror(errno));
        goto fail;
    }
    if (process_start(process, &normalized, out, errp, err, err_size) != SP_OK)
        goto fail;
    close(out[1]);
    close(errp[1]);
    process->owner = owner;
    process->on_output = normalized.on_output;
    process->on_exit = normalized.on_exit;
    process->arg = normalized.arg;
    event_add(process->out.event, NULL);
    event_add(process->err.event, NULL);
    process_link(manager, process);
    if (process_out != NULL)
        *process_out = process;
    return SP_OK;
fail:
    /* The read ends belong to process->out/err and close with it. */
    if (out[1] >= 0)
        close(out[1]);
    if (errp[1] >= 0)
        close(errp[1]);
    process_free(process);
    return status;
}

int process_manager_signal(sp_process *process, int signal_number)
{
    if (process == NULL || process->pid <= 0)
        return SP_INVALID;
    /* The group outlives its leader while a grandchild is still in it. */
    if (kill(-process->pid, signal_number) == 0)
        return SP_OK;
    return errno == ESRCH ? SP_NOT_FOUND : SP_ERROR;
}

long process_manager_pid(sp_process *process)
{
    return process != NULL ? (long)process->pid : -1;
}

void process_manager_release_owner(process_manager *manager, void *owner)
{
    if (manager == NULL)
        return;
    /* Pipes stay open and are drained, so a chatty child never blocks on a full pipe. */
    for (sp_process *process = manager->processes; process != NULL; process = process->next) {
        if (process->owner != owner)
            continue;
        process->owner = NULL;
        process->on_output = NULL;
        process->on_exit = NULL;
        process->arg = NULL;
    }
}

size_t process_manager_running(const process_manager *manager)
{
    return manager != NULL ? manager->running : 0;
}
