# proto/local.mk - protobuf schemas of our own, compiled to C by protoc-c at build time.
#
# The generated .pb-c.c/.pb-c.h are written to the build dir (never the source tree), so VPATH
# builds and `make distcheck` work; only the .proto is distributed.  BUILT_SOURCES makes the
# header exist before anything including it compiles.
#
# The Spark Connect prefix reader (core/spark_connect_prefix.[ch]), the Config call
# (core/spark_connect_call.[ch]) and the generated code are
# added to the core library here, next to the schema they need, with protobuf-c and zlib.
proto_generated = proto/spark_connect_prefix.pb-c.c proto/spark_connect_prefix.pb-c.h \
	proto/spark_connect_calls.pb-c.c proto/spark_connect_calls.pb-c.h
EXTRA_DIST += proto/spark_connect_prefix.proto proto/spark_connect_calls.proto
BUILT_SOURCES = $(proto_generated)
CLEANFILES += $(proto_generated)

proto/spark_connect_prefix.pb-c.c: $(srcdir)/proto/spark_connect_prefix.proto
	$(AM_V_GEN)$(MKDIR_P) proto && \
	  $(PROTOC_C) --proto_path=$(srcdir)/proto --c_out=proto \
	    $(srcdir)/proto/spark_connect_prefix.proto
# One protoc-c run writes both files; the header rule only re-runs it if the header was lost.
proto/spark_connect_prefix.pb-c.h: proto/spark_connect_prefix.pb-c.c
	@test -f $@ || { rm -f proto/spark_connect_prefix.pb-c.c; \
	  $(MAKE) $(AM_MAKEFLAGS) proto/spark_connect_prefix.pb-c.c; }

proto/spark_connect_calls.pb-c.c: $(srcdir)/proto/spark_connect_calls.proto
	$(AM_V_GEN)$(MKDIR_P) proto && \
	  $(PROTOC_C) --proto_path=$(srcdir)/proto --c_out=proto \
	    $(srcdir)/proto/spark_connect_calls.proto
proto/spark_connect_calls.pb-c.h: proto/spark_connect_calls.pb-c.c
	@test -f $@ || { rm -f proto/spark_connect_calls.pb-c.c; \
	  $(MAKE) $(AM_MAKEFLAGS) proto/spark_connect_calls.pb-c.c; }

core_libsparkplane_core_la_SOURCES += core/spark_connect_prefix.c core/spark_connect_prefix.h \
	core/spark_connect_call.c core/spark_connect_call.h
nodist_core_libsparkplane_core_la_SOURCES += $(proto_generated)
core_libsparkplane_core_la_CFLAGS += -I$(top_builddir)/proto $(PROTOBUF_C_CFLAGS) $(ZLIB_CFLAGS)
core_libsparkplane_core_la_LIBADD += $(PROTOBUF_C_LIBS) $(ZLIB_LIBS)

# BUILT_SOURCES only applies to `make all/check/install`; a single target
# (`make tests/fuzz/fuzz_spark_connect_prefix`) needs the header too.
$(core_libsparkplane_core_la_OBJECTS): $(proto_generated)
