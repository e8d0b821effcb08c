/* config_free.c - releasing every part of a configuration. Each function
 * frees what the struct owns (not the struct itself) and tolerates the
 * partly-filled states an error path leaves behind. */
#include <stdlib.h>
#include "config/internal.h"

void mg_cfg_free_slist(struct mg_slist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    free(l->pos);
}

void mg_cfg_free_kvlist(struct mg_kvlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].key);
        free(l->v[i].value);
    }
    free(l->v);
}

void mg_cfg_free_meta(struct mg_meta *m)
{
    free(m->name);
    free(m->namespace_);
    mg_cfg_free_kvlist(&m->labels);
    mg_cfg_free_kvlist(&m->annotations);
    free(m->creation_timestamp);
}

void mg_cfg_free_selector(struct mg_selector *s)
{
    mg_cfg_free_kvlist(&s->match_labels);
}

static void free_target_refs(struct mg_target_ref *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].group);
        free(r[i].kind);
        free(r[i].name);
        free(r[i].namespace_);
    }
    free(r);
}

static void free_locality_lb(struct mg_locality_lb *l)
{
    for (size_t i = 0; i < l->n_distribute; i++) {
        free(l->distribute[i].from);
        mg_cfg_free_kvlist(&l->distribute[i].to);
    }
    free(l->distribute);
    for (size_t i = 0; i < l->n_failover; i++) {
        free(l->failover[i].from);
        free(l->failover[i].to);
    }
    free(l->failover);
    mg_cfg_free_slist(&l->failover_priority);
}

void mg_cfg_free_mesh(struct mg_mesh_config *m)
{
    free_locality_lb(&m->locality_lb);
    free(m->trust_domain);
    mg_cfg_free_slist(&m->trust_domain_aliases);
    free(m->root_namespace);
    free(m->access_log_file);
    free(m->access_log_format);
    for (size_t i = 0; i < m->n_access_log_json; i++) {
        free(m->access_log_json[i].key);
        free(m->access_log_json[i].fmt);
    }
    free(m->access_log_json);
    free(m->ca_certificates);
    free(m->geoip_database);
    free(m->geoip_country_header);
    free(m->geoip_asn_header);
    for (size_t i = 0; i < m->n_ext_providers; i++) {
        struct mg_ext_provider *p = &m->ext_providers[i];
        free(p->name);
        free(p->service);
        free(p->path_prefix);
        mg_cfg_free_slist(&p->include_request_headers_in_check);
        mg_cfg_free_slist(&p->headers_to_upstream_on_allow);
        mg_cfg_free_slist(&p->headers_to_downstream_on_deny);
    }
    free(m->ext_providers);
}

void mg_cfg_free_credential(struct mg_credential *c)
{
    free(c->name);
    free(c->certificate);
    free(c->private_key);
    free(c->ca_certificates);
    free(c->cert_pem);
    free(c->key_pem);
    free(c->ca_pem);
    free(c->ocsp_staple);
    free(c->ocsp_der);
    free(c->namespace_);
}

void mg_cfg_free_proxy(struct mg_proxy *p)
{
    mg_cfg_free_meta(&p->meta);
    free(p->service_account);
    free(p->locality);
    free(p->network);
    free(p->identity_cert_chain);
    free(p->identity_private_key);
    free(p->identity_root_certs);
    for (size_t i = 0; i < p->n_credentials; i++)
        mg_cfg_free_credential(&p->credentials[i]);
    free(p->credentials);
    free(p->bind_address);
    free(p->admin);
    for (size_t i = 0; i < p->n_inbound; i++) {
        free(p->inbound[i].bind);
        free(p->inbound[i].forward_to);
    }
    free(p->inbound);
    free(p->outbound_bind);
    mg_cfg_free_server_tls(&p->outbound_tls);
    mg_cfg_free_slist(&p->egress_deny_cidrs);
    free(p->session_ticket_keys);
    mg_cfg_free_slist(&p->proxy_protocol.ports);
    mg_cfg_free_slist(&p->proxy_protocol.trusted_sources);
}

