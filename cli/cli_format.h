/*
 * cli_format.h - how the CLI shows jobs, events and errors to a person.
 *
 * Pure functions over jansson values that write to a FILE* (tests use
 * open_memstream).  Text that comes from the server is cleaned before it
 * reaches a terminal: control characters (escape sequences included)
 * become spaces, so a job name cannot rewrite the user's screen.
 */
#ifndef SPARKPLANE_CLI_FORMAT_H
#define SPARKPLANE_CLI_FORMAT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

/* Widest REASON cell in tables, in characters (the full text is in `get` and -o json). */
#define CLI_REASON_WIDTH 60

/* ---- tables ---- */

typedef struct cli_table cli_table;

/* A table with `columns` headers (copied). */
cli_table *cli_table_new(size_t columns, const char *const *headers);
/* Appends one row of `columns` cells (copied, cleaned; NULL shows as "-"). */
int cli_table_add_row(cli_table *table, const char *const *cells);
size_t cli_table_rows(const cli_table *table);
/* Header and rows, columns padded to their widest cell, the last one not padded. */
void cli_table_print(const cli_table *table, FILE *out);
void cli_table_free(cli_table *table);

/* ---- cells ---- */

/* Display width of UTF-8 text: code points (every one counts as one column). */
size_t cli_text_width(const char *text);

/*
 * One line of at most max_chars characters: runs of whitespace and control
 * characters collapse to one space, ends are trimmed, and text that is
 * longer is cut at a character boundary and ends in "...".
 */
void cli_text_truncate(const char *text, size_t max_chars, char *out, size_t out_size);

/* Seconds since the epoch from "YYYY-MM-DDTHH:MM:SS[.fff](Z|+hh:mm)"; -1 when malformed. */
int cli_parse_timestamp(const char *text, time_t *out);

/* "42s", "5m", "3h", "12d" since `timestamp`, or "-" when it is NULL or malformed. */
void cli_format_age(const char *timestamp, time_t now, char *out, size_t out_size);

/* ---- resources ---- */

/* ID NAME TEAM STATE AGE UPDATED REASON, one row per job of the array. */
void cli_print_jobs_table(const json_t *jobs, time_t now, FILE *out);
/* "key: value" lines for one job (reason in full, over several lines if it has them). */
void cli_print_job_detail(const json_t *job, time_t now, FILE *out);
/* AT FROM TO REASON for {"events":[...]}. */
void cli_print_events_table(const json_t *events, FILE *out);

/* ---- errors ---- */

/*
 * "<message> (<code>, HTTP <status>)" from an API error body, with the
 * details (compact JSON) on a second line when the body has them; for a
 * body that is not the API's error shape, "HTTP <status>: <first line>".
 */
void cli_format_api_error(long status, const char *body, size_t len, char *out, size_t out_size);

/* The exit status for an HTTP status that is not 2xx (cli_args.h CLI_EXIT_*). */
int cli_exit_for_http_status(long status);

#endif
