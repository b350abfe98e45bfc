/*
 * config.h - the daemon's configuration, typed.
 *
 * config_load() reads the main YAML file, merges every *.yaml in conf.d/
 * beside it in name order (see yaml_tree_merge), then checks every key
 * against the core schema: unknown keys, wrong types and bad values are
 * all collected into a diag_list with file:line:column and the dotted key,
 * so --check-config can print every problem at once.  Plugin options stay
 * as YAML nodes here; the plugin host validates them against each plugin's
 * own table.
 *
 * The schema (etc/sparkplane.yaml documents every key):
 *
 *   server:
 *     listen: ["127.0.0.1:8080"]   # host:port strings; [::1]:8080 for IPv6
 *     max_body_size: 1MiB
 *     max_header_size: 16KiB
 *     request_timeout: 30s
 *     drain_timeout: 10s
 *   log:
 *     level: info                  # error | warn | info | debug
 *     format: kv                   # kv | json
 *   state:
 *     directory: /var/lib/sparkplane
 *     database: sparkplane.db      # relative to directory unless absolute
 *   plugin_directory: /usr/lib/sparkplane/plugins
 *   plugins:                       # loaded in this order
 *     auth_token:                  # the plugin's name
 *       path: ...                  # optional: .so path (default: <plugin_directory>/<name>.so)
 *       enabled: true
 *       options: { ... }           # checked against the plugin's options table
 *   auth:
 *     chain: [auth_token]          # provider names asked in order
 *   runner:
 *     default_backend: local       # backend for jobs that name none
 *     reconcile_interval: 2s       # how often in-flight jobs are checked
 *     max_starting_per_backend: 4  # jobs in SUBMITTED at once, per backend
 *     max_running_per_backend: 16  # jobs SUBMITTED+RUNNING+CANCELLING, per backend
 *     max_running_per_team: 8      # same, per team
 *     idempotency_ttl: 24h         # how long Idempotency-Key values are kept
 *   spark_versions:                # spark_version -> runtime, per version
 *     "4.0":
 *       spark_home: /opt/spark     # local backend: SPARK_HOME with bin/spark-submit
 *       image: spark-platform:4.0-latest   # container backends (pinned tag later)
 *   gateway:                       # the Spark Connect gateway
 *     listen: []                   # h2c (HTTP/2 with prior knowledge) host:port strings
 *     tls:                         # TLS with ALPN h2 (what pyspark needs for a token)
 *       listen: []                 # host:port strings, none in gateway.listen too
 *       certificate: chain.pem     # PEM chain, leaf first; required when tls.listen is set
 *       key: key.pem               # its unencrypted PEM key; both read again on reload
 *     authority_patterns: ["{team}-{env}.{domain}", "{team}-{env}-{region}.{domain}"]
 *     domain: example.team         # required when the gateway is on and a pattern uses {domain}
 *     default_region: local        # the region for patterns without {region}
 *     user_id_policy: replace      # replace | deny a user_context.user_id that is not the caller
 *     max_concurrent_streams: 100  # per client connection
 *     idle_timeout: 10m            # a client connection with no open stream gets GOAWAY; 0 = never
 *     header_timeout: 10s          # a request's headers must be complete within this; 0 = never
 *     session_timeout: 60m         # a session unused this long loses its driver pin
 *     max_message_size: 128MiB
 *   clusters:                      # static Spark Connect clusters
 *     - id: feature-eng-prod       # [a-z0-9-]{1,63}, unique
 *       team: feature-eng          # [a-z0-9-]{1,63}
 *       environment: prod          # [a-z0-9]{1,63} (no '-': see gateway_route.h)
 *       region: eu-west-1          # [a-z0-9-]{1,63}; default gateway.default_region
 *       endpoints: ["10.0.0.5:15002"]   # one per driver, at least one
 *       token: ...                 # the server's own token; or token_file: path (not both)
 */
#ifndef SPARKPLANE_CORE_CONFIG_H
#define SPARKPLANE_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "diag.h"
#include "log.h"
#include "yaml_tree.h"

#define CONFIG_DEFAULT_PATH SYSCONFDIR "/sparkplane/sparkplane.yaml"

