/*
 * fuzz_yaml_config.c - libFuzzer target: bytes -> config_load_buffer().
 *
 * This is the path hostile or broken config files take: libyaml, the
 * located tree and its limits, the schema walk and its messages.  When the
 * input happens to be a valid config, every plugin's options are also run
 * through plugin_options_build() with a table using every option type, so
 * the option parsers are fuzzed with real YAML shapes.
 */
#include <stdint.h>
#include <stdlib.h>

/* By path: a plain "config.h" would find autoconf's header in the build dir. */
#include "../../core/config.h"
#include "plugin_options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const sp_option_spec fuzz_specs[] = {
    {"string", SP_OPTION_STRING, "text", 0, "a string"},
    {"int", SP_OPTION_INT, "-1", 0, "an integer"},
    {"bool", SP_OPTION_BOOL, "on", 0, "a flag"},
    {"duration", SP_OPTION_DURATION, "5m", 0, "a duration"},
    {"size", SP_OPTION_SIZE, "1MiB", 0, "a size"},
    {"list", SP_OPTION_STRING_LIST, "[a, b]", 0, "a list"},
    {"needed", SP_OPTION_STRING, NULL, 1, "required"},
    {NULL, 0, NULL, 0, NULL}};

static void fuzz_plugin_options(const config *cfg, diag_list *problems)
{
    for (size_t i = 0; i < cfg->plugin_count; i++) {
        const config_plugin *plugin = &cfg->plugins[i];
        plugin_options *options =
            plugin_options_build(plugin->name, fuzz_specs, plugin->options, plugin->file,
                                 plugin->line, plugin->column, problems);
        if (options == NULL)
            continue;
        (void)plugin_options_int(options, "duration");
        (void)plugin_options_list_item(options, "list", 0);
        plugin_options_free(options);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    diag_list problems = {0};
    config *cfg = NULL;
    int rc = config_load_buffer("fuzz.yaml", (const char *)data, size, "/plugins", &cfg,
                                &problems);
    /* The contract callers rely on: a config exactly when nothing was wrong. */
    if ((rc == 0) != (cfg != NULL) || (rc == 0) != (problems.count == 0))
        abort();
    if (cfg != NULL)
        fuzz_plugin_options(cfg, &problems);
    config_free(cfg);
    diag_clear(&problems);
    return 0;
}
