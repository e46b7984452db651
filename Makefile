# Tributary: the two commands are `make dev` (run everything locally) and `make test` (what CI runs).
# Tools are pinned in infra/local/tools/*.txt and installed into .tributary/tools/<tool>/ (git-ignored).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
TOOLS := $(ROOT)/.tributary/tools
PYTHON ?= $(shell command -v python3.11 || command -v python3)
CARGO ?= cargo
FUNCTIONS := tributary-api tributary-auth tributary-connector tributary-monitor
FUNCTION_PACKAGES := $(addprefix -p ,$(FUNCTIONS))
# Every crate but the workspace-hack, whose dependencies no code uses by design.
MACHETE_DIRS := functions infra tests shared/core shared/aws shared/engine shared/cli shared/http shared/testing
# Extra arguments for tributary-local, e.g. `make dev DEV_ARGS="--schedule-every 10s --log-format Text"`.
DEV_ARGS ?=

SAM := $(TOOLS)/sam/bin/sam
CFN_LINT := $(TOOLS)/sam/bin/cfn-lint
TOOL_STAMPS := $(TOOLS)/moto/.installed $(TOOLS)/cargo-lambda/.installed $(TOOLS)/sam/.installed \
	$(TOOLS)/schemathesis/.installed $(TOOLS)/cargo-machete/.installed $(TOOLS)/cargo-hakari/.installed \
	$(TOOLS)/rustup-aarch64/.installed $(TOOLS)/standardwebhooks/.installed

export SAM_CLI_TELEMETRY := 0
export CARGO_TERM_COLOR ?= auto

.PHONY: help tools build dev smoke-dev fuzz-api docs-vendor docs-check connect-check dashboard-check test fmt fmt-check clippy lint cargo-test sam-validate cfn-lint sam-build sam-build-ci bench bench-coldstart clean-tools

help:
	@echo "make dev          tools, build, then the local stack (API on http://127.0.0.1:3000)"
	@echo "make test         fmt, clippy, build, cargo test (unit, adapters on moto, e2e), SAM lint, sam build"
	@echo "make tools        install the pinned tools into .tributary/tools (idempotent)"
	@echo "make build        build the functions and tributary-local (debug)"
	@echo "make smoke-dev    the make dev path (cargo lambda watch) up, canary, authorizer, clean stop"
	@echo "make docs-vendor  re-vendor the pinned Redoc bundle /docs serves (infra/local/docs, npm ci)"
	@echo "make docs-check   /docs rendered by headless Chromium (installs Debian's chromium if missing)"
	@echo "make connect-check  the connect flow in headless Chromium, and a scan of the logs for credentials"
	@echo "make dashboard-check  the dashboard in headless Chromium after a real sync, checked against the API"
	@echo "make fuzz-api     schemathesis against the local stack from the checked-in OpenAPI document"
	@echo "make lint         fmt --check, clippy, sam validate --lint, cfn-lint"
	@echo "make sam-build    sam build (release, cross-compiled by cargo-lambda) for SAM_ARCH=arm64 (or x86_64)"
	@echo "make bench        the connector engine throughput benchmark (release; fails when a target is missed)"
	@echo "make bench-coldstart  init time (exec to first /next) and zip size of each function vs a hello world"
	@echo "make bench-sync   a sync of 10,000 and 100,000 records into DynamoDB (moto): speed, memory, writes, cost"

tools: $(TOOL_STAMPS)

# One venv per tool: their dependency sets stay independent. The stamp is newer than the pin file
# once installed, so a second run does nothing.
$(TOOLS)/%/.installed: infra/local/tools/%.txt
	@echo "installing $* from $<"
	rm -rf "$(TOOLS)/$*"
	"$(PYTHON)" -m venv "$(TOOLS)/$*"
	"$(TOOLS)/$*/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$<"
	touch "$@"

# A cargo tool is built from crates.io at the exact version its .version file pins; the stamp is
# newer than that file once installed.
$(TOOLS)/cargo-%/.installed: infra/local/tools/cargo-%.version
	@echo "installing cargo-$* from $<"
	rm -rf "$(TOOLS)/cargo-$*"
	$(CARGO) install --locked --version "$$(tr -d '[:space:]' < "$<")" --root "$(TOOLS)/cargo-$*" cargo-$*
	touch "$@"

