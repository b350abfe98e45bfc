/*
 * yaml_tree.c - libyaml's event stream turned into a tree of located nodes.
 *
 * yaml_parser_parse() hands us one event at a time; a fixed stack of open
 * collections (bounded by YAML_TREE_MAX_DEPTH) receives each new node.  We
 * never use libyaml's document loader because it expands aliases and does
 * not bound depth or node count: here anchors, aliases, unknown tags, a
 * second document, non-scalar keys and duplicate keys are all refused with
 * "file:line:column: reason".
 *
 * The file name is shared by every node of a document through a small
 * reference-counted block, so nodes can move between trees (conf.d merges)
 * and still say where they came from.  After a merge, a map's key i is
 * located in items[i]->file at key_lines[i]:key_columns[i]: a merge that
 * replaces a value also moves its key's location.
 */
#include "yaml_tree.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include <sparkplane/plugin.h> /* SP_PRINTF */

#define YAML_TREE_STANDARD_TAG_PREFIX "tag:yaml.org,2002:"

/* ---- shared file names ---- */

typedef struct yaml_tree_file {
    size_t refs;
    char name[];
} yaml_tree_file;

static yaml_tree_file *yaml_tree_file_of(const char *name)
{
    return (yaml_tree_file *)(void *)(name - offsetof(yaml_tree_file, name));
}

static const char *yaml_tree_file_new(const char *name)
{
    size_t len = strlen(name);
    yaml_tree_file *file = malloc(sizeof(*file) + len + 1);
    if (file == NULL)
        return NULL;
    file->refs = 1;
    memcpy(file->name, name, len + 1);
    return file->name;
}

static void yaml_tree_file_retain(const char *name)
{
    yaml_tree_file_of(name)->refs++;
}

static void yaml_tree_file_release(const char *name)
{
    if (name == NULL)
        return;
    yaml_tree_file *file = yaml_tree_file_of(name);
    if (--file->refs == 0)
        free(file);
}

/* ---- nodes ---- */

static yaml_tree_node *yaml_tree_node_new(yaml_node_kind kind, const char *file, int line,
                                          int column)
{
    yaml_tree_node *node = calloc(1, sizeof(*node));
    if (node == NULL)
        return NULL;
    node->kind = kind;
    node->file = file;
    yaml_tree_file_retain(file);
    node->line = line;
    node->column = column;
    return node;
}

void yaml_tree_free(yaml_tree_node *node)
{
    if (node == NULL)
        return;
    /* Items may be NULL after a partial merge moved them elsewhere. */
    for (size_t i = 0; i < node->count; i++) {
        if (node->keys != NULL)
            free(node->keys[i]);
        if (node->items != NULL)
            yaml_tree_free(node->items[i]);
    }
    free(node->keys);
    free(node->key_lines);
    free(node->key_columns);
    free(node->items);
    free(node->value);
    yaml_tree_file_release(node->file);
    free(node);
}

yaml_tree_node *yaml_tree_map_get(const yaml_tree_node *map, const char *key)
{
    if (map == NULL || map->kind != YAML_TREE_MAP || key == NULL)
        return NULL;
    for (size_t i = 0; i < map->count; i++)
        if (map->keys[i] != NULL && strcmp(map->keys[i], key) == 0)
            return map->items[i];
    return NULL;
}

const char *yaml_tree_kind_name(yaml_node_kind kind)
{
    switch (kind) {
    case YAML_TREE_SCALAR:
        return "scalar";
    case YAML_TREE_MAP:
        return "mapping";
    case YAML_TREE_SEQUENCE:
        return "sequence";
    }
    return "unknown";
}

/* Makes room for one more pair or item; `capacity` is what is allocated. */
static int yaml_tree_node_reserve(yaml_tree_node *node, size_t *capacity)
{
    if (node->count < *capacity)
        return 0;
    size_t wanted = *capacity == 0 ? 4 : *capacity * 2;
    yaml_tree_node **items = realloc(node->items, wanted * sizeof(*items));
    if (items == NULL)
        return -1;
    node->items = items;
    if (node->kind == YAML_TREE_MAP) {
        char **keys = realloc(node->keys, wanted * sizeof(*keys));
        if (keys == NULL)
            return -1;
        node->keys = keys;
        int *lines = realloc(node->key_lines, wanted * sizeof(*lines));
        if (lines == NULL)
            return -1;
        node->key_lines = lines;
        int *columns = realloc(node->key_columns, wanted * sizeof(*columns));
        if (columns == NULL)
            return -1;
        node->key_columns = columns;
    }
    *capacity = wanted;
    return 0;
}

/* ---- building from events ---- */

