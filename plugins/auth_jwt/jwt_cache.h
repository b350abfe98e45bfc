/*
 * jwt_cache.h - a bounded cache of verified tokens: the SHA-256 of a token
 * string -> the principal it produced and the times between which that
 * answer may be reused (jwt_cache.c).
 */
#ifndef AUTH_JWT_CACHE_H
#define AUTH_JWT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <sparkplane/sparkplane.h>

#define JWT_CACHE_KEY_BYTES 32    /* SHA-256 */
#define JWT_CACHE_MAX       65536 /* entries; each holds an sp_principal (~2.4 KiB) */
#define JWT_CACHE_WAYS      8     /* entries per set: where one key may live */

typedef struct jwt_cache_entry {
    unsigned char key[JWT_CACHE_KEY_BYTES];
    int in_use;
    uint64_t last_used;  /* the cache's tick at the last store or hit (LRU in the set) */
    double usable_from;  /* max(nbf, iat) - leeway; -HUGE_VAL when the token has neither */
    double usable_until; /* min(exp + leeway, stored + jwks_refresh); used while now < it */
    sp_principal principal;
} jwt_cache_entry;

typedef struct jwt_cache {
    jwt_cache_entry *entries; /* capacity entries, sets of JWT_CACHE_WAYS (the last may be short) */
    size_t capacity;          /* 0: the cache is off */
    size_t used;
    uint64_t tick;
} jwt_cache;

/* capacity 0 turns the cache off (lookups miss, stores do nothing). 0, or -1 out of memory. */
int jwt_cache_init(jwt_cache *cache, size_t capacity);
void jwt_cache_free(jwt_cache *cache);

/* The cache key of a token string: SHA-256 of exactly these bytes. */
void jwt_cache_key(const char *token, size_t len, unsigned char key[JWT_CACHE_KEY_BYTES]);

/*
 * Copies the cached principal for key into *principal (its size field is
 * kept) when an entry is usable at `now`: usable_from <= now < usable_until.
 * 1 on a hit, 0 on a miss (an entry no longer usable is dropped).
 */
int jwt_cache_lookup(jwt_cache *cache, const unsigned char key[JWT_CACHE_KEY_BYTES], double now,
                     sp_principal *principal);

/* Stores a verified token's principal, evicting the least recently used entry of its set. */
void jwt_cache_store(jwt_cache *cache, const unsigned char key[JWT_CACHE_KEY_BYTES],
                     const sp_principal *principal, double usable_from, double usable_until);

/* Forgets every entry (the key set changed). */
void jwt_cache_flush(jwt_cache *cache);

#endif
