# etc/local.mk - installed configuration and service files.
#
# sparkplane.yaml, tokens.example and conf.d/ go to $(sysconfdir)/sparkplane/;
# the systemd unit is made from sparkplaned.service.in with the configured
# paths (autoconf's @sbindir@ would expand to "${exec_prefix}/sbin", which
# systemd cannot read, so make substitutes the fully expanded values), and
# the sysusers.d entry creates the service user.  Everything installs under
# $(prefix)/$(sysconfdir) and DESTDIR, so make distcheck can install it.
sparkplaneconfdir = $(sysconfdir)/sparkplane
dist_sparkplaneconf_DATA = etc/sparkplane.yaml etc/tokens.example
sparkplaneconfddir = $(sysconfdir)/sparkplane/conf.d
dist_sparkplaneconfd_DATA = etc/conf.d/README

systemdsystemunit_DATA = etc/sparkplaned.service
CLEANFILES += etc/sparkplaned.service
EXTRA_DIST += etc/sparkplaned.service.in

etc/sparkplaned.service: $(srcdir)/etc/sparkplaned.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) etc && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
		$(srcdir)/etc/sparkplaned.service.in > $@.tmp && mv $@.tmp $@

# The service user, for systemd-sysusers.
sysusersdir = $(prefix)/lib/sysusers.d
dist_sysusers_DATA = etc/sysusers.d/sparkplane.conf
