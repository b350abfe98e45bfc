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
 *     tls:                         # HTTPS (HTTP/1.1 over TLS 1.2+), besides server.listen
 *       listen: []                 # host:port strings, none in server.listen too
 *       certificate: chain.pem     # PEM chain, leaf first; required when tls.listen is set
 *       key: key.pem               # its unencrypted PEM key; both read again on reload
 *       client_certificates: none  # none | request (see below)
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
 *   audit:
 *     file: audit.log              # one JSON line per authorization decision (audit.h);
 *                                  # relative to state.directory unless absolute; reopened on reload
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
 *       client_certificates: none  # none | request (see below)
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
 *   provisioning:                  # self-service clusters (POST /api/v1/clusters)
 *     backend: local               # the backend plugin that runs clusters
 *     spark_version: "4.0"         # a key of spark_versions (runtime of every cluster)
 *     domain: example.team         # for endpoint names; default gateway.domain, else "local"
 *     endpoint_pattern: "sc://{team}-{env}-{region}.{domain}:15002"
 *     hosts_file: /var/lib/sparkplane/clusters.hosts   # optional; names of RUNNING clusters
 *     hosts_address: 127.0.0.1     # the address the hosts file gives every name (the gateway)
 *     start_timeout: 10m           # PROVISIONING longer than this -> FAILED
 *     reap_interval: 10s           # TTL reaper and hot-pool refill period
 *     environments:                # name -> TTL bounds and warm clusters per region by size
 *       dev:     {default_ttl: 8h,  max_ttl: 7d,  warm: {small: 0}}
 *       staging: {default_ttl: 24h, max_ttl: 30d, warm: {small: 1}}
 *       ci:      {default_ttl: 2h,  max_ttl: 1d,  warm: {}}
 *       prod:    {default_ttl: 7d,  max_ttl: persistent, warm: {small: 3}}
 *     regions:                     # name -> {fallback: other region} (discovery)
 *       local: {}                  # default: gateway.default_region only
 *     sizes:                       # name -> resources (defaults small, medium, large, xlarge)
 *       small: {driver: {cores: 1, memory: 1g}, executors: 1, executor: {cores: 1, memory: 1g}}
 *     catalogs:                    # name -> spark.sql.* settings; values may use {team} {env} {region}
 *       pedregal: {spark.sql.catalog.pedregal: org.apache.iceberg.spark.SparkCatalog, ...}
 *     spark_conf: {}               # static settings every cluster starts with (spark.jars, ...)
 *     quotas:
 *       default: {clusters: 5, cores: 64}   # per team, over its live clusters
 *       teams: {feature-eng: {clusters: 10, cores: 128}}
 *     pool_budget: {cores: 0, memory: 0}    # all warm clusters together; 0 cores = no hot pools
 *
 * client_certificates: request (server.tls, gateway.tls) makes the TLS
 * listener ask every client for a certificate.  A client without one still
 * connects; a presented chain is not verified by the TLS layer (expired,
 * unknown-CA and revoked certificates get through) but handed to the auth
 * chain (sp_auth_request.client_cert_pem), whose provider verifies it and
 * refuses with 401 / UNAUTHENTICATED and the reason.
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

typedef enum config_client_certificates {
    CONFIG_CLIENT_CERTIFICATES_NONE = 0,    /* no CertificateRequest */
    CONFIG_CLIENT_CERTIFICATES_REQUEST = 1  /* ask; optional; unverified (see above) */
} config_client_certificates;

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


/* ---- provisioning -------------------------------------------------------- */

typedef struct config_kv {
    char *key;
    char *value;
} config_kv;

typedef struct config_size {        /* provisioning.sizes.<name> */
    char *name;
    uint64_t driver_cores;
    uint64_t driver_memory_mib;
    uint64_t executors;             /* >= 1 */
    uint64_t executor_cores;
    uint64_t executor_memory_mib;
} config_size;

typedef struct config_warm {        /* environments.<env>.warm.<size>: count */
    char *size;                     /* a name in sizes */
    uint64_t count;                 /* per region */
} config_warm;

typedef struct config_environment {
    char *name;                     /* [a-z0-9]{1,63} */
    uint64_t default_ttl_s;         /* 0 = persistent */
    uint64_t max_ttl_s;             /* 0 = no bound (persistent allowed) */
    config_warm *warm;
    size_t warm_count;
} config_environment;

typedef struct config_region {
    char *name;                     /* [a-z0-9-]{1,63} */
    char *fallback;                 /* another region's name, or NULL */
} config_region;

typedef struct config_catalog {
    char *name;                     /* [a-z0-9_]{1,63} */
    config_kv *conf;                /* keys start with "spark.sql."; values may hold {team} {env} {region} */
    size_t conf_count;
} config_catalog;

typedef struct config_quota {
    char *team;                     /* NULL for quotas.default */
    uint64_t clusters;
    uint64_t cores;
} config_quota;

typedef struct config_provisioning {
    char *backend;                  /* "local" */
    char *spark_version;            /* "4.0"; must be in spark_versions when clusters start */
    char *domain;                   /* gateway.domain, else "local" */
    char *endpoint_pattern;         /* must contain {team}; may use {env} {region} {domain} */
    char *hosts_file;               /* resolved path or NULL */
    char *hosts_address;            /* "127.0.0.1" */
    uint64_t start_timeout_ms;
    uint64_t reap_interval_ms;
    config_environment *environments;
    size_t environment_count;
    config_region *regions;
    size_t region_count;
    config_size *sizes;
    size_t size_count;
    config_catalog *catalogs;
    size_t catalog_count;
    config_kv *spark_conf;
    size_t spark_conf_count;
    config_quota default_quota;
    config_quota *team_quotas;
    size_t team_quota_count;
    uint64_t pool_budget_cores;     /* 0: no warm clusters */
    uint64_t pool_budget_memory_mib;/* 0: no memory bound */
} config_provisioning;

typedef struct config {
    char **listen;                  /* "host:port" */
    size_t listen_count;
    uint64_t max_body_bytes;
    uint64_t max_header_bytes;
    uint64_t request_timeout_ms;
    uint64_t drain_timeout_ms;
    char **tls_listen;              /* server.tls.listen: "host:port" (HTTPS) */
    size_t tls_listen_count;
    char *tls_certificate;          /* resolved path; set when tls_listen is */
    char *tls_key;                  /* resolved path; set when tls_listen is */
    config_client_certificates tls_client_certificates;

    sp_log_level log_level;
    log_format log_format;

    char *state_directory;
    char *database_path;            /* resolved absolute or relative to cwd */
    char *audit_file;               /* audit.file, resolved like database_path */

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
    config_client_certificates gateway_tls_client_certificates;
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
    config_provisioning provisioning;   /* always filled: defaults when the section is absent */

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

/* Lookups in cfg->provisioning, NULL when absent. */
const config_environment *config_find_environment(const config *cfg, const char *name);
const config_region *config_find_region(const config *cfg, const char *name);
const config_size *config_find_size(const config *cfg, const char *name);
const config_catalog *config_find_catalog(const config *cfg, const char *name);
/* The team's quota: its own entry, else quotas.default. */
const config_quota *config_team_quota(const config *cfg, const char *team);

/* Splits "host:port" / "[v6]:port"; 0 on success. */
int config_split_listen(const char *address, char *host, size_t host_size, int *port);

#endif