typedef struct yaml_tree_frame {
    yaml_tree_node *node;
    size_t capacity;
    char *pending_key; /* MAP: key read, value not yet */
    int key_line;
    int key_column;
} yaml_tree_frame;

typedef struct yaml_tree_builder {
    const char *file; /* our own reference */
    const char *data;
    size_t len;
    yaml_tree_frame stack[YAML_TREE_MAX_DEPTH];
    size_t depth;
    size_t nodes;
    int documents;
    yaml_tree_node *root;
    char *err;
    size_t err_size;
} yaml_tree_builder;

static int yaml_tree_fail(yaml_tree_builder *b, int line, int column, const char *fmt, ...)
    SP_PRINTF(4, 5);

static int yaml_tree_fail(yaml_tree_builder *b, int line, int column, const char *fmt, ...)
{
    if (b->err == NULL || b->err_size == 0)
        return -1;
    int used = snprintf(b->err, b->err_size, "%s:%d:%d: ", b->file, line, column);
    if (used < 0 || (size_t)used >= b->err_size)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err + used, b->err_size - (size_t)used, fmt, ap);
    va_end(ap);
    return -1;
}

static int yaml_tree_line_of(const yaml_mark_t *mark)
{
    return mark->line >= INT32_MAX ? INT32_MAX : (int)mark->line + 1;
}

static int yaml_tree_column_of(const yaml_mark_t *mark)
{
    return mark->column >= INT32_MAX ? INT32_MAX : (int)mark->column + 1;
}

#define YAML_TREE_FAIL_AT(b, mark, ...)                                                        \
    yaml_tree_fail((b), yaml_tree_line_of(mark), yaml_tree_column_of(mark), __VA_ARGS__)

/* Anchors, aliases' targets, and custom tags are refused on every node. */
static int yaml_tree_check_node_event(yaml_tree_builder *b, const yaml_event_t *event,
                                      const yaml_char_t *anchor, const yaml_char_t *tag)
{
    const yaml_mark_t *mark = &event->start_mark;
    if (anchor != NULL)
        return YAML_TREE_FAIL_AT(b, mark, "anchors are not allowed (found '&%.64s')",
                                 (const char *)anchor);
    if (tag != NULL && strcmp((const char *)tag, "!") != 0 &&
        strncmp((const char *)tag, YAML_TREE_STANDARD_TAG_PREFIX,
                strlen(YAML_TREE_STANDARD_TAG_PREFIX)) != 0)
        return YAML_TREE_FAIL_AT(b, mark, "tag '%.64s' is not allowed", (const char *)tag);
    if (++b->nodes > YAML_TREE_MAX_NODES)
        return YAML_TREE_FAIL_AT(b, mark, "document has more than %d nodes",
                                 YAML_TREE_MAX_NODES);
    return 0;
}

static yaml_tree_frame *yaml_tree_top(yaml_tree_builder *b)
{
    return b->depth == 0 ? NULL : &b->stack[b->depth - 1];
}

/* Hands a finished or newly opened node to its parent (or makes it the root). */
static int yaml_tree_attach(yaml_tree_builder *b, yaml_tree_node *node)
{
    yaml_tree_frame *top = yaml_tree_top(b);
    if (top == NULL) {
        b->root = node;
        return 0;
    }
    yaml_tree_node *parent = top->node;
    if (yaml_tree_node_reserve(parent, &top->capacity) != 0)
        return yaml_tree_fail(b, node->line, node->column, "out of memory");
    if (parent->kind == YAML_TREE_MAP) {
        parent->keys[parent->count] = top->pending_key;
        parent->key_lines[parent->count] = top->key_line;
        parent->key_columns[parent->count] = top->key_column;
        top->pending_key = NULL;
    }
    parent->items[parent->count++] = node;
    return 0;
}

static int yaml_tree_wants_key(yaml_tree_builder *b)
{
    const yaml_tree_frame *top = yaml_tree_top(b);
    return top != NULL && top->node->kind == YAML_TREE_MAP && top->pending_key == NULL;
}

