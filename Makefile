# openwaba command index. `make help` lists the targets.
MODULES := proto db media api chatd coreapp webapp e2e
BIN     := $(CURDIR)/bin
GOBIN_TOOLS := $(shell go env GOPATH)/bin
export WA_TEST_DSN ?= root@tcp(127.0.0.1:3306)/
# How long `make fuzz` runs each fuzz target; FUZZ lists them as module:package:Target.
# An execution count, not a duration: a duration races the fuzz
# coordinator's shutdown in Go 1.26 and fails with "context deadline
# exceeded" on a busy machine (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 50000x
FUZZ := chatd:./wire:FuzzReadFrame chatd:./wire:FuzzServerHandshake chatd:./wire:FuzzServerHello

.PHONY: help build proto proto-tools proto-check cloudsdk test test-mysql test-sqlite test-zerodep test-short fuzz bench bench-ha run run-ha lint tidy clean check-compose

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

build: ## build webapp, coreapp, wadebug, chatd, waphone and wabench into bin/
	@mkdir -p $(BIN)
	cd webapp && go build -o $(BIN)/webapp ./cmd/webapp
	cd coreapp && go build -o $(BIN)/coreapp ./cmd/coreapp && go build -o $(BIN)/wadebug ./cmd/wadebug
	cd chatd && go build -o $(BIN)/chatd ./cmd/chatd && go build -o $(BIN)/waphone ./cmd/waphone
	cd e2e && go build -o $(BIN)/wabench ./cmd/wabench

run: build ## run chatd, coreapp and webapp in the foreground (SQLite in data/, nothing to install; Ctrl-C stops)
	@BIN=$(BIN) ./scripts/run.sh

run-ha: build ## run chatd, 3 coreapps and 2 webapps (HA sandbox; pids in data/run/; Ctrl-C stops)
	@BIN=$(BIN) ./scripts/run-ha.sh

bench: build ## wabench against a fresh local stack on SQLite, then on MySQL/MariaDB, then bench-ha; ARGS="…" go to wabench, PROFILE=1 writes profiles (docs/performance.md)
	@BIN=$(BIN) WA_DB_ENGINE=SQLITE ./scripts/bench.sh $(ARGS)
	@BIN=$(BIN) WA_DB_ENGINE=MYSQL ./scripts/bench.sh $(ARGS)
	@$(MAKE) --no-print-directory bench-ha

bench-ha: ## multi-node: 3 coreapps, throughput with 1/2/4 shards, median failover time (BENCH_HA_SECONDS, BENCH_HA_KILLS)
	cd e2e && go test -run '^$$' -bench '^BenchmarkHA$$' -benchtime 1x -timeout 30m .

proto-tools: ## install buf, protoc-gen-go and protoc-gen-go-grpc (the versions the committed code was made with) from the Go module proxy
	go install github.com/bufbuild/buf/cmd/buf@v1.75.0
	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2

proto: ## regenerate proto/gen (needs buf, protoc-gen-go, protoc-gen-go-grpc: make proto-tools)
	cd proto && PATH="$(GOBIN_TOOLS):$$PATH" buf lint && PATH="$(GOBIN_TOOLS):$$PATH" buf generate

proto-check: proto ## fail if the committed generated code is stale
	git diff --exit-code -- proto/gen

test: ## cloudsdk, test-mysql, then test-sqlite, then fuzz
	@$(MAKE) --no-print-directory cloudsdk
	@$(MAKE) --no-print-directory test-mysql
	@$(MAKE) --no-print-directory test-sqlite
	@$(MAKE) --no-print-directory fuzz

test-mysql: ## all modules, race detector, shuffled; database tests on MySQL/MariaDB at WA_TEST_DSN
	@for m in $(MODULES); do echo "== $$m (MySQL)"; (cd $$m && WA_TEST_ENGINE=mysql go test -race -shuffle=on -count=1 -timeout 15m ./...) || exit 1; done

# The SQLite pass repeats what depends on the engine: the store tests of every
# module and the single-node end-to-end tests (SQLITE_E2E). Only db, whose
# SQLite layer is new code, runs under the race detector again: test-mysql ran
# every other package under it already, and CI must stay under 20 minutes.
SQLITE_E2E := ^(TestSpine|TestMessageTypes|TestTemplates|TestWebhookConfigAndHeaders|TestHealthAuth|TestErrorPaths|TestCrash.*|TestWebhookOutageAcrossRestart|TestWebhookNotPersisted|TestWebhookEndpointsAndLog|TestOnPremProfile|TestPrivacy|TestMediaBothDirections|TestIdentityChange|TestCloudSDKs)$$

test-sqlite: ## store tests and single-node e2e tests again on SQLite (WA_TEST_ENGINE=sqlite)
	@echo "== db (SQLite)"; cd db && WA_TEST_ENGINE=sqlite go test -race -shuffle=on -count=1 ./...
	@for m in chatd coreapp webapp; do echo "== $$m (SQLite)"; (cd $$m && WA_TEST_ENGINE=sqlite go test -shuffle=on -count=1 -timeout 15m ./...) || exit 1; done
	@echo "== e2e (SQLite)"; cd e2e && WA_TEST_ENGINE=sqlite go test -shuffle=on -count=1 -timeout 15m -run '$(SQLITE_E2E)' .

cloudsdk: ## install the npm Cloud SDKs the e2e test TestCloudSDKs runs, from the committed lockfile (needs node and npm)
	cd e2e/cloudsdk && npm ci --no-audit --no-fund

test-zerodep: ## make run's path on an empty data dir with no database settings (no MySQL needed)
	cd e2e && go test -count=1 -run '^TestZeroDependencyRun$$' .

fuzz: ## run every fuzz target for FUZZTIME (default 50000 executions) on top of its committed seed corpus
	@for f in $(FUZZ); do \
		m=$${f%%:*}; rest=$${f#*:}; pkg=$${rest%%:*}; target=$${rest#*:}; \
		echo "== fuzz $$m $$pkg $$target ($(FUZZTIME))"; \
		(cd $$m && go test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg) || exit 1; \
	done

test-short: ## unit tests only (no processes, no database)
	@for m in $(MODULES); do (cd $$m && go test -short -count=1 ./...) || exit 1; done

check-compose: ## check docker-compose.yml and the Dockerfile against the binaries' env and flags (no Docker needed)
	@deploy/check-compose.sh

lint: check-compose ## go vet in every module, gofmt check, compose check
	@for m in $(MODULES); do (cd $$m && go vet ./...) || exit 1; done
	@test -z "$$(git ls-files '*.go' | grep -v '\.pb\.go$$' | xargs gofmt -l)" || (git ls-files '*.go' | grep -v '\.pb\.go$$' | xargs gofmt -l; exit 1)

tidy: ## go mod tidy in every module
	@for m in $(MODULES); do (cd $$m && go mod tidy) || exit 1; done

clean: ## remove bin/
	rm -rf $(BIN)
