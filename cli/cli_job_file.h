/*
 * cli_job_file.h - a job file (YAML or JSON) as the JSON body of POST /jobs.
 *
 * A file whose first non-blank character is '{' is read as JSON by
 * jansson; anything else as YAML by the core's yaml_tree and converted
 * with the YAML 1.2 core schema: unquoted null/~/empty are null,
 * true/false are booleans, decimal integers and floats are numbers, and
 * everything else - including anything quoted - is a string.  The root
 * must be a mapping.  The server validates the job itself.
 */
#ifndef SPARKPLANE_CLI_JOB_FILE_H
#define SPARKPLANE_CLI_JOB_FILE_H

#include <jansson.h>
#include <stddef.h>

/* The most a job file may hold (the same bound as yaml_tree's). */
#define CLI_JOB_FILE_MAX_BYTES (4u * 1024u * 1024u)

/* Reads a whole file, or stdin for "-", up to CLI_JOB_FILE_MAX_BYTES. */
int cli_job_file_read(const char *path, char **data_out, size_t *len_out, char *err,
                      size_t err_size);

/*
 * Parses data as JSON or YAML (see above).  `name` is used in messages,
 * which read "name:line:column: problem".  0 and a new object, or -1.
 */
int cli_job_file_parse(const char *name, const char *data, size_t len, json_t **job_out,
                       char *err, size_t err_size);

/* The typed JSON value of one plain (unquoted) YAML scalar. */
json_t *cli_yaml_plain_scalar(const char *text);

#endif
