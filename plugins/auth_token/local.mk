# plugins/auth_token/local.mk - bearer tokens from a file (SHA-256 hashes).
# Built with only the SDK headers on the include path; its test loads the
# built .so into the mock host (tests/unit/mock_host.c), not the daemon.
plugin_LTLIBRARIES += plugins/auth_token/auth_token.la
plugins_auth_token_auth_token_la_SOURCES = plugins/auth_token/auth_token.c \
	plugins/common/team_rules.c plugins/common/team_rules.h
plugins_auth_token_auth_token_la_CPPFLAGS = -I$(top_srcdir)/sdk/include -I$(top_srcdir)/plugins/common
plugins_auth_token_auth_token_la_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
plugins_auth_token_auth_token_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_auth_token_auth_token_la_LIBADD = $(OPENSSL_LIBS)
EXTRA_DIST += plugins/auth_token/README.md

check_PROGRAMS += plugins/auth_token/test_auth_token
TESTS += plugins/auth_token/test_auth_token
plugins_auth_token_test_auth_token_SOURCES = plugins/auth_token/test_auth_token.c \
	tests/unit/mock_host.c tests/unit/mock_host.h
plugins_auth_token_test_auth_token_CPPFLAGS = -I$(top_srcdir)/sdk/include \
	-I$(top_srcdir)/tests/unit -DTEST_BUILDDIR='"$(abs_top_builddir)"'
plugins_auth_token_test_auth_token_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS)
plugins_auth_token_test_auth_token_LDADD = $(CUNIT_LIBS)
# dlopens the built plugin, so the plugin must exist first.
EXTRA_plugins_auth_token_test_auth_token_DEPENDENCIES = plugins/auth_token/auth_token.la
