# The two commands a newcomer needs: `make run` and `make test`.
GO ?= go
FRONTEND_SRC := $(shell find frontend/src frontend/public frontend/index.html frontend/vite.config.ts frontend/tsconfig*.json -type f 2>/dev/null)
NPM_INSTALLED := frontend/node_modules/.package-lock.json

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: help run build frontend test test-go test-frontend bench lint fmt clean readme

## help: list the targets, from these comments
help:
	@awk '/^## / { line = substr($$0, 4); i = index(line, ": "); \
		if (i > 0 && line !~ /^\(/) printf "  %-8s %s\n", substr(line, 1, i - 1), substr(line, i + 2); \
		else printf "  %-8s %s\n", "", line }' $(MAKEFILE_LIST)

## run: build the frontend if it is missing or stale, then start the server
run: frontend
	$(GO) run .

## build: the server binary in bin/, with the frontend built beside it
build: frontend
	$(GO) build -o bin/streamrelay .

frontend: frontend/dist/index.html

$(NPM_INSTALLED): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund

frontend/dist/index.html: $(NPM_INSTALLED) $(FRONTEND_SRC)
	cd frontend && npm run build

## test: every test: Go (with the race detector, real nginx), Vitest, Chromium
test: test-go test-frontend

test-go:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

test-frontend: $(NPM_INSTALLED)
	cd frontend && npm test
	cd frontend && npm run e2e

## lint: go vet, staticcheck, and ESLint once the frontend has a lint script
lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@if grep -q '"lint":' frontend/package.json; then \
		$(MAKE) --no-print-directory $(NPM_INSTALLED) && cd frontend && npm run lint; \
	fi

## fmt: format the Go code
fmt:
	$(GO) fmt ./...

## readme: rewrite the README's configuration table from the code
readme:
	$(GO) test -count=1 -run '^TestREADMEConfigTable$$' -update .

## clean: remove what the build made (bin/, frontend/dist/)
clean:
	rm -rf bin frontend/dist

## bench: the load benchmark against the upstream, the server and nginx
## (BENCHFLAGS=-runs 3 for medians of three runs)
bench:
	$(GO) run ./bench $(BENCHFLAGS)
