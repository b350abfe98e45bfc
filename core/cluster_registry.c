/*
 * cluster_registry.c - the clusters the gateway routes to (see
 * cluster_registry.h).
 *
 * A small array of owned entries, searched linearly: a gateway serves tens
 * of clusters, and lookups happen once per new stream.  put() builds the
 * complete copy first and only then swaps it in, so a rejected entry
 * changes nothing; the endpoint counters of a replaced cluster are carried
 * over by address so that sessions still pinned to a driver keep counting.
 */
#include "cluster_registry.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


struct cluster_registry {
    cluster_entry **entries;
    size_t count;
    size_t capacity;
};

/* ---- names ---- */

static int cluster_registry_valid_name(const char *text, int allow_hyphen)
{
    size_t len = text ? strlen(text) : 0;
    if (len == 0 || len > CLUSTER_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && allow_hyphen)))
            return 0;
    }
    return 1;
}

int cluster_registry_valid_id(const char *id)
{
    return cluster_registry_valid_name(id, 1);
}

/* ---- entries ---- */

static void cluster_registry_free_entry(cluster_entry *entry)
{
    if (entry == NULL)
        return;
    free(entry->id);
    free(entry->team);
    free(entry->environment);
    free(entry->region);
    for (size_t i = 0; i < entry->endpoint_count; i++)
        free(entry->endpoints[i].address);
    free(entry->endpoints);
    free(entry->token);
    json_decref(entry->session_conf);
    free(entry->ended);
    free(entry);
}

/* 0 when `entry` may be stored; the message names the field otherwise. */
static int cluster_registry_check_entry(const cluster_entry *entry, char *err, size_t err_size)
{
    if (!cluster_registry_valid_id(entry->id)) {
        snprintf(err, err_size, "id: expected [a-z0-9-]{1,63}, got '%.80s'",
                 entry->id ? entry->id : "");
        return -1;
    }
    if (!cluster_registry_valid_name(entry->team, 1) ||
        !cluster_registry_valid_name(entry->environment, 0) ||
        !cluster_registry_valid_name(entry->region, 1)) {
        snprintf(err, err_size,
                 "cluster '%s': team and region must be [a-z0-9-]{1,63}, environment "
                 "[a-z0-9]{1,63}",
                 entry->id);
        return -1;
    }
    if (entry->endpoint_count == 0 || entry->endpoint_count > CLUSTER_ENDPOINTS_MAX ||
        entry->endpoints == NULL) {
        snprintf(err, err_size, "cluster '%s': endpoints: expected 1 to %d endpoints", entry->id,
                 CLUSTER_ENDPOINTS_MAX);
        return -1;
    }
    for (size_t i = 0; i < entry->endpoint_count; i++) {
        char host[256];
        int port;
        const char *address = entry->endpoints[i].address;
        if (config_split_listen(address, host, sizeof(host), &port) != 0) {
            snprintf(err, err_size, "cluster '%s': endpoints[%zu]: '%.80s' is not host:port",
                     entry->id, i, address ? address : "");
            return -1;
        }
    }
    return 0;
}

static char *cluster_registry_strdup_or_null(const char *text, int *failed)
{
    if (text == NULL)
        return NULL;
    char *copy = strdup(text);
    if (copy == NULL)
        *failed = 1;
    return copy;
}

static cluster_entry *cluster_registry_copy_entry(const cluster_entry *entry)
{
    int failed = 0;
    cluster_entry *copy = calloc(1, sizeof(*copy));
    if (copy == NULL)
        return NULL;
    copy->id = cluster_registry_strdup_or_null(entry->id, &failed);
    copy->team = cluster_registry_strdup_or_null(entry->team, &failed);
    copy->environment = cluster_registry_strdup_or_null(entry->environment, &failed);
    copy->region = cluster_registry_strdup_or_null(entry->region, &failed);
    copy->token = cluster_registry_strdup_or_null(entry->token, &failed);
    copy->provisioned = entry->provisioned;
    copy->ended = cluster_registry_strdup_or_null(entry->ended, &failed);
    copy->ended_at_ms = entry->ended_at_ms;
    if (entry->session_conf != NULL && json_object_size(entry->session_conf) > 0 &&
        (copy->session_conf = json_deep_copy(entry->session_conf)) == NULL)
        failed = 1;
    copy->endpoints = calloc(entry->endpoint_count, sizeof(*copy->endpoints));
    if (copy->endpoints == NULL)
        goto fail;
    for (size_t i = 0; i < entry->endpoint_count; i++) {
        copy->endpoints[i].healthy = 1;
        copy->endpoints[i].address =
            cluster_registry_strdup_or_null(entry->endpoints[i].address, &failed);
        copy->endpoint_count++;
    }
    if (failed)
        goto fail;
    return copy;
fail:
    cluster_registry_free_entry(copy);
    return NULL;
}