void mg_cfg_free_authz(struct mg_authz_policy *p)
{
    mg_cfg_free_meta(&p->meta);
    mg_cfg_free_selector(&p->selector);
    free_target_refs(p->target_refs, p->n_target_refs);
    free(p->provider);
    for (size_t i = 0; i < p->n_rules; i++) {
        struct mg_authz_rule *r = &p->rules[i];
        for (size_t j = 0; j < r->n_from; j++) {
            struct mg_authz_source *s = &r->from[j];
            struct mg_slist *ls[] = {
                &s->principals, &s->not_principals, &s->request_principals,
                &s->not_request_principals, &s->namespaces, &s->not_namespaces,
                &s->service_accounts, &s->not_service_accounts, &s->trust_domains,
                &s->not_trust_domains, &s->ip_blocks, &s->not_ip_blocks, &s->remote_ip_blocks,
                &s->not_remote_ip_blocks,
            };
            for (size_t k = 0; k < MG_ARRAY_LEN(ls); k++)
                mg_cfg_free_slist(ls[k]);
        }
        free(r->from);
        for (size_t j = 0; j < r->n_to; j++) {
            struct mg_authz_operation *o = &r->to[j];
            struct mg_slist *ls[] = { &o->hosts, &o->not_hosts, &o->ports, &o->not_ports,
                                      &o->methods, &o->not_methods, &o->paths, &o->not_paths };
            for (size_t k = 0; k < MG_ARRAY_LEN(ls); k++)
                mg_cfg_free_slist(ls[k]);
        }
        free(r->to);
        for (size_t j = 0; j < r->n_when; j++) {
            free(r->when[j].key);
            mg_cfg_free_slist(&r->when[j].values);
            mg_cfg_free_slist(&r->when[j].not_values);
        }
        free(r->when);
    }
    free(p->rules);
}

void mg_cfg_free_peer_authn(struct mg_peer_authn *p)
{
    mg_cfg_free_meta(&p->meta);
    mg_cfg_free_selector(&p->selector);
    free(p->port_level);
}

void mg_cfg_free_request_authn(struct mg_request_authn *p)
{
    mg_cfg_free_meta(&p->meta);
    mg_cfg_free_selector(&p->selector);
    free_target_refs(p->target_refs, p->n_target_refs);
    for (size_t i = 0; i < p->n_rules; i++) {
        struct mg_jwt_rule *r = &p->rules[i];
        free(r->issuer);
        mg_cfg_free_slist(&r->audiences);
        free(r->jwks_uri);
        free(r->jwks);
        for (size_t j = 0; j < r->n_from_headers; j++) {
            free(r->from_headers[j].name);
            free(r->from_headers[j].prefix);
        }
        free(r->from_headers);
        mg_cfg_free_slist(&r->from_params);
        mg_cfg_free_slist(&r->from_cookies);
        free(r->output_payload_to_header);
        for (size_t j = 0; j < r->n_output_claim_to_headers; j++) {
            free(r->output_claim_to_headers[j].header);
            free(r->output_claim_to_headers[j].claim);
        }
        free(r->output_claim_to_headers);
        mg_cfg_free_slist(&r->space_delimited_claims);
    }
    free(p->rules);
}

void mg_cfg_free_server_tls(struct mg_server_tls *t)
{
    free(t->server_certificate);
    free(t->private_key);
    free(t->ca_certificates);
    free(t->ca_crl);
    free(t->credential_name);
    mg_cfg_free_slist(&t->credential_names);
    mg_cfg_free_slist(&t->subject_alt_names);
    mg_cfg_free_slist(&t->verify_certificate_spki);
    mg_cfg_free_slist(&t->verify_certificate_hash);
    mg_cfg_free_slist(&t->cipher_suites);
}