static int yaml_tree_on_scalar(yaml_tree_builder *b, yaml_event_t *event)
{
    const yaml_mark_t *mark = &event->start_mark;
    if (yaml_tree_check_node_event(b, event, event->data.scalar.anchor,
                                   event->data.scalar.tag) != 0)
        return -1;
    char *text = strndup((const char *)event->data.scalar.value, event->data.scalar.length);
    if (text == NULL)
        return YAML_TREE_FAIL_AT(b, mark, "out of memory");
    if (yaml_tree_wants_key(b)) {
        yaml_tree_frame *top = yaml_tree_top(b);
        top->pending_key = text;
        top->key_line = yaml_tree_line_of(mark);
        top->key_column = yaml_tree_column_of(mark);
        return 0;
    }
    yaml_tree_node *node = yaml_tree_node_new(YAML_TREE_SCALAR, b->file,
                                              yaml_tree_line_of(mark), yaml_tree_column_of(mark));
    if (node == NULL) {
        free(text);
        return YAML_TREE_FAIL_AT(b, mark, "out of memory");
    }
    node->value = text;
    node->plain = event->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (yaml_tree_attach(b, node) != 0) {
        yaml_tree_free(node);
        return -1;
    }
    return 0;
}

static int yaml_tree_on_start(yaml_tree_builder *b, yaml_event_t *event, yaml_node_kind kind)
{
    const yaml_mark_t *mark = &event->start_mark;
    const yaml_char_t *anchor = kind == YAML_TREE_MAP ? event->data.mapping_start.anchor
                                                      : event->data.sequence_start.anchor;
    const yaml_char_t *tag = kind == YAML_TREE_MAP ? event->data.mapping_start.tag
                                                   : event->data.sequence_start.tag;
    if (yaml_tree_check_node_event(b, event, anchor, tag) != 0)
        return -1;
    if (yaml_tree_wants_key(b))
        return YAML_TREE_FAIL_AT(b, mark, "mapping keys must be scalars, found a %s",
                                 yaml_tree_kind_name(kind));
    if (b->depth >= YAML_TREE_MAX_DEPTH)
        return YAML_TREE_FAIL_AT(b, mark, "nesting is deeper than %d levels",
                                 YAML_TREE_MAX_DEPTH);
    yaml_tree_node *node =
        yaml_tree_node_new(kind, b->file, yaml_tree_line_of(mark), yaml_tree_column_of(mark));
    if (node == NULL)
        return YAML_TREE_FAIL_AT(b, mark, "out of memory");
    if (yaml_tree_attach(b, node) != 0) {
        yaml_tree_free(node);
        return -1;
    }
    b->stack[b->depth++] = (yaml_tree_frame){.node = node};
    return 0;
}

typedef struct yaml_tree_key_ref {
    const char *key;
    size_t index;
} yaml_tree_key_ref;

static int yaml_tree_compare_key_refs(const void *a, const void *b)
{
    const yaml_tree_key_ref *left = a, *right = b;
    int order = strcmp(left->key, right->key);
    if (order != 0)
        return order;
    return left->index < right->index ? -1 : left->index > right->index;
}

/*
 * Sorting the keys finds duplicates in n log n even in a 100000-key map;
 * of all duplicates we report the one that comes first in the document.
 */
static int yaml_tree_check_duplicates(yaml_tree_builder *b, const yaml_tree_node *map)
{
    if (map->count < 2)
        return 0;
    yaml_tree_key_ref *refs = malloc(map->count * sizeof(*refs));
    if (refs == NULL)
        return yaml_tree_fail(b, map->line, map->column, "out of memory");
    for (size_t i = 0; i < map->count; i++)
        refs[i] = (yaml_tree_key_ref){map->keys[i], i};
    qsort(refs, map->count, sizeof(*refs), yaml_tree_compare_key_refs);
    /* Sorted by (key, index): each group of equal keys starts with the original. */
    size_t duplicate = SIZE_MAX, first = 0, group_first = refs[0].index;
    for (size_t i = 1; i < map->count; i++) {
        if (strcmp(refs[i].key, refs[i - 1].key) != 0) {
            group_first = refs[i].index;
        } else if (refs[i].index < duplicate) {
            duplicate = refs[i].index;
            first = group_first;
        }
    }
    free(refs);
    if (duplicate == SIZE_MAX)
        return 0;
    return yaml_tree_fail(b, map->key_lines[duplicate], map->key_columns[duplicate],
                          "duplicate key '%.80s' (first at line %d)", map->keys[duplicate],
                          map->key_lines[first]);
}

static int yaml_tree_on_end(yaml_tree_builder *b)
{
    yaml_tree_frame *top = yaml_tree_top(b);
    if (top == NULL)
        return yaml_tree_fail(b, 1, 1, "unbalanced collection end");
    b->depth--;
    if (top->node->kind == YAML_TREE_MAP)
        return yaml_tree_check_duplicates(b, top->node);
    return 0;
}

