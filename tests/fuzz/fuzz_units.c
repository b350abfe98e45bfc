/*
 * fuzz_units.c - libFuzzer target for the value parsers in core/units.c.
 *
 * The input becomes one NUL-terminated string handed to every parser.
 * Besides memory errors, it checks what callers rely on: a failed parse
 * leaves the output untouched and a bool is 0 or 1.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256)
        return 0; /* values are short; longer inputs only slow the search */
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    uint64_t amount = 42;
    if (units_parse_duration_ms(text, &amount) != 0 && amount != 42)
        abort();
    amount = 42;
    if (units_parse_size_bytes(text, &amount) != 0 && amount != 42)
        abort();
    int flag = 42;
    int rc = units_parse_bool(text, &flag);
    if ((rc == 0 && flag != 0 && flag != 1) || (rc != 0 && flag != 42))
        abort();
    int64_t number = 42;
    if (units_parse_int64(text, &number) != 0 && number != 42)
        abort();

    free(text);
    return 0;
}
