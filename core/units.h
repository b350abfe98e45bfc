/*
 * units.h - parsing the value syntaxes config and APIs share: durations
 * ("250ms", "30s", "5m", "12h", "7d"), sizes ("4096", "512k", "1MiB",
 * "2G"), booleans and bounded integers.  Pure functions; 0 on success,
 * -1 on anything malformed or out of range.
 */
#ifndef SPARKPLANE_CORE_UNITS_H
#define SPARKPLANE_CORE_UNITS_H

#include <stdint.h>

int units_parse_duration_ms(const char *text, uint64_t *ms_out);
int units_parse_size_bytes(const char *text, uint64_t *bytes_out);
int units_parse_bool(const char *text, int *out);
int units_parse_int64(const char *text, int64_t *out);

#endif
