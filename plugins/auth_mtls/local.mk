# plugins/auth_mtls/local.mk - TLS client certificates verified against a CA
# bundle and CRLs.  Built with only the SDK headers on the include path (plus
# OpenSSL); its test loads the built .so into the mock host
# (tests/unit/mock_host.c), not the daemon.
plugin_LTLIBRARIES += plugins/auth_mtls/auth_mtls.la
plugins_auth_mtls_auth_mtls_la_SOURCES = plugins/auth_mtls/auth_mtls.c \
	plugins/auth_mtls/mtls_identity.c plugins/auth_mtls/mtls_identity.h \
	plugins/auth_mtls/mtls_trust.c plugins/auth_mtls/mtls_trust.h \
	plugins/common/credential_cache.c plugins/common/credential_cache.h \
	plugins/common/team_rules.c plugins/common/team_rules.h
plugins_auth_mtls_auth_mtls_la_CPPFLAGS = -I$(top_srcdir)/sdk/include -I$(top_srcdir)/plugins/common
plugins_auth_mtls_auth_mtls_la_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
plugins_auth_mtls_auth_mtls_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_auth_mtls_auth_mtls_la_LIBADD = $(OPENSSL_LIBS)
EXTRA_DIST += plugins/auth_mtls/README.md

check_PROGRAMS += plugins/auth_mtls/test_auth_mtls
TESTS += plugins/auth_mtls/test_auth_mtls
plugins_auth_mtls_test_auth_mtls_SOURCES = plugins/auth_mtls/test_auth_mtls.c \
	tests/unit/mock_host.c tests/unit/mock_host.h
plugins_auth_mtls_test_auth_mtls_CPPFLAGS = -I$(top_srcdir)/sdk/include \
	-I$(top_srcdir)/tests/unit -DTEST_BUILDDIR='"$(abs_top_builddir)"'
plugins_auth_mtls_test_auth_mtls_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) $(OPENSSL_CFLAGS)
plugins_auth_mtls_test_auth_mtls_LDADD = $(CUNIT_LIBS) $(OPENSSL_LIBS)
# dlopens the built plugin, so the plugin must exist first.
EXTRA_plugins_auth_mtls_test_auth_mtls_DEPENDENCIES = plugins/auth_mtls/auth_mtls.la
