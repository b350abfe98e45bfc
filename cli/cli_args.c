/*
 * cli_args.c - parsing the sparkplane command line.
 *
 * One pass over argv.  Words that are not options name the command
 * ("jobs list", "version") and then its arguments (a job id).  Options are
 * looked up in one table whose rows say which commands accept them, so a
 * short letter can mean one thing for one command and another elsewhere
 * (-f).  A command's options are only recognised once the command is
 * known, which is why they must follow it; global options are accepted
 * anywhere.  Values may be attached (--team=x, -ojson) or the next word.
 * Every check that needs no server happens here, so a typo costs no
 * request and always exits 2.
 */
#include "cli_args.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "units.h"

const char *const cli_job_states[] = {"PENDING",   "SUBMITTED",  "RUNNING",
                                      "SUCCEEDED", "FAILED",     "CANCELLING",
                                      "CANCELLED", "RETRYING",   NULL};

enum args_option_id {
    ARGS_SERVER,
    ARGS_TOKEN,
    ARGS_OUTPUT,
    ARGS_HELP,
    ARGS_FILE,
    ARGS_IDEMPOTENCY_KEY,
    ARGS_WAIT,
    ARGS_TEAM,
    ARGS_STATE,
    ARGS_NAME,
    ARGS_LIMIT,
    ARGS_ALL,
    ARGS_FOLLOW,
    ARGS_OFFSET,
    ARGS_CLIENT
};

#define ARGS_FOR(command) (1u << (command))
#define ARGS_GLOBAL       0xffffffffu

typedef struct args_option {
    const char *long_name;   /* without "--" */
    char short_name;         /* 0: none */
    int takes_value;
    unsigned commands;       /* ARGS_FOR bits, or ARGS_GLOBAL */
    enum args_option_id id;
} args_option;

static const args_option args_options[] = {
    {"server", 0, 1, ARGS_GLOBAL, ARGS_SERVER},
    {"token", 0, 1, ARGS_GLOBAL, ARGS_TOKEN},
    {"output", 'o', 1, ARGS_GLOBAL, ARGS_OUTPUT},
    {"help", 'h', 0, ARGS_GLOBAL, ARGS_HELP},
    {"file", 'f', 1, ARGS_FOR(CLI_COMMAND_JOBS_SUBMIT), ARGS_FILE},
    {"idempotency-key", 0, 1, ARGS_FOR(CLI_COMMAND_JOBS_SUBMIT), ARGS_IDEMPOTENCY_KEY},
    {"wait", 0, 0, ARGS_FOR(CLI_COMMAND_JOBS_SUBMIT), ARGS_WAIT},
    {"team", 0, 1, ARGS_FOR(CLI_COMMAND_JOBS_LIST), ARGS_TEAM},
    {"state", 0, 1, ARGS_FOR(CLI_COMMAND_JOBS_LIST), ARGS_STATE},
    {"name", 0, 1, ARGS_FOR(CLI_COMMAND_JOBS_LIST), ARGS_NAME},
    {"limit", 0, 1, ARGS_FOR(CLI_COMMAND_JOBS_LIST), ARGS_LIMIT},
    {"all", 0, 0, ARGS_FOR(CLI_COMMAND_JOBS_LIST), ARGS_ALL},
    {"follow", 'f', 0, ARGS_FOR(CLI_COMMAND_JOBS_LOGS), ARGS_FOLLOW},
    {"offset", 0, 1, ARGS_FOR(CLI_COMMAND_JOBS_LOGS), ARGS_OFFSET},
    {"client", 0, 0, ARGS_FOR(CLI_COMMAND_VERSION), ARGS_CLIENT},
    {NULL, 0, 0, 0, 0}};

typedef struct args_command_name {
    const char *group;       /* "jobs", or NULL for a top-level word */
    const char *word;
    cli_command command;
    int takes_job_id;
} args_command_name;

