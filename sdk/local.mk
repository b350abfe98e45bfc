# sdk/local.mk - the installed plugin SDK: headers, pkg-config file, example.
# The example is shipped in the tarball for users to copy and is also built
# here (check only, never installed) so a change to the headers that breaks
# it fails `make check`; tests build it out of tree against the installed SDK.
sparkplaneincludedir = $(includedir)/sparkplane
sparkplaneinclude_HEADERS = \
	sdk/include/sparkplane/sparkplane.h \
	sdk/include/sparkplane/plugin.h \
	sdk/include/sparkplane/host.h \
	sdk/include/sparkplane/auth.h \
	sdk/include/sparkplane/backend.h \
	sdk/include/sparkplane/policy.h \
	sdk/include/sparkplane/manifest.h
pkgconfigdir = $(libdir)/pkgconfig
pkgconfig_DATA = sdk/sparkplane-sdk.pc
EXTRA_DIST += sdk/sparkplane-sdk.pc.in \
	sdk/examples/hello/hello.c \
	sdk/examples/hello/Makefile \
	sdk/examples/hello/README.md

check_LTLIBRARIES += sdk/examples/hello/hello.la
sdk_examples_hello_hello_la_SOURCES = sdk/examples/hello/hello.c
sdk_examples_hello_hello_la_CPPFLAGS = -I$(top_srcdir)/sdk/include
sdk_examples_hello_hello_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere \
	$(SANITIZER_LDFLAGS)
