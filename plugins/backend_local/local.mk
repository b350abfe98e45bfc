# plugins/backend_local/local.mk - the "local" backend: real Spark on this
# machine (spark-submit --master local[N] for jobs; a standalone master,
# workers and a Spark Connect server per cluster).  Built with only the SDK
# headers (and jansson for the JSON it speaks); its test loads the built .so
# into the mock host (tests/unit/mock_host.c), which runs real child
# processes, and uses a fake spark-submit / spark-class the test writes.
plugin_LTLIBRARIES += plugins/backend_local/backend_local.la
plugins_backend_local_backend_local_la_SOURCES = plugins/backend_local/backend_local.c \
	plugins/backend_local/local_cluster.c plugins/backend_local/local_command.c \
	plugins/backend_local/local_log.c plugins/backend_local/local_record.c \
	plugins/backend_local/local_backend.h
plugins_backend_local_backend_local_la_CPPFLAGS = -D_GNU_SOURCE -I$(top_srcdir)/sdk/include
plugins_backend_local_backend_local_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
plugins_backend_local_backend_local_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_backend_local_backend_local_la_LIBADD = $(JANSSON_LIBS)
EXTRA_DIST += plugins/backend_local/README.md

check_PROGRAMS += plugins/backend_local/test_backend_local
TESTS += plugins/backend_local/test_backend_local
plugins_backend_local_test_backend_local_SOURCES = plugins/backend_local/test_backend_local.c \
	tests/unit/mock_host.c tests/unit/mock_host.h
plugins_backend_local_test_backend_local_CPPFLAGS = -D_GNU_SOURCE -I$(top_srcdir)/sdk/include \
	-I$(top_srcdir)/tests/unit -DTEST_BUILDDIR='"$(abs_top_builddir)"'
plugins_backend_local_test_backend_local_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) $(JANSSON_CFLAGS)
plugins_backend_local_test_backend_local_LDADD = $(CUNIT_LIBS) $(JANSSON_LIBS)
# dlopens the built plugin, so the plugin must exist first.
EXTRA_plugins_backend_local_test_backend_local_DEPENDENCIES = plugins/backend_local/backend_local.la

check_PROGRAMS += plugins/backend_local/test_local_cluster
TESTS += plugins/backend_local/test_local_cluster
plugins_backend_local_test_local_cluster_SOURCES = plugins/backend_local/test_local_cluster.c \
	tests/unit/mock_host.c tests/unit/mock_host.h
plugins_backend_local_test_local_cluster_CPPFLAGS = $(plugins_backend_local_test_backend_local_CPPFLAGS)
plugins_backend_local_test_local_cluster_CFLAGS = $(plugins_backend_local_test_backend_local_CFLAGS)
plugins_backend_local_test_local_cluster_LDADD = $(plugins_backend_local_test_backend_local_LDADD)
EXTRA_plugins_backend_local_test_local_cluster_DEPENDENCIES = plugins/backend_local/backend_local.la
