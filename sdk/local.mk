# sdk/local.mk - the installed plugin SDK: headers, pkg-config file, example.
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
EXTRA_DIST += sdk/sparkplane-sdk.pc.in sdk/examples
