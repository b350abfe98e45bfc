# cli/local.mk - `sparkplane`, the command-line client, and its unit tests.
#
# The modules that decide things without the network (arguments, settings,
# job files, tables) form a convenience library so the unit tests link the
# same code.  The core's yaml_tree and units are compiled in rather than
# linking libsparkplane_core, so the client needs only libcurl, jansson
# and libyaml - not libevent, SQLite or OpenSSL.
noinst_LTLIBRARIES += cli/libsparkplane_cli.la
cli_libsparkplane_cli_la_SOURCES = \
	cli/cli_args.c cli/cli_args.h \
	cli/cli_settings.c cli/cli_settings.h \
	cli/cli_job_file.c cli/cli_job_file.h \
	cli/cli_format.c cli/cli_format.h \
	cli/cli_http.c cli/cli_http.h \
	core/yaml_tree.c core/yaml_tree.h \
	core/units.c core/units.h
cli_libsparkplane_cli_la_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(JANSSON_CFLAGS) $(YAML_CFLAGS)
cli_libsparkplane_cli_la_LIBADD = $(CURL_LIBS) $(JANSSON_LIBS) $(YAML_LIBS)

bin_PROGRAMS += cli/sparkplane
cli_sparkplane_SOURCES = cli/sparkplane.c
cli_sparkplane_CFLAGS = $(cli_libsparkplane_cli_la_CFLAGS)
cli_sparkplane_LDADD = cli/libsparkplane_cli.la

EXTRA_DIST += cli/README.md tests/integration/test_cli_jobs.py

cli_unit_tests = \
	tests/unit/test_cli_args \
	tests/unit/test_cli_format \
	tests/unit/test_cli_job_file
check_PROGRAMS += $(cli_unit_tests)
TESTS += $(cli_unit_tests)

CLI_TEST_CFLAGS = $(cli_libsparkplane_cli_la_CFLAGS) $(CUNIT_CFLAGS) -I$(top_srcdir)/cli \
	-DTEST_SRCDIR='"$(abs_top_srcdir)/tests/unit"'
CLI_TEST_LIBS = cli/libsparkplane_cli.la $(CUNIT_LIBS)
tests_unit_test_cli_args_SOURCES = tests/unit/test_cli_args.c
tests_unit_test_cli_args_CFLAGS = $(CLI_TEST_CFLAGS)
tests_unit_test_cli_args_LDADD = $(CLI_TEST_LIBS)
tests_unit_test_cli_format_SOURCES = tests/unit/test_cli_format.c
tests_unit_test_cli_format_CFLAGS = $(CLI_TEST_CFLAGS)
tests_unit_test_cli_format_LDADD = $(CLI_TEST_LIBS)
tests_unit_test_cli_job_file_SOURCES = tests/unit/test_cli_job_file.c
tests_unit_test_cli_job_file_CFLAGS = $(CLI_TEST_CFLAGS)
tests_unit_test_cli_job_file_LDADD = $(CLI_TEST_LIBS)
