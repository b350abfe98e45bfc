/*
 * credential_cache.c - verified credentials remembered, so a client that
 * sends the same JWT (auth_jwt) or presents the same certificate chain
 * (auth_mtls) on every request pays for one signature check, not one per
 * request.
 *
 * The key is the SHA-256 of the whole credential as sent, so two that
 * differ in any byte (a signature included) never share an entry.  The
 * table is fixed-size and set-associative: a key's first bytes choose a
 * set of CREDENTIAL_CACHE_WAYS entries, the key can only live there, and a store
 * into a full set evicts its least recently used entry.  Lookups cost a
 * few constant-time compares (CRYPTO_memcmp, so the time taken does not
 * tell how much of a stored digest matched), memory never grows past the
 * configured size, and many distinct credentials only recycle entries.
 *
 * The cache knows nothing of JWTs or certificates: the caller decides the
 * window in which an entry may answer (auth_jwt: not before nbf/iat -
 * leeway, not at or after exp + leeway; auth_mtls: not at or after the
 * leaf's notAfter) and flushes it when its trust anchors change (a new
 * key set, a new CA or CRL file).
 *
 * Shared by the in-tree auth plugins (compiled into each); it includes
 * only the SDK and OpenSSL and is not part of the SDK's ABI.
 */
#include "credential_cache.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

int credential_cache_init(credential_cache *cache, size_t capacity)
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

void credential_cache_free(credential_cache *cache)
{
    if (cache->entries != NULL)
        OPENSSL_cleanse(cache->entries, cache->capacity * sizeof(*cache->entries));
    free(cache->entries);
    memset(cache, 0, sizeof(*cache));
}

void credential_cache_key(const char *credential, size_t len,
                          unsigned char key[CREDENTIAL_CACHE_KEY_BYTES])
{
    unsigned int out_len = CREDENTIAL_CACHE_KEY_BYTES;
    /* An all-zero key is never stored (see credential_cache_usable_key). */
    if (EVP_Digest(credential, len, key, &out_len, EVP_sha256(), NULL) != 1)
        memset(key, 0, CREDENTIAL_CACHE_KEY_BYTES);
}

/* An all-zero key means hashing failed; such a key must never match or be stored. */
static int credential_cache_usable_key(const unsigned char key[CREDENTIAL_CACHE_KEY_BYTES])
{
    static const unsigned char zero[CREDENTIAL_CACHE_KEY_BYTES];
    return memcmp(key, zero, sizeof(zero)) != 0;
}

/* The first entry of key's set and how many entries the set has. */
static credential_cache_entry *credential_cache_set(credential_cache *cache,
                                                    const unsigned char *key, size_t *ways)
{
    size_t sets = (cache->capacity + CREDENTIAL_CACHE_WAYS - 1) / CREDENTIAL_CACHE_WAYS;
    uint64_t bits = 0;
    size_t first;

    memcpy(&bits, key, sizeof(bits)); /* a digest: any 8 bytes are uniform */
    first = (size_t)(bits % sets) * CREDENTIAL_CACHE_WAYS;
    *ways = cache->capacity - first < CREDENTIAL_CACHE_WAYS ? cache->capacity - first
                                                            : CREDENTIAL_CACHE_WAYS;
    return &cache->entries[first];
}

static void credential_cache_drop(credential_cache *cache, credential_cache_entry *entry)
{
    OPENSSL_cleanse(entry, sizeof(*entry));
    cache->used--;
}

int credential_cache_lookup(credential_cache *cache,
                            const unsigned char key[CREDENTIAL_CACHE_KEY_BYTES], double now,
                            sp_principal *principal)
{
    credential_cache_entry *set;
    size_t ways, copy;
    uint32_t size = principal->size;

    if (cache->capacity == 0 || !credential_cache_usable_key(key))
        return 0;
    set = credential_cache_set(cache, key, &ways);
    for (size_t i = 0; i < ways; i++) {
        credential_cache_entry *entry = &set[i];
        if (!entry->in_use || CRYPTO_memcmp(entry->key, key, CREDENTIAL_CACHE_KEY_BYTES) != 0)
            continue;
        if (now >= entry->usable_until) {
            credential_cache_drop(cache,
                                  entry); /* expired, or due for a check against fresh keys */
            return 0;
        }
        if (now < entry->usable_from)
            return 0; /* before its window (a clock that went back): verify again */
        entry->last_used = ++cache->tick;
        copy = size < sizeof(*principal) ? size : sizeof(*principal);
        memcpy(principal, &entry->principal, copy);
        principal->size = size;
        return 1;
    }
    return 0;
}

/* Where key goes in its set: its own entry, a free one, else the least recently used. */
static credential_cache_entry *credential_cache_slot(credential_cache *cache,
                                                     const unsigned char *key)
{
    size_t ways;
    credential_cache_entry *set = credential_cache_set(cache, key, &ways), *victim = NULL;

    for (size_t i = 0; i < ways; i++) {
        if (set[i].in_use && CRYPTO_memcmp(set[i].key, key, CREDENTIAL_CACHE_KEY_BYTES) == 0)
            return &set[i];
    }
    for (size_t i = 0; i < ways; i++) {
        if (!set[i].in_use)
            return &set[i];
        if (victim == NULL || set[i].last_used < victim->last_used)
            victim = &set[i];
    }
    credential_cache_drop(cache, victim);
    return victim;
}

void credential_cache_store(credential_cache *cache,
                            const unsigned char key[CREDENTIAL_CACHE_KEY_BYTES],
                            const sp_principal *principal, double usable_from, double usable_until)
{
    credential_cache_entry *entry;

    if (cache->capacity == 0 || !credential_cache_usable_key(key) || !(usable_from < usable_until))
        return;
    entry = credential_cache_slot(cache, key);
    if (!entry->in_use)
        cache->used++;
    entry->in_use = 1;
    memcpy(entry->key, key, CREDENTIAL_CACHE_KEY_BYTES);
    entry->last_used = ++cache->tick;
    entry->usable_from = usable_from;
    entry->usable_until = usable_until;
    entry->principal = *principal;
    entry->principal.size = sizeof(entry->principal);
}

void credential_cache_flush(credential_cache *cache)
{
    if (cache->capacity == 0)
        return;
    OPENSSL_cleanse(cache->entries, cache->capacity * sizeof(*cache->entries));
    cache->used = 0;
}
