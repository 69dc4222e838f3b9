# oneshot — run `make help` for the targets.
GO      ?= go
BIN     ?= bin/oneshot
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z\/_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/oneshot.
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/oneshot

.PHONY: run
run: build ## Run API and worker in one process on an embedded Redis (oneshot dev).
	./$(BIN) dev

.PHONY: test
test: ## Run all tests with the race detector (needs redis-server; runs sandboxes as root).
	$(GO) test -race -count=1 -timeout 20m ./...

.PHONY: test/short
test/short: ## Run the tests without the race detector.
	$(GO) test -count=1 -timeout 20m ./...

.PHONY: test/race
test/race: test ## Same as test: the race detector is always on.

.PHONY: bench
bench: ## Run the benchmarks that docs/benchmarks.md reports.
	$(GO) test -run '^$$' -bench . -benchtime 2000x -timeout 30m ./internal/system/ ./sandbox/

.PHONY: lint
lint: ## Run gofmt and go vet.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) vet ./...

.PHONY: clean
clean: ## Remove build output.
	rm -rf bin
