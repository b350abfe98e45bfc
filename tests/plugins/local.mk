# tests/plugins/local.mk - deliberately broken plugins (and good ones) for
# tests/unit/test_plugin_abi.  Built only by `make check`, never installed:
# check_LTLIBRARIES with -rpath so libtool makes real shared objects.
# Several objects come from one source with different -D flags.
TEST_PLUGIN_LDFLAGS = -module -avoid-version -shared -rpath /nowhere $(SANITIZER_LDFLAGS)
TEST_PLUGIN_CPPFLAGS = -I$(top_srcdir)/sdk/include

test_plugins = \
	tests/plugins/good.la \
	tests/plugins/dup_a.la \
	tests/plugins/dup_b.la \
	tests/plugins/bad_magic.la \
	tests/plugins/future_minor.la \
	tests/plugins/other_major.la \
	tests/plugins/old_major.la \
	tests/plugins/short_descriptor.la \
	tests/plugins/no_symbol.la \
	tests/plugins/unknown_kind.la \
	tests/plugins/init_fails.la
check_LTLIBRARIES += $(test_plugins)

tests_plugins_good_la_SOURCES = tests/plugins/good.c
tests_plugins_good_la_CPPFLAGS = $(TEST_PLUGIN_CPPFLAGS)
tests_plugins_good_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_dup_a_la_SOURCES = tests/plugins/good.c
tests_plugins_dup_a_la_CPPFLAGS = $(TEST_PLUGIN_CPPFLAGS) -DPLUGIN_NAME='"dup"'
tests_plugins_dup_a_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_dup_b_la_SOURCES = tests/plugins/good.c
tests_plugins_dup_b_la_CPPFLAGS = $(TEST_PLUGIN_CPPFLAGS) -DPLUGIN_NAME='"dup"'
tests_plugins_dup_b_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_bad_magic_la_SOURCES = tests/plugins/bad_magic.c
tests_plugins_bad_magic_la_CPPFLAGS = $(TEST_PLUGIN_CPPFLAGS)
tests_plugins_bad_magic_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_future_minor_la_SOURCES = tests/plugins/future_minor.c
tests_plugins_future_minor_la_CPPFLAGS = $(TEST_PLUGIN_CPPFLAGS)
tests_plugins_future_minor_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_other_major_la_SOURCES = tests/plugins/header_only.c
tests_plugins_other_major_la_CPPFLAGS = $(TEST_PLUGIN_CPPFLAGS) \
	-DHEADER_ABI_MAJOR=2 -DHEADER_ABI_MINOR=0
tests_plugins_other_major_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_old_major_la_SOURCES = tests/plugins/header_only.c
tests_plugins_old_major_la_CPPFLAGS = $(TEST_PLUGIN_CPPFLAGS) \
	-DHEADER_ABI_MAJOR=0 -DHEADER_ABI_MINOR=9
tests_plugins_old_major_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_short_descriptor_la_SOURCES = tests/plugins/header_only.c
tests_plugins_short_descriptor_la_CPPFLAGS = $(TEST_PLUGIN_CPPFLAGS) \
	-DHEADER_ABI_MAJOR=1 -DHEADER_ABI_MINOR=0
tests_plugins_short_descriptor_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_no_symbol_la_SOURCES = tests/plugins/no_symbol.c
tests_plugins_no_symbol_la_CPPFLAGS = $(TEST_PLUGIN_CPPFLAGS)
tests_plugins_no_symbol_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_unknown_kind_la_SOURCES = tests/plugins/unknown_kind.c
tests_plugins_unknown_kind_la_CPPFLAGS = $(TEST_PLUGIN_CPPFLAGS)
tests_plugins_unknown_kind_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)
tests_plugins_init_fails_la_SOURCES = tests/plugins/init_fails.c
tests_plugins_init_fails_la_CPPFLAGS = $(TEST_PLUGIN_CPPFLAGS)
tests_plugins_init_fails_la_LDFLAGS = $(TEST_PLUGIN_LDFLAGS)

# test_plugin_abi dlopens these, so `make check` must build them first.
EXTRA_tests_unit_test_plugin_abi_DEPENDENCIES = $(test_plugins)
