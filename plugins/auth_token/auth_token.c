/*
 * auth_token.c - bearer tokens listed in a file, stored as SHA-256 hashes.
 *
 * The tokens file holds one token per line ('#' comments and blank lines
 * are ignored):
 *
 *     <sha256-hex-of-token> <principal> <role> <team>[,<team>...]
 *
 * role is admin, member or viewer; a team is [a-z0-9-]{1,63}, and "*"
 * (every team) is allowed for admins only.  The file never holds a token,
 * only its hash, so reading it does not leak credentials; messages about a
 * bad line name the line and never print a whole hash.
 *
 * authenticate() hashes the presented token and compares it with every
 * entry in constant time (CRYPTO_memcmp, no early exit), so timing does
 * not tell an attacker how close a guess was or where a token sits.
 *
 * A repeating host timer (reload_interval) stats the file; when its
 * mtime, size or inode changed it is parsed again.  A bad new file is
 * logged once and the tokens already loaded stay in force.  The plugin
 * uses only the SDK headers and OpenSSL.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <sparkplane/sparkplane.h>

#include "team_rules.h"

#define AUTH_TOKEN_NAME "auth_token"
#define AUTH_TOKEN_HASH_LEN 32
#define AUTH_TOKEN_LINE_MAX 4096
#define AUTH_TOKEN_METRIC "sparkplane_auth_token_decisions_total"

typedef struct auth_token_entry {
    unsigned char hash[AUTH_TOKEN_HASH_LEN];
    char subject[SP_PRINCIPAL_NAME_MAX];
    char role[SP_ROLE_NAME_MAX];
    uint32_t team_count;
    char teams[SP_PRINCIPAL_MAX_TEAMS][SP_TEAM_NAME_MAX];
} auth_token_entry;

typedef struct auth_token_table {
    auth_token_entry *entries;
    size_t count;
} auth_token_table;

/* What identifies one version of the file, to notice a change cheaply. */
typedef struct auth_token_file_id {
    int present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} auth_token_file_id;

typedef struct auth_token_state {
    sp_plugin_context *ctx;
    char *path;
    auth_token_table table;
    auth_token_file_id seen; /* the last version looked at, good or bad */
    sp_timer *timer;
    sp_metric *decisions_ok;
    sp_metric *decisions_invalid;
    sp_metric *decisions_defer;
} auth_token_state;

static const sp_option_spec auth_token_options[] = {
    {"tokens_file", SP_OPTION_STRING, NULL, 1,
     "file of '<sha256-hex> <principal> <role> <teams>' lines"},
    {"reload_interval", SP_OPTION_DURATION, "5s", 0,
     "how often to check the file for changes (0 disables)"},
    {NULL, 0, NULL, 0, NULL}};

/* ---- parsing the tokens file -------------------------------------------- */

