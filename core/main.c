/*
 * main.c - the sparkplaned command line.
 *
 *   sparkplaned [--config FILE]     run in the foreground (systemd Type=notify)
 *   sparkplaned --check-config      load and check config and plugins, list every problem
 *   sparkplaned --list-plugins      every plugin in plugin_directory and the config,
 *                                   with its kind, version, ABI and options
 *   sparkplaned --version
 *
 * Exit status: 0 on success, 1 on a configuration or start-up problem,
 * 2 on a usage error.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <event2/event.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "config.h"
#include "daemon.h"
#include "host_api.h"
#include "log.h"
#include "plugin_host.h"

static const char *const main_option_types[] = {"?",        "string", "int",  "bool",
                                                "duration", "size",   "list"};

static void main_usage(FILE *out)
{
    fprintf(out,
            "usage: sparkplaned [--config FILE] [--check-config | --list-plugins | --version]\n"
            "  -c, --config FILE   configuration (default %s);\n"
            "                      conf.d/*.yaml beside it merge in name order\n"
            "      --check-config  check the configuration and plugins, print every problem\n"
            "      --list-plugins  list available plugins and their options\n"
            "      --version       print the version and plugin ABI\n",
            CONFIG_DEFAULT_PATH);
}

static void main_print_problems(const diag_list *problems)
{
    for (size_t i = 0; i < problems->count; i++)
        fprintf(stderr, "%s\n", problems->messages[i]);
}

static void main_print_descriptor(const char *path, const sp_plugin_descriptor *d)
{
    printf("%s (%s) %s, ABI %u.%u\n  %s\n  file: %s\n", d->name,
           plugin_kind_name(d->kind) ? plugin_kind_name(d->kind) : "?",
           d->version ? d->version : "", d->abi_major, d->abi_minor,
           d->description ? d->description : "", path);
    for (const sp_option_spec *o = d->options; o && o->key; o++) {
        const char *type = (o->type >= 1 && o->type <= 6) ? main_option_types[o->type] : "?";
        printf("  option %-20s %-8s %s%s%s  %s\n", o->key, type, o->required ? "required" : "",
               o->default_value ? "default " : "", o->default_value ? o->default_value : "",
               o->help ? o->help : "");
    }
}

/* dlopens one file and prints its descriptor or the reason it is refused. */
static int main_inspect_plugin(const char *path)
{
    char err[512];
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        printf("%s: refused: cannot load: %s\n", path, dlerror());
        return -1;
    }
    const sp_plugin_descriptor *d = dlsym(handle, SP_PLUGIN_SYMBOL_NAME);
    int rc = -1;
    if (d == NULL)
        printf("%s: refused: missing symbol %s (not a sparkplane plugin)\n", path,
               SP_PLUGIN_SYMBOL_NAME);
    else if (plugin_check_descriptor(path, d, err, sizeof(err)) != 0)
        printf("%s: refused: %s\n", path, err);
    else {
        main_print_descriptor(path, d);
        rc = 0;
    }
    dlclose(handle);
    return rc;
}

static int main_list_plugins(const config *cfg)
{
    int listed = 0;
    DIR *dir = opendir(cfg->plugin_directory);
    printf("plugin directory: %s\n", cfg->plugin_directory);
    if (dir != NULL) {
        struct dirent *entry;
        while ((entry = readdir(dir)) != NULL) {
            size_t len = strlen(entry->d_name);
            if (len < 4 || strcmp(entry->d_name + len - 3, ".so") != 0)
                continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", cfg->plugin_directory, entry->d_name);
            main_inspect_plugin(path);
            listed++;
        }
        closedir(dir);
    }
    /* Configured plugins that live elsewhere. */
    size_t dir_len = strlen(cfg->plugin_directory);
    for (size_t i = 0; i < cfg->plugin_count; i++) {
        const char *path = cfg->plugins[i].path;
        if (strncmp(path, cfg->plugin_directory, dir_len) == 0 && path[dir_len] == '/')
            continue;
        main_inspect_plugin(path);
        listed++;
    }
    if (listed == 0)
        printf("no plugins found\n");
    return 0;
}

static int main_check_config(const config *cfg)
{
    diag_list problems = {0};
    plugin_set *set = plugin_set_prepare(cfg, host_api_table(), &problems);
    if (set != NULL)
        plugin_set_free(set);
    if (problems.count > 0) {
        main_print_problems(&problems);
        fprintf(stderr, "%s: %zu problem(s)\n", cfg->source_path, problems.count);
        diag_clear(&problems);
        return 1;
    }
    printf("%s: configuration OK (%zu plugin(s))\n", cfg->source_path, cfg->plugin_count);
    return 0;
}

/*
 * The loop.  With epoll, the changelist batches the add/remove of a socket's write
 * interest that every proxied chunk causes into one epoll_ctl per loop pass (we never
 * dup() descriptors, the changelist's one caveat).
 */
static struct event_base *main_event_base_new(void)
{
    struct event_config *options = event_config_new();
    if (options == NULL)
        return NULL;
    event_config_set_flag(options, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(options);
    event_config_free(options);
    return base;
}

static int main_run(const char *config_path, config *cfg)
{
    daemon_state daemon = {0};
    diag_list problems = {0};
    int rc = 0;

    /*
     * Adopt orphaned descendants (a Spark JVM whose wrapper shell died) so
     * the SIGCHLD handler reaps them instead of leaving zombies behind when
     * PID 1 does not reap (containers).
     */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    daemon.base = main_event_base_new();
    daemon.config_path = strdup(config_path);
    if (daemon.base == NULL || daemon.config_path == NULL) {
        fprintf(stderr, "sparkplaned: cannot create the event loop\n");
        return 1;
    }
    if (daemon_start(&daemon, cfg, &problems) != 0) {
        for (size_t i = 0; i < problems.count; i++)
            log_fields(SP_LOG_ERROR, "core", "cannot start", "problem", problems.messages[i],
                       NULL);
        rc = 1;
    } else {
        event_base_dispatch(daemon.base);
        log_msg(SP_LOG_INFO, "core", "stopped");
    }
    diag_clear(&problems);
    struct event_base *base = daemon.base;
    char *path = daemon.config_path;
    daemon_stop(&daemon);
    event_base_free(base);
    free(path);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'k'},
        {"list-plugins", no_argument, NULL, 'l'}, {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *config_path = CONFIG_DEFAULT_PATH;
    int mode = 'r', opt;

    while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'k':
        case 'l':
        case 'v':
            mode = opt;
            break;
        case 'h':
            main_usage(stdout);
            return 0;
        default:
            main_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sparkplaned: unexpected argument '%s'\n", argv[optind]);
        main_usage(stderr);
        return 2;
    }
    if (mode == 'v') {
        printf("sparkplaned %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, SP_ABI_MAJOR,
               SP_ABI_MINOR);
        return 0;
    }

    config *cfg = NULL;
    diag_list problems = {0};
    if (config_load(config_path, PLUGINDIR, &cfg, &problems) != 0) {
        main_print_problems(&problems);
        fprintf(stderr, "%s: %zu problem(s)\n", config_path, problems.count);
        diag_clear(&problems);
        return 1;
    }
    int rc;
    if (mode == 'k')
        rc = main_check_config(cfg);
    else if (mode == 'l')
        rc = main_list_plugins(cfg);
    else
        return main_run(config_path, cfg);
    config_free(cfg);
    return rc;
}
