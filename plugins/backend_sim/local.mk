# plugins/backend_sim/local.mk - a SIMULATED backend ("sim") for load tests:
# jobs run on host timers, no process, no Spark.  Never the default backend.
# Built with only the SDK headers (and jansson); its test loads the built .so
# into the mock host (tests/unit/mock_host.c) and drives time by its timers.
plugin_LTLIBRARIES += plugins/backend_sim/backend_sim.la
plugins_backend_sim_backend_sim_la_SOURCES = plugins/backend_sim/backend_sim.c
plugins_backend_sim_backend_sim_la_CPPFLAGS = -I$(top_srcdir)/sdk/include
plugins_backend_sim_backend_sim_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
plugins_backend_sim_backend_sim_la_LDFLAGS = $(PLUGIN_LDFLAGS)
plugins_backend_sim_backend_sim_la_LIBADD = $(JANSSON_LIBS)
EXTRA_DIST += plugins/backend_sim/README.md

check_PROGRAMS += plugins/backend_sim/test_backend_sim
TESTS += plugins/backend_sim/test_backend_sim
plugins_backend_sim_test_backend_sim_SOURCES = plugins/backend_sim/test_backend_sim.c \
	tests/unit/mock_host.c tests/unit/mock_host.h
plugins_backend_sim_test_backend_sim_CPPFLAGS = -I$(top_srcdir)/sdk/include \
	-I$(top_srcdir)/tests/unit -DTEST_BUILDDIR='"$(abs_top_builddir)"'
plugins_backend_sim_test_backend_sim_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) $(JANSSON_CFLAGS)
plugins_backend_sim_test_backend_sim_LDADD = $(CUNIT_LIBS) $(JANSSON_LIBS)
# dlopens the built plugin, so the plugin must exist first.
EXTRA_plugins_backend_sim_test_backend_sim_DEPENDENCIES = plugins/backend_sim/backend_sim.la
