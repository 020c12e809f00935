# rolecall: see README.md. `make dev` runs everything locally; `make test` runs every test.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

K8S_VERSION ?= v1.37.2
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
MAILPIT_VERSION ?= v1.27.11

LOCALBIN := $(CURDIR)/bin
CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT := $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
MAILPIT := $(LOCALBIN)/mailpit-$(MAILPIT_VERSION)
CONTROL_PLANE := $(LOCALBIN)/k8s/$(K8S_VERSION)
CONTROL_PLANE_BINARIES := $(CONTROL_PLANE)/etcd $(CONTROL_PLANE)/kube-apiserver $(CONTROL_PLANE)/kube-controller-manager $(CONTROL_PLANE)/kubectl

# Tests find the control plane through envtest's usual variable, and the SMTP server here.
export KUBEBUILDER_ASSETS := $(CONTROL_PLANE)
export MAILPIT

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC from the Go markers.
	$(CONTROLLER_GEN) rbac:roleName=rolecall-manager crd webhook paths="./..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac \
		output:webhook:artifacts:config=config/webhook

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy functions.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: verify
verify: manifests generate ## Regenerate everything and fail if the committed output was stale.
	go mod tidy
	@if [ -n "$$(git status --porcelain -- api config go.mod go.sum)" ]; then \
		git status --porcelain -- api config go.mod go.sum; \
		git --no-pager diff -- api config go.mod go.sum | head -100; \
		echo "generated files are stale: run 'make manifests generate' and commit"; exit 1; fi

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: control-plane
control-plane: $(CONTROL_PLANE_BINARIES) ## Build etcd, kube-apiserver, kube-controller-manager and kubectl once.

$(CONTROL_PLANE_BINARIES):
	K8S_VERSION=$(K8S_VERSION) hack/build-control-plane.sh

.PHONY: test
test: manifests generate control-plane mailpit ## Run every test against a real control plane.
	go test ./... -count=1 -timeout 30m

.PHONY: e2e
e2e: manifests generate control-plane mailpit ## Run only the end-to-end tests: the manager binary, the browser journeys, GitOps.
	go test ./test/... -count=1 -timeout 30m

.PHONY: bench
bench: build control-plane ## Measure rolecall against the raw API server in the same run; writes docs/benchmarks.md.
	go run ./hack/bench $(BENCHFLAGS)

.PHONY: fuzz
fuzz: ## Fuzz each target for FUZZTIME (default 20s), one at a time; plain tests run only the seeds.
	hack/fuzz.sh

.PHONY: dev
dev: manifests generate control-plane mailpit build ## Run rolecall on a local control plane; Ctrl-C stops it.
	go build -o $(LOCALBIN)/rolecall-dev ./hack/dev
	$(LOCALBIN)/rolecall-dev

##@ Build

.PHONY: build
build: ## Build the manager and the kubectl plugin.
	go build -o $(LOCALBIN)/manager ./cmd/manager
	go build -o $(LOCALBIN)/kubectl-invite ./cmd/kubectl-invite

$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $@

.PHONY: mailpit
mailpit: $(MAILPIT) ## Install mailpit, the SMTP server (with a web UI) that tests and make dev send mail to.

$(MAILPIT):
	GOBIN=$(LOCALBIN) go install github.com/axllent/mailpit@$(MAILPIT_VERSION)
	mv $(LOCALBIN)/mailpit $@

$(GOLANGCI_LINT):
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $@

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-15s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