# The standard library `make sam-build` cross-compiles the arm64 functions against, for the
# active toolchain. Where rustup cannot fetch it, this says so and sam-build-ci builds x86_64 on a
# line of its own; `make sam-build` (arm64) then fails.
$(TOOLS)/rustup-aarch64/.installed:
	mkdir -p "$(@D)"
	if rustup target add aarch64-unknown-linux-gnu; then touch "$@"; \
	else echo "tools: rustup could not add aarch64-unknown-linux-gnu; sam-build-ci will build x86_64" >&2; fi

# Fails on a dependency no crate uses. A false positive (a crate used only through a macro, or
# renamed) goes in that crate's [package.metadata.cargo-machete] ignored, with the reason.
.PHONY: machete
machete: $(TOOLS)/cargo-machete/.installed
	"$(TOOLS)/cargo-machete/bin/cargo-machete" --with-metadata $(MACHETE_DIRS)

# Every member builds with the same dependency features whichever subset cargo is asked for (make
# build, cargo test, cargo lambda watch's per-function `cargo run`, sam build's per-function
# builds), so one copy of each dependency is compiled, not one per function: the hakari-managed
# crate shared/workspace-hack. The one exception is the tests' mock server, whose features (HTTP/2)
# would otherwise reach the functions: test builds compile what it changes a second time
# (.config/hakari.toml). Fails when the crate or a member's dependency on it is out of date; `make
# hakari-fix` regenerates both after a dependency change.
# Run as a plain binary, not as `cargo hakari`, it finds cargo through CARGO, which cargo sets only
# for its own subcommands: without it `hakari-fix` failed to update Cargo.lock ("No such file or
# directory").
HAKARI := CARGO="$$(command -v $(CARGO))" "$(TOOLS)/cargo-hakari/bin/cargo-hakari" hakari
.PHONY: hakari hakari-fix
hakari: $(TOOLS)/cargo-hakari/.installed
	$(HAKARI) generate --diff
	$(HAKARI) manage-deps --dry-run
	$(HAKARI) verify
hakari-fix: $(TOOLS)/cargo-hakari/.installed
	$(HAKARI) generate
	$(HAKARI) manage-deps --yes

build:
	$(CARGO) build -p tributary-local $(FUNCTION_PACKAGES)

dev: tools build
	exec "$(ROOT)/target/debug/tributary-local" --mode watch $(DEV_ARGS)

# The `make dev` path end to end (cargo lambda watch), on free ports, beside any running `make dev`.
smoke-dev: tools build
	bash infra/local/smoke-dev.sh

# Property-based fuzzing of the API through the local stack (binaries mode, free ports).
fuzz-api: tools build
	bash infra/local/fuzz-api.sh

# The Redoc bundle /docs serves, from the exact npm release infra/local/docs pins.
docs-vendor: $(TOOLS)/zopfli/.installed
	ZOPFLI="$(TOOLS)/zopfli/bin/zopfli" bash infra/local/vendor-docs.sh

# The gzip encoder of the vendored bundle (docs-vendor only: CI checks the bundle by decompressing).
$(TOOLS)/zopfli/.installed: infra/local/tools/zopfli.version
	@echo "installing zopfli from $<"
	rm -rf "$(TOOLS)/zopfli"
	$(CARGO) install --locked --version "$$(tr -d '[:space:]' < "$<")" --root "$(TOOLS)/zopfli" zopfli
	touch "$@"

# The API reference page in headless Chromium, served by the local stack (after checking that the
# vendored bundle is the pinned one).
docs-check: build
	bash infra/local/vendor-docs.sh --check
	bash infra/local/docs-check.sh

# The connect flow in headless Chromium through the local stack (OAuth with PKCE and an API-key
# form, against local providers), then a scan of the functions' logs for every credential used.
connect-check: build
	bash infra/local/connect-check.sh

# The dashboard in headless Chromium after a real sync through the local stack: a screenshot of
# each view, its numbers checked against what the API reports (DASHBOARD_SCREENSHOT_OUT=1 writes
# the README's screenshots to docs/).
dashboard-check: build
	bash infra/local/dashboard-check.sh

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

