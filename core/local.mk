# core/local.mk - the daemon.  Everything but main.c is a convenience
# library so unit tests link the same code.
noinst_LTLIBRARIES += core/libsparkplane_core.la
core_libsparkplane_core_la_SOURCES = \
	core/diag.c core/diag.h \
	core/log.c core/log.h \
	core/units.c core/units.h \
	core/yaml_tree.c core/yaml_tree.h \
	core/config.c core/config.h \
	core/plugin_options.c core/plugin_options.h \
	core/plugin_host.c core/plugin_host.h \
	core/host_api.c core/host_api.h \
	core/auth_chain.c core/auth_chain.h \
	core/store.c core/store.h \
	core/http_client.c core/http_client.h \
	core/process.c core/process.h \
	core/metrics.c core/metrics.h \
	core/notify.c core/notify.h \
	core/http_guard.c core/http_guard.h \
	core/rest.c core/rest.h \
	core/rest_system.c \
	core/daemon.c core/daemon.h
core_libsparkplane_core_la_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(CURL_CFLAGS) \
	$(JANSSON_CFLAGS) $(YAML_CFLAGS) $(OPENSSL_CFLAGS) $(SQLITE_CFLAGS)
core_libsparkplane_core_la_LIBADD = $(LIBEVENT_LIBS) $(CURL_LIBS) $(JANSSON_LIBS) \
	$(YAML_LIBS) $(OPENSSL_LIBS) $(SQLITE_LIBS)

sbin_PROGRAMS += core/sparkplaned
core_sparkplaned_SOURCES = core/main.c
core_sparkplaned_CFLAGS = $(core_libsparkplane_core_la_CFLAGS)
core_sparkplaned_LDADD = core/libsparkplane_core.la
