# Personal Internet Cell — every user-facing command. README.md documents them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

BUILD        := build
PKG_VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
GIT_COUNT    := $(shell git rev-list --count HEAD 2>/dev/null || echo 0)
GIT_HASH     := $(shell git rev-parse --short=8 HEAD 2>/dev/null || echo nogit)
GIT_DIRTY    := $(shell git diff --quiet HEAD -- 2>/dev/null || echo .dirty)
# One version names the image, its files and what every binary reports.
VERSION      ?= $(PKG_VERSION)-$(GIT_COUNT)-g$(GIT_HASH)$(GIT_DIRTY)
export CELL_VERSION := $(VERSION)

STAGING      := $(BUILD)/staging
TREE_DIR     := $(BUILD)/image/tree
DISK_DIR     := $(BUILD)/image/disk
TREE         := $(TREE_DIR)/cell_$(VERSION)
DISK         := $(DISK_DIR)/cell_$(VERSION).raw
BINARIES     := celld cell-web cell-dns cellctl cell-recovery cell-update
IMAGE_INPUTS := mkosi.conf $(shell find image rootfs units -type f 2>/dev/null) \
                $(addprefix $(STAGING)/usr/bin/,$(BINARIES)) $(STAGING)/.cellctl-docs \
                $(STAGING)/usr/lib/systemd/import-pubring.gpg
# The image builder's own tool: keys, mkosi builds, publishing updates, flashing.
CELL_IMAGE   := target/debug/cell-image
KEYS_DIR     := $(BUILD)/keys
UPDATE_DIR   := $(BUILD)/update

.PHONY: help keys run image publish flash run-vm test test-unit test-fuzz test-netns test-boot test-browser test-vm lint bench deps tree clean

help:
	@echo "make run      build what is out of date and boot the cell under systemd-nspawn"
	@echo "make image    build the flashable UEFI disk image"
	@echo "make publish  publish the disk image as a signed update in build/update (REPLACE=1: same version again)"
	@echo "make flash DEVICE=/dev/sdX  write the disk image to a whole disk and verify it (asks first)"
	@echo "make keys     make the missing signing keys in build/keys (never overwrites)"
	@echo "make test     the whole test suite (lint, unit tests, namespace and booted-image tests)"
	@echo "make test-netns  the VPN and firewall in network namespaces; the login guard; DNS, and"
	@echo "              cell-dns against NSD; the DHCP server with real clients; HTTPS (testssl.sh)"
	@echo "              and ACME against pebble (root)"
	@echo "make run-vm   boot the disk image in qemu (UEFI), web UI on localhost:8080"
	@echo "make test-vm  boot the disk image in qemu headless and check it; then the update test"
	@echo "make bench    image size, boot-to-health time, idle memory; VPN add-peer and throughput;"
	@echo "              /health under a login burst and celld's peak memory during one;"
	@echo "              cell-dns beside NSD and Knot (dnsperf: q/s, p99, loss; memory);"
	@echo "              update install time, reboot-to-UI time and download size (qemu);"
	@echo "              the mail and DAV machines' idle memory, the mail delivery rate, the whole cell's memory"
	@echo "make deps     install the build and test dependencies (Debian 12, root)"
	@echo "make clean    remove build outputs (keeps the package cache)"

deps:
	scripts/install-deps

# --- binaries --------------------------------------------------------------------------
# cargo decides what is out of date (sources, and CELL_VERSION, which the binaries embed);
# the staged copy only changes, and so only triggers an image build, when the binary did.
$(STAGING)/usr/bin/%: FORCE
	cargo build --release --locked $(addprefix -p ,$(BINARIES))
	cmp -s target/release/$* $@ || install -D -p -m 0755 target/release/$* $@

.PHONY: FORCE
FORCE:

