/*
 * metrics.h - counters, gauges and histograms, rendered as Prometheus text
 * on /metrics.  A metric family is a name with help and type; each label
 * set is its own series.  Single-threaded: the loop owns it.
 */
#ifndef SPARKPLANE_CORE_METRICS_H
#define SPARKPLANE_CORE_METRICS_H

#include <event2/buffer.h>
#include <sparkplane/host.h>

/*
 * Returns the series for (name, labels), creating it.  NULL when the name
 * is not a valid Prometheus name, the labels are malformed, or the name is
 * already registered with another type.
 */
sp_metric *metrics_register(sp_metric_type type, const char *name, const char *help,
                            const char *labels);
void metrics_add(sp_metric *metric, double value);
void metrics_set(sp_metric *metric, double value);
void metrics_observe(sp_metric *metric, double value);
double metrics_value(const sp_metric *metric);

/* Appends the exposition text (process metrics included). */
void metrics_render(struct evbuffer *out);

void metrics_shutdown(void);

#endif
