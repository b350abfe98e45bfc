/*
 * cli_settings.h - where the server URL and the token come from.
 *
 * Three sources, the first that has a value wins: command-line flags, the
 * environment (SPARKPLANE_SERVER, SPARKPLANE_TOKEN), a small YAML config
 * file (keys `server` and `token`).  Resolution is a pure function of the
 * values handed in, so the precedence can be tested without touching the
 * real environment or home directory.
 */
#ifndef SPARKPLANE_CLI_SETTINGS_H
#define SPARKPLANE_CLI_SETTINGS_H

#include <stddef.h>

#define CLI_DEFAULT_SERVER "http://127.0.0.1:8080"

/* The config file's values; malloc'd, NULL when absent. */
typedef struct cli_config_file {
    char *server;
    char *token;
} cli_config_file;

/*
 * The config file to read: $SPARKPLANE_CONFIG (then it must exist), else
 * $XDG_CONFIG_HOME/sparkplane/config.yaml, else $HOME/.config/... (those
 * may be missing).  Any argument may be NULL.  0, or -1 when no path can
 * be formed (no HOME) - then there is simply no file.
 */
int cli_config_path(const char *env_config, const char *env_xdg_config_home,
                    const char *env_home, char *out, size_t out_size, int *must_exist);

/*
 * Reads the config file.  A missing file is fine unless must_exist.  The
 * root must be a mapping with only `server` and `token` (strings); every
 * problem is "file:line:column: message" in err and returns -1.
 */
int cli_config_load(const char *path, int must_exist, cli_config_file *out, char *err,
                    size_t err_size);
int cli_config_load_buffer(const char *name, const char *data, size_t len, cli_config_file *out,
                           char *err, size_t err_size);
void cli_config_clear(cli_config_file *config);

/* Candidate values for one setting per source; NULL or "" means "not set there". */
typedef struct cli_settings_sources {
    const char *flag_server, *env_server, *file_server;
    const char *flag_token, *env_token, *file_token;
} cli_settings_sources;

typedef struct cli_settings {
    char server[1024];           /* validated http(s) URL without trailing '/' */
    char token[4096];            /* "" when no source has one */
    const char *server_source;   /* "--server", "SPARKPLANE_SERVER", "config file", "default" */
    const char *token_source;    /* likewise, or NULL */
} cli_settings;

/*
 * Picks each value from the first source that has it and checks it: the
 * server must be an http:// or https:// URL, the token printable ASCII
 * (it goes into a header).  Messages name the source, never the token.
 */
int cli_settings_resolve(const cli_settings_sources *sources, cli_settings *out, char *err,
                         size_t err_size);

#endif