/* An empty stream or an empty document ("---" alone) is an empty mapping. */
static int yaml_tree_on_stream_end(yaml_tree_builder *b, const yaml_event_t *event)
{
    yaml_tree_node *root = b->root;
    int empty = root == NULL ||
                (root->kind == YAML_TREE_SCALAR && root->plain && root->value[0] == '\0');
    if (!empty)
        return 0;
    yaml_tree_node *map = yaml_tree_node_new(YAML_TREE_MAP, b->file, root ? root->line : 1,
                                             root ? root->column : 1);
    if (map == NULL)
        return YAML_TREE_FAIL_AT(b, &event->start_mark, "out of memory");
    yaml_tree_free(root);
    b->root = map;
    return 0;
}

static int yaml_tree_on_event(yaml_tree_builder *b, yaml_event_t *event)
{
    switch (event->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (b->documents++ > 0)
            return YAML_TREE_FAIL_AT(b, &event->start_mark,
                                     "only one document is allowed per file");
        return 0;
    case YAML_ALIAS_EVENT:
        return YAML_TREE_FAIL_AT(b, &event->start_mark, "aliases are not allowed (found '*%.64s')",
                                 (const char *)event->data.alias.anchor);
    case YAML_SCALAR_EVENT:
        return yaml_tree_on_scalar(b, event);
    case YAML_SEQUENCE_START_EVENT:
        return yaml_tree_on_start(b, event, YAML_TREE_SEQUENCE);
    case YAML_MAPPING_START_EVENT:
        return yaml_tree_on_start(b, event, YAML_TREE_MAP);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return yaml_tree_on_end(b);
    case YAML_STREAM_END_EVENT:
        return yaml_tree_on_stream_end(b, event);
    default:
        return 0;
    }
}

/* Reader errors carry a byte offset, not a mark: count lines ourselves. */
static void yaml_tree_offset_position(const yaml_tree_builder *b, size_t offset, int *line,
                                      int *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < offset && i < b->len; i++) {
        if (b->data[i] == '\n') {
            (*line)++;
            *column = 1;
        } else {
            (*column)++;
        }
    }
}

static int yaml_tree_report_parser(yaml_tree_builder *b, const yaml_parser_t *parser)
{
    const char *problem = parser->problem != NULL ? parser->problem : "syntax error";
    if (parser->error == YAML_MEMORY_ERROR)
        return yaml_tree_fail(b, 1, 1, "out of memory while parsing");
    if (parser->error == YAML_READER_ERROR) {
        int line, column;
        yaml_tree_offset_position(b, parser->problem_offset, &line, &column);
        return yaml_tree_fail(b, line, column, "invalid input: %s", problem);
    }
    if (parser->context != NULL)
        return YAML_TREE_FAIL_AT(b, &parser->problem_mark, "%s (%s at line %d, column %d)",
                                 problem, parser->context,
                                 yaml_tree_line_of(&parser->context_mark),
                                 yaml_tree_column_of(&parser->context_mark));
    return YAML_TREE_FAIL_AT(b, &parser->problem_mark, "%s", problem);
}

static int yaml_tree_run(yaml_tree_builder *b, yaml_parser_t *parser)
{
    for (;;) {
        yaml_event_t event;
        if (!yaml_parser_parse(parser, &event))
            return yaml_tree_report_parser(b, parser);
        int finished = event.type == YAML_STREAM_END_EVENT;
        int rc = yaml_tree_on_event(b, &event);
        yaml_event_delete(&event);
        if (rc != 0)
            return -1;
        if (finished)
            return 0;
    }
}

static void yaml_tree_builder_release(yaml_tree_builder *b)
{
    for (size_t i = 0; i < b->depth; i++)
        free(b->stack[i].pending_key);
    yaml_tree_free(b->root); /* open collections hang from the root */
    b->root = NULL;
    yaml_tree_file_release(b->file);
}

int yaml_tree_parse_buffer(const char *name, const char *data, size_t len, yaml_tree_node **out,
                           char *err, size_t err_size)
{
    yaml_tree_builder b = {.data = data, .len = len, .err = err, .err_size = err_size};
    yaml_parser_t parser;
    int rc = -1;
    if (err != NULL && err_size > 0)
        err[0] = '\0';
    if (out == NULL)
        return -1;
    *out = NULL;
    b.file = yaml_tree_file_new(name != NULL ? name : "<buffer>");
    if (b.file == NULL)
        return -1;
    if (len > YAML_TREE_MAX_BYTES) {
        yaml_tree_fail(&b, 1, 1, "document is larger than %u bytes", YAML_TREE_MAX_BYTES);
        goto done;
    }
    if (!yaml_parser_initialize(&parser)) {
        yaml_tree_fail(&b, 1, 1, "out of memory");
        goto done;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)(data ? data : ""), len);
    rc = yaml_tree_run(&b, &parser);
    yaml_parser_delete(&parser);
    if (rc == 0) {
        *out = b.root;
        b.root = NULL;
    }
