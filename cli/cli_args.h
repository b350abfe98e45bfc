/*
 * cli_args.h - the sparkplane command line, parsed into one struct.
 *
 * Parsing is a pure function of argv: nothing is read from the
 * environment, no file is opened, nothing is printed.  Global options
 * (--server, --token, -o) may stand anywhere; a command's own options come
 * after the command words, because some short options mean different
 * things per command (-f is the job file for `jobs submit` and "follow"
 * for `jobs logs`).  `--` ends the options.
 */
#ifndef SPARKPLANE_CLI_ARGS_H
#define SPARKPLANE_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* Exit statuses, one meaning each, for scripts (cli/README.md lists them). */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_API_ERROR = 1,     /* the API answered 4xx/5xx (other than below) */
    CLI_EXIT_USAGE = 2,         /* bad flags, bad config file, unreadable job file */
    CLI_EXIT_UNREACHABLE = 3,   /* no HTTP answer: refused, DNS, timeout, TLS */
    CLI_EXIT_AUTH = 4,          /* 401 or 403 */
    CLI_EXIT_NOT_FOUND = 5,     /* 404 */
    CLI_EXIT_JOB_FAILED = 6,    /* submit --wait: the job ended FAILED */
    CLI_EXIT_JOB_CANCELLED = 7  /* submit --wait: the job ended CANCELLED */
};

typedef enum cli_command {
    CLI_COMMAND_NONE = 0,
    CLI_COMMAND_HELP,
    CLI_COMMAND_VERSION,
    CLI_COMMAND_JOBS_SUBMIT,
    CLI_COMMAND_JOBS_GET,
    CLI_COMMAND_JOBS_LIST,
    CLI_COMMAND_JOBS_CANCEL,
    CLI_COMMAND_JOBS_LOGS,
    CLI_COMMAND_JOBS_EVENTS
} cli_command;

typedef enum cli_output {
    CLI_OUTPUT_TABLE = 0,
    CLI_OUTPUT_JSON = 1
} cli_output;

#define CLI_LIST_LIMIT_MAX      1000
#define CLI_IDEMPOTENCY_KEY_MAX 255

/* Pointers point into argv (or at static text); nothing is allocated. */
typedef struct cli_args {
    cli_command command;
    int help;                    /* -h/--help anywhere: print usage, exit 0 */

    /* global; NULL when not given on the command line */
    const char *server;
    const char *token;
    cli_output output;

    /* jobs submit */
    const char *file;            /* "-" is stdin */
    const char *idempotency_key;
    int wait;

    /* jobs get|cancel|logs|events */
    const char *job_id;

    /* jobs list */
    const char *team;
    char state[16];              /* upper-cased; "" when not given */
    const char *name;
    int64_t limit;               /* 0: the server's default */
    int all;

    /* jobs logs */
    int follow;
    int64_t offset;

    /* version */
    int client_only;
} cli_args;

/*
 * Fills *out from argv[1..argc-1].  0 on success; -1 on a usage error with
 * a one-line message naming the offending argument in err.
 */
int cli_args_parse(int argc, const char *const *argv, cli_args *out, char *err, size_t err_size);

/* The job states the API knows, NULL-terminated (for --state and messages). */
extern const char *const cli_job_states[];

/* The full usage text (help and usage errors print it). */
const char *cli_args_usage(void);

#endif
