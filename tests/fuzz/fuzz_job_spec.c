/*
 * fuzz_job_spec.c - libFuzzer target for the job request parser (core/job_spec.c).
 *
 * The input is a POST /api/v1/jobs body.  Besides memory errors it checks
 * what the REST layer relies on: an accepted request gives a document that
 * is accepted again unchanged (normalising is idempotent) with the same
 * hash, and a refusal always carries a message that starts with its field.
 */
#include <jansson.h>
#include <sparkplane/plugin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_accepted(json_t *spec)
{
    char first[JOB_SPEC_HASH_SIZE], second[JOB_SPEC_HASH_SIZE];
    json_t *again = NULL;
    const char *token;
    job_spec_error error;
    if (job_spec_hash(spec, first) != 0)
        abort();
    /* core_etl is not a plain-form key: drop it before feeding the document back */
    json_t *copy = json_deep_copy(spec);
    json_object_del(copy, "core_etl");
    if (job_spec_normalise(copy, &again, &token, &error) != SP_OK)
        abort();
    json_object_del(spec, "core_etl");
    if (!json_equal(spec, again) || job_spec_hash(again, second) != 0 ||
        job_spec_hash(spec, first) != 0 || strcmp(first, second) != 0)
        abort();
    json_decref(again);
    json_decref(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *request = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    json_t *spec = NULL;
    const char *token = NULL;
    job_spec_error error;
    if (request == NULL)
        return 0;
    int rc = job_spec_normalise(request, &spec, &token, &error);
    if (rc == SP_OK) {
        if (spec == NULL)
            abort();
        fuzz_check_accepted(spec);
    } else if (rc == SP_INVALID) {
        size_t field_len = strlen(error.field);
        if (spec != NULL || token != NULL || error.message[0] == '\0' ||
            strncmp(error.message, error.field, field_len) != 0)
            abort();
    }
    json_decref(spec);
    json_decref(request);
    return 0;
}
