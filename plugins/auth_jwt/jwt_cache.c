/*
 * jwt_cache.c - verified tokens remembered, so a client that sends the same
 * JWT on every request pays for one signature check, not one per request.
 *
 * The key is the SHA-256 of the whole token string, so two tokens that
 * differ in any byte (the signature included) never share an entry.  The
 * table is fixed-size and set-associative: a key's first bytes choose a
 * set of JWT_CACHE_WAYS entries, the key can only live there, and a store
 * into a full set evicts its least recently used entry.  Lookups cost a
 * few constant-time compares (CRYPTO_memcmp, so the time taken does not
 * tell how much of a stored digest matched), memory never grows past the
 * configured size, and many distinct tokens only recycle entries.
 *
 * The cache knows nothing of JWTs: the caller decides the window in which
 * an entry may answer (not before nbf/iat - leeway, not at or after
 * exp + leeway) and flushes it when the key set changes.
 */
#include "jwt_cache.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

int jwt_cache_init(jwt_cache *cache, size_t capacity)
{
    memset(cache, 0, sizeof(*cache));
    if (capacity == 0)
        return 0;
    /* calloc: pages of entries never used are never touched. */
    if ((cache->entries = calloc(capacity, sizeof(*cache->entries))) == NULL)
        return -1;
    cache->capacity = capacity;
    return 0;
}

void jwt_cache_free(jwt_cache *cache)
{
    if (cache->entries != NULL)
        OPENSSL_cleanse(cache->entries, cache->capacity * sizeof(*cache->entries));
    free(cache->entries);
    memset(cache, 0, sizeof(*cache));
}

void jwt_cache_key(const char *token, size_t len, unsigned char key[JWT_CACHE_KEY_BYTES])
{
    unsigned int out_len = JWT_CACHE_KEY_BYTES;
    if (EVP_Digest(token, len, key, &out_len, EVP_sha256(), NULL) != 1)
        memset(key, 0, JWT_CACHE_KEY_BYTES); /* never stored: see jwt_cache_usable_key */
}

/* An all-zero key means hashing failed; such a key must never match or be stored. */
static int jwt_cache_usable_key(const unsigned char key[JWT_CACHE_KEY_BYTES])
{
    static const unsigned char zero[JWT_CACHE_KEY_BYTES];
    return memcmp(key, zero, sizeof(zero)) != 0;
}

/* The first entry of key's set and how many entries the set has. */
static jwt_cache_entry *jwt_cache_set(jwt_cache *cache, const unsigned char *key, size_t *ways)
{
    size_t sets = (cache->capacity + JWT_CACHE_WAYS - 1) / JWT_CACHE_WAYS;
    uint64_t bits = 0;
    size_t first;

    memcpy(&bits, key, sizeof(bits)); /* a digest: any 8 bytes are uniform */
    first = (size_t)(bits % sets) * JWT_CACHE_WAYS;
    *ways = cache->capacity - first < JWT_CACHE_WAYS ? cache->capacity - first : JWT_CACHE_WAYS;
    return &cache->entries[first];
}

static void jwt_cache_drop(jwt_cache *cache, jwt_cache_entry *entry)
{
    OPENSSL_cleanse(entry, sizeof(*entry));
    cache->used--;
}

int jwt_cache_lookup(jwt_cache *cache, const unsigned char key[JWT_CACHE_KEY_BYTES], double now,
                     sp_principal *principal)
{
    jwt_cache_entry *set;
    size_t ways, copy;
    uint32_t size = principal->size;

    if (cache->capacity == 0 || !jwt_cache_usable_key(key))
        return 0;
    set = jwt_cache_set(cache, key, &ways);
    for (size_t i = 0; i < ways; i++) {
        jwt_cache_entry *entry = &set[i];
        if (!entry->in_use || CRYPTO_memcmp(entry->key, key, JWT_CACHE_KEY_BYTES) != 0)
            continue;
        if (now >= entry->usable_until) {
            jwt_cache_drop(cache, entry); /* expired, or due for a check against fresh keys */
            return 0;
        }
        if (now < entry->usable_from)
            return 0; /* the clock went back before nbf: verify again, which refuses */
        entry->last_used = ++cache->tick;
        copy = size < sizeof(*principal) ? size : sizeof(*principal);
        memcpy(principal, &entry->principal, copy);
        principal->size = size;
        return 1;
    }
    return 0;
}

/* Where key goes in its set: its own entry, a free one, else the least recently used. */
static jwt_cache_entry *jwt_cache_slot(jwt_cache *cache, const unsigned char *key)
{
    size_t ways;
    jwt_cache_entry *set = jwt_cache_set(cache, key, &ways), *victim = NULL;

    for (size_t i = 0; i < ways; i++) {
        if (set[i].in_use && CRYPTO_memcmp(set[i].key, key, JWT_CACHE_KEY_BYTES) == 0)
            return &set[i];
    }
    for (size_t i = 0; i < ways; i++) {
        if (!set[i].in_use)
            return &set[i];
        if (victim == NULL || set[i].last_used < victim->last_used)
            victim = &set[i];
    }
    jwt_cache_drop(cache, victim);
    return victim;
}

void jwt_cache_store(jwt_cache *cache, const unsigned char key[JWT_CACHE_KEY_BYTES],
                     const sp_principal *principal, double usable_from, double usable_until)
{
    jwt_cache_entry *entry;

    if (cache->capacity == 0 || !jwt_cache_usable_key(key) || !(usable_from < usable_until))
        return;
    entry = jwt_cache_slot(cache, key);
    if (!entry->in_use)
        cache->used++;
    entry->in_use = 1;
    memcpy(entry->key, key, JWT_CACHE_KEY_BYTES);
    entry->last_used = ++cache->tick;
    entry->usable_from = usable_from;
    entry->usable_until = usable_until;
    entry->principal = *principal;
    entry->principal.size = sizeof(entry->principal);
}

void jwt_cache_flush(jwt_cache *cache)
{
    if (cache->capacity == 0)
        return;
    OPENSSL_cleanse(cache->entries, cache->capacity * sizeof(*cache->entries));
    cache->used = 0;
}
