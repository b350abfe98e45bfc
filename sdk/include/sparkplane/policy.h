/*
 * sparkplane/policy.h - policies (APS auto-sizing, AR auto-retry, DCR
 * dynamic resizing).
 *
 * A policy plugin registers an sp_policy_ops table.  The host asks the
 * configured policies in order at each decision point; the first answer
 * that is not SP_DEFER wins.  Inputs and decisions are JSON text.
 */
#ifndef SPARKPLANE_POLICY_H
#define SPARKPLANE_POLICY_H

#include <sparkplane/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sp_policy_ops {
    uint32_t size;
    /*
     * `point` names the decision ("job.submit", "job.failed", ...).
     * SP_OK: *decision_json is a malloc'd JSON document the host frees.
     * SP_DEFER: no opinion.
     */
    int (*decide)(void *provider, const char *point, const char *input_json,
                  char **decision_json, char *err, size_t err_size);
} sp_policy_ops;

#ifdef __cplusplus
}
#endif

#endif /* SPARKPLANE_POLICY_H */
