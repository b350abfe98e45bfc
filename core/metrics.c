/*
 * metrics.c - the metric registry behind /metrics.
 *
 * Families (name, help, type) hold series (one per label set).  The loop is
 * single-threaded, so values are plain doubles.  Histograms share one set of
 * latency buckets in seconds.  Rendering follows the Prometheus text format
 * 0.0.4 and adds the standard process_* metrics read from /proc/self.
 */
#include "metrics.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <stdio.h>

static const double metrics_buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                         0.25,  0.5,   1.0,  2.5,   5.0,  10.0};
#define METRICS_BUCKET_COUNT (sizeof(metrics_buckets) / sizeof(metrics_buckets[0]))

struct sp_metric {
    struct metric_family *family;
    char *labels;                   /* "" when none */
    double value;                   /* counter, gauge; histogram: sum */
    uint64_t count;                 /* histogram */
    uint64_t buckets[METRICS_BUCKET_COUNT];
    struct sp_metric *next;
};

typedef struct metric_family {
    char *name;
    char *help;
    sp_metric_type type;
    sp_metric *series;
    struct metric_family *next;
} metric_family;

static metric_family *metrics_families;
static metric_family *metrics_families_tail;
static double metrics_start_time;

static int metrics_valid_name(const char *name)
{
    if (name == NULL || !(isalpha((unsigned char)*name) || *name == '_' || *name == ':'))
        return 0;
    for (const char *p = name; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
            return 0;
    return strlen(name) <= 200;
}

/* `a="x",b="y"`: label names, '=', quoted values without raw newlines. */
static int metrics_valid_labels(const char *labels)
{
    const char *p = labels;
    while (*p) {
        if (!(isalpha((unsigned char)*p) || *p == '_'))
            return 0;
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        if (p[0] != '=' || p[1] != '"')
            return 0;
        p += 2;
        while (*p && *p != '"') {
            if (*p == '\n')
                return 0;
            if (*p == '\\' && p[1] != '\0')
                p++;
            p++;
        }
        if (*p != '"')
            return 0;
        p++;
        if (*p == ',')
            p++;
        else if (*p != '\0')
            return 0;
    }
    return strlen(labels) <= 1024;
}

static metric_family *metrics_find_family(const char *name)
{
    for (metric_family *f = metrics_families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static metric_family *metrics_add_family(sp_metric_type type, const char *name, const char *help)
{
    metric_family *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->type = type;
    if (f->name == NULL || f->help == NULL) {
        free(f->name);
        free(f->help);
        free(f);
        return NULL;
    }
    /* The text format ends HELP at a newline; keep help on one line. */
    for (char *p = f->help; *p; p++)
        if (*p == '\n' || *p == '\\')
            *p = ' ';
    if (metrics_families_tail)
        metrics_families_tail->next = f;
    else
        metrics_families = f;
    metrics_families_tail = f;
    if (metrics_start_time == 0)
        metrics_start_time = (double)time(NULL);
    return f;
}

sp_metric *metrics_register(sp_metric_type type, const char *name, const char *help,
                            const char *labels)
{
    if (labels == NULL)
        labels = "";
    if (type < SP_METRIC_COUNTER || type > SP_METRIC_HISTOGRAM || !metrics_valid_name(name) ||
        !metrics_valid_labels(labels))
        return NULL;
    metric_family *f = metrics_find_family(name);
    if (f != NULL && f->type != type)
        return NULL;
    if (f == NULL && (f = metrics_add_family(type, name, help)) == NULL)
        return NULL;
    sp_metric **tail = &f->series;
    for (sp_metric *m = f->series; m; m = m->next) {
        if (strcmp(m->labels, labels) == 0)
            return m;
        tail = &m->next;
    }
    sp_metric *m = calloc(1, sizeof(*m));
    if (m == NULL || (m->labels = strdup(labels)) == NULL) {
        free(m);
        return NULL;
    }
    m->family = f;
    *tail = m;
    return m;
}

void metrics_add(sp_metric *metric, double value)
{
    if (metric == NULL || metric->family->type == SP_METRIC_HISTOGRAM)
        return;
    /* Counters only go up. */
    if (metric->family->type == SP_METRIC_COUNTER && value < 0)
        return;
    metric->value += value;
}

void metrics_set(sp_metric *metric, double value)
{
    if (metric != NULL && metric->family->type == SP_METRIC_GAUGE)
        metric->value = value;
}

void metrics_observe(sp_metric *metric, double value)
{
    if (metric == NULL || metric->family->type != SP_METRIC_HISTOGRAM)
        return;
    metric->value += value;
    metric->count++;
    for (size_t i = 0; i < METRICS_BUCKET_COUNT; i++)
        if (value <= metrics_buckets[i])
            metric->buckets[i]++;
}

double metrics_value(const sp_metric *metric)
{
    return metric ? metric->value : 0;
}

static const char *metrics_type_name(sp_metric_type type)
{
    switch (type) {
    case SP_METRIC_COUNTER:
        return "counter";
    case SP_METRIC_GAUGE:
        return "gauge";
    default:
        return "histogram";
    }
}

/* name{labels,extra} - braces only when there is something inside. */
static void metrics_print_series(struct evbuffer *out, const char *name, const char *suffix,
                                 const char *labels, const char *extra, double value)
{
    const char *sep = (*labels && extra) ? "," : "";
    if (*labels || extra)
        evbuffer_add_printf(out, "%s%s{%s%s%s} %.17g\n", name, suffix, labels, sep,
                            extra ? extra : "", value);
    else
        evbuffer_add_printf(out, "%s%s %.17g\n", name, suffix, value);
}

static void metrics_render_histogram(struct evbuffer *out, const metric_family *f,
                                     const sp_metric *m)
{
    char le[64];
    for (size_t i = 0; i < METRICS_BUCKET_COUNT; i++) {
        snprintf(le, sizeof(le), "le=\"%g\"", metrics_buckets[i]);
        metrics_print_series(out, f->name, "_bucket", m->labels, le, (double)m->buckets[i]);
    }
    metrics_print_series(out, f->name, "_bucket", m->labels, "le=\"+Inf\"", (double)m->count);
    metrics_print_series(out, f->name, "_sum", m->labels, NULL, m->value);
    metrics_print_series(out, f->name, "_count", m->labels, NULL, (double)m->count);
}

static long metrics_open_fds(void)
{
    long n = 0;
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL)
        return -1;
    while (readdir(dir) != NULL)
        n++;
    closedir(dir);
    return n - 3; /* ".", ".." and the directory's own fd */
}

static long metrics_resident_bytes(void)
{
    long pages_total = 0, pages_resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2)
        pages_resident = -1;
    fclose(f);
    return pages_resident < 0 ? -1 : pages_resident * sysconf(_SC_PAGESIZE);
}

static void metrics_render_process(struct evbuffer *out)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    double cpu = (double)usage.ru_utime.tv_sec + (double)usage.ru_stime.tv_sec +
                 ((double)usage.ru_utime.tv_usec + (double)usage.ru_stime.tv_usec) / 1e6;
    evbuffer_add_printf(out,
                        "# HELP process_cpu_seconds_total User and system CPU time spent.\n"
                        "# TYPE process_cpu_seconds_total counter\n"
                        "process_cpu_seconds_total %.6f\n"
                        "# HELP process_resident_memory_bytes Resident memory size.\n"
                        "# TYPE process_resident_memory_bytes gauge\n"
                        "process_resident_memory_bytes %ld\n"
                        "# HELP process_open_fds Open file descriptors.\n"
                        "# TYPE process_open_fds gauge\n"
                        "process_open_fds %ld\n"
                        "# HELP process_start_time_seconds Start time since the epoch.\n"
                        "# TYPE process_start_time_seconds gauge\n"
                        "process_start_time_seconds %.0f\n",
                        cpu, metrics_resident_bytes(), metrics_open_fds(), metrics_start_time);
}

void metrics_render(struct evbuffer *out)
{
    if (metrics_start_time == 0)
        metrics_start_time = (double)time(NULL);
    metrics_render_process(out);
    for (const metric_family *f = metrics_families; f; f = f->next) {
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                            metrics_type_name(f->type));
        for (const sp_metric *m = f->series; m; m = m->next) {
            if (f->type == SP_METRIC_HISTOGRAM)
                metrics_render_histogram(out, f, m);
            else
                metrics_print_series(out, f->name, "", m->labels, NULL, m->value);
        }
    }
}

void metrics_shutdown(void)
{
    metric_family *f = metrics_families;
    while (f) {
        metric_family *next_family = f->next;
        sp_metric *m = f->series;
        while (m) {
            sp_metric *next = m->next;
            free(m->labels);
            free(m);
            m = next;
        }
        free(f->name);
        free(f->help);
        free(f);
        f = next_family;
    }
    metrics_families = metrics_families_tail = NULL;
}
