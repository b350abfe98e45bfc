# plugins/auth_jwt/local.mk - JWT bearer tokens verified against a JWKS.
# Built with only the SDK headers on the include path (plus OpenSSL and
# jansson); its test loads the built .so into the mock host
# (tests/unit/mock_host.c), not the daemon.
plugin_LTLIBRARIES += plugins/auth_jwt/auth_jwt.la
plugins_auth_jwt_auth_jwt_la_SOURCES = plugins/auth_jwt/auth_jwt.c \
	plugins/common/credential_cache.c plugins/common/credential_cache.h \
	plugins/common/team_rules.c plugins/common/team_rules.h \
	plugins/auth_jwt/jwt_claims.c plugins/auth_jwt/jwt_claims.h \
	plugins/auth_jwt/jwt_jwks.c plugins/auth_jwt/jwt_jwks.h \
	plugins/auth_jwt/jwt_verify.c plugins/auth_jwt/jwt_verify.h
plugins_auth_jwt_auth_jwt_la_CPPFLAGS = -I$(top_srcdir)/sdk/include -I$(top_srcdir)/plugins/common
plugins_auth_jwt_auth_jwt_la_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS)
plugins_auth_jwt_auth_jwt_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_auth_jwt_auth_jwt_la_LIBADD = $(OPENSSL_LIBS) $(JANSSON_LIBS)
EXTRA_DIST += plugins/auth_jwt/README.md

check_PROGRAMS += plugins/auth_jwt/test_auth_jwt
TESTS += plugins/auth_jwt/test_auth_jwt
plugins_auth_jwt_test_auth_jwt_SOURCES = plugins/auth_jwt/test_auth_jwt.c \
	tests/unit/mock_host.c tests/unit/mock_host.h
plugins_auth_jwt_test_auth_jwt_CPPFLAGS = -I$(top_srcdir)/sdk/include \
	-I$(top_srcdir)/tests/unit -DTEST_BUILDDIR='"$(abs_top_builddir)"'
plugins_auth_jwt_test_auth_jwt_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) $(OPENSSL_CFLAGS) \
	$(JANSSON_CFLAGS)
plugins_auth_jwt_test_auth_jwt_LDADD = $(CUNIT_LIBS) $(OPENSSL_LIBS) $(JANSSON_LIBS)
# dlopens the built plugin, so the plugin must exist first.
EXTRA_plugins_auth_jwt_test_auth_jwt_DEPENDENCIES = plugins/auth_jwt/auth_jwt.la