static int auth_token_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int auth_token_parse_hash(const char *text, unsigned char *hash)
{
    if (strlen(text) != 2 * AUTH_TOKEN_HASH_LEN)
        return -1;
    for (size_t i = 0; i < AUTH_TOKEN_HASH_LEN; i++) {
        int hi = auth_token_hex_value(text[2 * i]), lo = auth_token_hex_value(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        hash[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* "a,b,c" into entry->teams; "*" only for admins. */
static int auth_token_parse_teams(const char *text, auth_token_entry *entry, int line,
                                  char *err, size_t err_size)
{
    if (strcmp(text, "*") == 0) {
        if (strcmp(entry->role, "admin") != 0) {
            snprintf(err, err_size, "tokens_file:%d: team \"*\" is allowed for admin only", line);
            return -1;
        }
        strcpy(entry->teams[0], "*");
        entry->team_count = 1;
        return 0;
    }
    for (const char *p = text;; p++) {
        size_t len = strcspn(p, ",");
        if (!team_name_valid(p, len)) {
            snprintf(err, err_size, "tokens_file:%d: bad team \"%.*s\" (want [a-z0-9-]{1,63})",
                     line, (int)(len > 63 ? 63 : len), p);
            return -1;
        }
        if (entry->team_count == SP_PRINCIPAL_MAX_TEAMS) {
            snprintf(err, err_size, "tokens_file:%d: more than %d teams", line,
                     SP_PRINCIPAL_MAX_TEAMS);
            return -1;
        }
        memcpy(entry->teams[entry->team_count], p, len);
        entry->teams[entry->team_count++][len] = '\0';
        p += len;
        if (*p == '\0')
            return 0;
    }
}

/* Splits on blanks; returns the number of fields (at most max + 1). */
static size_t auth_token_split(char *line, char **fields, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *f = strtok_r(line, " \t\r\n", &save); f != NULL;
         f = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == max)
            return max + 1;
        fields[n++] = f;
    }
    return n;
}

static int auth_token_parse_line(char *text, int line, auth_token_entry *entry, char *err,
                                 size_t err_size)
{
    char *f[4];
    size_t n = auth_token_split(text, f, 4);

    memset(entry, 0, sizeof(*entry));
    if (n != 4) {
        snprintf(err, err_size, "tokens_file:%d: want 4 fields (<sha256-hex> <principal> "
                 "<role> <teams>), got %s%zu", line, n > 4 ? "more than " : "", n > 4 ? 4 : n);
        return -1;
    }
    if (auth_token_parse_hash(f[0], entry->hash) != 0) {
        snprintf(err, err_size, "tokens_file:%d: token hash \"%.6s...\" is not 64 hex digits "
                 "(sha256)", line, f[0]);
        return -1;
    }
    if (strlen(f[1]) >= sizeof(entry->subject)) {
        snprintf(err, err_size, "tokens_file:%d: principal longer than %d characters", line,
                 SP_PRINCIPAL_NAME_MAX - 1);
        return -1;
    }
    if (team_role_rank(f[2]) == 0) {
        snprintf(err, err_size, "tokens_file:%d: unknown role \"%.31s\" (admin, member or "
                 "viewer)", line, f[2]);
        return -1;
    }
    strcpy(entry->subject, f[1]);
    strcpy(entry->role, f[2]);
    return auth_token_parse_teams(f[3], entry, line, err, err_size);
}

static int auth_token_table_add(auth_token_table *table, const auth_token_entry *entry,
                                int line, char *err, size_t err_size)
{
    auth_token_entry *grown;

    for (size_t i = 0; i < table->count; i++)
        if (memcmp(table->entries[i].hash, entry->hash, AUTH_TOKEN_HASH_LEN) == 0) {
            snprintf(err, err_size, "tokens_file:%d: duplicate token (same hash as principal "
                     "\"%s\")", line, table->entries[i].subject);
            return -1;
        }
    grown = realloc(table->entries, (table->count + 1) * sizeof(*grown));
    if (grown == NULL) {
        snprintf(err, err_size, "tokens_file:%d: out of memory", line);
        return -1;
    }
    table->entries = grown;
    table->entries[table->count++] = *entry;
    return 0;
}

static void auth_token_table_clear(auth_token_table *table)
{
    if (table->entries != NULL)
        OPENSSL_cleanse(table->entries, table->count * sizeof(*table->entries));
    free(table->entries);
    table->entries = NULL;
    table->count = 0;
}

/* Reads every line of an open file into `table`; the first bad line fails. */
static int auth_token_read_lines(FILE *file, auth_token_table *table, char *err,
                                 size_t err_size)
{
    char text[AUTH_TOKEN_LINE_MAX];
    auth_token_entry entry;
    int line = 0;

    while (fgets(text, sizeof(text), file) != NULL) {
        const char *start = text + strspn(text, " \t\r\n");
        line++;
        if (strchr(text, '\n') == NULL && !feof(file)) {
            snprintf(err, err_size, "tokens_file:%d: line longer than %d bytes", line,
                     AUTH_TOKEN_LINE_MAX - 2);
            return -1;
        }
        if (*start == '\0' || *start == '#')
            continue;
        if (auth_token_parse_line(text, line, &entry, err, err_size) != 0 ||
            auth_token_table_add(table, &entry, line, err, err_size) != 0)
            return -1;
    }
    if (ferror(file)) {
        snprintf(err, err_size, "tokens_file: read error after line %d", line);
        return -1;
    }
    return 0;
}

/* Loads `path` into a new table; `id` gets the version that was read. */
static int auth_token_load(const char *path, auth_token_table *out, auth_token_file_id *id,
                           char *err, size_t err_size)
{
    auth_token_table table = {NULL, 0};
    struct stat st;
    FILE *file = fopen(path, "r");

    if (file == NULL || fstat(fileno(file), &st) != 0) {
        snprintf(err, err_size, "tokens_file: cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    *id = (auth_token_file_id){1, st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    if (auth_token_read_lines(file, &table, err, err_size) != 0)
        goto fail;
    fclose(file);
    *out = table;
    return 0;
fail:
    if (file != NULL)
        fclose(file);
    auth_token_table_clear(&table);
    return -1;
}

/* ---- reload ------------------------------------------------------------- */

static int auth_token_same_file(const auth_token_file_id *a, const auth_token_file_id *b)
{
    return a->present == b->present && a->dev == b->dev && a->ino == b->ino &&
           a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void auth_token_reload(auth_token_state *state)
{
    const sp_host_api *host = state->ctx->host;
    auth_token_file_id now = {0}, read_id = {0};
    auth_token_table table;
    char err[512];
    struct stat st;

    int stat_errno = 0;

    if (stat(state->path, &st) == 0)
        now = (auth_token_file_id){1, st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    else
        stat_errno = errno;
    if (auth_token_same_file(&now, &state->seen))
        return;
    state->seen = now; /* log each version once, good or bad */
    if (!now.present) {
        host->log(state->ctx, SP_LOG_WARN, "tokens_file %s is gone (%s); keeping %zu tokens",
                  state->path, strerror(stat_errno), state->table.count);
        return;
    }
    if (auth_token_load(state->path, &table, &read_id, err, sizeof(err)) != 0) {
        host->log(state->ctx, SP_LOG_ERROR, "reload of %s failed, keeping %zu tokens: %s",
                  state->path, state->table.count, err);
        return;
    }
    state->seen = read_id;
    auth_token_table_clear(&state->table);
    state->table = table;
    host->log(state->ctx, SP_LOG_INFO, "reloaded %s: %zu tokens", state->path, table.count);
}

static void auth_token_on_timer(void *arg)
{
    auth_token_reload(arg);
}

/* ---- authenticate ------------------------------------------------------- */

static void auth_token_count(auth_token_state *state, sp_metric *metric)
{
    if (metric != NULL)
        state->ctx->host->metric_add(metric, 1);
}

/* The token of "Bearer <token>", or NULL when the header is another scheme. */
static const char *auth_token_bearer(const char *header, size_t *len)
{
    const char *p = header + strspn(header, " \t");
    size_t n;

    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t' && p[6] != '\0'))
        return NULL;
    p += 6;
    p += strspn(p, " \t");
    n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    *len = n;
    return p;
}

/* Compares with every entry, without stopping at a match. */
static const auth_token_entry *auth_token_lookup(const auth_token_table *table,
                                                 const unsigned char *hash)
{
    const auth_token_entry *found = NULL;
    for (size_t i = 0; i < table->count; i++)
        if (CRYPTO_memcmp(table->entries[i].hash, hash, AUTH_TOKEN_HASH_LEN) == 0)
            found = &table->entries[i];
    return found;
}

static void auth_token_fill(const auth_token_entry *entry, sp_principal *principal)
{
    if (!SP_HAS_FIELD(principal, sp_principal, teams))
        return;
    snprintf(principal->subject, sizeof(principal->subject), "%s", entry->subject);
    snprintf(principal->role, sizeof(principal->role), "%s", entry->role);
    principal->team_count = entry->team_count;
    memcpy(principal->teams, entry->teams, sizeof(principal->teams));
}

static int auth_token_authenticate(void *provider, const sp_auth_request *request,
                                   sp_principal *principal, char *err, size_t err_size)
{
    auth_token_state *state = provider;
    unsigned char hash[AUTH_TOKEN_HASH_LEN];
    const auth_token_entry *entry;
    const char *token = NULL;
    size_t len = 0;

    if (SP_HAS_FIELD(request, sp_auth_request, authorization) && request->authorization != NULL)
        token = auth_token_bearer(request->authorization, &len);
    if (token == NULL) {
        auth_token_count(state, state->decisions_defer);
        return SP_DEFER;
    }
    if (len == 0 || EVP_Digest(token, len, hash, NULL, EVP_sha256(), NULL) != 1 ||
        (entry = auth_token_lookup(&state->table, hash)) == NULL) {
        auth_token_count(state, state->decisions_invalid);
        snprintf(err, err_size, "unknown or revoked token");
        return SP_INVALID;
    }
    auth_token_fill(entry, principal);
    auth_token_count(state, state->decisions_ok);
    return SP_OK;
}

static const sp_auth_ops auth_token_ops = {
    .size = sizeof(sp_auth_ops),
    .authenticate = auth_token_authenticate,
};

/* ---- init / fini -------------------------------------------------------- */

static void auth_token_state_free(auth_token_state *state)
{
    if (state == NULL)
        return;
    if (state->timer != NULL)
        state->ctx->host->timer_cancel(state->timer);
    auth_token_table_clear(&state->table);
    free(state->path);
    free(state);
}

static void auth_token_register_metrics(auth_token_state *state)
{
    const sp_host_api *host = state->ctx->host;
    const char *help = "auth_token decisions by result";

    state->decisions_ok = host->metric_register(state->ctx, SP_METRIC_COUNTER, AUTH_TOKEN_METRIC,
                                                help, "result=\"ok\"");
    state->decisions_invalid = host->metric_register(state->ctx, SP_METRIC_COUNTER,
                                                     AUTH_TOKEN_METRIC, help, "result=\"invalid\"");
    state->decisions_defer = host->metric_register(state->ctx, SP_METRIC_COUNTER,
                                                   AUTH_TOKEN_METRIC, help, "result=\"defer\"");
}

static int auth_token_init(sp_plugin_context *ctx, char *err, size_t err_size)
{
    const sp_host_api *host = ctx->host;
    auth_token_state *state = NULL;
    const char *path;
    int64_t interval_ms;
    int rc;

    if (!SP_HAS_FIELD(host, sp_host_api, register_provider)) {
        snprintf(err, err_size, "host API too old (size %u)", (unsigned)host->size);
        return SP_NOT_SUPPORTED;
    }
    path = host->option_string(ctx, "tokens_file");
    interval_ms = host->option_int(ctx, "reload_interval");
    if (path == NULL || path[0] == '\0') {
        snprintf(err, err_size, "tokens_file: option is required");
        return SP_INVALID;
    }
    state = calloc(1, sizeof(*state));
    if (state == NULL || (state->path = strdup(path)) == NULL) {
        snprintf(err, err_size, "out of memory");
        rc = SP_ERROR;
        goto fail;
    }
    state->ctx = ctx;
    if (auth_token_load(path, &state->table, &state->seen, err, err_size) != 0) {
        rc = SP_INVALID;
        goto fail;
    }
    auth_token_register_metrics(state);
    rc = host->register_provider(ctx, SP_KIND_AUTH, AUTH_TOKEN_NAME, &auth_token_ops, state);
    if (rc != SP_OK) {
        snprintf(err, err_size, "register_provider(auth, %s) answered %d", AUTH_TOKEN_NAME, rc);
        goto fail;
    }
    if (interval_ms > 0) {
        state->timer = host->timer_start(ctx, (uint64_t)interval_ms, 1, auth_token_on_timer,
                                         state);
        if (state->timer == NULL)
            host->log(ctx, SP_LOG_WARN, "no reload timer: %s will not be re-read", path);
    }
    ctx->user_data = state;
    host->log(ctx, SP_LOG_INFO, "loaded %zu tokens from %s (reload check every %lld ms)",
              state->table.count, path, (long long)interval_ms);
    return SP_OK;
fail:
    auth_token_state_free(state);
    return rc;
}

static void auth_token_fini(sp_plugin_context *ctx)
{
    auth_token_state_free(ctx->user_data);
    ctx->user_data = NULL;
}

SP_PLUGIN_DECLARE = {
    SP_PLUGIN_HEADER,
    .kind = SP_KIND_AUTH,
    .name = AUTH_TOKEN_NAME,
    .version = "1.0.0",
    .description = "bearer tokens from a file of SHA-256 hashes",
    .options = auth_token_options,
    .init = auth_token_init,
    .fini = auth_token_fini,
};
