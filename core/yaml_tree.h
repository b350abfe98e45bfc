/*
 * yaml_tree.h - YAML documents as a small tree of located nodes.
 *
 * libyaml parses; we keep every node's file, line and column so that any
 * later error can say where it comes from.  Hostile input is expected:
 * documents are bounded in size, depth and node count, aliases and anchors
 * are refused (no billion laughs), duplicate keys are errors, and only a
 * single document per file is accepted.
 *
 * Conf.d drop-ins merge with yaml_tree_merge(): mappings merge key by key
 * (recursively, in document order, new keys appended); scalars and
 * sequences from the overlay replace the base.
 */
#ifndef SPARKPLANE_CORE_YAML_TREE_H
#define SPARKPLANE_CORE_YAML_TREE_H

#include <stddef.h>

#define YAML_TREE_MAX_BYTES (4u * 1024u * 1024u)
#define YAML_TREE_MAX_DEPTH 64
#define YAML_TREE_MAX_NODES 200000

typedef enum yaml_node_kind {
    YAML_TREE_SCALAR = 1,
    YAML_TREE_MAP = 2,
    YAML_TREE_SEQUENCE = 3
} yaml_node_kind;

typedef struct yaml_tree_node yaml_tree_node;

struct yaml_tree_node {
    yaml_node_kind kind;
    const char *file;   /* shared, owned by the document root */
    int line;           /* 1-based */
    int column;         /* 1-based */
    char *value;        /* SCALAR: the text ("" for empty, never NULL) */
    int plain;          /* SCALAR: unquoted (so "null"/"~" mean null) */
    size_t count;       /* MAP: pairs, SEQUENCE: items */
    char **keys;        /* MAP: key text per pair */
    int *key_lines;     /* MAP: where each key is */
    int *key_columns;
    yaml_tree_node **items; /* MAP: values, SEQUENCE: items */
};

/*
 * Parse a file or a buffer (`name` is used in locations).  On failure
 * returns -1 and writes "file:line:column: reason" into err.  An empty
 * document yields an empty MAP.
 */
int yaml_tree_parse_file(const char *path, yaml_tree_node **out, char *err, size_t err_size);
int yaml_tree_parse_buffer(const char *name, const char *data, size_t len,
                           yaml_tree_node **out, char *err, size_t err_size);

void yaml_tree_free(yaml_tree_node *node);

/* The value for `key` in a MAP, or NULL. */
yaml_tree_node *yaml_tree_map_get(const yaml_tree_node *map, const char *key);

/* Merge `overlay` into `base` (both MAPs); overlay is consumed. */
int yaml_tree_merge(yaml_tree_node *base, yaml_tree_node *overlay, char *err, size_t err_size);

/* "mapping", "sequence", "scalar" - for messages. */
const char *yaml_tree_kind_name(yaml_node_kind kind);

#endif
