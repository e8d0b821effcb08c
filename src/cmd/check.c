/* check.c - `meshgate check [-c PATH] [--explain-destination HOST[:PORT]
 * [--subset NAME]]`: load, analyse, print every diagnostic, exit 0 without
 * errors and 1 with; the explanation says how a destination is reached
 * (TLS mode, SNI, ALPN, the server identities secure naming accepts, the
 * endpoints), the question behind most "why does my gateway get 503". */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cmd.h"
#include "config/config.h"
#include "upstream/upstream.h"

static int usage(void)
{
    fprintf(stderr, "usage: meshgate check [-c PATH] [-n NAMESPACE] [--explain-destination HOST[:PORT] [--subset NAME]]\n"
                    "  PATH: a YAML file or a directory of *.yaml/*.yml (default %s)\n"
                    "  -n: the namespace of documents without metadata.namespace (as kubectl apply -n)\n"
                    "  --explain-destination: how this Proxy reaches HOST:PORT (upstream TLS,\n"
                    "    SNI, ALPN, the server identities it accepts, the endpoints)\n",
            MG_DEFAULT_CONFIG);
    return 2;
}

static void alpn_list(FILE *out, const struct mg_cluster *cl)
{
    if (cl->h2 == MG_UP_H2_REQUIRED)
        fputs("istio-peer-exchange, istio-h2, istio, h2", out);
    else if (cl->h2 == MG_UP_H2_PREFER || cl->use_client_protocol)
        fputs("istio-peer-exchange, istio-http/1.1, istio, http/1.1 (HTTP/1.1 requests); "
              "istio-peer-exchange, istio-h2, istio-http/1.1, istio, h2, http/1.1 (HTTP/2)", out);
    else
        fputs("istio-peer-exchange, istio-http/1.1, istio, http/1.1", out);
}

/* 0 when the destination has a cluster, 1 when its requests get 503 */
static int explain_destination(const struct mg_config *c, const char *arg, const char *subset, FILE *out)
{
    char host[512];
    uint16_t port = 0;
    snprintf(host, sizeof(host), "%s", arg);
    char *colon = strrchr(host, ':');
    if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
        long v = strtol(colon + 1, NULL, 10);
        if (v < 1 || v > 65535) {
            fprintf(out, "invalid port in \"%s\"\n", arg);
            return 1;
        }
        port = (uint16_t)v;
        *colon = '\0';
    }
    struct mg_destination dst = { .host = host, .port = port, .subset = (char *)subset };
    struct mg_diags d = { 0 };
    struct mg_cluster *cl = mg_cluster_build(c, &dst, 1, &d);
    fprintf(out, "destination %s", host);
    if (port)
        fprintf(out, ":%u", port);
    if (subset)
        fprintf(out, " subset %s", subset);
    fputc('\n', out);
    if (!cl) {
        fputs("  no cluster: requests to it get 503 (or 502 under REGISTRY_ONLY)\n", out);
        mg_diags_print(&d, out);
        mg_diags_free(&d);
        return 1;
    }
    fprintf(out, "  cluster: %s\n", cl->name);
    if (cl->mesh) {
        char *me = mg_config_spiffe_id(c);
        fprintf(out, "  upstream TLS: ISTIO_MUTUAL (%s)\n",
                cl->auto_mtls ? "auto mTLS: endpoints labelled security.istio.io/tlsMode=istio"
                              : "DestinationRule");
        fprintf(out, "  client certificate: %s (%s)\n", c->proxy.identity_cert_chain, me);
        fprintf(out, "  server chain verified against: %s\n", c->proxy.identity_root_certs);
        fprintf(out, "  SNI: %s\n  ALPN: ", cl->sni);
        alpn_list(out, cl);
        fprintf(out, "\n  expected server identities (%s):\n", cl->mesh_ids_from);
        for (size_t i = 0; i < cl->n_mesh_ids; i++)
            fprintf(out, "    %s\n", cl->mesh_ids[i]);
        if (!cl->n_mesh_ids)
            fprintf(out, "    %s\n", cl->mesh_expected);
        fputs("  trust domains:", out);
        for (size_t i = 0; i < cl->n_mesh_tds; i++)
            fprintf(out, "%s %s", i ? "," : "", cl->mesh_tds[i]);
        fputs("\n  a server presenting another identity is refused: 503, flag UF, "
              "reason upstream_secure_naming\n", out);
        free(me);
    } else if (cl->tls) {
        fprintf(out, "  upstream TLS: SIMPLE or MUTUAL (DestinationRule), SNI %s", cl->sni);
        if (cl->insecure)
            fputs(", insecureSkipVerify", out);
        else if (cl->n_sans) {
            fputs(", subjectAltNames", out);
            for (size_t i = 0; i < cl->n_sans; i++)
                fprintf(out, " %s", cl->sans[i]);
        } else {
            fputs(", server name checked against the SNI", out);
        }
        fputc('\n', out);
    } else {
        fputs("  upstream TLS: none (plain text)\n", out);
    }
    if (cl->proxy_protocol)
        fprintf(out, "  PROXY protocol: v%d header first on each connection%s (DestinationRule "
                "proxyProtocol), carrying the downstream client; a connection serves one "
                "downstream connection\n", cl->proxy_protocol, cl->tls ? ", before TLS" : "");
    fprintf(out, "  protocol: %s\n", cl->h2 == MG_UP_H2_REQUIRED ? "HTTP/2"
                                    : cl->h2 == MG_UP_H2_PREFER ? "HTTP/2 if the server picks it, else HTTP/1.1"
                                    : cl->use_client_protocol ? "the client's" : "HTTP/1.1");
    /* locality only when there is one to speak of */
    bool loc = c->proxy.locality || cl->n_prio > 1 || cl->n_locs > 1;
    for (size_t i = 0; i < cl->n_eps && !loc; i++)
        loc = cl->eps[i].locality != NULL;
    if (loc && cl->locality_mode)
        fprintf(out, "  locality balancing: %s\n", cl->locality_mode);
    fprintf(out, "  endpoints (%zu):\n", cl->n_eps);
    for (size_t i = 0; i < cl->n_eps; i++) {
        const struct mg_endpoint *ep = &cl->eps[i];
        fprintf(out, "    %s%s", ep->label,
                !cl->tls ? "" : ep->plain ? "  plain text (no tlsMode label)"
                : cl->mesh ? "  ISTIO_MUTUAL" : "  TLS");
        if (loc)
            fprintf(out, "  locality %s", ep->locality ? ep->locality : "(none)");
        if (cl->n_prio > 1)
            fprintf(out, "  priority %u", ep->prio);
        if (cl->loc_weight)
            ep->excluded ? fputs("  no share (no distribute `to` matches its locality)", out)
                         : fprintf(out, "  locality weight %u", cl->loc_weight[ep->loc]);
        fputc('\n', out);
    }
    if (cl->n_prio > 1)
        fputs("  traffic goes to priority 0 while at least 71.4% (1/1.4) of its endpoints are in service "
              "(Envoy's overprovisioning factor 1.4), spilling to the next priority "
              "proportionally below that\n", out);
    mg_diags_print(&d, out);
    mg_diags_free(&d);
    mg_cluster_free(cl);
    return 0;
}

