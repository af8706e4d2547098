# Flotilla — see README.md. Every target works on a fresh clone: tools come
# from the Go module proxy, control-plane binaries are built by `make testbin`
# into a cache outside the checkout ($(TESTBIN_CACHE)).

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO ?= go
CONTROLLER_GEN := $(GO) tool controller-gen
TESTBIN_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/flotilla/testbin
export FLOTILLA_TESTBIN_CACHE := $(TESTBIN_CACHE)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/flotilla-dev/flotilla/internal/version.Version=$(VERSION)
TEST_FLAGS ?=
GO_TEST_TIMEOUT ?= 30m

HUB_CRDS := charts/flotilla/crds
AGENT_CRDS := charts/flotilla-agent/crds
CAPI_CRDS := fleet/hub/capi/testdata/crds

.PHONY: build
build: ## Build flotilla, flotilla-hub and flotilla-agent into bin/
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

.PHONY: generate
generate: ## Regenerate deepcopy and CRDs (charts/*/crds)
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	rm -rf $(HUB_CRDS) && mkdir -p $(HUB_CRDS) $(AGENT_CRDS)
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:dir=$(HUB_CRDS)
	rm -f $(AGENT_CRDS)/*.yaml
	cp $(HUB_CRDS)/flotilla.dev_applications.yaml $(AGENT_CRDS)/
	# Cluster API's Cluster CRD, from the pinned sigs.k8s.io/cluster-api/api types, for envtest.
	rm -rf $(CAPI_CRDS) && mkdir -p $(CAPI_CRDS) .cache/capi-crds
	$(CONTROLLER_GEN) crd paths=sigs.k8s.io/cluster-api/api/core/v1beta2 output:crd:dir=.cache/capi-crds
	cp .cache/capi-crds/cluster.x-k8s.io_clusters.yaml $(CAPI_CRDS)/ && rm -rf .cache/capi-crds

.PHONY: verify
verify: generate ## Fail when generated files are stale or gofmt/go vet complain
	@if [[ -n "$$(git status --porcelain -- api charts fleet/hub/capi/testdata)" ]]; then \
	  echo "verify: generated files are stale; run 'make generate' and commit:"; \
	  git status --porcelain -- api charts fleet/hub/capi/testdata; git --no-pager diff --stat -- api charts fleet/hub/capi/testdata; exit 1; fi
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; if [[ -n "$$unformatted" ]]; then \
	  echo "verify: gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	@for m in hack/tools/k8s hack/tools/kwok hack/tools/lint; do (cd $$m && $(GO) mod verify >/dev/null) || { echo "verify: $$m go.sum mismatch"; exit 1; }; done
	@echo "verify: ok"

GOLANGCI_LINT := $(GO) tool -modfile=hack/tools/lint/go.mod golangci-lint

.PHONY: lint
lint: ## golangci-lint (pinned in hack/tools/lint) with depguard rules that keep the layout (.golangci.yml)
	$(GOLANGCI_LINT) run ./...

.PHONY: testbin
testbin: ## Build (or reuse) kube-apiserver, etcd, kube-controller-manager, kube-scheduler, kubectl and kwok
	@hack/testbin.sh >/dev/null

.PHONY: test
test: testbin ## Unit, envtest and e2e tests against real control planes
	KUBEBUILDER_ASSETS="$$(hack/testbin.sh 2>/dev/null)" $(GO) test -timeout $(GO_TEST_TIMEOUT) $(TEST_FLAGS) $$($(GO) list ./... | grep -v /e2e)
	$(MAKE) --no-print-directory e2e

.PHONY: chromium
chromium: ## Install Debian's chromium for the browser tests (when missing)
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@chromium --version

.PHONY: e2e
e2e: testbin chromium ## End-to-end scenarios: a hub and spokes (real control planes), Git, flotilla-hub and flotilla-agent processes
	KUBEBUILDER_ASSETS="$$(hack/testbin.sh 2>/dev/null)" $(GO) test -timeout $(GO_TEST_TIMEOUT) -count=1 -v $(TEST_FLAGS) ./e2e/...

BENCH ?= full

.PHONY: bench
bench: testbin ## Benchmarks on real control planes → BENCHMARKS.md (BENCH=quick: a few minutes, harness check)
	KUBEBUILDER_ASSETS="$$(hack/testbin.sh 2>/dev/null)" $(GO) run ./e2e/bench -mode $(BENCH) -out BENCHMARKS.md

SANDBOX_CLUSTERS ?= 3

.PHONY: demo
demo: build testbin ## Start a local fleet (hub + 3 clusters, Git, hub and agents) and show every app Healthy
	bin/flotilla sandbox up --clusters $(SANDBOX_CLUSTERS) --control-plane-bin "$$(hack/testbin.sh 2>/dev/null)" --bin-dir bin
	@echo; echo '$$ flotilla status'
	@bin/flotilla status --kubeconfig "$$(bin/flotilla sandbox kubeconfig)"
	@echo; echo 'The fleet in your browser (live):'
	@echo "  bin/flotilla dashboard --kubeconfig $$(bin/flotilla sandbox kubeconfig) --open"
	@echo; echo '$$ flotilla status sample'
	@bin/flotilla status sample --kubeconfig "$$(bin/flotilla sandbox kubeconfig)"
	@echo; echo 'Stop it with: bin/flotilla sandbox down'

.PHONY: demo-down
demo-down: ## Stop the local fleet
	bin/flotilla sandbox down

.PHONY: help
help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'