static const args_command_name args_commands[] = {
    {NULL, "help", CLI_COMMAND_HELP, 0},
    {NULL, "version", CLI_COMMAND_VERSION, 0},
    {"jobs", "submit", CLI_COMMAND_JOBS_SUBMIT, 0},
    {"jobs", "get", CLI_COMMAND_JOBS_GET, 1},
    {"jobs", "list", CLI_COMMAND_JOBS_LIST, 0},
    {"jobs", "cancel", CLI_COMMAND_JOBS_CANCEL, 1},
    {"jobs", "logs", CLI_COMMAND_JOBS_LOGS, 1},
    {"jobs", "events", CLI_COMMAND_JOBS_EVENTS, 1},
    {NULL, NULL, CLI_COMMAND_NONE, 0}};

/* Parser state between words. */
typedef struct args_parser {
    cli_args *out;
    const char *group;       /* "jobs" once seen */
    int options_ended;       /* after "--" */
    int job_id_wanted;
    char *err;
    size_t err_size;
} args_parser;

static const char args_usage_text[] =
    "usage: sparkplane [global options] <command> [options]\n"
    "\n"
    "commands:\n"
    "  jobs submit -f FILE [--idempotency-key KEY] [--wait]\n"
    "                       submit a job from a YAML or JSON file ('-' reads stdin);\n"
    "                       --wait polls every second until the job ends\n"
    "  jobs get JOB_ID      one job as 'key: value' lines\n"
    "  jobs list [--team TEAM] [--state STATE] [--name NAME] [--limit N] [--all]\n"
    "                       newest first; --all follows every page\n"
    "  jobs cancel JOB_ID   ask for cancellation (the job goes CANCELLING, then CANCELLED)\n"
    "  jobs logs [-f] JOB_ID [--offset N]\n"
    "                       the driver log; -f follows it until the job ends\n"
    "  jobs events JOB_ID   every state change with its time and reason\n"
    "  version [--client]   this client's version and the server's\n"
    "\n"
    "global options (anywhere on the line):\n"
    "  --server URL         the API (default http://127.0.0.1:8080)\n"
    "  --token TOKEN        the API token (prefer SPARKPLANE_TOKEN or the config file:\n"
    "                       a flag is visible to other users in the process list)\n"
    "  -o, --output FORMAT  table (default) or json (the API's JSON, indented)\n"
    "  -h, --help           this text\n"
    "\n"
    "settings: flags, then SPARKPLANE_SERVER / SPARKPLANE_TOKEN, then the config file\n"
    "$SPARKPLANE_CONFIG, else $XDG_CONFIG_HOME/sparkplane/config.yaml, else\n"
    "~/.config/sparkplane/config.yaml (YAML keys: server, token).\n"
    "\n"
    "exit status:\n"
    "  0  success                      4  authentication or permission refused (401, 403)\n"
    "  1  the API answered an error    5  not found (404)\n"
    "  2  usage error                  6  submit --wait: the job FAILED\n"
    "  3  cannot reach the server      7  submit --wait: the job was CANCELLED\n";

const char *cli_args_usage(void)
{
    return args_usage_text;
}

static int args_fail(args_parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int args_fail(args_parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, p->err_size, fmt, ap);
    va_end(ap);
    return -1;
}

static int args_parse_count(args_parser *p, const char *option, const char *value, int64_t min,
                            int64_t max, int64_t *out)
{
    int64_t number;
    if (units_parse_int64(value, &number) != 0 || number < min || number > max)
        return args_fail(p, "%s must be a whole number from %lld to %lld, not '%s'", option,
                         (long long)min, (long long)max, value);
    *out = number;
    return 0;
}

static int args_set_state(args_parser *p, const char *value)
{
    for (size_t i = 0; cli_job_states[i] != NULL; i++) {
        if (strcasecmp(value, cli_job_states[i]) == 0) {
            snprintf(p->out->state, sizeof p->out->state, "%s", cli_job_states[i]);
            return 0;
        }
    }
    return args_fail(p, "--state must be one of PENDING, SUBMITTED, RUNNING, SUCCEEDED, "
                        "FAILED, CANCELLING, CANCELLED, RETRYING; not '%s'", value);
}

