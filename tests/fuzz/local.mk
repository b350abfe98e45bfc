# tests/fuzz/local.mk - libFuzzer targets for the config and request parsers.
#
# Each target is one fuzz_<name>.c defining LLVMFuzzerTestOneInput().  It is
# built two ways:
#  - always: tests/fuzz/replay_<name>, the target plus replay_main.c, which
#    feeds every seed in tests/fuzz/corpus/<name>/ to it once.  These are
#    ordinary check programs, so `make check` replays the corpora (under
#    ASan/UBSan when configured with --enable-asan --enable-ubsan).
#  - with ./configure --enable-fuzz CC=clang: tests/fuzz/fuzz_<name>, a real
#    libFuzzer binary.  The parsers it reaches are compiled into it again
#    with coverage instrumentation, so the fuzzer sees inside them:
#      make tests/fuzz/fuzz_yaml_config
#      ./tests/fuzz/fuzz_yaml_config -max_total_time=60 corpus-copy/ \
#          $(srcdir)/tests/fuzz/corpus/yaml_config
EXTRA_DIST += tests/fuzz/corpus

REPLAY_COMPILE_FLAGS = $(AM_CFLAGS) $(core_libsparkplane_core_la_CFLAGS)
fuzz_replays = tests/fuzz/replay_yaml_config tests/fuzz/replay_units tests/fuzz/replay_job_spec
check_PROGRAMS += $(fuzz_replays)
TESTS += $(fuzz_replays)

tests_fuzz_replay_yaml_config_SOURCES = tests/fuzz/fuzz_yaml_config.c tests/fuzz/replay_main.c
tests_fuzz_replay_yaml_config_CFLAGS = $(REPLAY_COMPILE_FLAGS) \
	-DFUZZ_CORPUS_DIR='"$(abs_top_srcdir)/tests/fuzz/corpus/yaml_config"'
tests_fuzz_replay_yaml_config_LDADD = core/libsparkplane_core.la

tests_fuzz_replay_units_SOURCES = tests/fuzz/fuzz_units.c tests/fuzz/replay_main.c
tests_fuzz_replay_units_CFLAGS = $(REPLAY_COMPILE_FLAGS) \
	-DFUZZ_CORPUS_DIR='"$(abs_top_srcdir)/tests/fuzz/corpus/units"'
tests_fuzz_replay_units_LDADD = core/libsparkplane_core.la

tests_fuzz_replay_job_spec_SOURCES = tests/fuzz/fuzz_job_spec.c tests/fuzz/replay_main.c
tests_fuzz_replay_job_spec_CFLAGS = $(REPLAY_COMPILE_FLAGS) \
	-DFUZZ_CORPUS_DIR='"$(abs_top_srcdir)/tests/fuzz/corpus/job_spec"'
tests_fuzz_replay_job_spec_LDADD = core/libsparkplane_core.la

if ENABLE_FUZZ
FUZZER_COMPILE_FLAGS = $(AM_CFLAGS) $(YAML_CFLAGS) -g -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined
FUZZER_LINK_FLAGS = -fsanitize=fuzzer,address,undefined
# config.c checks server.tls/gateway.tls certificate/key files with tls_server.c (OpenSSL); registry
# entries carry jansson objects (a provisioned cluster's session settings).
fuzz_config_sources = core/config.c core/config_provisioning.c core/yaml_tree.c core/units.c \
	core/diag.c core/log.c core/plugin_options.c core/gateway_route.c core/principal.c \
	core/cluster_registry.c core/tls_server.c
check_PROGRAMS += tests/fuzz/fuzz_yaml_config tests/fuzz/fuzz_units tests/fuzz/fuzz_job_spec

tests_fuzz_fuzz_yaml_config_SOURCES = tests/fuzz/fuzz_yaml_config.c $(fuzz_config_sources)
tests_fuzz_fuzz_yaml_config_CFLAGS = $(FUZZER_COMPILE_FLAGS) $(LIBEVENT_OPENSSL_CFLAGS) \
	$(OPENSSL_CFLAGS) $(JANSSON_CFLAGS)
tests_fuzz_fuzz_yaml_config_LDFLAGS = $(FUZZER_LINK_FLAGS)
tests_fuzz_fuzz_yaml_config_LDADD = $(YAML_LIBS) $(LIBEVENT_OPENSSL_LIBS) $(LIBEVENT_LIBS) \
	$(OPENSSL_LIBS) $(JANSSON_LIBS)

tests_fuzz_fuzz_units_SOURCES = tests/fuzz/fuzz_units.c core/units.c
tests_fuzz_fuzz_units_CFLAGS = $(FUZZER_COMPILE_FLAGS)
tests_fuzz_fuzz_units_LDFLAGS = $(FUZZER_LINK_FLAGS)