sam-validate: $(TOOLS)/sam/.installed
	"$(SAM)" validate --lint

cfn-lint: $(TOOLS)/sam/.installed
	"$(CFN_LINT)" infra/template.yaml

lint: fmt-check clippy sam-validate cfn-lint

# The end-to-end test runs the debug binaries of the functions: build them first.
cargo-test: tools build
	$(CARGO) test --workspace

# The functions' architecture (the template's Architecture parameter). There is no fallback: arm64
# fails when the aarch64-unknown-linux-gnu standard library is missing; say SAM_ARCH=x86_64 to build
# x86_64 (and deploy with Architecture=x86_64).
SAM_ARCH ?= arm64

sam-build: $(TOOLS)/sam/.installed $(TOOLS)/cargo-lambda/.installed
	SAM_ARCH="$(SAM_ARCH)" PATH="$(TOOLS)/cargo-lambda/bin:$(TOOLS)/sam/bin:$$PATH" bash infra/sam-build.sh

test: tools
	$(MAKE) --no-print-directory fmt-check
	$(MAKE) --no-print-directory machete
	$(MAKE) --no-print-directory hakari
	$(MAKE) --no-print-directory clippy
	$(MAKE) --no-print-directory cargo-test
	$(MAKE) --no-print-directory smoke-dev
	$(MAKE) --no-print-directory fuzz-api
	$(MAKE) --no-print-directory docs-check
	$(MAKE) --no-print-directory connect-check
	$(MAKE) --no-print-directory dashboard-check
	$(MAKE) --no-print-directory sam-validate
	$(MAKE) --no-print-directory cfn-lint
	$(MAKE) --no-print-directory sam-build-ci

# What `make test` builds: SAM_ARCH when given, else arm64 (make tools adds the aarch64 standard
# library with rustup), so a failed arm64 build fails make test. Only where rustup could not add the
# library (make tools said so) does it build x86_64, said on a line of its own.
sam-build-ci:
ifeq ($(origin SAM_ARCH),file)
	@if bash infra/sam-build.sh --has-std arm64; then \
	  $(MAKE) --no-print-directory sam-build SAM_ARCH=arm64; \
	else \
	  echo "sam-build-ci: building x86_64, NOT arm64: this machine has no aarch64-unknown-linux-gnu standard library (make sam-build builds arm64 and fails here)"; \
	  $(MAKE) --no-print-directory sam-build SAM_ARCH=x86_64; \
	fi
else
	$(MAKE) --no-print-directory sam-build SAM_ARCH="$(SAM_ARCH)"
endif

# Release build, each measurement in its own process; exits non-zero when a target is missed. Not
# part of `make test`.
bench:
	$(CARGO) bench -p tributary-engine --bench throughput

# Sync throughput, memory and DynamoDB cost: 10,000 and 100,000 customers through the connector's
# handler into moto, each count in its own process; exits non-zero when a target is missed. Not part
# of `make test`.
.PHONY: bench-sync
bench-sync: $(TOOLS)/moto/.installed
	PATH="$(TOOLS)/moto/bin:$$PATH" CARGO_TARGET_DIR="$(ROOT)/target/coldstart" $(CARGO) bench -p tributary-connector --bench sync

# Cold start and size: release builds of the functions and of a lambda_runtime hello world (in
# target/coldstart, so the shared debug target dir's lock is never held), each started against a
# Runtime API stub with the template's environment, timed from exec to its first /next. Fails when
# a goal is missed. SAM_BUILD_DIR (default .aws-sam/build) is where zips are taken from when present.
.PHONY: bench-coldstart
bench-coldstart:
	CARGO_TARGET_DIR="$(ROOT)/target/coldstart" $(CARGO) build --release $(FUNCTION_PACKAGES) -p tributary-coldstart
	"$(ROOT)/target/coldstart/release/coldstart-bench" --bin-dir "$(ROOT)/target/coldstart/release" \
	  --template "$(ROOT)/infra/template.yaml" --python "$(PYTHON)"

clean-tools:
	rm -rf "$(TOOLS)"