static int args_set_output(args_parser *p, const char *value)
{
    if (strcmp(value, "table") == 0)
        p->out->output = CLI_OUTPUT_TABLE;
    else if (strcmp(value, "json") == 0)
        p->out->output = CLI_OUTPUT_JSON;
    else
        return args_fail(p, "--output must be 'table' or 'json', not '%s'", value);
    return 0;
}

/* The key travels in a header: printable ASCII only, so it cannot split the request. */
static int args_set_idempotency_key(args_parser *p, const char *value)
{
    size_t len = strlen(value);
    if (len > CLI_IDEMPOTENCY_KEY_MAX)
        return args_fail(p, "--idempotency-key is longer than %d characters",
                         CLI_IDEMPOTENCY_KEY_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)value[i] < 0x21 || (unsigned char)value[i] > 0x7e)
            return args_fail(p, "--idempotency-key may only hold printable ASCII without "
                                "spaces");
    p->out->idempotency_key = value;
    return 0;
}

/* A value that is empty is never what the user meant (an unset shell variable). */
static int args_apply_value(args_parser *p, const args_option *opt, const char *value)
{
    cli_args *out = p->out;
    if (value[0] == '\0')
        return args_fail(p, "--%s needs a non-empty value", opt->long_name);
    switch (opt->id) {
    case ARGS_SERVER: out->server = value; return 0;
    case ARGS_TOKEN: out->token = value; return 0;
    case ARGS_OUTPUT: return args_set_output(p, value);
    case ARGS_FILE: out->file = value; return 0;
    case ARGS_IDEMPOTENCY_KEY: return args_set_idempotency_key(p, value);
    case ARGS_TEAM: out->team = value; return 0;
    case ARGS_STATE: return args_set_state(p, value);
    case ARGS_NAME: out->name = value; return 0;
    case ARGS_LIMIT:
        return args_parse_count(p, "--limit", value, 1, CLI_LIST_LIMIT_MAX, &out->limit);
    case ARGS_OFFSET:
        return args_parse_count(p, "--offset", value, 0, INT64_MAX, &out->offset);
    default: return args_fail(p, "--%s takes no value", opt->long_name);
    }
}

static void args_apply_flag(args_parser *p, const args_option *opt)
{
    switch (opt->id) {
    case ARGS_HELP: p->out->help = 1; break;
    case ARGS_WAIT: p->out->wait = 1; break;
    case ARGS_ALL: p->out->all = 1; break;
    case ARGS_FOLLOW: p->out->follow = 1; break;
    case ARGS_CLIENT: p->out->client_only = 1; break;
    default: break;
    }
}

/* The option row for a long name (len bytes of name) or a short letter. */
static const args_option *args_find_option(const char *name, size_t len, char letter,
                                           cli_command command)
{
    for (const args_option *opt = args_options; opt->long_name != NULL; opt++) {
        int match = name != NULL ? strlen(opt->long_name) == len &&
                                       strncmp(opt->long_name, name, len) == 0
                                 : opt->short_name == letter && letter != 0;
        if (match && (opt->commands & ARGS_FOR(command)) != 0)
            return opt;
    }
    return NULL;
}

static int args_unknown_option(args_parser *p, const char *word)
{
    if (p->out->command == CLI_COMMAND_NONE)
        return args_fail(p, "unknown option '%s' (a command's options come after the command)",
                         word);
    return args_fail(p, "unknown option '%s' for this command", word);
}

/*
 * One option word at argv[*index]; may consume the next word as its value.
 */