static cluster_endpoint *cluster_registry_find_endpoint(const cluster_entry *entry,
                                                        const char *address)
{
    if (entry == NULL || address == NULL)
        return NULL;
    for (size_t i = 0; i < entry->endpoint_count; i++)
        if (strcmp(entry->endpoints[i].address, address) == 0)
            return &entry->endpoints[i];
    return NULL;
}

/* A replaced cluster's drivers keep their health and pinned sessions. */
static void cluster_registry_carry_counters(cluster_entry *to, const cluster_entry *from)
{
    for (size_t i = 0; i < to->endpoint_count; i++) {
        const cluster_endpoint *old =
            cluster_registry_find_endpoint(from, to->endpoints[i].address);
        if (old == NULL)
            continue;
        to->endpoints[i].healthy = old->healthy;
        to->endpoints[i].sessions = old->sessions;
    }
}

/* ---- the registry ---- */

cluster_registry *cluster_registry_new(void)
{
    return calloc(1, sizeof(cluster_registry));
}

void cluster_registry_free(cluster_registry *registry)
{
    if (registry == NULL)
        return;
    for (size_t i = 0; i < registry->count; i++)
        cluster_registry_free_entry(registry->entries[i]);
    free(registry->entries);
    free(registry);
}

static long cluster_registry_index(const cluster_registry *registry, const char *id)
{
    if (registry == NULL || id == NULL)
        return -1;
    for (size_t i = 0; i < registry->count; i++)
        if (strcmp(registry->entries[i]->id, id) == 0)
            return (long)i;
    return -1;
}

static int cluster_registry_grow(cluster_registry *registry)
{
    if (registry->count < registry->capacity)
        return 0;
    size_t capacity = registry->capacity ? registry->capacity * 2 : 8;
    cluster_entry **grown = realloc(registry->entries, capacity * sizeof(*grown));
    if (grown == NULL)
        return -1;
    registry->entries = grown;
    registry->capacity = capacity;
    return 0;
}

int cluster_registry_put(cluster_registry *registry, const cluster_entry *entry, char *err,
                         size_t err_size)
{
    if (registry == NULL || entry == NULL) {
        snprintf(err, err_size, "no cluster given");
        return -1;
    }
    if (cluster_registry_check_entry(entry, err, err_size) != 0)
        return -1;
    const cluster_entry *holder = cluster_registry_find_placement(
        registry, entry->team, entry->environment, entry->region);
    if (holder != NULL && strcmp(holder->id, entry->id) != 0) {
        snprintf(err, err_size,
                 "cluster '%s': team %s, environment %s, region %s already belongs to cluster "
                 "'%s'",
                 entry->id, entry->team, entry->environment, entry->region, holder->id);
        return -1;
    }
    long index = cluster_registry_index(registry, entry->id);
    cluster_entry *copy = cluster_registry_copy_entry(entry);
    if (copy == NULL || (index < 0 && cluster_registry_grow(registry) != 0)) {
        cluster_registry_free_entry(copy);
        snprintf(err, err_size, "cluster '%s': out of memory", entry->id);
        return -1;
    }
    if (index >= 0) {
        cluster_registry_carry_counters(copy, registry->entries[index]);
        cluster_registry_free_entry(registry->entries[index]);
        registry->entries[index] = copy;
    } else {
        registry->entries[registry->count++] = copy;
    }
    return 0;
}

int cluster_registry_remove(cluster_registry *registry, const char *id)
{
    long index = cluster_registry_index(registry, id);
    if (index < 0)
        return -1;
    cluster_registry_free_entry(registry->entries[index]);
    memmove(&registry->entries[index], &registry->entries[index + 1],
            (registry->count - (size_t)index - 1) * sizeof(*registry->entries));
    registry->count--;
    return 0;
}

const cluster_entry *cluster_registry_find(const cluster_registry *registry, const char *id)
{
    long index = cluster_registry_index(registry, id);
    return index < 0 ? NULL : registry->entries[index];
}

const cluster_entry *cluster_registry_find_placement(const cluster_registry *registry,
                                                     const char *team, const char *environment,
                                                     const char *region)
{
    if (registry == NULL || team == NULL || environment == NULL || region == NULL)
        return NULL;
    for (size_t i = 0; i < registry->count; i++) {
        const cluster_entry *e = registry->entries[i];
        if (strcmp(e->team, team) == 0 && strcmp(e->environment, environment) == 0 &&
            strcmp(e->region, region) == 0)
            return e;
    }
    return NULL;
}

size_t cluster_registry_count(const cluster_registry *registry)
{
    return registry ? registry->count : 0;
}

const cluster_entry *cluster_registry_at(const cluster_registry *registry, size_t index)
{
    return registry && index < registry->count ? registry->entries[index] : NULL;
}

