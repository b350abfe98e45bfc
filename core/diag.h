/*
 * diag.h - a list of problems, so that --check-config and reloads can
 * report every error at once instead of stopping at the first.
 */
#ifndef SPARKPLANE_CORE_DIAG_H
#define SPARKPLANE_CORE_DIAG_H

#include <stddef.h>
#include <sparkplane/plugin.h>

typedef struct diag_list {
    char **messages;
    size_t count;
} diag_list;

/* Appends one formatted message. */
void diag_add(diag_list *list, const char *fmt, ...) SP_PRINTF(2, 3);
/* Appends "file:line:column: " + message. */
void diag_add_at(diag_list *list, const char *file, int line, int column,
                 const char *fmt, ...) SP_PRINTF(5, 6);
void diag_clear(diag_list *list);

#endif
