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
	core/audit.c core/audit.h \
	core/auth_chain.c core/auth_chain.h \
	core/store.c core/store.h \
	core/store_jobs.c core/store_jobs.h core/store_internal.h \
	core/store_clusters.c \
	core/store_idempotency.c \
	core/job_spec.c core/job_spec.h \
	core/runner.c core/runner.h \
	core/rest_jobs.c \
	core/rest_clusters.c \
	core/principal.c core/principal.h \
	core/rest_openapi.c \
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

# The OpenAPI document served at /api/v1/openapi.json lives in the tree as
# core/openapi.json; this embeds it as a NUL-terminated byte array with od
# and sed (POSIX tools only, written to the build dir, so VPATH builds and
# make distcheck work).
nodist_core_libsparkplane_core_la_SOURCES = core/openapi_json.c
EXTRA_DIST += core/openapi.json
CLEANFILES += core/openapi_json.c
core/openapi_json.c: $(srcdir)/core/openapi.json
	$(AM_V_GEN)$(MKDIR_P) core && { \
	  echo '/* Generated from core/openapi.json by core/local.mk: do not edit. */'; \
	  echo 'extern const char rest_openapi_document[];'; \
	  echo 'const char rest_openapi_document[] = {'; \
	  od -An -v -tx1 $(srcdir)/core/openapi.json | \
	    sed -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g' -e 's/  */ /g'; \
	  echo '0x00};'; \
	} > $@.tmp && mv $@.tmp $@

# Spark Connect gateway: clusters and routing (pure logic).
core_libsparkplane_core_la_SOURCES += \
	core/cluster_registry.c core/cluster_registry.h \
	core/gateway_route.c core/gateway_route.h \
	core/gateway_sessions.c core/gateway_sessions.h

# Spark Connect gateway: listeners, HTTP/2 sessions both ways, proxying.
core_libsparkplane_core_la_SOURCES += \
	core/gateway.c core/gateway.h core/gateway_internal.h \
	core/gateway_stream.c \
	core/gateway_metrics.c core/gateway_metrics.h \
	core/gateway_upstream.c core/gateway_upstream.h \
	core/h2_io.c core/h2_io.h
core_libsparkplane_core_la_CFLAGS += $(NGHTTP2_CFLAGS)
core_libsparkplane_core_la_LIBADD += $(NGHTTP2_LIBS)

# TLS listeners: the shared server side (REST and gateway), the gateway's ALPN h2.
core_libsparkplane_core_la_SOURCES += core/tls_server.c core/tls_server.h \
	core/gateway_tls.c core/gateway_tls.h
core_libsparkplane_core_la_CFLAGS += $(LIBEVENT_OPENSSL_CFLAGS)
core_libsparkplane_core_la_LIBADD += $(LIBEVENT_OPENSSL_LIBS)

# Spark Connect gateway: per-connection abuse budgets, timeouts, gRPC framing (pure logic).
core_libsparkplane_core_la_SOURCES += core/gateway_guard.c core/gateway_guard.h

# Provisioned clusters: lifecycle, hot pools, TTL reaper, discovery (clusters.h).
core_libsparkplane_core_la_SOURCES += core/clusters.c core/clusters.h \
	core/clusters_internal.h core/clusters_lifecycle.c core/clusters_pools.c \
	core/store_clusters.h core/cluster_spec.h

# Self-service clusters: the provisioning: section and request checks (pure logic).
core_libsparkplane_core_la_SOURCES += \
	core/config_provisioning.c core/config_internal.h \
	core/cluster_spec.c