/* ---- endpoints ---- */

int cluster_registry_pick_endpoint(const cluster_entry *entry)
{
    int best = -1;
    if (entry == NULL)
        return -1;
    for (size_t i = 0; i < entry->endpoint_count; i++) {
        if (!entry->endpoints[i].healthy)
            continue;
        if (best < 0 || entry->endpoints[i].sessions < entry->endpoints[best].sessions)
            best = (int)i;
    }
    return best;
}

static cluster_endpoint *cluster_registry_endpoint(cluster_registry *registry, const char *id,
                                                   const char *address)
{
    long index = cluster_registry_index(registry, id);
    return index < 0 ? NULL : cluster_registry_find_endpoint(registry->entries[index], address);
}

int cluster_registry_set_healthy(cluster_registry *registry, const char *id, const char *address,
                                 int healthy)
{
    cluster_endpoint *endpoint = cluster_registry_endpoint(registry, id, address);
    if (endpoint == NULL)
        return -1;
    endpoint->healthy = healthy != 0;
    return 0;
}

size_t cluster_registry_set_healthy_address(cluster_registry *registry, const char *address,
                                           int healthy)
{
    size_t changed = 0;
    for (size_t i = 0; i < cluster_registry_count(registry); i++) {
        cluster_endpoint *endpoint =
            cluster_registry_find_endpoint(registry->entries[i], address);
        if (endpoint && endpoint->healthy != (healthy != 0)) {
            endpoint->healthy = healthy != 0;
            changed++;
        }
    }
    return changed;
}

int cluster_registry_session_begin(cluster_registry *registry, const char *id,
                                   const char *address)
{
    cluster_endpoint *endpoint = cluster_registry_endpoint(registry, id, address);
    if (endpoint == NULL)
        return -1;
    endpoint->sessions++;
    return 0;
}

int cluster_registry_session_end(cluster_registry *registry, const char *id,
                                 const char *address)
{
    cluster_endpoint *endpoint = cluster_registry_endpoint(registry, id, address);
    if (endpoint == NULL)
        return -1;
    if (endpoint->sessions > 0)
        endpoint->sessions--;
    return 0;
}

/* ---- static clusters from the config ---- */

/* The first line of `path`, trimmed; NULL with a message. */
static char *cluster_registry_read_token(const char *path, char *err, size_t err_size)
{
    char line[CLUSTER_REGISTRY_TOKEN_MAX + 2];
    FILE *file = fopen(path, "re");
    if (file == NULL) {
        snprintf(err, err_size, "token_file %s: %s", path, strerror(errno));
        return NULL;
    }
    char *got = fgets(line, sizeof(line), file);
    fclose(file);
    if (got == NULL)
        line[0] = '\0';
    size_t start = 0, end = strlen(line);
    while (start < end && isspace((unsigned char)line[start]))
        start++;
    while (end > start && isspace((unsigned char)line[end - 1]))
        end--;
    if (end == start || end - start > CLUSTER_REGISTRY_TOKEN_MAX) {
        snprintf(err, err_size, "token_file %s: expected a token of 1 to %d characters on the "
                 "first line", path, CLUSTER_REGISTRY_TOKEN_MAX);
        return NULL;
    }
    return strndup(line + start, end - start);
}

static int cluster_registry_put_configured(cluster_registry *registry,
                                           const config_cluster *cluster, char *err,
                                           size_t err_size)
{
    char message[512];
    int rc = -1;
    cluster_endpoint *endpoints = calloc(cluster->endpoint_count, sizeof(*endpoints));
    cluster_entry entry = {.id = cluster->id, .team = cluster->team,
                           .environment = cluster->environment, .region = cluster->region,
                           .endpoints = endpoints, .endpoint_count = cluster->endpoint_count,
                           .token = cluster->token};
    if (endpoints == NULL) {
        snprintf(err, err_size, "cluster '%s': out of memory", cluster->id);
        return -1;
    }
    for (size_t i = 0; i < cluster->endpoint_count; i++)
        endpoints[i].address = cluster->endpoints[i];
    if (cluster->token_file != NULL) {
        entry.token = cluster_registry_read_token(cluster->token_file, message, sizeof(message));
        if (entry.token == NULL) {
            snprintf(err, err_size, "cluster '%s': %s", cluster->id, message);
            goto done;
        }
    }
    rc = cluster_registry_put(registry, &entry, err, err_size);
done:
    if (cluster->token_file != NULL)
        free(entry.token);
    free(endpoints);
    return rc;
}

int cluster_registry_load_config(cluster_registry *registry, const config *cfg, char *err,
                                 size_t err_size)
{
    for (size_t i = 0; cfg != NULL && i < cfg->cluster_count; i++)
        if (cluster_registry_put_configured(registry, &cfg->clusters[i], err, err_size) != 0)
            return -1;
    return 0;
}