# Shell completions and the man page, generated from cellctl's clap definition.
$(STAGING)/.cellctl-docs: $(STAGING)/usr/bin/cellctl
	install -d $(STAGING)/usr/share/bash-completion/completions $(STAGING)/usr/share/man/man1
	$(STAGING)/usr/bin/cellctl completions bash > $(STAGING)/usr/share/bash-completion/completions/cellctl
	$(STAGING)/usr/bin/cellctl man > $(STAGING)/usr/share/man/man1/cellctl.1
	touch $@

# cargo decides whether the tool is out of date; targets use it as an order-only
# prerequisite, so a change to the tool alone rebuilds no image.
$(CELL_IMAGE): FORCE
	cargo build --locked -p cell-image

# --- signing keys ------------------------------------------------------------------------
# Made once per build machine, never committed, never overwritten: verity.key/.crt sign
# /usr's verity root hash; gnupg/ holds the key that signs update manifests
# (SHA256SUMS.gpg), and import-pubring.gpg its public half, which the image carries.
KEYS := $(KEYS_DIR)/verity.key $(KEYS_DIR)/verity.crt $(KEYS_DIR)/import-pubring.gpg
$(KEYS) &: | deps-quiet $(CELL_IMAGE)
	$(CELL_IMAGE) keys --dir $(KEYS_DIR)

keys: | deps-quiet $(CELL_IMAGE)
	$(CELL_IMAGE) keys --dir $(KEYS_DIR)

# The keyring systemd-pull checks SHA256SUMS.gpg against, in the image.
$(STAGING)/usr/lib/systemd/import-pubring.gpg: $(KEYS_DIR)/import-pubring.gpg
	install -D -m 0644 $< $@

# --- image -----------------------------------------------------------------------------
# The directory tree (booted by systemd-nspawn) and the disk image come from the same
# definition; mkosi's incremental cache makes the second one cheap.
# cell-image build empties the output directory and runs mkosi with the version.
$(TREE).stamp: $(IMAGE_INPUTS) | deps-quiet $(KEYS) $(CELL_IMAGE)
	$(CELL_IMAGE) build --version $(VERSION) --format directory --output-dir $(TREE_DIR)
	touch $@

$(DISK): $(IMAGE_INPUTS) | deps-quiet $(KEYS) $(CELL_IMAGE)
	$(CELL_IMAGE) build --version $(VERSION) --format disk --output-dir $(DISK_DIR)

tree: $(TREE).stamp

image: $(DISK)
	@echo "Image: $(DISK) ($$(du -h --apparent-size $(DISK) | cut -f1) raw, $$(du -h $(DISK) | cut -f1) on disk)"

# --- updates and flashing ----------------------------------------------------------------
# The disk image's /usr partitions (xz) and UKI, beside the versions published before, all
# listed in SHA256SUMS and signed in SHA256SUMS.gpg: what systemd-sysupdate fetches.
publish: $(DISK) | $(KEYS) $(CELL_IMAGE)
	$(CELL_IMAGE) publish --image $(DISK) --keys $(KEYS_DIR) --out $(UPDATE_DIR) $(if $(REPLACE),--replace)

# Refuses a disk in use; asks for the disk's name before writing; reads it back after.
ifneq ($(filter flash,$(MAKECMDGOALS)),)
ifeq ($(DEVICE),)
$(error make flash needs the whole disk to overwrite: make flash DEVICE=/dev/sdX)
endif
endif
flash: $(DISK) | $(CELL_IMAGE)
	$(CELL_IMAGE) flash --image $(DISK) --device $(DEVICE)

# --- run -------------------------------------------------------------------------------
run: $(TREE).stamp
	scripts/cell-nspawn run $(TREE) cell-run 0

run-vm: $(DISK)
	scripts/run-vm $(DISK)

# --- tests -----------------------------------------------------------------------------
test: deps lint test-unit test-fuzz test-netns test-boot test-browser test-vm

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

test-unit:
	cargo test --locked --workspace

