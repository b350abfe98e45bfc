# tests/unit/local.mk - CUnit programs for the core's pure logic.
UNIT_TEST_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) $(core_libsparkplane_core_la_CFLAGS) \
	-DTEST_SRCDIR='"$(abs_top_srcdir)/tests/unit"' \
	-DTEST_BUILDDIR='"$(abs_top_builddir)"'
UNIT_TEST_LIBS = core/libsparkplane_core.la $(CUNIT_LIBS)
EXTRA_DIST += tests/unit/unit_test.h tests/unit/test_dir.h tests/unit/data

unit_tests = \
	tests/unit/test_units \
	tests/unit/test_yaml_tree \
	tests/unit/test_config \
	tests/unit/test_plugin_options \
	tests/unit/test_store \
	tests/unit/test_http_client \
	tests/unit/test_process \
	tests/unit/test_plugin_abi \
	tests/unit/test_rest_error \
	tests/unit/test_metrics \
	tests/unit/test_job_spec \
	tests/unit/test_openapi
check_PROGRAMS += $(unit_tests)
TESTS += $(unit_tests)

tests_unit_test_units_SOURCES = tests/unit/test_units.c
tests_unit_test_units_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_units_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_yaml_tree_SOURCES = tests/unit/test_yaml_tree.c
tests_unit_test_yaml_tree_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_yaml_tree_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_config_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_plugin_options_SOURCES = tests/unit/test_plugin_options.c
tests_unit_test_plugin_options_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_plugin_options_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_store_SOURCES = tests/unit/test_store.c
tests_unit_test_store_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_store_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_http_client_SOURCES = tests/unit/test_http_client.c
tests_unit_test_http_client_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_http_client_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_process_SOURCES = tests/unit/test_process.c
tests_unit_test_process_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_process_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_plugin_abi_SOURCES = tests/unit/test_plugin_abi.c
tests_unit_test_plugin_abi_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_plugin_abi_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_rest_error_SOURCES = tests/unit/test_rest_error.c
tests_unit_test_rest_error_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_rest_error_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_metrics_SOURCES = tests/unit/test_metrics.c
tests_unit_test_metrics_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_metrics_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_job_spec_SOURCES = tests/unit/test_job_spec.c
tests_unit_test_job_spec_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_job_spec_LDADD = $(UNIT_TEST_LIBS)
unit_tests += tests/unit/test_store_jobs
tests_unit_test_store_jobs_SOURCES = tests/unit/test_store_jobs.c
tests_unit_test_store_jobs_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_store_jobs_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_openapi_SOURCES = tests/unit/test_openapi.c
tests_unit_test_openapi_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_openapi_LDADD = $(UNIT_TEST_LIBS)
unit_tests += tests/unit/test_cluster_registry tests/unit/test_gateway_route
tests_unit_test_cluster_registry_SOURCES = tests/unit/test_cluster_registry.c
tests_unit_test_cluster_registry_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_cluster_registry_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_gateway_route_SOURCES = tests/unit/test_gateway_route.c
tests_unit_test_gateway_route_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_gateway_route_LDADD = $(UNIT_TEST_LIBS)
unit_tests += tests/unit/test_gateway_sessions
tests_unit_test_gateway_sessions_SOURCES = tests/unit/test_gateway_sessions.c
tests_unit_test_gateway_sessions_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_gateway_sessions_LDADD = $(UNIT_TEST_LIBS)
unit_tests += tests/unit/test_spark_connect_prefix
tests_unit_test_spark_connect_prefix_SOURCES = tests/unit/test_spark_connect_prefix.c
tests_unit_test_spark_connect_prefix_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_spark_connect_prefix_LDADD = $(UNIT_TEST_LIBS)
unit_tests += tests/unit/test_gateway_guard
tests_unit_test_gateway_guard_SOURCES = tests/unit/test_gateway_guard.c
tests_unit_test_gateway_guard_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_gateway_guard_LDADD = $(UNIT_TEST_LIBS)
unit_tests += tests/unit/test_store_clusters
tests_unit_test_store_clusters_SOURCES = tests/unit/test_store_clusters.c
tests_unit_test_store_clusters_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_store_clusters_LDADD = $(UNIT_TEST_LIBS)
unit_tests += tests/unit/test_cluster_spec
tests_unit_test_cluster_spec_SOURCES = tests/unit/test_cluster_spec.c
tests_unit_test_cluster_spec_CFLAGS = $(UNIT_TEST_CFLAGS)
tests_unit_test_cluster_spec_LDADD = $(UNIT_TEST_LIBS)
