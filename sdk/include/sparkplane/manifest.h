/*
 * sparkplane/manifest.h - manifest parsers (DCP YAML for jobs, schedules,
 * continuous jobs).
 *
 * A manifest plugin registers an sp_manifest_ops table for one manifest
 * kind.  parse() turns the document into the JSON the API accepts, or
 * answers SP_INVALID with a message naming the field and line.
 */
#ifndef SPARKPLANE_MANIFEST_H
#define SPARKPLANE_MANIFEST_H

#include <sparkplane/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sp_manifest_ops {
    uint32_t size;
    int (*parse)(void *provider, const char *document, size_t len,
                 char **json_out, char *err, size_t err_size);
} sp_manifest_ops;

#ifdef __cplusplus
}
#endif

#endif /* SPARKPLANE_MANIFEST_H */
