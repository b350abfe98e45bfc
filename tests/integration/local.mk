# tests/integration/local.mk - the real daemon under pytest (see tests/integration/README.md).
#
# run.sh is one automake test: it runs the whole pytest suite against the
# daemon and plugins of this build tree, and skips (77) when pytest or
# requests is missing unless SPARKPLANE_REQUIRE_INTEGRATION=1.
# AM_TESTS_ENVIRONMENT serves the whole Makefile; it is defined here only.
AM_TESTS_ENVIRONMENT = abs_top_builddir='$(abs_top_builddir)' abs_top_srcdir='$(abs_top_srcdir)'; \
	export abs_top_builddir abs_top_srcdir;

TESTS += tests/integration/run.sh
dist_noinst_SCRIPTS += tests/integration/run.sh
EXTRA_DIST += \
	tests/integration/README.md \
	tests/integration/clusters_support.py \
	tests/integration/conftest.py \
	tests/integration/helpers.py \
	tests/integration/spark_apps/cluster_client.py \
	tests/integration/spark_apps/count_rows.py \
	tests/integration/spark_apps/fail_first_attempt.py \
	tests/integration/spark_apps/gateway_client.py \
	tests/integration/spark_apps/gateway_tls_client.py \
	tests/integration/spark_apps/raise_error.py \
	tests/integration/spark_apps/sleep_in_udf.py \
	tests/integration/test_auth.py \
	tests/integration/test_auth_jwt.py \
	tests/integration/test_auth_mtls.py \
	tests/integration/test_cli.py \
	tests/integration/test_clusters_api.py \
	tests/integration/test_clusters_spark.py \
	tests/integration/test_concurrency.py \
	tests/integration/test_errors.py \
	tests/integration/spark_connect.py \
	tests/integration/test_gateway.py \
	tests/integration/test_gateway_badinput.py \
	tests/integration/test_gateway_h2spec.py \
	tests/integration/test_gateway_spark.py \
	tests/integration/test_gateway_streams.py \
	tests/integration/test_gateway_tls.py \
	tests/integration/test_isolation_matrix.py \
	tests/integration/test_jobs_api.py \
	tests/integration/test_jobs_runner.py \
	tests/integration/test_jobs_spark.py \
	tests/integration/test_lifecycle.py \
	tests/integration/test_limits.py \
	tests/integration/test_reload.py \
	tests/integration/test_rest_tls.py \
	tests/integration/test_system.py
# make check builds `all` (sparkplaned, the plugins) before it runs any test.
