/*
 * local_record.c - what survives a daemon restart.
 *
 * Each job has a record in the plugin's key/value store under its id:
 *   {"pid", "start_ticks", "dir", "started", "attempt", "state",
 *    "cancelled", "reason"?, "exit_code"?, "spark_app_id"?}
 * and the key "_index" lists the ids still in flight, so a restarted
 * daemon knows what to re-attach without scanning.  A finished job leaves
 * the index but keeps its record, so its final state can still be asked.
 *
 * A restarted daemon is no longer the wrapper's parent, so it cannot wait
 * for it: it looks at /proc/<pid>/stat.  The pid counts as ours only while
 * the process there started at the recorded time (pids are reused) and is
 * not a zombie.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "local_backend.h"

/* Fields after the ')' that ends the command name: state is 0, starttime 19. */
static int local_proc_stat(long pid, char *state, unsigned long long *start_ticks)
{
    char path[64], buffer[1024], *p;
    FILE *f;
    size_t n;
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if (pid <= 0 || (f = fopen(path, "re")) == NULL)
        return -1;
    n = fread(buffer, 1, sizeof(buffer) - 1, f);
    fclose(f);
    buffer[n] = '\0';
    if ((p = strrchr(buffer, ')')) == NULL)
        return -1;
    p++;
    for (int field = 0; field <= 19; field++) {
        p += strspn(p, " ");
        if (*p == '\0')
            return -1;
        if (field == 0)
            *state = *p;
        if (field == 19)
            *start_ticks = strtoull(p, NULL, 10);
        p += strcspn(p, " ");
    }
    return 0;
}

unsigned long long local_process_start_ticks(long pid)
{
    char state;
    unsigned long long ticks = 0;
    return local_proc_stat(pid, &state, &ticks) == 0 ? ticks : 0;
}

int local_process_alive(long pid, unsigned long long start_ticks)
{
    char state = '?';
    unsigned long long ticks = 0;
    if (local_proc_stat(pid, &state, &ticks) != 0)
        return 0;
    if (state == 'Z' || state == 'X')
        return 0;
    return start_ticks == 0 || ticks == start_ticks;
}

int local_exit_file_read(const char *job_dir, int *code)
{
    char path[4096], text[32], *end = NULL;
    FILE *f;
    size_t n;
    long value;
    snprintf(path, sizeof(path), "%s/exit_code", job_dir);
    if ((f = fopen(path, "re")) == NULL)
        return 0;
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    value = strtol(text, &end, 10);
    if (end == text || (*end != '\n' && *end != '\0') || value < 0 || value > 255)
        return 0;
    *code = (int)value;
    return 1;
}

int local_record_put(sp_plugin_context *ctx, const char *job_id, json_t *record, char *err,
                     size_t err_size)
{
    char *text = json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS);
    int rc;
    if (text == NULL) {
        snprintf(err, err_size, "out of memory encoding the record of %s", job_id);
        return SP_ERROR;
    }
    rc = ctx->host->kv_put(ctx, job_id, text, strlen(text), err, err_size);
    free(text);
    return rc;
}

int local_record_get(sp_plugin_context *ctx, const char *job_id, json_t **record_out)
{
    char *text = NULL;
    size_t len = 0;
    int rc = ctx->host->kv_get(ctx, job_id, &text, &len);
    *record_out = NULL;
    if (rc != SP_OK)
        return rc;
    *record_out = json_loadb(text, len, 0, NULL);
    free(text);
    if (!json_is_object(*record_out)) {
        json_decref(*record_out);
        *record_out = NULL;
        return SP_ERROR;
    }
    return SP_OK;
}

json_t *local_index_load(sp_plugin_context *ctx)
{
    char *text = NULL;
    size_t len = 0;
    json_t *index = NULL;
    if (ctx->host->kv_get(ctx, LOCAL_INDEX_KEY, &text, &len) == SP_OK)
        index = json_loadb(text, len, 0, NULL);
    free(text);
    if (!json_is_array(index)) {
        json_decref(index);
        index = json_array();
    }
    return index;
}

int local_index_update(sp_plugin_context *ctx, const char *job_id, int present)
{
    json_t *index = local_index_load(ctx);
    size_t i, found = (size_t)-1;
    json_t *item;
    char err[256];
    int rc = SP_OK;

    json_array_foreach(index, i, item) {
        if (json_is_string(item) && strcmp(json_string_value(item), job_id) == 0)
            found = i;
    }
    if (present && found == (size_t)-1)
        json_array_append_new(index, json_string(job_id));
    else if (!present && found != (size_t)-1)
        json_array_remove(index, found);
    else
        goto done;
    rc = local_record_put(ctx, LOCAL_INDEX_KEY, index, err, sizeof(err));
done:
    json_decref(index);
    return rc;
}