# cell-dns's request path under libFuzzer for a bounded time (nightly, cargo-fuzz).
FUZZ_SECONDS ?= 60
test-fuzz:
	tests/fuzz-dns.sh $(FUZZ_SECONDS)

# T1: the VPN and firewall in network namespaces, with wireguard-go clients (root); the
# login guard, the HTTPS front door (testssl.sh) and ACME against pebble over the release
# binaries (the image's own) in namespaces of their own.
test-netns: $(STAGING)/usr/bin/celld $(STAGING)/usr/bin/cell-web $(STAGING)/usr/bin/cell-dns
	cargo build --locked -p celld -p cell-dns
	tests/vpn-netns.sh target/debug/celld
	tests/login-netns.sh $(STAGING)/usr/bin
	tests/dns-netns.sh target/debug/cell-dns
	tests/dns-diff-netns.sh target/debug/cell-dns
	tests/dns-live-netns.sh $(STAGING)/usr/bin
	tests/tls-netns.sh $(STAGING)/usr/bin
	tests/acme-netns.sh $(STAGING)/usr/bin
	tests/dhcp-netns.sh target/debug

test-boot: $(TREE).stamp
	tests/boot-nspawn.sh $(TREE)
	tests/mail-nspawn.sh $(TREE)
	tests/dav-nspawn.sh $(TREE)

test-browser: $(TREE).stamp
	tests/browser-nspawn.sh $(TREE)

# The update test's versions: v2 (good), v3 (its cell-web cannot start) and, made by the
# test from v2's files, a corrupted one between v1 and v2.
UPDATE_TEST  := $(BUILD)/update-test
V2           := $(VERSION).2
V3           := $(VERSION).3
V_CORRUPT    := $(VERSION).1
$(UPDATE_TEST)/server/SHA256SUMS: $(DISK) $(shell find tests/update -type f) | $(KEYS) $(CELL_IMAGE)
	rm -rf $(UPDATE_TEST)
	$(CELL_IMAGE) build --version $(V2) --format disk --output-dir $(UPDATE_TEST)/v2
	$(CELL_IMAGE) publish --image $(UPDATE_TEST)/v2/cell_$(V2).raw --keys $(KEYS_DIR) --out $(UPDATE_TEST)/server
	$(CELL_IMAGE) build --version $(V3) --format disk --output-dir $(UPDATE_TEST)/v3 \
		--extra-tree tests/update/broken-web:/
	$(CELL_IMAGE) publish --image $(UPDATE_TEST)/v3/cell_$(V3).raw --keys $(KEYS_DIR) --out $(UPDATE_TEST)/server
	rm -rf $(UPDATE_TEST)/v2 $(UPDATE_TEST)/v3

test-vm: $(DISK) $(UPDATE_TEST)/server/SHA256SUMS
	tests/boot-vm.sh $(DISK) $(VERSION)
	tests/update-vm.sh $(DISK) $(VERSION) $(UPDATE_TEST)/server $(V2) $(V3) $(V_CORRUPT)

bench: $(TREE).stamp $(DISK) $(UPDATE_TEST)/server/SHA256SUMS
	scripts/bench $(TREE) $(DISK)
	scripts/bench-vpn build/bench/vpn.txt
	scripts/bench-login build/bench/login.txt
	scripts/bench-dns build/bench/dns.txt
	scripts/bench-https build/bench/https.txt
	scripts/bench-mail $(TREE) build/bench/mail.txt
	mkdir -p build/bench && rm -f build/bench/update.txt
	CELL_BENCH_OUT=build/bench/update.txt \
		tests/update-vm.sh $(DISK) $(VERSION) $(UPDATE_TEST)/server $(V2) $(V3) $(V_CORRUPT)

# Installs dependencies only when something is missing; silent otherwise.
.PHONY: deps-quiet
deps-quiet:
	@scripts/install-deps --quiet

clean:
	rm -rf $(BUILD)/image $(STAGING) target