int mg_cmd_check(int argc, char **argv)
{
    const char *path = MG_DEFAULT_CONFIG, *explain = NULL, *subset = NULL, *ns = NULL;
    struct mg_diags d = { 0 };
    struct mg_config *c;
    int opt;
    static const struct option longs[] = {
        { "explain-destination", required_argument, NULL, 'e' },
        { "subset", required_argument, NULL, 's' },
        { "namespace", required_argument, NULL, 'n' },
        { "config", required_argument, NULL, 'c' },    /* as run and authz take it */
        { NULL, 0, NULL, 0 },
    };

    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:n:h", longs, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'n':
            ns = optarg;
            break;
        case 'e':
            explain = optarg;
            break;
        case 's':
            subset = optarg;
            break;
        default:
            return usage();
        }
    }
    if (subset && !explain)
        return usage();
    if (optind != argc)
        return usage();
    if (ns && !mg_config_namespace_ok(ns)) {
        fprintf(stderr, "meshgate check: -n %s: not a namespace name (a DNS-1123 label)\n", ns);
        return 2;
    }
    c = mg_config_load_ns(path, ns, &d);
    if (c) {
        mg_config_analyze(c, &d);
        if (!c->proxy.present) {
            struct mg_pos p = { mg_intern(path), 0, 0 };
            mg_warning(&d, p, "no Proxy resource: this configuration can be checked but not run");
        }
    }
    mg_diags_print(&d, stdout);
    fflush(stdout);
    /* always this exact shape, so scripts can match it */
    fprintf(stderr, "%zu errors, %zu warnings\n", d.errors, d.warnings);
    int rc = d.errors ? 1 : 0;
    if (c && explain && explain_destination(c, explain, subset, stdout) != 0)
        rc = 1;
    mg_config_free(c);
    mg_diags_free(&d);
    return rc;
}
