/* test_outlier.c - outlier detection's state machine (upstream/outlier.c):
 * the consecutive-error detectors, Envoy's maxEjectionPercent rule, the
 * interval sweep with the ejection multiplier and its decay, the local
 * origin split, the deprecated consecutiveErrors, and panic. Time is passed
 * in, so every case is exact. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "upstream/upstream.h"

static struct mg_outlier cfg(int c5xx, int cgw, int max_pct)
{
    struct mg_outlier o = { .present = true, .consecutive_5xx_errors = c5xx,
                            .consecutive_gateway_errors = cgw, .interval_ms = 1000,
                            .base_ejection_time_ms = 3000, .max_ejection_percent = max_pct };
    return o;
}

static int backs;
static void on_back(void *arg, size_t ep, int64_t ms)
{
    (void)arg;
    (void)ep;
    (void)ms;
    backs++;
}

static void consecutive(void)
{
    struct mg_outlier o = cfg(3, 0, 50);
    struct mg_od *od = mg_od_new(&o, 2, 0);
    ok(od != NULL, "a present block makes the state");
    is_int(mg_od_report(od, 0, MG_OD_RESPONSE, 500, 10), MG_OD_KEPT, "one 500 is kept");
    is_int(mg_od_report(od, 0, MG_OD_RESPONSE, 500, 10), MG_OD_KEPT, "two");
    is_int(mg_od_report(od, 0, MG_OD_RESPONSE, 200, 10), MG_OD_KEPT, "a success ...");
    is_int(mg_od_report(od, 0, MG_OD_RESPONSE, 500, 10), MG_OD_KEPT, "... starts the count over");
    is_int(mg_od_report(od, 0, MG_OD_RESPONSE, 500, 10), MG_OD_KEPT, "two again");
    is_int(mg_od_report(od, 0, MG_OD_RESPONSE, 404, 10), MG_OD_KEPT, "a 4xx is a success too");
    mg_od_report(od, 0, MG_OD_RESPONSE, 503, 10);
    mg_od_report(od, 0, MG_OD_CONNECT_FAILED, 0, 10);
    is_int(mg_od_report(od, 0, MG_OD_TIMEOUT, 0, 100), MG_OD_EJECT_5XX,
           "a connect failure and a timeout count as 5xx: the third ejects");
    ok(mg_od_ejected(od, 0) && !mg_od_ejected(od, 1), "endpoint 0 ejected, 1 not");
    is_int(mg_od_report(od, 1, MG_OD_RESPONSE, 500, 100) + mg_od_report(od, 1, MG_OD_RESPONSE, 500, 100) +
           mg_od_report(od, 1, MG_OD_RESPONSE, 500, 100), MG_OD_KEPT,
           "50%% of 2: the second endpoint may not be ejected too");
    backs = 0;
    mg_od_sweep(od, 3099, on_back, NULL);
    ok(mg_od_ejected(od, 0) && backs == 0, "still out before baseEjectionTime");
    mg_od_sweep(od, 3100, on_back, NULL);
    ok(!mg_od_ejected(od, 0) && backs == 1, "back at the sweep after baseEjectionTime");
    is_int(od->next_sweep, 4100, "the next sweep an interval later");
    for (int i = 0; i < 3; i++)
        mg_od_report(od, 0, MG_OD_RESPONSE, 502, 4000);
    ok(mg_od_ejected(od, 0), "ejected again");
    mg_od_sweep(od, 4000 + 5999, on_back, NULL);
    ok(mg_od_ejected(od, 0), "the second ejection lasts 2 x base ...");
    mg_od_sweep(od, 4000 + 6000, on_back, NULL);
    ok(!mg_od_ejected(od, 0), "... and ends then");
    is_int(atomic_load(&od->ep[0].backoff), 2, "multiplier 2");
    mg_od_sweep(od, 10000 + 2999, on_back, NULL);
    is_int(atomic_load(&od->ep[0].backoff), 2, "kept while back for less than base");
    mg_od_sweep(od, 10000 + 3000, on_back, NULL);
    is_int(atomic_load(&od->ep[0].backoff), 1, "decays by one per sweep once back for base");
    is_int(atomic_load(&od->n_ejected), 0, "nothing ejected");
    mg_od_free(od);
}

static void max_percent(void)
{
    struct mg_outlier o = cfg(1, 0, 0);
    struct mg_od *od = mg_od_new(&o, 2, 0);
    is_int(od->max_eject_pct, 10, "maxEjectionPercent 0 is Envoy's default 10");
    is_int(mg_od_report(od, 0, MG_OD_RESPONSE, 500, 1), MG_OD_KEPT,
           "10%% of 2 endpoints: one would be 50%%, not ejected");
    mg_od_free(od);
    od = mg_od_new(&o, 10, 0);
    is_int(mg_od_report(od, 3, MG_OD_RESPONSE, 500, 1), MG_OD_EJECT_5XX, "10%% of 10: one ejected");
    is_int(mg_od_report(od, 4, MG_OD_RESPONSE, 500, 1), MG_OD_KEPT, "a second is not");
    mg_od_free(od);
    o = cfg(1, 0, 100);
    od = mg_od_new(&o, 1, 0);
    is_int(mg_od_report(od, 0, MG_OD_RESPONSE, 500, 1), MG_OD_EJECT_5XX, "100%%: the only endpoint");
    ok(!mg_od_panic(od), "minHealthPercent 0: no panic even with all ejected");
    od->min_health_pct = 50;
    ok(mg_od_panic(od), "minHealthPercent 50 and none in service: panic");
    mg_od_free(od);
}

static void gateway_and_local(void)
{
    struct mg_outlier o = cfg(0, 2, 100);
    struct mg_od *od = mg_od_new(&o, 2, 0);
    is_int(mg_od_report(od, 0, MG_OD_RESPONSE, 500, 1), MG_OD_KEPT, "gateway only: a 500 ...");
    is_int(mg_od_report(od, 0, MG_OD_RESPONSE, 502, 1), MG_OD_KEPT, "... resets the gateway count");
    is_int(mg_od_report(od, 0, MG_OD_RESPONSE, 500, 1), MG_OD_KEPT, "(again)");
    is_int(mg_od_report(od, 0, MG_OD_CONNECT_FAILED, 0, 1), MG_OD_KEPT, "a connect failure is a 503");
    is_int(mg_od_report(od, 0, MG_OD_TIMEOUT, 0, 1), MG_OD_EJECT_GATEWAY, "a timeout a 504: ejected");
    mg_od_free(od);

    o = cfg(0, 0, 100);
    o.split_external_local_origin_errors = true;
    od = mg_od_new(&o, 1, 0);
    is_int(od->clocal, 5, "split without consecutiveLocalOriginFailures: Envoy's 5");
    for (int i = 0; i < 4; i++)
        mg_od_report(od, 0, MG_OD_CONNECT_FAILED, 0, 1);
    mg_od_report(od, 0, MG_OD_RESPONSE, 503, 1);
    is_int(mg_od_report(od, 0, MG_OD_CONNECT_FAILED, 0, 1), MG_OD_KEPT,
           "split: a response (even a 503) resets the local-origin count");
    for (int i = 0; i < 3; i++)
        mg_od_report(od, 0, MG_OD_CONNECT_FAILED, 0, 1);
    is_int(mg_od_report(od, 0, MG_OD_TIMEOUT, 0, 1), MG_OD_EJECT_LOCAL, "five local failures eject");
    mg_od_free(od);

    o = cfg(5, 0, 100);
    o.consecutive_errors = 2;
    od = mg_od_new(&o, 1, 0);
    ok(od->c5xx == 0 && od->cgw == 2, "consecutiveErrors: the gateway detector, 5xx off (Istio)");
    mg_od_free(od);
    o.has_consecutive_5xx_errors = true;
    od = mg_od_new(&o, 1, 0);
    ok(od->c5xx == 5 && od->cgw == 2, "... unless consecutive5xxErrors is written");
    mg_od_free(od);

    o = cfg(0, 0, 100);
    ok(mg_od_new(&o, 2, 0) == NULL, "every detector off: no state");
    o.present = false;
    o.consecutive_5xx_errors = 5;
    ok(mg_od_new(&o, 2, 0) == NULL, "no block: no state");
}

int main(void)
{
    consecutive();
    max_percent();
    gateway_and_local();
    return tap_done();
}