typedef struct config_plugin {
    char *name;
    char *path;                     /* resolved .so path */
    int enabled;
    const yaml_tree_node *options;  /* MAP or NULL; points into config.root */
    const char *file;               /* where the plugin was configured */
    int line;
    int column;
} config_plugin;

typedef struct config_spark_version {
    char *version;                  /* "4.0": [0-9]+(\.[0-9]+)* */
    char *spark_home;               /* may be NULL */
    char *image;                    /* may be NULL */
} config_spark_version;

typedef enum config_user_id_policy {
    CONFIG_USER_ID_REPLACE = 0,     /* a foreign user_id is replaced by the caller's */
    CONFIG_USER_ID_DENY = 1         /* a foreign user_id is refused */
} config_user_id_policy;

typedef struct config_cluster {
    char *id;
    char *team;
    char *environment;
    char *region;                   /* gateway.default_region when unset */
    char **endpoints;               /* "host:port", at least one */
    size_t endpoint_count;
    char *token;                    /* may be NULL */
    char *token_file;               /* resolved path, may be NULL; never both */
    const char *file;               /* where the cluster was configured */
    int line;
    int column;
} config_cluster;

typedef struct config {
    char **listen;                  /* "host:port" */
    size_t listen_count;
    uint64_t max_body_bytes;
    uint64_t max_header_bytes;
    uint64_t request_timeout_ms;
    uint64_t drain_timeout_ms;

    sp_log_level log_level;
    log_format log_format;

    char *state_directory;
    char *database_path;            /* resolved absolute or relative to cwd */

    char *plugin_directory;
    config_plugin *plugins;         /* enabled and disabled, in order */
    size_t plugin_count;

    char **auth_chain;
    size_t auth_chain_count;

    char *runner_default_backend;   /* "local" */
    uint64_t reconcile_interval_ms;
    uint64_t max_starting_per_backend;
    uint64_t max_running_per_backend;
    uint64_t max_running_per_team;
    uint64_t idempotency_ttl_ms;

    config_spark_version *spark_versions;   /* in document order */
    size_t spark_version_count;

    char **gateway_listen;          /* "host:port" (h2c); none here and in tls = off */
    size_t gateway_listen_count;
    char **gateway_tls_listen;      /* "host:port" (TLS, ALPN h2) */
    size_t gateway_tls_listen_count;
    char *gateway_tls_certificate;  /* resolved path; set when gateway_tls_listen is */
    char *gateway_tls_key;          /* resolved path; set when gateway_tls_listen is */
    char **gateway_authority_patterns;      /* checked with gateway_pattern_compile */
    size_t gateway_authority_pattern_count;
    char *gateway_domain;           /* lower case, may be NULL */
    char *gateway_default_region;   /* "local" */
    config_user_id_policy gateway_user_id_policy;
    uint64_t gateway_max_concurrent_streams;
    uint64_t gateway_idle_timeout_ms;       /* a client connection without streams */
    uint64_t gateway_header_timeout_ms;     /* from accept or HEADERS start to a whole request */
    uint64_t gateway_session_timeout_ms;    /* a Spark session unused this long is forgotten */
    uint64_t gateway_max_message_bytes;

    config_cluster *clusters;       /* in document order */
    size_t cluster_count;

    char *source_path;              /* the main file */
    yaml_tree_node *root;           /* merged tree, owns every node */
} config;

/*
 * Loads and checks.  Returns 0 and a config, or -1 with every problem in
 * `problems` (and *out NULL).  `plugin_directory_default` is used when the
 * file sets none (the build's plugindir).
 */
int config_load(const char *path, const char *plugin_directory_default,
                config **out, diag_list *problems);

/* Same from an in-memory document (tests, fuzzing); no conf.d. */
int config_load_buffer(const char *name, const char *data, size_t len,
                       const char *plugin_directory_default, config **out,
                       diag_list *problems);

void config_free(config *cfg);

/* The runtime for a spark_version, or NULL. */
const config_spark_version *config_find_spark_version(const config *cfg, const char *version);

/* Splits "host:port" / "[v6]:port"; 0 on success. */
int config_split_listen(const char *address, char *host, size_t host_size, int *port);

#endif