tests_fuzz_fuzz_job_spec_SOURCES = tests/fuzz/fuzz_job_spec.c core/job_spec.c
tests_fuzz_fuzz_job_spec_CFLAGS = $(FUZZER_COMPILE_FLAGS) $(JANSSON_CFLAGS) $(OPENSSL_CFLAGS)
tests_fuzz_fuzz_job_spec_LDFLAGS = $(FUZZER_LINK_FLAGS)
tests_fuzz_fuzz_job_spec_LDADD = $(JANSSON_LIBS) $(OPENSSL_LIBS)
endif

# Spark Connect request prefix reader (core/spark_connect_prefix.c, protobuf-c, zlib).
fuzz_replays += tests/fuzz/replay_spark_connect_prefix
tests_fuzz_replay_spark_connect_prefix_SOURCES = tests/fuzz/fuzz_spark_connect_prefix.c \
	tests/fuzz/replay_main.c
tests_fuzz_replay_spark_connect_prefix_CFLAGS = $(REPLAY_COMPILE_FLAGS) \
	-DFUZZ_CORPUS_DIR='"$(abs_top_srcdir)/tests/fuzz/corpus/spark_connect_prefix"'
tests_fuzz_replay_spark_connect_prefix_LDADD = core/libsparkplane_core.la

if ENABLE_FUZZ
check_PROGRAMS += tests/fuzz/fuzz_spark_connect_prefix
tests_fuzz_fuzz_spark_connect_prefix_SOURCES = tests/fuzz/fuzz_spark_connect_prefix.c \
	core/spark_connect_prefix.c
nodist_tests_fuzz_fuzz_spark_connect_prefix_SOURCES = proto/spark_connect_prefix.pb-c.c
tests_fuzz_fuzz_spark_connect_prefix_CFLAGS = $(FUZZER_COMPILE_FLAGS) -I$(top_builddir)/proto \
	$(PROTOBUF_C_CFLAGS) $(ZLIB_CFLAGS)
tests_fuzz_fuzz_spark_connect_prefix_LDFLAGS = $(FUZZER_LINK_FLAGS)
tests_fuzz_fuzz_spark_connect_prefix_LDADD = $(PROTOBUF_C_LIBS) $(ZLIB_LIBS)
$(tests_fuzz_fuzz_spark_connect_prefix_OBJECTS): $(proto_generated)
endif

# The gateway's gRPC framing meter and abuse budgets (core/gateway_guard.c, pure logic).
fuzz_replays += tests/fuzz/replay_gateway_guard
tests_fuzz_replay_gateway_guard_SOURCES = tests/fuzz/fuzz_gateway_guard.c tests/fuzz/replay_main.c
tests_fuzz_replay_gateway_guard_CFLAGS = $(REPLAY_COMPILE_FLAGS) \
	-DFUZZ_CORPUS_DIR='"$(abs_top_srcdir)/tests/fuzz/corpus/gateway_guard"'
tests_fuzz_replay_gateway_guard_LDADD = core/libsparkplane_core.la

if ENABLE_FUZZ
check_PROGRAMS += tests/fuzz/fuzz_gateway_guard
tests_fuzz_fuzz_gateway_guard_SOURCES = tests/fuzz/fuzz_gateway_guard.c core/gateway_guard.c
tests_fuzz_fuzz_gateway_guard_CFLAGS = $(FUZZER_COMPILE_FLAGS) $(NGHTTP2_CFLAGS)
tests_fuzz_fuzz_gateway_guard_LDFLAGS = $(FUZZER_LINK_FLAGS)
tests_fuzz_fuzz_gateway_guard_LDADD = $(NGHTTP2_LIBS)
endif

# Cluster requests (create, scale, ttl) against a fixed provisioning config (core/cluster_spec.c).
fuzz_replays += tests/fuzz/replay_cluster_spec
tests_fuzz_replay_cluster_spec_SOURCES = tests/fuzz/fuzz_cluster_spec.c tests/fuzz/replay_main.c
tests_fuzz_replay_cluster_spec_CFLAGS = $(REPLAY_COMPILE_FLAGS) \
	-DFUZZ_CORPUS_DIR='"$(abs_top_srcdir)/tests/fuzz/corpus/cluster_spec"'
tests_fuzz_replay_cluster_spec_LDADD = core/libsparkplane_core.la

if ENABLE_FUZZ
check_PROGRAMS += tests/fuzz/fuzz_cluster_spec
tests_fuzz_fuzz_cluster_spec_SOURCES = tests/fuzz/fuzz_cluster_spec.c core/cluster_spec.c \
	core/job_spec.c $(fuzz_config_sources)