void mg_cfg_free_gateway(struct mg_gateway *g)
{
    mg_cfg_free_meta(&g->meta);
    mg_cfg_free_kvlist(&g->selector);
    for (size_t i = 0; i < g->n_servers; i++) {
        struct mg_server *s = &g->servers[i];
        struct mg_server_tls *t = &s->tls;
        free(s->port_name);
        free(s->bind);
        mg_cfg_free_slist(&s->hosts);
        free(s->name);
        mg_cfg_free_server_tls(t);
    }
    free(g->servers);
}

static void free_header_matches(struct mg_header_match *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].match.value);
    }
    free(h);
}

static void free_header_ops(struct mg_header_ops *o)
{
    mg_cfg_free_kvlist(&o->set);
    mg_cfg_free_kvlist(&o->add);
    mg_cfg_free_slist(&o->remove);
}

static void free_routes(struct mg_route_dest *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].destination.host);
        free(r[i].destination.subset);
        free_header_ops(&r[i].req_headers);
        free_header_ops(&r[i].resp_headers);
    }
    free(r);
}

void mg_cfg_free_http_route(struct mg_http_route *r)
{
    free(r->name);
    free(r->delegate.name);
    free(r->delegate.namespace_);
    for (size_t j = 0; j < r->n_match; j++) {
        struct mg_http_match *m = &r->match[j];
        free(m->name);
        free(m->uri.value);
        free(m->scheme.value);
        free(m->method.value);
        free(m->authority.value);
        free_header_matches(m->headers, m->n_headers);
        free_header_matches(m->without_headers, m->n_without_headers);
        free_header_matches(m->query_params, m->n_query_params);
        mg_cfg_free_slist(&m->gateways);
        mg_cfg_free_kvlist(&m->source_labels);
        free(m->source_namespace);
    }
    free(r->match);
    free_routes(r->route, r->n_route);
    free(r->redirect.uri);
    free(r->redirect.authority);
    free(r->redirect.scheme);
    free(r->direct_response.body);
    free(r->rewrite.uri);
    free(r->rewrite.authority);
    free(r->rewrite.regex_match);
    free(r->rewrite.regex_rewrite);
    free(r->retries.retry_on);
    free_header_ops(&r->req_headers);
    free_header_ops(&r->resp_headers);
    for (size_t j = 0; j < r->cors.n_allow_origins; j++)
        free(r->cors.allow_origins[j].value);
    free(r->cors.allow_origins);
    mg_cfg_free_slist(&r->cors.allow_methods);
    mg_cfg_free_slist(&r->cors.allow_headers);
    mg_cfg_free_slist(&r->cors.expose_headers);
    for (size_t j = 0; j < r->n_mirrors; j++) {
        free(r->mirrors[j].dest.destination.host);
        free(r->mirrors[j].dest.destination.subset);
    }
    free(r->mirrors);
    free(r->mirror.dest.destination.host);
    free(r->mirror.dest.destination.subset);
}

void mg_cfg_free_virtual_service(struct mg_virtual_service *vs)
{
    mg_cfg_free_meta(&vs->meta);
    mg_cfg_free_slist(&vs->hosts);
    mg_cfg_free_slist(&vs->gateways);
    mg_cfg_free_slist(&vs->export_to);
    for (size_t i = 0; i < vs->n_http; i++)
        mg_cfg_free_http_route(&vs->http[i]);
    free(vs->http);
    for (size_t i = 0; i < vs->n_tls; i++) {
        for (size_t j = 0; j < vs->tls[i].n_match; j++) {
            mg_cfg_free_slist(&vs->tls[i].match[j].sni_hosts);
            mg_cfg_free_slist(&vs->tls[i].match[j].destination_subnets);
            mg_cfg_free_slist(&vs->tls[i].match[j].gateways);
        }
        free(vs->tls[i].match);
        free_routes(vs->tls[i].route, vs->tls[i].n_route);
    }
    free(vs->tls);
    for (size_t i = 0; i < vs->n_tcp; i++) {
        for (size_t j = 0; j < vs->tcp[i].n_match; j++) {
            mg_cfg_free_slist(&vs->tcp[i].match[j].destination_subnets);
            mg_cfg_free_slist(&vs->tcp[i].match[j].gateways);
        }
        free(vs->tcp[i].match);
        free_routes(vs->tcp[i].route, vs->tcp[i].n_route);
    }
    free(vs->tcp);
}