static int args_take_option(args_parser *p, int argc, const char *const *argv, int *index)
{
    const char *word = argv[*index];
    const char *value = NULL;
    const args_option *opt;
    if (word[1] == '-') {
        const char *name = word + 2;
        const char *equals = strchr(name, '=');
        size_t len = equals != NULL ? (size_t)(equals - name) : strlen(name);
        opt = args_find_option(name, len, 0, p->out->command);
        if (equals != NULL)
            value = equals + 1;
    } else {
        opt = args_find_option(NULL, 0, word[1], p->out->command);
        if (opt != NULL && word[2] != '\0') {
            if (!opt->takes_value)
                return args_fail(p, "option -%c takes no value ('%s')", word[1], word);
            value = word + 2;
        }
    }
    if (opt == NULL)
        return args_unknown_option(p, word);
    if (!opt->takes_value) {
        if (value != NULL)
            return args_fail(p, "--%s takes no value", opt->long_name);
        args_apply_flag(p, opt);
        return 0;
    }
    if (value == NULL) {
        if (*index + 1 >= argc)
            return args_fail(p, "option '%s' needs a value", word);
        value = argv[++*index];
    }
    return args_apply_value(p, opt, value);
}

static int args_take_command_word(args_parser *p, const char *word)
{
    for (const args_command_name *c = args_commands; c->word != NULL; c++) {
        int group_matches = c->group == NULL ? p->group == NULL
                                             : p->group != NULL && strcmp(c->group, p->group) == 0;
        if (group_matches && strcmp(c->word, word) == 0) {
            p->out->command = c->command;
            p->job_id_wanted = c->takes_job_id;
            return 0;
        }
    }
    if (p->group == NULL && strcmp(word, "jobs") == 0) {
        p->group = "jobs";
        return 0;
    }
    if (p->group != NULL)
        return args_fail(p, "unknown command 'jobs %s' (submit, get, list, cancel, logs, events)",
                         word);
    return args_fail(p, "unknown command '%s' (jobs, version, help)", word);
}

static int args_take_word(args_parser *p, const char *word)
{
    if (p->out->command == CLI_COMMAND_NONE)
        return args_take_command_word(p, word);
    if (p->job_id_wanted && p->out->job_id == NULL) {
        if (word[0] == '\0')
            return args_fail(p, "the job id is empty");
        p->out->job_id = word;
        return 0;
    }
    return args_fail(p, "unexpected argument '%s'", word);
}

/* What a complete command line must have, checked after every word is read. */
static int args_check_complete(args_parser *p)
{
    cli_args *out = p->out;
    if (out->help)
        return 0;
    if (out->command == CLI_COMMAND_NONE)
        return args_fail(p, p->group != NULL ? "missing jobs command (submit, get, list, cancel, "
                                               "logs, events)"
                                             : "missing command");
    if (p->job_id_wanted && out->job_id == NULL)
        return args_fail(p, "missing JOB_ID");
    if (out->command == CLI_COMMAND_JOBS_SUBMIT && out->file == NULL)
        return args_fail(p, "jobs submit needs -f FILE (a YAML or JSON job, '-' for stdin)");
    return 0;
}

/* Whether -h/--help stands after word `index`: asking for help beats a typo before it. */
static int args_help_follows(int argc, const char *const *argv, int index)
{
    for (int i = index + 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    return 0;
}

int cli_args_parse(int argc, const char *const *argv, cli_args *out, char *err, size_t err_size)
{
    args_parser p = {.out = out, .err = err, .err_size = err_size};
    memset(out, 0, sizeof *out);
    if (err_size > 0)
        err[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *word = argv[i];
        int rc;
        if (!p.options_ended && strcmp(word, "--") == 0) {
            p.options_ended = 1;
            continue;
        }
        if (!p.options_ended && word[0] == '-' && word[1] != '\0')
            rc = args_take_option(&p, argc, argv, &i);
        else
            rc = args_take_word(&p, word);
        if (rc != 0)
            return out->help || args_help_follows(argc, argv, i) ? (out->help = 1, 0) : -1;
    }
    return args_check_complete(&p);
}
