/*
 * plugin_options.h - a plugin's options, checked against its table.
 *
 * plugin_options_build() walks the plugin's sp_option_spec table and the
 * YAML mapping the config gave it: unknown key, wrong type, bad value or a
 * missing required key each become one "file:line:column: plugins.<name>.
 * options.<key>: ..." problem.  Defaults fill what the config left out.
 * The result answers the host API's option_* calls.
 */
#ifndef SPARKPLANE_CORE_PLUGIN_OPTIONS_H
#define SPARKPLANE_CORE_PLUGIN_OPTIONS_H

#include <sparkplane/plugin.h>

#include "diag.h"
#include "yaml_tree.h"

typedef struct plugin_options plugin_options;

/*
 * `options` may be NULL (no options given).  `where_file/line/column` locate
 * the plugin's entry for errors about missing keys.  Returns NULL and adds
 * to `problems` when anything is wrong.
 */
plugin_options *plugin_options_build(const char *plugin_name, const sp_option_spec *specs,
                                     const yaml_tree_node *options, const char *where_file,
                                     int where_line, int where_column, diag_list *problems);
void plugin_options_free(plugin_options *options);

const char *plugin_options_string(const plugin_options *options, const char *key);
int64_t plugin_options_int(const plugin_options *options, const char *key);
size_t plugin_options_list_count(const plugin_options *options, const char *key);
const char *plugin_options_list_item(const plugin_options *options, const char *key, size_t index);

#endif
