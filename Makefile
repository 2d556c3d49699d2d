# The two commands a newcomer needs: `make run` and `make test`.
GO ?= go
FRONTEND_SRC := $(shell find frontend/src frontend/public frontend/index.html frontend/vite.config.ts frontend/tsconfig*.json -type f 2>/dev/null)
NPM_INSTALLED := frontend/node_modules/.package-lock.json

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: help run build frontend test test-go test-frontend check-dist bench lint fmt clean readme

## help: list the targets, from these comments
help:
	@awk '/^## / { line = substr($$0, 4); i = index(line, ": "); \
		if (i > 0 && line !~ /^\(/) printf "  %-8s %s\n", substr(line, 1, i - 1), substr(line, i + 2); \
		else printf "  %-8s %s\n", "", line }' $(MAKEFILE_LIST)

## run: the server with the page served from frontend/dist, rebuilt
## whenever its sources change (reload the browser to see a change)
run: frontend
	cd frontend && npx vite build --watch --logLevel warn & watcher=$$!; \
	trap 'kill $$watcher 2>/dev/null' EXIT INT TERM; \
	FRONTEND_DIR=frontend/dist $(GO) run .

## build: one binary, bin/streamrelay, with the page built into it
build: frontend
	$(GO) build -o bin/streamrelay .

frontend: frontend/dist/index.html

$(NPM_INSTALLED): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund

frontend/dist/index.html: $(NPM_INSTALLED) $(FRONTEND_SRC)
	cd frontend && npm run build

## test: every test: Go (with the race detector, real nginx and Redis),
## ESLint, Vitest, the committed page against a fresh build, three browsers
test: test-go test-frontend

test-go:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

test-frontend: $(NPM_INSTALLED)
	cd frontend && npm run lint
	cd frontend && npm test
	$(MAKE) --no-print-directory check-dist
	cd frontend && npm run e2e

## check-dist: the committed frontend/dist (what go build embeds) must be
## exactly what a fresh build of the sources gives
check-dist: $(NPM_INSTALLED)
	@out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && \
	cd frontend && npx tsc -b && npx vite build --logLevel warn --outDir "$$out" --emptyOutDir >/dev/null && \
	if ! diff -r --exclude=.vite dist "$$out" >/dev/null; then \
	  echo "frontend/dist is stale: run 'cd frontend && npm run build' and commit frontend/dist" >&2; \
	  diff -rq --exclude=.vite dist "$$out" >&2; exit 1; \
	fi

## lint: go vet, staticcheck and ESLint
lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(MAKE) --no-print-directory $(NPM_INSTALLED)
	cd frontend && npm run lint

## fmt: format the Go code
fmt:
	$(GO) fmt ./...

## readme: rewrite the README's configuration table from the code
readme:
	$(GO) test -count=1 -run '^TestREADMEConfigTable$$' -update .

## clean: remove what the build made (bin/; frontend/dist is committed)
clean:
	rm -rf bin

## bench: the load benchmark: the upstream, the server, the server on
## Redis and nginx
## (BENCHFLAGS=-runs 3 for medians of three runs)
bench:
	$(GO) run ./internal/bench $(BENCHFLAGS)
