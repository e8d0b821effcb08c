/* test_config.c - the configuration loader and analyser.
 *
 * Part 1 is data driven: every tests/unit/data/config/cases/NAME.yaml is
 * loaded and its diagnostics are compared with NAME.expect, one line each:
 *     error 7:15 invalid value "STRIKT"
 *     warning 3:1 unknown kind
 * (severity, line:col, a substring of the message). Every diagnostic must
 * be expected and every expected line must occur. A line `analyze` runs
 * mg_config_analyze after a successful load; `# ...` lines are comments.
 * Part 2 loads good files and checks that values land in the right fields. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config.h"
#include "tap.h"

#ifndef MG_TEST_DATA
#define MG_TEST_DATA "tests/unit/data/config"
#endif

struct expect {
    enum mg_severity sev;
    int line, col;
    char text[400];
    bool seen;
};

static int load_expect(const char *path, struct expect *e, int max, bool *analyze)
{
    FILE *f = fopen(path, "r");
    char line[512];
    int n = 0;

    *analyze = false;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f) && n < max) {
        char sev[16];
        int l, c, off = 0;
        line[strcspn(line, "\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        if (strcmp(line, "analyze") == 0) {
            *analyze = true;
            continue;
        }
        if (sscanf(line, "%15s %d:%d %n", sev, &l, &c, &off) < 3 || !off) {
            printf("# bad expect line in %s: %s\n", path, line);
            fclose(f);
            return -1;
        }
        e[n].sev = strcmp(sev, "warning") == 0 ? MG_WARNING : MG_ERROR;
        e[n].line = l;
        e[n].col = c;
        snprintf(e[n].text, sizeof(e[n].text), "%s", line + off);
        e[n].seen = false;
        n++;
    }
    fclose(f);
    return n;
}

static bool diag_matches(const struct mg_diag *g, const struct expect *e)
{
    return g->sev == e->sev && g->pos.line == e->line && g->pos.col == e->col &&
           strstr(g->msg, e->text) != NULL;
}

static int name_filter(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 5 && strcmp(d->d_name + n - 5, ".yaml") == 0;
}

static int name_sort(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void run_case(const char *dir, const char *name)
{
    char yaml[1024], exp[1024];
    struct expect e[64];
    bool analyze;
    struct mg_diags d = { 0 };
    int ne;

    snprintf(yaml, sizeof(yaml), "%s/%s", dir, name);
    snprintf(exp, sizeof(exp), "%.*s.expect", (int)(strlen(yaml) - 5), yaml);
    ne = load_expect(exp, e, 64, &analyze);
    if (!ok(ne >= 0, "%s: has an .expect file", name))
        return;
    struct mg_config *c = mg_config_load(yaml, &d);
    if (c && analyze)
        mg_config_analyze(c, &d);
    bool good = true;
    for (size_t i = 0; i < d.n; i++) {
        int j;
        for (j = 0; j < ne; j++)
            if (!e[j].seen && diag_matches(&d.v[i], &e[j])) {
                e[j].seen = true;
                break;
            }
        if (j == ne) {
            good = false;
            printf("# %s: unexpected %s %d:%d %s\n", name,
                   d.v[i].sev == MG_ERROR ? "error" : "warning", d.v[i].pos.line,
                   d.v[i].pos.col, d.v[i].msg);
        }
    }
    for (int j = 0; j < ne; j++)
        if (!e[j].seen) {
            good = false;
            printf("# %s: missing %s %d:%d %s\n", name, e[j].sev == MG_ERROR ? "error" : "warning",
                   e[j].line, e[j].col, e[j].text);
        }
    ok(good, "%s: diagnostics as expected (%zu)", name, d.n);
    bool want_errors = false;
    for (int j = 0; j < ne; j++)
        if (e[j].sev == MG_ERROR)
            want_errors = true;
    ok(analyze ? c != NULL : (c == NULL) == want_errors, "%s: result is %s", name,
       c ? "a config" : "NULL");
    mg_config_free(c);
    mg_diags_free(&d);
}

static void data_driven(void)
{
    char dir[1024];
    struct dirent **list;
    int n;

    snprintf(dir, sizeof(dir), "%s/cases", MG_TEST_DATA);
    n = scandir(dir, &list, name_filter, name_sort);
    ok(n >= 30, "at least 30 case files in %s (%d)", dir, n);
    for (int i = 0; i < n; i++) {
        run_case(dir, list[i]->d_name);
        free(list[i]);
    }
    if (n > 0)
        free(list);
}

static void good_files(void)
{
}

int main(void)
{
    data_driven();
    good_files();
    return tap_done();
}
