/*
 * units.c - the value syntaxes shared by config, plugin options and APIs.
 *
 * Every parser takes the whole string: no leading or trailing spaces, no
 * sign unless stated, nothing after the unit.  Amounts are decimal
 * integers; multiplication is checked so that overflow is an error rather
 * than a wrapped value.
 *
 *   duration  <digits><unit>, unit one of ms, s, m, h, d (lower case).
 *             "0" alone is accepted and means zero (callers decide whether
 *             zero is meaningful); any other number needs a unit, because
 *             a bare "30" could be seconds or milliseconds.
 *   size      <digits>[unit]; no unit means bytes.  Units are binary
 *             (1024-based) whatever the spelling, matched ignoring case:
 *             k, kb, kib = 2^10; m, mb, mib = 2^20; g, gb, gib = 2^30;
 *             t, tb, tib = 2^40.  "1MB" is therefore 1048576 bytes.
 *   bool      true/false, yes/no, on/off, ignoring case.
 *   int64     optional '-' or '+', then decimal digits, within int64.
 */
#include "units.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct units_suffix {
    const char *text;
    uint64_t factor;
} units_suffix;

static const units_suffix units_duration_suffixes[] = {
    {"ms", 1},
    {"s", 1000},
    {"m", 60u * 1000u},
    {"h", 60u * 60u * 1000u},
    {"d", 24u * 60u * 60u * 1000u},
    {NULL, 0}};

static const units_suffix units_size_suffixes[] = {
    {"", 1},
    {"k", 1ull << 10},  {"kb", 1ull << 10}, {"kib", 1ull << 10},
    {"m", 1ull << 20},  {"mb", 1ull << 20}, {"mib", 1ull << 20},
    {"g", 1ull << 30},  {"gb", 1ull << 30}, {"gib", 1ull << 30},
    {"t", 1ull << 40},  {"tb", 1ull << 40}, {"tib", 1ull << 40},
    {NULL, 0}};

/*
 * Reads the leading run of decimal digits into *value; returns how many
 * characters it used (0 when there is no digit or on overflow).
 */
static size_t units_read_digits(const char *text, uint64_t *value)
{
    uint64_t total = 0;
    size_t used = 0;
    while (text[used] >= '0' && text[used] <= '9') {
        uint64_t digit = (uint64_t)(text[used] - '0');
        if (total > (UINT64_MAX - digit) / 10)
            return 0;
        total = total * 10 + digit;
        used++;
    }
    *value = total;
    return used;
}

static int units_find_factor(const units_suffix *table, const char *suffix, int ignore_case,
                             uint64_t *factor)
{
    for (const units_suffix *s = table; s->text != NULL; s++) {
        int same = ignore_case ? strcasecmp(s->text, suffix) == 0 : strcmp(s->text, suffix) == 0;
        if (same) {
            *factor = s->factor;
            return 0;
        }
    }
    return -1;
}

static int units_scale(uint64_t amount, uint64_t factor, uint64_t *out)
{
    if (factor != 0 && amount > UINT64_MAX / factor)
        return -1;
    *out = amount * factor;
    return 0;
}

int units_parse_duration_ms(const char *text, uint64_t *ms_out)
{
    uint64_t amount, factor;
    if (text == NULL || ms_out == NULL)
        return -1;
    size_t used = units_read_digits(text, &amount);
    if (used == 0)
        return -1;
    if (text[used] == '\0') {
        if (amount != 0)
            return -1; /* a bare number has no unit we could assume */
        *ms_out = 0;
        return 0;
    }
    if (units_find_factor(units_duration_suffixes, text + used, 0, &factor) != 0)
        return -1;
    return units_scale(amount, factor, ms_out);
}

int units_parse_size_bytes(const char *text, uint64_t *bytes_out)
{
    uint64_t amount, factor;
    if (text == NULL || bytes_out == NULL)
        return -1;
    size_t used = units_read_digits(text, &amount);
    if (used == 0)
        return -1;
    if (units_find_factor(units_size_suffixes, text + used, 1, &factor) != 0)
        return -1;
    return units_scale(amount, factor, bytes_out);
}

int units_parse_bool(const char *text, int *out)
{
    static const char *const truths[] = {"true", "yes", "on", NULL};
    static const char *const lies[] = {"false", "no", "off", NULL};
    if (text == NULL || out == NULL)
        return -1;
    for (size_t i = 0; truths[i] != NULL; i++) {
        if (strcasecmp(text, truths[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(text, lies[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

int units_parse_int64(const char *text, int64_t *out)
{
    if (text == NULL || out == NULL)
        return -1;
    /* strtoll would skip leading spaces and accept "0x10"; we want neither. */
    const char *digits = text[0] == '-' || text[0] == '+' ? text + 1 : text;
    if (digits[0] < '0' || digits[0] > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return -1;
    *out = (int64_t)value;
    return 0;
}
