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
build: ## Build bin/oneshot and, beside it, bin/oneshot-runtime (the runtime each sandbox runs).
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/oneshot
	$(GO) build -o $(dir $(BIN))oneshot-runtime ./cmd/oneshot-runtime

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

.PHONY: soak
soak: build ## By hand, not part of test: every load and fault scenario of `oneshot bench`, harder (takes minutes; root).
	./$(BIN) bench -kills 5 -burst-clients 1000 -burst-requests 5000 steady kill term redis-restart failover burst

FUZZTIME ?= 30s
.PHONY: fuzz
fuzz: ## Fuzz every Fuzz target in the repository for FUZZTIME (30s) each; go test -run runs their seeds.
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$(dirname $$f) $$t"; \
			$(GO) test -run "^$$t$$" -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$(dirname $$f)/; \
		done; \
	done

.PHONY: lint
lint: ## Run gofmt and go vet.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: the files above need formatting"; exit 1; }
	$(GO) vet ./...

.PHONY: compose-smoke
compose-smoke: ## With Docker: start docker-compose.yml, run one execute (builtin/echo), stop it. Not part of test.
	@set -e; trap 'docker compose down' EXIT; \
	docker compose up -d --build; \
	for i in $$(seq 60); do curl -fsS -o /dev/null localhost:8080/readyz 2>/dev/null && break; sleep 2; done; \
	curl -fsS localhost:8080/readyz; echo; \
	out=$$(curl -fsS localhost:8080/agent/v1/execute -H 'content-type: application/json' \
		-d '{"prompt":"compose smoke","model":"builtin/echo"}'); \
	echo "$$out"; \
	echo "$$out" | grep -q '"status":"completed"' || { echo "compose-smoke: the run did not complete"; docker compose logs --tail 50 api worker; exit 1; }; \
	echo "compose-smoke: ok"

.PHONY: clean
clean: ## Remove build output.
	rm -rf bin
