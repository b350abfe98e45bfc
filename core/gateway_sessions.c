/*
 * gateway_sessions.c - the session -> driver pins (see gateway_sessions.h).
 *
 * A chained hash table of pins keyed by (cluster, subject, session_id),
 * grown by doubling.  Each pin holds its endpoint address, when it was
 * last used and how many of its streams are in flight; a pin with streams
 * in flight never expires, and a released one goes when its last stream
 * ends.  Every pin is counted in the registry with session_begin/_end so
 * the least-loaded choice sees it.
 */
#include "gateway_sessions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway_route.h"

#define SESSIONS_INITIAL_BUCKETS 64u

typedef struct session_pin session_pin;

struct session_pin {
    session_pin *next;
    uint64_t hash;
    char *cluster;
    char *subject;
    char *session_id;
    char *endpoint;
    uint64_t last_used_ms;
    unsigned streams;           /* in flight */
    int released;               /* ReleaseSession seen: goes with its last stream */
};

struct gateway_sessions {
    session_pin **buckets;
    size_t bucket_count;        /* a power of two */
    size_t count;
};

/* FNV-1a over the three parts, each followed by a 0 byte so ("ab","c") != ("a","bc"). */
static uint64_t sessions_hash(const gateway_session_key *key)
{
    const char *parts[] = {key->cluster, key->subject, key->session_id};
    uint64_t hash = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < 3; i++) {
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
            hash = (hash ^ *p) * UINT64_C(1099511628211);
        hash *= UINT64_C(1099511628211);
    }
    return hash;
}

static int sessions_match(const session_pin *pin, uint64_t hash, const gateway_session_key *key)
{
    return pin->hash == hash && strcmp(pin->session_id, key->session_id) == 0 &&
           strcmp(pin->subject, key->subject) == 0 && strcmp(pin->cluster, key->cluster) == 0;
}

static session_pin **sessions_slot(const gateway_sessions *sessions,
                                   const gateway_session_key *key)
{
    uint64_t hash = sessions_hash(key);
    session_pin **slot = &sessions->buckets[hash & (sessions->bucket_count - 1)];
    while (*slot && !sessions_match(*slot, hash, key))
        slot = &(*slot)->next;
    return slot;
}

static void sessions_pin_free(session_pin *pin)
{
    free(pin->cluster);
    free(pin->subject);
    free(pin->session_id);
    free(pin->endpoint);
    free(pin);
}

/* Unlinks *slot, counts it out of the registry and frees it. */
static void sessions_unpin(gateway_sessions *sessions, cluster_registry *registry,
                           session_pin **slot)
{
    session_pin *pin = *slot;
    *slot = pin->next;
    sessions->count--;
    if (registry)
        cluster_registry_session_end(registry, pin->cluster, pin->endpoint);
    sessions_pin_free(pin);
}

static void sessions_grow(gateway_sessions *sessions)
{
    size_t count = sessions->bucket_count * 2;
    session_pin **buckets = calloc(count, sizeof(*buckets));
    if (buckets == NULL)
        return;     /* longer chains, still correct */
    for (size_t i = 0; i < sessions->bucket_count; i++) {
        session_pin *pin = sessions->buckets[i];
        while (pin) {
            session_pin *next = pin->next;
            pin->next = buckets[pin->hash & (count - 1)];
            buckets[pin->hash & (count - 1)] = pin;
            pin = next;
        }
    }
    free(sessions->buckets);
    sessions->buckets = buckets;
    sessions->bucket_count = count;
}

gateway_sessions *gateway_sessions_new(void)
{
    gateway_sessions *sessions = calloc(1, sizeof(*sessions));
    if (sessions == NULL)
        return NULL;
    sessions->bucket_count = SESSIONS_INITIAL_BUCKETS;
    sessions->buckets = calloc(sessions->bucket_count, sizeof(*sessions->buckets));
    if (sessions->buckets == NULL) {
        free(sessions);
        return NULL;
    }
    return sessions;
}

void gateway_sessions_free(gateway_sessions *sessions, cluster_registry *registry)
{
    if (sessions == NULL)
        return;
    for (size_t i = 0; i < sessions->bucket_count; i++) {
        while (sessions->buckets[i])
            sessions_unpin(sessions, registry, &sessions->buckets[i]);
    }
    free(sessions->buckets);
    free(sessions);
}

static int sessions_has_endpoint(const cluster_entry *cluster, const char *address,
                                 const cluster_endpoint **found)
{
    for (size_t i = 0; i < cluster->endpoint_count; i++) {
        if (strcmp(cluster->endpoints[i].address, address) == 0) {
            *found = &cluster->endpoints[i];
            return 1;
        }
    }
    return 0;
}

/* A new pin on the least-loaded healthy endpoint; NULL with a message when there is none. */
static session_pin *sessions_pin_new(gateway_sessions *sessions, cluster_registry *registry,
                                     const cluster_entry *cluster,
                                     const gateway_session_key *key, char *message,
                                     size_t message_size)
{
    int chosen = cluster_registry_pick_endpoint(cluster);
    if (chosen < 0) {
        snprintf(message, message_size,
                 "cluster '%s' has no healthy Spark Connect server right now", cluster->id);
        return NULL;
    }
    session_pin *pin = calloc(1, sizeof(*pin));
    if (pin == NULL || !(pin->cluster = strdup(key->cluster)) ||
        !(pin->subject = strdup(key->subject)) || !(pin->session_id = strdup(key->session_id)) ||
        !(pin->endpoint = strdup(cluster->endpoints[chosen].address))) {
        if (pin)
            sessions_pin_free(pin);
        snprintf(message, message_size, "gateway out of memory");
        return NULL;
    }
    pin->hash = sessions_hash(key);
    if (sessions->count >= sessions->bucket_count)
        sessions_grow(sessions);
    session_pin **bucket = &sessions->buckets[pin->hash & (sessions->bucket_count - 1)];
    pin->next = *bucket;
    *bucket = pin;
    sessions->count++;
    cluster_registry_session_begin(registry, pin->cluster, pin->endpoint);
    return pin;
}

