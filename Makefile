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
BINARIES     := celld cell-web cellctl cell-recovery
IMAGE_INPUTS := mkosi.conf $(shell find image rootfs units -type f 2>/dev/null) \
                $(addprefix $(STAGING)/usr/bin/,$(BINARIES)) $(STAGING)/.cellctl-docs
MKOSI        := mkosi --image-version=$(VERSION)

.PHONY: help keys run image run-vm test test-unit test-netns test-boot test-browser test-vm lint bench deps tree clean

help:
	@echo "make run      build what is out of date and boot the cell under systemd-nspawn"
	@echo "make image    build the flashable UEFI disk image"
	@echo "make test     the whole test suite (lint, unit tests, namespace and booted-image tests)"
	@echo "make test-netns  the VPN and firewall in network namespaces (root)"
	@echo "make run-vm   boot the disk image in qemu (UEFI), web UI on localhost:8080"
	@echo "make test-vm  boot the disk image in qemu headless and check it"
	@echo "make bench    image size, boot-to-health time, idle memory; VPN add-peer and throughput"
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

# --- signing keys ------------------------------------------------------------------------
# The key that signs /usr's verity root hash: made once per build machine, never committed.
KEYS := $(BUILD)/keys/verity.key
$(KEYS):
	install -d -m 0700 $(BUILD)/keys
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=personal-internet-cell-verity \
		-keyout $(BUILD)/keys/verity.key -out $(BUILD)/keys/verity.crt 2>/dev/null

keys: $(KEYS)

# --- image -----------------------------------------------------------------------------
# The directory tree (booted by systemd-nspawn) and the disk image come from the same
# definition; mkosi's incremental cache makes the second one cheap.
$(TREE).stamp: $(IMAGE_INPUTS) | deps-quiet $(KEYS)
	rm -rf $(TREE_DIR) && mkdir -p $(TREE_DIR) $(BUILD)/mkosi.cache
	$(MKOSI) --format=directory --output-dir=$(TREE_DIR) build
	touch $@

$(DISK): $(IMAGE_INPUTS) | deps-quiet $(KEYS)
	rm -rf $(DISK_DIR) && mkdir -p $(DISK_DIR) $(BUILD)/mkosi.cache
	$(MKOSI) --format=disk --output-dir=$(DISK_DIR) build

tree: $(TREE).stamp

image: $(DISK)
	@echo "Image: $(DISK) ($$(du -h --apparent-size $(DISK) | cut -f1) raw, $$(du -h $(DISK) | cut -f1) on disk)"

# --- run -------------------------------------------------------------------------------
run: $(TREE).stamp
	scripts/cell-nspawn run $(TREE) cell-run 0

run-vm: $(DISK)
	scripts/run-vm $(DISK)

# --- tests -----------------------------------------------------------------------------
test: deps lint test-unit test-netns test-boot test-browser test-vm

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

test-unit:
	cargo test --locked --workspace

# T1: the VPN and firewall in network namespaces, with wireguard-go clients (root).
test-netns:
	cargo build --locked -p celld
	tests/vpn-netns.sh target/debug/celld

test-boot: $(TREE).stamp
	tests/boot-nspawn.sh $(TREE)

test-browser: $(TREE).stamp
	tests/browser-nspawn.sh $(TREE)

test-vm: $(DISK)
	tests/boot-vm.sh $(DISK) $(VERSION)

bench: $(TREE).stamp $(DISK)
	scripts/bench $(TREE) $(DISK)
	scripts/bench-vpn build/bench/vpn.txt

# Installs dependencies only when something is missing; silent otherwise.
.PHONY: deps-quiet
deps-quiet:
	@scripts/install-deps --quiet

clean:
	rm -rf $(BUILD)/image $(STAGING) target
