/* authn.c - the request-authentication step of the access phase, one for
 * the gateway, the sidecar and `meshgate authz` (access.h). Kept apart from
 * access.c, which runs the phase on the worker's event loop, so a static
 * link of the explainer pulls this object and nothing of libevent. */
#include "access/access.h"
#include <string.h>
#include "base/base.h"

static bool name_is(const struct mg_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && memcmp(h->name, name, n) == 0;
}

static bool is_output_header(const struct mg_reqauthn *ra, const struct mg_header *h)
{
    for (size_t i = 0; i < mg_reqauthn_n_rules(ra); i++) {
        size_t n = 0;
        const char *const *names = mg_reqauthn_rule_output_headers(ra, i, &n);
        for (size_t j = 0; j < n; j++)
            if (name_is(h, names[j]))
                return true;
    }
    return false;
}

static size_t remove_header(struct mg_header *h, size_t n, const char *name)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        if (!name_is(&h[i], name))
            h[o++] = h[i];
    return o;
}

void mg_access_authenticate(const struct mg_reqauthn *ra, const struct mg_ra_keys *keys,
                            struct mg_jwt_cache *cache, int64_t now,
                            const struct mg_ra_request *req, struct mg_arena *arena,
                            struct mg_access_authn *out)
{
    memset(out, 0, sizeof *out);
    out->headers = req->headers;
    out->n_headers = req->n_headers;
    if (!ra || !mg_reqauthn_n_rules(ra))
        return;                 /* no rule, no authentication step */
    /* headers only the proxy may set: a client's copy never reaches the
     * upstream, nor authorization, nor the access log of a refusal */
    size_t n_out = 0;
    for (size_t i = 0; i < req->n_headers; i++)
        if (is_output_header(ra, &req->headers[i]))
            n_out++;
    struct mg_ra_request q = *req;
    if (n_out) {
        struct mg_header *h = mg_arena_alloc(arena, (req->n_headers - n_out + 1) * sizeof *h);
        size_t m = 0;
        for (size_t i = 0; i < req->n_headers; i++)
            if (!is_output_header(ra, &req->headers[i]))
                h[m++] = req->headers[i];
        q.headers = h;
        q.n_headers = m;
    }
    mg_reqauthn_eval(ra, &q, keys, cache, now, &out->res);
    out->ran = true;
    out->headers = q.headers;
    out->n_headers = q.n_headers;
    if (out->res.status != MG_RA_PASS_PRINCIPAL || !out->res.n_edits)
        return;
    /* authorization and the upstream see the request as edited */
    size_t m = q.n_headers;
    struct mg_header *h = mg_arena_alloc(arena, (m + out->res.n_edits + 1) * sizeof *h);
    memcpy(h, q.headers, m * sizeof *h);
    for (size_t i = 0; i < out->res.n_edits; i++) {
        const struct mg_ra_edit *e = &out->res.edits[i];
        m = remove_header(h, m, e->name);
        if (e->op == MG_RA_SET_HEADER) {
            size_t vl = strlen(e->value);
            h[m++] = (struct mg_header){e->name, strlen(e->name),
                                        mg_arena_strndup(arena, e->value, vl), vl};
        }
    }
    out->headers = h;
    out->n_headers = m;
}
