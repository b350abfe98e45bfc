/*
 * credential_cache.h - a bounded cache of verified credentials: the
 * SHA-256 of a credential as the client sent it (a token string, a
 * certificate chain) -> the principal it produced and the times between
 * which that answer may be reused (credential_cache.c).
 */
#ifndef AUTH_CREDENTIAL_CACHE_H
#define AUTH_CREDENTIAL_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <sparkplane/sparkplane.h>

#define CREDENTIAL_CACHE_KEY_BYTES 32    /* SHA-256 */
#define CREDENTIAL_CACHE_MAX       65536 /* entries; each holds an sp_principal (~2.4 KiB) */
#define CREDENTIAL_CACHE_WAYS      8     /* entries per set: where one key may live */

typedef struct credential_cache_entry {
    unsigned char key[CREDENTIAL_CACHE_KEY_BYTES];
    int in_use;
    uint64_t last_used;  /* the cache's tick at the last store or hit (LRU in the set) */
    double usable_from;  /* answers from then (auth_jwt: max(nbf, iat) - leeway, or -HUGE_VAL) */
    double usable_until; /* ... until then, exclusive (auth_jwt: min(exp + leeway, stored +
                            jwks_refresh); auth_mtls: min(notAfter, stored + reload_interval)) */
    sp_principal principal;
} credential_cache_entry;

typedef struct credential_cache {
    credential_cache_entry
        *entries;    /* capacity entries, sets of CREDENTIAL_CACHE_WAYS (the last may be short) */
    size_t capacity; /* 0: the cache is off */
    size_t used;
    uint64_t tick;
} credential_cache;

/* capacity 0 turns the cache off (lookups miss, stores do nothing). 0, or -1 out of memory. */
int credential_cache_init(credential_cache *cache, size_t capacity);
void credential_cache_free(credential_cache *cache);

/* The cache key of a credential: SHA-256 of exactly these bytes. */
void credential_cache_key(const char *credential, size_t len,
                          unsigned char key[CREDENTIAL_CACHE_KEY_BYTES]);

/*
 * Copies the cached principal for key into *principal (its size field is
 * kept) when an entry is usable at `now`: usable_from <= now < usable_until.
 * 1 on a hit, 0 on a miss (an entry no longer usable is dropped).
 */
int credential_cache_lookup(credential_cache *cache,
                            const unsigned char key[CREDENTIAL_CACHE_KEY_BYTES], double now,
                            sp_principal *principal);

/* Stores a verified credential's principal, evicting the least recently used entry of its set. */
void credential_cache_store(credential_cache *cache,
                            const unsigned char key[CREDENTIAL_CACHE_KEY_BYTES],
                            const sp_principal *principal, double usable_from, double usable_until);

/* Forgets every entry (the trust anchors changed). */
void credential_cache_flush(credential_cache *cache);

#endif