int gateway_sessions_route(gateway_sessions *sessions, cluster_registry *registry,
                           const cluster_entry *cluster, const gateway_session_key *key,
                           uint64_t now_ms, char *endpoint, size_t endpoint_size, int *created,
                           char *message, size_t message_size)
{
    const cluster_endpoint *pinned = NULL;
    *created = 0;
    if (strlen(key->session_id) > GATEWAY_SESSION_ID_MAX) {
        snprintf(message, message_size, "session_id is longer than %d bytes",
                 GATEWAY_SESSION_ID_MAX);
        return GATEWAY_GRPC_INVALID_ARGUMENT;
    }
    if (key->session_id[0] == '\0') {
        int chosen = cluster_registry_pick_endpoint(cluster);
        if (chosen < 0) {
            snprintf(message, message_size,
                     "cluster '%s' has no healthy Spark Connect server right now", cluster->id);
            return GATEWAY_GRPC_UNAVAILABLE;
        }
        snprintf(endpoint, endpoint_size, "%s", cluster->endpoints[chosen].address);
        return GATEWAY_GRPC_OK;
    }
    session_pin **slot = sessions_slot(sessions, key);
    if (*slot && !sessions_has_endpoint(cluster, (*slot)->endpoint, &pinned)) {
        snprintf(message, message_size,
                 "session %.64s ran on Spark Connect server %.100s, which is no longer part of "
                 "cluster '%s'; start a new session",
                 key->session_id, (*slot)->endpoint, cluster->id);
        sessions_unpin(sessions, registry, slot);
        return GATEWAY_GRPC_UNAVAILABLE;
    }
    session_pin *pin = *slot;
    if (pin == NULL) {
        pin = sessions_pin_new(sessions, registry, cluster, key, message, message_size);
        if (pin == NULL)
            return GATEWAY_GRPC_UNAVAILABLE;
        *created = 1;
    }
    if (pinned && !pinned->healthy) {
        snprintf(message, message_size,
                 "session %.64s runs on Spark Connect server %.100s of cluster '%s', which is "
                 "unreachable; start a new session to continue on another server",
                 key->session_id, pin->endpoint, cluster->id);
        return GATEWAY_GRPC_UNAVAILABLE;
    }
    pin->streams++;
    pin->last_used_ms = now_ms;
    snprintf(endpoint, endpoint_size, "%s", pin->endpoint);
    return GATEWAY_GRPC_OK;
}

void gateway_sessions_stream_end(gateway_sessions *sessions, cluster_registry *registry,
                                 const gateway_session_key *key, uint64_t now_ms)
{
    if (key->session_id[0] == '\0')
        return;
    session_pin **slot = sessions_slot(sessions, key);
    if (*slot == NULL)
        return;
    session_pin *pin = *slot;
    if (pin->streams > 0)
        pin->streams--;
    pin->last_used_ms = now_ms;
    if (pin->released && pin->streams == 0)
        sessions_unpin(sessions, registry, slot);
}

void gateway_sessions_forget(gateway_sessions *sessions, cluster_registry *registry,
                             const gateway_session_key *key)
{
    session_pin **slot = sessions_slot(sessions, key);
    if (*slot)
        sessions_unpin(sessions, registry, slot);
}

void gateway_sessions_release(gateway_sessions *sessions, cluster_registry *registry,
                              const gateway_session_key *key)
{
    session_pin **slot = sessions_slot(sessions, key);
    if (*slot == NULL)
        return;
    if ((*slot)->streams == 0)
        sessions_unpin(sessions, registry, slot);
    else
        (*slot)->released = 1;
}

/* Whether the pin's cluster still lists its endpoint. */
static int sessions_pin_placed(const session_pin *pin, const cluster_registry *registry)
{
    const cluster_entry *cluster = cluster_registry_find(registry, pin->cluster);
    const cluster_endpoint *found = NULL;
    return cluster && sessions_has_endpoint(cluster, pin->endpoint, &found);
}

size_t gateway_sessions_expire(gateway_sessions *sessions, cluster_registry *registry,
                               uint64_t now_ms, uint64_t timeout_ms)
{
    size_t ended = 0;
    for (size_t i = 0; i < sessions->bucket_count; i++) {
        session_pin **slot = &sessions->buckets[i];
        while (*slot) {
            session_pin *pin = *slot;
            int idle = pin->streams == 0 &&
                       (pin->released || now_ms - pin->last_used_ms >= timeout_ms);
            if (idle || !sessions_pin_placed(pin, registry)) {
                sessions_unpin(sessions, registry, slot);
                ended++;
            } else {
                slot = &pin->next;
            }
        }
    }
    return ended;
}

size_t gateway_sessions_count(const gateway_sessions *sessions)
{
    return sessions->count;
}

size_t gateway_sessions_count_cluster(const gateway_sessions *sessions, const char *cluster)
{
    size_t count = 0;
    for (size_t i = 0; i < sessions->bucket_count; i++) {
        for (const session_pin *pin = sessions->buckets[i]; pin; pin = pin->next)
            count += strcmp(pin->cluster, cluster) == 0;
    }
    return count;
}

const char *gateway_sessions_endpoint(const gateway_sessions *sessions,
                                      const gateway_session_key *key)
{
    session_pin *const *slot = sessions_slot(sessions, key);
    return *slot ? (*slot)->endpoint : NULL;
}