done:
    yaml_tree_builder_release(&b);
    return rc;
}

/* Reads at most YAML_TREE_MAX_BYTES + 1 bytes, so a huge file costs little. */
static int yaml_tree_read_file(int fd, char **data, size_t *len)
{
    size_t capacity = 64 * 1024, used = 0;
    char *buffer = malloc(capacity);
    if (buffer == NULL)
        return ENOMEM;
    for (;;) {
        if (used == capacity) {
            if (capacity > YAML_TREE_MAX_BYTES)
                break;
            char *grown = realloc(buffer, capacity * 2);
            if (grown == NULL) {
                free(buffer);
                return ENOMEM;
            }
            buffer = grown;
            capacity *= 2;
        }
        ssize_t got = read(fd, buffer + used, capacity - used);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int saved = errno;
            free(buffer);
            return saved;
        }
        if (got == 0)
            break;
        used += (size_t)got;
    }
    *data = buffer;
    *len = used;
    return 0;
}

int yaml_tree_parse_file(const char *path, yaml_tree_node **out, char *err, size_t err_size)
{
    char *data = NULL;
    size_t len = 0;
    if (out != NULL)
        *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int error = fd < 0 ? errno : yaml_tree_read_file(fd, &data, &len);
    if (fd >= 0)
        close(fd);
    if (error != 0) {
        if (err != NULL && err_size > 0)
            snprintf(err, err_size, "%s: cannot read: %s", path, strerror(error));
        return -1;
    }
    int rc = yaml_tree_parse_buffer(path, data, len, out, err, err_size);
    free(data);
    return rc;
}

/* ---- merging ---- */

static long yaml_tree_find_key(const yaml_tree_node *map, const char *key)
{
    for (size_t i = 0; i < map->count; i++)
        if (map->keys[i] != NULL && strcmp(map->keys[i], key) == 0)
            return (long)i;
    return -1;
}

static int yaml_tree_append_pair(yaml_tree_node *map, char *key, int line, int column,
                                 yaml_tree_node *value)
{
    size_t capacity = map->count; /* merged maps are kept exactly sized */
    if (yaml_tree_node_reserve(map, &capacity) != 0)
        return -1;
    map->keys[map->count] = key;
    map->key_lines[map->count] = line;
    map->key_columns[map->count] = column;
    map->items[map->count++] = value;
    return 0;
}

/* Moves every pair of `overlay` into `base`; moved slots become NULL. */
static int yaml_tree_merge_maps(yaml_tree_node *base, yaml_tree_node *overlay)
{
    for (size_t i = 0; i < overlay->count; i++) {
        yaml_tree_node *value = overlay->items[i];
        long at = yaml_tree_find_key(base, overlay->keys[i]);
        if (at < 0) {
            if (yaml_tree_append_pair(base, overlay->keys[i], overlay->key_lines[i],
                                      overlay->key_columns[i], value) != 0)
                return -1;
            overlay->keys[i] = NULL;
            overlay->items[i] = NULL;
            continue;
        }
        yaml_tree_node *old = base->items[at];
        if (old != NULL && old->kind == YAML_TREE_MAP && value->kind == YAML_TREE_MAP) {
            if (yaml_tree_merge_maps(old, value) != 0)
                return -1;
            continue;
        }
        yaml_tree_free(old);
        base->items[at] = value;
        base->key_lines[at] = overlay->key_lines[i];
        base->key_columns[at] = overlay->key_columns[i];
        overlay->items[i] = NULL;
    }
    return 0;
}

int yaml_tree_merge(yaml_tree_node *base, yaml_tree_node *overlay, char *err, size_t err_size)
{
    int rc = -1;
    if (err != NULL && err_size > 0)
        err[0] = '\0';
    else
        err_size = 0;
    if (base == NULL || overlay == NULL) {
        snprintf(err, err_size, "merge: missing document");
        goto done;
    }
    if (base->kind != YAML_TREE_MAP || overlay->kind != YAML_TREE_MAP) {
        const yaml_tree_node *wrong = overlay->kind != YAML_TREE_MAP ? overlay : base;
        snprintf(err, err_size, "%s:%d:%d: top level must be a mapping to merge, got a %s",
                 wrong->file, wrong->line, wrong->column, yaml_tree_kind_name(wrong->kind));
        goto done;
    }
    if (yaml_tree_merge_maps(base, overlay) != 0) {
        snprintf(err, err_size, "%s: out of memory while merging", overlay->file);
        goto done;
    }
    rc = 0;
done:
    yaml_tree_free(overlay);
    return rc;
}
