/* jwt_cache.c - per-worker cache of verified tokens.
 *
 * Open addressing with a short probe window keeps lookups and memory bounded
 * whatever clients send; the hash is seeded per cache so an attacker cannot
 * aim collisions at one slot, and a full compare makes a collision harmless. */
#include <stdlib.h>
#include <string.h>
#include "jwt/internal.h"

#define PROBE 8
#define MAX_ENTRIES ((size_t)1 << 20)

struct mg_jwt_cache_ent {
    bool used;
    uint64_t hash, gen, seq;
    char *token;
    size_t len;
    int64_t expires;            /* wall seconds; the entry is dead at >= */
    struct mg_jwt jwt;
};

struct mg_jwt_cache {
    struct mg_jwt_cache_ent *v;
    size_t mask, count;
    uint64_t seed, seq;
};

static uint64_t hash_token(uint64_t seed, const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

struct mg_jwt_cache *mg_jwt_cache_new(size_t entries)
{
    struct mg_jwt_cache *c = mg_xcalloc(1, sizeof *c);
    size_t cap = PROBE;
    if (entries == 0)
        entries = MG_JWT_CACHE_DEFAULT;
    if (entries > MAX_ENTRIES)
        entries = MAX_ENTRIES;
    while (cap < entries)
        cap <<= 1;
    c->v = mg_xcalloc(cap, sizeof *c->v);
    c->mask = cap - 1;
    c->seed = (uint64_t)(uintptr_t)c ^ ((uint64_t)mg_now_ms() << 20) ^ (uint64_t)random();
    return c;
}

static void ent_drop(struct mg_jwt_cache *c, struct mg_jwt_cache_ent *e)
{
    if (!e->used)
        return;
    free(e->token);
    mg_jwt_clear(&e->jwt);
    memset(e, 0, sizeof *e);
    c->count--;
}

void mg_jwt_cache_free(struct mg_jwt_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i <= c->mask; i++)
        ent_drop(c, &c->v[i]);
    free(c->v);
    free(c);
}

size_t mg_jwt_cache_count(const struct mg_jwt_cache *c) { return c ? c->count : 0; }

const struct mg_jwt *mg_jwt_cache_lookup(struct mg_jwt_cache *c, const struct mg_jwks *ks,
                                         const char *token, size_t len, int64_t now)
{
    uint64_t h;
    if (!c || !ks || len > MG_JWT_CACHE_MAX_TOKEN)
        return NULL;
    h = hash_token(c->seed, token, len);
    for (size_t i = 0; i < PROBE; i++) {
        struct mg_jwt_cache_ent *e = &c->v[(h + i) & c->mask];
        if (!e->used || e->hash != h || e->len != len || memcmp(e->token, token, len))
            continue;
        /* A key set change (new generation) or the token's expiry ends it. */
        if (e->gen != ks->gen || now >= e->expires) {
            ent_drop(c, e);
            return NULL;
        }
        return &e->jwt;
    }
    return NULL;
}

void mg_jwt_cache_insert(struct mg_jwt_cache *c, const struct mg_jwks *ks,
                         const char *token, size_t len, const struct mg_jwt *jwt, int64_t now)
{
    struct mg_jwt_cache_ent *slot = NULL;
    int64_t expires = now + MG_JWT_CACHE_MAX_AGE_S;
    uint64_t h;

    if (!c || !ks || len == 0 || len > MG_JWT_CACHE_MAX_TOKEN)
        return;
    if (jwt->has_exp && jwt->exp < expires)
        expires = jwt->exp;
    if (expires <= now)
        return;
    h = hash_token(c->seed, token, len);
    /* Victim choice: the same token, else an empty slot, else an expired
     * one, else the oldest insertion of the window. */
    int best = 3;
    for (size_t i = 0; i < PROBE; i++) {
        struct mg_jwt_cache_ent *e = &c->v[(h + i) & c->mask];
        int score;
        if (e->used && e->hash == h && e->len == len && !memcmp(e->token, token, len)) {
            slot = e;
            break;
        }
        score = !e->used ? 0 : e->expires <= now ? 1 : 2;
        if (!slot || score < best || (score == 2 && best == 2 && e->seq < slot->seq)) {
            slot = e;
            best = score;
        }
    }
    ent_drop(c, slot);
    slot->used = true;
    slot->hash = h;
    slot->gen = ks->gen;
    slot->seq = ++c->seq;
    slot->token = mg_xstrndup(token, len);
    slot->len = len;
    slot->expires = expires;
    mg_jwt_copy(&slot->jwt, jwt);
    /* A private payload copy: the cache must not share jansson objects with
     * results handed to other code. */
    if (jwt->payload) {
        json_t *copy = json_deep_copy(jwt->payload);
        if (!copy)
            mg_oom();
        json_decref(slot->jwt.payload);
        slot->jwt.payload = copy;
        slot->jwt.iss = json_string_value(json_object_get(copy, "iss"));
        slot->jwt.sub = json_string_value(json_object_get(copy, "sub"));
        slot->jwt.azp = json_string_value(json_object_get(copy, "azp"));
        json_t *aud = json_object_get(copy, "aud");
        for (size_t i = 0; i < slot->jwt.n_aud; i++)
            slot->jwt.aud[i] = json_is_string(aud) ? json_string_value(aud)
                                                   : json_string_value(json_array_get(aud, i));
    }
    c->count++;
}
