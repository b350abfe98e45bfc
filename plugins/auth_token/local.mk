# plugins/auth_token/local.mk - bearer tokens from a file (SHA-256 hashes).
# Built with only the SDK headers on the include path.
plugin_LTLIBRARIES += plugins/auth_token/auth_token.la
plugins_auth_token_auth_token_la_SOURCES = plugins/auth_token/auth_token.c
plugins_auth_token_auth_token_la_CPPFLAGS = -I$(top_srcdir)/sdk/include
plugins_auth_token_auth_token_la_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
plugins_auth_token_auth_token_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_auth_token_auth_token_la_LIBADD = $(OPENSSL_LIBS)
