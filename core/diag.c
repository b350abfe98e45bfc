/*
 * diag.c - the growable list of formatted problem messages.
 *
 * Each message is formatted into its own heap string and appended to a
 * pointer array that doubles when full.  Running out of memory while
 * reporting a problem is not itself reportable, so such a message is
 * dropped rather than turned into a second failure path for every caller.
 */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The struct keeps no capacity, so it is implied: 8 slots at first, then
 * doubling each time count reaches a power of two (8, 16, 32, ...).
 */
static int diag_reserve_slot(diag_list *list)
{
    size_t count = list->count;
    size_t capacity;
    if (count == 0)
        capacity = 8;
    else if (count >= 8 && (count & (count - 1)) == 0)
        capacity = count * 2;
    else
        return 0;
    char **grown = realloc(list->messages, capacity * sizeof(*grown));
    if (grown == NULL)
        return -1;
    list->messages = grown;
    return 0;
}

static void diag_append_owned(diag_list *list, char *message)
{
    if (message == NULL)
        return;
    if (diag_reserve_slot(list) != 0) {
        free(message);
        return;
    }
    list->messages[list->count++] = message;
}

static char *diag_vformat(const char *prefix, const char *fmt, va_list ap) SP_PRINTF(2, 0);

static char *diag_vformat(const char *prefix, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int body = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (body < 0)
        return NULL;
    size_t prefix_len = strlen(prefix);
    char *message = malloc(prefix_len + (size_t)body + 1);
    if (message == NULL)
        return NULL;
    memcpy(message, prefix, prefix_len);
    vsnprintf(message + prefix_len, (size_t)body + 1, fmt, ap);
    return message;
}

void diag_add(diag_list *list, const char *fmt, ...)
{
    if (list == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    diag_append_owned(list, diag_vformat("", fmt, ap));
    va_end(ap);
}

void diag_add_at(diag_list *list, const char *file, int line, int column, const char *fmt,
                 ...)
{
    if (list == NULL)
        return;
    char prefix[1024];
    snprintf(prefix, sizeof(prefix), "%s:%d:%d: ", file != NULL ? file : "?", line, column);
    va_list ap;
    va_start(ap, fmt);
    diag_append_owned(list, diag_vformat(prefix, fmt, ap));
    va_end(ap);
}

void diag_clear(diag_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++)
        free(list->messages[i]);
    free(list->messages);
    list->messages = NULL;
    list->count = 0;
}
