/* ca_rules.c - the argument rules of `meshgate ca` (cmd/internal.h): trust domains,
 * SPIFFE paths, DNS names and file base names. Pure string checks. */
#include "autoconfig.h"
#include <string.h>
#include "cmd/internal.h"
#include "base/base.h"

static bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
static bool is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }

bool mg_ca_valid_trust_domain(const char *td)
{
    size_t n = strlen(td);
    if (n == 0 || n > MG_CA_MAX_TRUST_DOMAIN || td[0] == '.' || td[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = td[i];
        if (!is_lower_alnum(c) && c != '.' && c != '-' && c != '_')
            return false;
        if (c == '.' && td[i + 1] == '.')
            return false;
    }
    return true;
}

/* A run of labels of [a-z0-9-] (and '.' between labels when dots), each
 * label alphanumeric at both ends. */
static bool valid_k8s_name(const char *s, size_t n, size_t max, bool dots)
{
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool first = i == 0 || s[i - 1] == '.';
        bool last = i + 1 == n || s[i + 1] == '.';
        if (c == '.') {
            if (!dots || i == 0 || i + 1 == n || s[i + 1] == '.')
                return false;
        } else if (c == '-') {
            if (first || last)
                return false;
        } else if (!is_lower_alnum(c)) {
            return false;
        }
    }
    return true;
}

int mg_ca_parse_spiffe_path(const char *path, char **ns, char **sa, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *ns = *sa = NULL;
    if (strncmp(path, "ns/", 3) != 0) {
        *why = "must start with ns/";
        return -1;
    }
    const char *n0 = path + 3;
    const char *n1 = strchr(n0, '/');
    if (!n1 || strncmp(n1, "/sa/", 4) != 0) {
        *why = "must be ns/<namespace>/sa/<service-account>";
        return -1;
    }
    const char *s0 = n1 + 4;
    if (strchr(s0, '/')) {
        *why = "has parts after the service account";
        return -1;
    }
    if (!valid_k8s_name(n0, (size_t)(n1 - n0), MG_CA_MAX_NS, false)) {
        *why = "namespace must be a DNS label ([a-z0-9-], at most 63)";
        return -1;
    }
    if (!valid_k8s_name(s0, strlen(s0), MG_CA_MAX_SA, true)) {
        *why = "service account must be a DNS subdomain ([a-z0-9.-], at most 253)";
        return -1;
    }
    *ns = mg_xstrndup(n0, (size_t)(n1 - n0));
    *sa = mg_xstrdup(s0);
    return 0;
}

bool mg_ca_valid_dns_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > MG_CA_MAX_DNS)
        return false;
    const char *p = name;
    if (p[0] == '*') {
        if (p[1] != '.' || p[2] == '\0')
            return false;
        p += 2;
    }
    while (*p) {
        const char *e = strchr(p, '.');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || len > 63 || p[0] == '-' || p[len - 1] == '-')
            return false;
        for (size_t i = 0; i < len; i++)
            if (!is_alnum(p[i]) && p[i] != '-')
                return false;
        if (!e)
            break;
        p = e + 1;
        if (*p == '\0')
            return false;       /* trailing dot */
    }
    return true;
}

bool mg_ca_valid_basename(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 100 || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(name[i]) && !strchr("._*-", name[i]))
            return false;
    return true;
}

