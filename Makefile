# Twofold: build, run, test and install.
#   make run      set up (Debian packages, build) and run twofoldd in the foreground on ./state
#   make check    the whole test suite (what CI runs)
#   make install  binaries, PAM module, systemd units and a default config where Debian expects them
#   make deb      the Debian package: dist/twofold_<version>_<arch>.deb (docs/packaging.md)
#   make deb-test build it, install it, log in through it, upgrade, remove and purge it (as root)

SWIFT      ?= swift
PREFIX     ?= /usr
SBINDIR    ?= $(PREFIX)/sbin
BINDIR     ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR    ?= /lib/systemd/system
DOCDIR     ?= $(PREFIX)/share/doc/twofold
DESTDIR    ?=
STATE      ?= $(CURDIR)/state

export PATH := /opt/swift/usr/bin:$(PATH)

# Release binaries carry the Swift runtime and Foundation inside (no /opt/swift needed where they are
# installed), and a static twofoldd also maps less: 31 instead of 34 MiB resident at start.
RELEASE    = $(SWIFT) build -c release --static-swift-stdlib

.PHONY: all deps build pam run check test install uninstall clean deb deb-test

# NO_DEPS=1 skips scripts/install-deps.sh (debian/rules sets it: a package build installs nothing).
DEPS = $(if $(NO_DEPS),,deps)

all: build pam

deps:
	@bash scripts/install-deps.sh

build: $(DEPS)
	$(RELEASE) --product twofoldd
	$(RELEASE) --product twofoldctl

pam: $(DEPS)
	$(MAKE) -C pam all

# Foreground daemon with a local state directory: socket $(STATE)/twofold.sock.
run: deps
	$(RELEASE) --product twofoldd
	@mkdir -p $(STATE)
	@echo "twofoldd: state in $(STATE), socket $(STATE)/twofold.sock (Ctrl-C stops)"
	$(CURDIR)/.build/release/twofoldd --config /dev/null --state-directory $(STATE) --socket $(STATE)/twofold.sock

# The smoke benchmark (a few seconds, on the debug build) runs first so the harness never rots;
# swift test's summary stays the last line (it prints its own time). test-setup.sh creates the
# accounts the tests run as. Each other stage prints how long it took (scripts/stage.sh). The deb
# stage makes the release build, builds the package and takes it through install, logins, upgrade,
# remove and purge on this machine (scripts/deb-test.sh, docs/packaging.md).
check:
	@bash scripts/stage.sh deps bash scripts/install-deps.sh
	@bash scripts/stage.sh pam $(MAKE) -C pam all
	@bash scripts/stage.sh test-setup bash scripts/test-setup.sh
	@bash scripts/stage.sh check-exports $(MAKE) -C pam check-exports
	@bash scripts/stage.sh build $(SWIFT) build --build-tests
	@bash scripts/stage.sh bench-smoke env TWOFOLDD=$$($(SWIFT) build --show-bin-path)/twofoldd bash benchmarks/run.sh --smoke
	@bash scripts/stage.sh deb bash scripts/deb-test.sh
	$(SWIFT) test

test: check

# dpkg-buildpackage writes its results next to the source tree (..); they are moved to dist/.
# The release build in .build/release is reused (debian/rules runs `make build pam`).
DEB_VERSION  = $(shell dpkg-parsechangelog -S Version 2>/dev/null)
DEB_ARCH     = $(shell dpkg-architecture -qDEB_HOST_ARCH 2>/dev/null)
DEB_OUTPUTS  = twofold_$(DEB_VERSION)_$(DEB_ARCH).deb twofold_$(DEB_VERSION)_$(DEB_ARCH).buildinfo \
	twofold_$(DEB_VERSION)_$(DEB_ARCH).changes
DEB_DBGSYM   = twofold-dbgsym_$(DEB_VERSION)_$(DEB_ARCH).deb

# The debug symbols (twofold-dbgsym) are built unless DEB_BUILD_OPTIONS has noautodbgsym.
deb: $(DEPS)
	rm -f $(addprefix dist/,$(DEB_OUTPUTS) $(DEB_DBGSYM)) $(addprefix ../,$(DEB_OUTPUTS) $(DEB_DBGSYM))
	dpkg-buildpackage -us -uc -b
	mkdir -p dist
	mv $(addprefix ../,$(DEB_OUTPUTS)) dist/
	if [ -e ../$(DEB_DBGSYM) ]; then mv ../$(DEB_DBGSYM) dist/; fi
	@echo "built dist/twofold_$(DEB_VERSION)_$(DEB_ARCH).deb"

# The package's life cycle on this machine (root; it refuses to run where Twofold is installed).
deb-test:
	bash scripts/deb-test.sh

install: build pam
	install -D -s -m 0755 .build/release/twofoldd $(DESTDIR)$(SBINDIR)/twofoldd
	install -D -s -m 0755 .build/release/twofoldctl $(DESTDIR)$(BINDIR)/twofoldctl
	@if [ -f docs/man/twofoldctl.1 ]; then install -D -m 0644 docs/man/twofoldctl.1 $(DESTDIR)$(PREFIX)/share/man/man1/twofoldctl.1; fi
	$(MAKE) -C pam install DESTDIR=$(DESTDIR)
	install -D -m 0644 systemd/twofoldd.service $(DESTDIR)$(UNITDIR)/twofoldd.service
	install -D -m 0644 systemd/twofoldd.socket $(DESTDIR)$(UNITDIR)/twofoldd.socket
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/twofold/twofoldd.conf ]; then \
		install -D -m 0644 systemd/twofoldd.conf $(DESTDIR)$(SYSCONFDIR)/twofold/twofoldd.conf; \
	else echo "keeping existing $(SYSCONFDIR)/twofold/twofoldd.conf"; fi
	install -D -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -D -m 0644 pam/examples/README.md $(DESTDIR)$(DOCDIR)/pam-examples.md
	@echo "Installed. Next: systemctl daemon-reload && systemctl enable --now twofoldd.socket"

# Leaves /etc/twofold (config, key) and /var/lib/twofold (state) in place: they hold secrets.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/twofoldd $(DESTDIR)$(BINDIR)/twofoldctl $(DESTDIR)$(PREFIX)/share/man/man1/twofoldctl.1
	$(MAKE) -C pam uninstall DESTDIR=$(DESTDIR)
	rm -f $(DESTDIR)$(UNITDIR)/twofoldd.service $(DESTDIR)$(UNITDIR)/twofoldd.socket
	rm -rf $(DESTDIR)$(DOCDIR)

clean:
	$(MAKE) -C pam clean
	rm -rf .build dist
bench bench-smoke: ; bash benchmarks/run.sh $(if $(filter bench-smoke,$@),--smoke,$(BENCH_ARGS))  # benchmarks/README.md
