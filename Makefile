# The two commands of the README:
#   make serve   set up (first time only), build the page and serve it on http://127.0.0.1:8080/
#   make test    set up (first time only), then every test: lint, native GPU tests on
#                lavapipe, a sweep on a throwaway Slurm cluster, the same kernel tests in
#                headless Chromium (WebGPU), browser tests
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
export XDG_RUNTIME_DIR ?= /tmp/varlab-runtime-$(shell id -u)
export CHROMEDRIVER ?= /usr/bin/chromedriver
export WASM_BINDGEN_TEST_TIMEOUT ?= 900
export TRUNK_SKIP_VERSION_CHECK := true
# make build-web CIFAR10=PATH (cifar-10-binary.tar.gz or a directory of its .bin files) bakes
# a CIFAR-10 subset into the page: CIFAR10_TRAIN and CIFAR10_TEST images (scripts/cifar-asset.mjs).
export CIFAR10 CIFAR10_TRAIN CIFAR10_TEST
ADDRESS ?= 127.0.0.1
PORT ?= 8080

.PHONY: setup serve build-web test lint test-native test-wasm test-browser test-slurm

setup:
	@bash scripts/setup.sh

serve: setup
	@echo "varlab: building, then serving on http://$(ADDRESS):$(PORT)/ (Ctrl-C stops)"
	trunk serve --release --address $(ADDRESS) --port $(PORT)

build-web: setup
	trunk build --release

test: setup
	$(MAKE) --no-print-directory lint test-native test-slurm test-wasm test-browser

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown --no-default-features --lib --tests -- -D warnings

test-native:
	cargo test

# Every test file with browser tests (`wasm_bindgen_test`): the GPU tests, which run twice.
WASM_TESTS := $(patsubst tests/%.rs,--test %,$(shell grep -l wasm_bindgen_test tests/*.rs))

test-wasm:
	cargo test --target wasm32-unknown-unknown --no-default-features $(WASM_TESTS)

# A throwaway one-node Slurm cluster: plan, a job array, a cancelled task, merge (README,
# "Sweeps on a cluster").
test-slurm:
	bash scripts/test-slurm.sh

# The page without a CIFAR-10 asset (tests/browser/cifar.test.mjs adds one to a copy of dist/).
test-browser:
	CIFAR10= trunk build --release
	node --test tests/browser/
