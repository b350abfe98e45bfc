/*
 * test_metrics.c - the metric registry and its Prometheus text.
 */
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "unit_test.h"

static char *render(void)
{
    struct evbuffer *out = evbuffer_new();
    metrics_render(out);
    size_t len = evbuffer_get_length(out);
    char *text = malloc(len + 1);
    evbuffer_remove(out, text, len);
    text[len] = '\0';
    evbuffer_free(out);
    return text;
}

static void test_counter_renders_with_labels(void)
{
    sp_metric *m = metrics_register(SP_METRIC_COUNTER, "test_requests_total", "Requests.",
                                    "route=\"/x\",status=\"200\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    metrics_add(m, 2);
    metrics_add(m, -5); /* counters never go down */
    CU_ASSERT_DOUBLE_EQUAL(metrics_value(m), 2, 1e-9);
    char *text = render();
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "# TYPE test_requests_total counter\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "test_requests_total{route=\"/x\",status=\"200\"} 2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "process_resident_memory_bytes "));
    free(text);
    metrics_shutdown();
}

static void test_same_series_is_returned(void)
{
    sp_metric *a = metrics_register(SP_METRIC_GAUGE, "test_gauge", "G.", "a=\"1\"");
    sp_metric *b = metrics_register(SP_METRIC_GAUGE, "test_gauge", "G.", "a=\"1\"");
    sp_metric *c = metrics_register(SP_METRIC_GAUGE, "test_gauge", "G.", "a=\"2\"");
    CU_ASSERT_PTR_EQUAL(a, b);
    CU_ASSERT_PTR_NOT_EQUAL(a, c);
    metrics_set(a, 7);
    CU_ASSERT_DOUBLE_EQUAL(metrics_value(b), 7, 1e-9);
    metrics_shutdown();
}

static void test_invalid_names_and_types_refused(void)
{
    CU_ASSERT_PTR_NULL(metrics_register(SP_METRIC_COUNTER, "9bad", "x", NULL));
    CU_ASSERT_PTR_NULL(metrics_register(SP_METRIC_COUNTER, "bad-name", "x", NULL));
    CU_ASSERT_PTR_NULL(metrics_register(SP_METRIC_COUNTER, "ok", "x", "a=1"));
    CU_ASSERT_PTR_NULL(metrics_register(SP_METRIC_COUNTER, "ok", "x", "a=\"1\"junk"));
    CU_ASSERT_PTR_NULL(metrics_register(SP_METRIC_COUNTER, "ok", "x", "a=\"new\nline\""));
    CU_ASSERT_PTR_NOT_NULL(metrics_register(SP_METRIC_COUNTER, "ok", "x", NULL));
    /* Same name, another type. */
    CU_ASSERT_PTR_NULL(metrics_register(SP_METRIC_GAUGE, "ok", "x", NULL));
    metrics_shutdown();
}

static void test_histogram_buckets_are_cumulative(void)
{
    sp_metric *h = metrics_register(SP_METRIC_HISTOGRAM, "test_latency_seconds", "L.", NULL);
    metrics_observe(h, 0.002);
    metrics_observe(h, 0.2);
    metrics_observe(h, 20);
    char *text = render();
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "test_latency_seconds_bucket{le=\"0.001\"} 0\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "test_latency_seconds_bucket{le=\"0.005\"} 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "test_latency_seconds_bucket{le=\"0.25\"} 2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "test_latency_seconds_bucket{le=\"10\"} 2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "test_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "test_latency_seconds_count 3\n"));
    free(text);
    metrics_shutdown();
}

static void test_help_stays_on_one_line(void)
{
    metrics_register(SP_METRIC_GAUGE, "test_help", "two\nlines", NULL);
    char *text = render();
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "# HELP test_help two lines\n"));
    free(text);
    metrics_shutdown();
}

static const unit_test_case cases[] = {
    {"counter renders with labels", test_counter_renders_with_labels},
    {"same name and labels give the same series", test_same_series_is_returned},
    {"invalid names, labels and type clashes are refused", test_invalid_names_and_types_refused},
    {"histogram buckets are cumulative", test_histogram_buckets_are_cumulative},
    {"help text stays on one line", test_help_stays_on_one_line},
    {NULL, NULL}};

UNIT_TEST_MAIN("metrics", cases)