tests_fuzz_fuzz_cluster_spec_CFLAGS = $(FUZZER_COMPILE_FLAGS) $(JANSSON_CFLAGS) \
	$(LIBEVENT_OPENSSL_CFLAGS) $(OPENSSL_CFLAGS)
tests_fuzz_fuzz_cluster_spec_LDFLAGS = $(FUZZER_LINK_FLAGS)
tests_fuzz_fuzz_cluster_spec_LDADD = $(JANSSON_LIBS) $(YAML_LIBS) $(LIBEVENT_OPENSSL_LIBS) \
	$(LIBEVENT_LIBS) $(OPENSSL_LIBS)
endif

# The auth plugins' parsers: bearer tokens, JWKS and group_map (plugins/auth_jwt), presented
# certificate chains, map and identity entries (plugins/auth_mtls).  The plugin sources are
# compiled into the targets; they include only the SDK, OpenSSL and jansson.
AUTH_JWT_FUZZ_SOURCES = plugins/auth_jwt/jwt_verify.c plugins/auth_jwt/jwt_jwks.c \
	plugins/auth_jwt/jwt_claims.c plugins/common/team_rules.c
AUTH_MTLS_FUZZ_SOURCES = plugins/auth_mtls/mtls_trust.c plugins/auth_mtls/mtls_identity.c \
	plugins/common/team_rules.c
fuzz_replays += tests/fuzz/replay_auth_jwt tests/fuzz/replay_auth_mtls
tests_fuzz_replay_auth_jwt_SOURCES = tests/fuzz/fuzz_auth_jwt.c tests/fuzz/replay_main.c \
	$(AUTH_JWT_FUZZ_SOURCES)
tests_fuzz_replay_auth_jwt_CPPFLAGS = -I$(top_srcdir)/sdk/include -I$(top_srcdir)/plugins/auth_jwt \
	-I$(top_srcdir)/plugins/common
tests_fuzz_replay_auth_jwt_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS) \
	-DFUZZ_CORPUS_DIR='"$(abs_top_srcdir)/tests/fuzz/corpus/auth_jwt"'
tests_fuzz_replay_auth_jwt_LDADD = $(OPENSSL_LIBS) $(JANSSON_LIBS)
tests_fuzz_replay_auth_mtls_SOURCES = tests/fuzz/fuzz_auth_mtls.c tests/fuzz/replay_main.c \
	$(AUTH_MTLS_FUZZ_SOURCES)
tests_fuzz_replay_auth_mtls_CPPFLAGS = -I$(top_srcdir)/sdk/include -I$(top_srcdir)/plugins/auth_mtls \
	-I$(top_srcdir)/plugins/common
tests_fuzz_replay_auth_mtls_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) \
	-DFUZZ_CORPUS_DIR='"$(abs_top_srcdir)/tests/fuzz/corpus/auth_mtls"'
tests_fuzz_replay_auth_mtls_LDADD = $(OPENSSL_LIBS)

if ENABLE_FUZZ
check_PROGRAMS += tests/fuzz/fuzz_auth_jwt tests/fuzz/fuzz_auth_mtls
tests_fuzz_fuzz_auth_jwt_SOURCES = tests/fuzz/fuzz_auth_jwt.c $(AUTH_JWT_FUZZ_SOURCES)
tests_fuzz_fuzz_auth_jwt_CPPFLAGS = $(tests_fuzz_replay_auth_jwt_CPPFLAGS)
tests_fuzz_fuzz_auth_jwt_CFLAGS = $(FUZZER_COMPILE_FLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS)
tests_fuzz_fuzz_auth_jwt_LDFLAGS = $(FUZZER_LINK_FLAGS)
tests_fuzz_fuzz_auth_jwt_LDADD = $(OPENSSL_LIBS) $(JANSSON_LIBS)
tests_fuzz_fuzz_auth_mtls_SOURCES = tests/fuzz/fuzz_auth_mtls.c $(AUTH_MTLS_FUZZ_SOURCES)
tests_fuzz_fuzz_auth_mtls_CPPFLAGS = $(tests_fuzz_replay_auth_mtls_CPPFLAGS)
tests_fuzz_fuzz_auth_mtls_CFLAGS = $(FUZZER_COMPILE_FLAGS) $(OPENSSL_CFLAGS)
tests_fuzz_fuzz_auth_mtls_LDFLAGS = $(FUZZER_LINK_FLAGS)
tests_fuzz_fuzz_auth_mtls_LDADD = $(OPENSSL_LIBS)
endif