static void free_tp(struct mg_traffic_policy *tp)
{
    struct mg_client_tls *t = &tp->tls;
    free_locality_lb(&tp->locality_lb);
    free(t->client_certificate);
    free(t->private_key);
    free(t->ca_certificates);
    free(t->ca_crl);
    free(t->credential_name);
    mg_cfg_free_slist(&t->subject_alt_names);
    free(t->sni);
}

static void free_dr_policy(struct mg_dr_policy *p)
{
    free_tp(&p->base);
    for (size_t i = 0; i < p->n_port_level; i++)
        free_tp(&p->port_level[i].policy);
    free(p->port_level);
}

void mg_cfg_free_destination_rule(struct mg_destination_rule *dr)
{
    mg_cfg_free_meta(&dr->meta);
    free(dr->host);
    free_dr_policy(&dr->policy);
    for (size_t i = 0; i < dr->n_subsets; i++) {
        free(dr->subsets[i].name);
        mg_cfg_free_kvlist(&dr->subsets[i].labels);
        free_dr_policy(&dr->subsets[i].policy);
    }
    free(dr->subsets);
    mg_cfg_free_slist(&dr->export_to);
    mg_cfg_free_selector(&dr->workload_selector);
}

void mg_cfg_free_workload_entry(struct mg_workload_entry *w)
{
    free(w->address);
    mg_cfg_free_kvlist(&w->ports);
    mg_cfg_free_kvlist(&w->labels);
    free(w->network);
    free(w->locality);
    free(w->service_account);
}

static void free_workload_entry_res(struct mg_workload_entry_res *we)
{
    mg_cfg_free_meta(&we->meta);
    mg_cfg_free_workload_entry(&we->spec);
}

void mg_cfg_free_service_entry(struct mg_service_entry *se)
{
    mg_cfg_free_meta(&se->meta);
    mg_cfg_free_slist(&se->hosts);
    mg_cfg_free_slist(&se->addresses);
    for (size_t i = 0; i < se->n_ports; i++)
        free(se->ports[i].name);
    free(se->ports);
    for (size_t i = 0; i < se->n_endpoints; i++)
        mg_cfg_free_workload_entry(&se->endpoints[i]);
    free(se->endpoints);
    mg_cfg_free_slist(&se->export_to);
    mg_cfg_free_slist(&se->subject_alt_names);
    mg_cfg_free_selector(&se->workload_selector);
}

#define FREE_ALL(arr, n, fn) do { \
    for (size_t i_ = 0; i_ < (n); i_++) fn(&(arr)[i_]); \
    free(arr); } while (0)

void mg_config_free(struct mg_config *c)
{
    if (!c)
        return;
    free(c->source);
    mg_cfg_free_mesh(&c->mesh);
    mg_cfg_free_proxy(&c->proxy);
    FREE_ALL(c->secrets, c->n_secrets, mg_cfg_free_credential);
    FREE_ALL(c->gateways, c->n_gateways, mg_cfg_free_gateway);
    FREE_ALL(c->virtual_services, c->n_virtual_services, mg_cfg_free_virtual_service);
    FREE_ALL(c->destination_rules, c->n_destination_rules, mg_cfg_free_destination_rule);
    FREE_ALL(c->service_entries, c->n_service_entries, mg_cfg_free_service_entry);
    FREE_ALL(c->workload_entries, c->n_workload_entries, free_workload_entry_res);
    FREE_ALL(c->peer_authns, c->n_peer_authns, mg_cfg_free_peer_authn);
    FREE_ALL(c->request_authns, c->n_request_authns, mg_cfg_free_request_authn);
    FREE_ALL(c->authz_policies, c->n_authz_policies, mg_cfg_free_authz);
    free(c);
}
