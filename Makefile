# swift-nspawn: build, test, try, install. Everything that changes the host needs root.
PREFIX ?= /usr/local
MACHINES ?= /var/lib/machines
SWIFT ?= swift

# What building and testing need from Debian (the C libraries, the test trees' busybox, the
# reference implementations the benchmarks compare with).
DEB_PACKAGES = pkg-config libsystemd-dev libseccomp-dev libcap-dev libblkid-dev busybox-static \
	systemd-container dbus bubblewrap hyperfine util-linux bsdutils python3 gcc libc6-dev libstdc++-12-dev debootstrap \
	iproute2 nftables fdisk e2fsprogs zsh containerd podman

RELEASE_BINARY = .build/release/swift-nspawn

.PHONY: all deps vm-deps build completions check vm-check demo demo-busybox install bench clean

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# The VM lab's own needs: qemu without its desktop recommendations.
VM_PACKAGES = qemu-system-x86 e2fsprogs

vm-deps:
	@missing=$$(for p in $(VM_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The release binary is linked for a small resident set and a short start (bench/memory and
# bench/startup measure them): the Swift runtime, libstdc++, libseccomp and libcap statically (their
# archives are found first through STATIC_LIBS, libgcc likewise), so that the dynamic loader opens
# only libc and libm at start (libsystemd is opened later, by systemd_loader.c); by lld with packed
# relative relocations (RELR), exporting no symbols, and without $ORIGIN in its run path (the
# dynamic loader would look there first for every library). Its segments are aligned to 64 KiB, so
# the kernel loads it at a 64 KiB boundary: the pages it maps around each fault (fault-around,
# 64 KiB windows) are then the same in every swift-nspawn, and shared between them rather than
# private to each. That leaves 24 of the 28 bits of address randomisation of the binary (as on
# every 64 KiB-page system); its libraries, heap and stack keep all of theirs. Its symbols are
# bound at load (-z now, full RELRO): the outer child and PID 1 then inherit a resolved GOT instead
# of each looking up the libc functions they call first (start 1-1.6% shorter), and the GOT is
# read-only from then on. Its code asks for a generic type's metadata through the type's accessor
# (-disable-concrete-type-metadata-mangled-name-accessors), not by a mangled name the runtime
# demangles and checks against every conformance record on first use: that was ~8% of a start's CPU,
# paid again by the outer child and PID 1 for what the supervisor had not used yet (start 4% shorter).
# Each function has a section of its own, and the functions a start runs come first in .text
# (tools/startup-functions.order, written by tools/make-startup-order): a start then touches fewer
# of the binary's 64 KiB fault-around windows, in the supervisor and again in the outer child and
# PID 1, which fault the text in anew after the clone (602 -> ~520 page faults a start, start 7%
# shorter). SwiftPM does not know the list: a newer one makes build remove the binary to relink it.
STATIC_LIBS = .build/static-libs
STATIC_ARCHIVES = $(foreach archive,libstdc++.a libseccomp.a libcap.a,"$$(gcc -print-file-name=$(archive))")
RELEASE_FLAGS = -c release --static-swift-stdlib --disable-local-rpath -Xswiftc -use-ld=lld -Xswiftc -Xclang-linker -Xswiftc -static-libgcc \
	-Xlinker -L$(CURDIR)/$(STATIC_LIBS) -Xlinker --no-export-dynamic -Xlinker -z -Xlinker pack-relative-relocs \
	-Xlinker -z -Xlinker max-page-size=0x10000 -Xlinker -z -Xlinker now \
	-Xswiftc -Xfrontend -Xswiftc -disable-concrete-type-metadata-mangled-name-accessors \
	-Xswiftc -Xfrontend -Xswiftc -function-sections \
	-Xlinker --symbol-ordering-file=$(CURDIR)/tools/startup-functions.order -Xlinker --no-warn-symbol-ordering

# SwiftPM leaves a TemporaryDirectory.* behind in $TMPDIR on every build and test run: they go to
# a directory of the build's own, removed after.
SWIFT_TMP = $(CURDIR)/.build/tmp

build: deps
	@mkdir -p $(STATIC_LIBS) $(SWIFT_TMP) && ln -sf $(STATIC_ARCHIVES) $(STATIC_LIBS)/
	@[ ! $(RELEASE_BINARY) -ot tools/startup-functions.order ] || rm -f $(RELEASE_BINARY)
	TMPDIR=$(SWIFT_TMP) $(SWIFT) build $(RELEASE_FLAGS)
	@rm -rf $(SWIFT_TMP)
	@# The statically linked Swift concurrency runtime and libdispatch come in with any main-actor
	@# code (a variable at the top level of main.swift is enough): never needed, they cost memory.
	@! nm $(RELEASE_BINARY) | grep -q ' _dispatch_queue_attrs$$' || \
		{ echo "$(RELEASE_BINARY) links the Swift concurrency runtime and libdispatch; see Sources/swift-nspawn/main.swift." >&2; exit 1; }
	@! readelf -d $(RELEASE_BINARY) | grep -E 'NEEDED.*(libsystemd|libseccomp|libcap)' || \
		{ echo "$(RELEASE_BINARY) loads these at start; see STATIC_LIBS and Sources/CNspawnShim/systemd_loader.c." >&2; exit 1; }

# The whole test suite: the layout lint (.swift-format), unit tests, and as root the integration tests
# on busybox and Debian machines.
check: deps
	@mkdir -p $(SWIFT_TMP)
	TMPDIR=$(SWIFT_TMP) $(SWIFT) format lint --strict -r Sources Tests Package.swift
	TMPDIR=$(SWIFT_TMP) $(SWIFT) build --build-tests
	TMPDIR=$(SWIFT_TMP) $(SWIFT) test --no-parallel
	@rm -rf $(SWIFT_TMP)

# The systemd-host lab: a Debian VM under qemu (software emulation, several minutes) in which
# machines get scopes with enforced resource limits, machined and swift-nspawn@.service; see tools/vm-lab.
vm-check: build vm-deps
	tools/vm-lab $(RELEASE_BINARY)

# Builds, makes a Debian bookworm machine in $(MACHINES)/debian once (from the host's apt mirror;
# root has an empty password), and boots it: log in as root at the console.
demo: build
	@[ -d $(MACHINES)/debian ] || tools/make-debian-machine $(MACHINES)/debian
	$(RELEASE_BINARY) -D $(MACHINES)/debian -b -n

# The same with a busybox machine and a shell instead of a booted system: seconds, no network.
demo-busybox: build
	@[ -d $(MACHINES)/busybox ] || tools/make-busybox-machine $(MACHINES)/busybox
	$(RELEASE_BINARY) -D $(MACHINES)/busybox

# The binary, the man pages, and swift-nspawn@.service (with the binary's path filled in) in
# /etc/systemd/system, so that `systemctl enable --now swift-nspawn@NAME` works.
UNITDIR ?= /etc/systemd/system

# bash and zsh completions, made from the binary's --help (its one option table).
COMPLETIONS = .build/completions
completions: build
	tools/make-completions $(RELEASE_BINARY) $(COMPLETIONS)

install: build completions
	install -D -m 0755 -s $(RELEASE_BINARY) $(DESTDIR)$(PREFIX)/bin/swift-nspawn
	ln -sf swift-nspawn $(DESTDIR)$(PREFIX)/bin/swift-nspawn-runc
	install -D -m 0644 $(COMPLETIONS)/swift-nspawn.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/swift-nspawn
	install -D -m 0644 $(COMPLETIONS)/_swift-nspawn $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_swift-nspawn
	install -D -m 0644 man/swift-nspawn.1 $(DESTDIR)$(PREFIX)/share/man/man1/swift-nspawn.1
	install -D -m 0644 man/swift-nspawn@.service.5 $(DESTDIR)$(PREFIX)/share/man/man5/swift-nspawn@.service.5
	install -D -m 0644 man/swift-nspawn-runc.8 $(DESTDIR)$(PREFIX)/share/man/man8/swift-nspawn-runc.8
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|@bindir@|$(PREFIX)/bin|g' units/swift-nspawn@.service.in > $(DESTDIR)$(UNITDIR)/swift-nspawn@.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/swift-nspawn@.service

bench: build
	bench/startup
	bench/boot
	bench/console
	bench/scope
	bench/network
	bench/ephemeral
	bench/image
	bench/many
	bench/memory

clean:
	rm -rf .build
