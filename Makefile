# flightline — see README.md. Every target installs what it needs when missing.
GO      ?= go
PKGS    := ./...
# staticcheck is pinned in tools/go.mod (module honnef.co/go/tools v0.8.2 —
# the release called 2026.2.2), its hashes in tools/go.sum: the same binary
# on every clone and in CI, fetched once through the module proxy by `deps`.
STATICCHECK := $(GO) tool -modfile=$(CURDIR)/tools/go.mod staticcheck

.PHONY: all demo test test-short bench bench-full bench-micro lint deps fuzz clean

all: test

# deps installs the system packages the privileged tests use (iproute2 for
# namespaces and veth, ethtool for offload settings, nftables) when they are
# missing and we can install them (root + apt). Elsewhere it says what is
# missing; the tests that need them then skip with that reason.
deps:
	@missing=""; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	command -v ethtool >/dev/null 2>&1 || missing="$$missing ethtool"; \
	command -v nft >/dev/null 2>&1 || missing="$$missing nftables"; \
	command -v taskset >/dev/null 2>&1 || missing="$$missing util-linux"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing:$$missing"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1 || \
			  { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; }; \
		else \
			echo "note: missing$$missing (privileged tests will skip)"; \
		fi; \
	fi
	@$(GO) mod download
	@cd bench && $(GO) mod download
	@cd tools && $(GO) mod download

# demo: an encrypted transfer between two endpoints — over a veth pair in
# network namespaces (AF_XDP where it works) when run as root, else over
# loopback — printing throughput.
demo: deps
	$(GO) run ./cmd/flightline demo

# test: lint (below), then every test under the race detector. Privileged
# tests (netns, XDP, AF_XDP) run as root and skip elsewhere; with CI=true
# they fail instead of skipping. The line-rate end-to-end suite in e2e/ moves
# gigabytes over veth pairs and runs without -race (the race detector slows
# it tenfold and the concurrent code it drives is raced in the unit tests).
# So do the congestion-control network simulations (TestBBRSim*): one
# goroutine, virtual time; -race only slows them 25x and they skip under it.
test: deps lint
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list $(PKGS) | grep -v '/e2e$$')
	@if [ -d e2e ]; then $(GO) test -count=1 -timeout 15m ./e2e/; fi
	$(GO) test -count=1 -run 'Sim' ./transport/internal/congestion/
	cd bench && $(GO) test -count=1 -timeout 10m ./...

test-short:
	$(GO) test -short -count=1 $(PKGS)

# bench: the side-by-side comparison over veth (flightline vs kernel TCP,
# quic-go, kcp-go and raw ceilings), the quick plan (~4 minutes), printing
# the table. Needs root (network namespaces). bench-full runs the whole
# matrix with CPU profiles of every run. Results: bench/results/<plan>/.
bench: deps
	cd bench && $(GO) run ./cmd/flightline-bench -plan quick -out results/quick

bench-full: deps
	cd bench && $(GO) run ./cmd/flightline-bench -plan full -cpuprofile -out results/full

# bench-micro: the in-package Go benchmarks (codec, crypto, tracker,
# loopback goodput and its raw ceiling).
bench-micro: deps
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./transport/ ./transport/internal/... ./transport/udplink/

# lint: gofmt, go vet, staticcheck and `go mod tidy -diff` over the library
# and the bench module (its own module); tools/ is checked for tidiness.
# `make test` runs it first, so CI fails on any finding.
lint: deps
	@echo "gofmt -l ."; out=$$(gofmt -l .) || exit 1; \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	cd bench && $(GO) vet ./...
	$(STATICCHECK) $(PKGS)
	cd bench && $(STATICCHECK) ./...
	$(GO) mod tidy -diff
	cd bench && $(GO) mod tidy -diff
	cd tools && $(GO) mod tidy -diff

# fuzz runs every fuzz target briefly (the seed corpora also run in `make test`).
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzFrames -fuzztime 20s ./transport/internal/wire/
	$(GO) test -run '^$$' -fuzz FuzzAccept -fuzztime 20s ./transport/internal/handshake/
	$(GO) test -run '^$$' -fuzz FuzzOpen -fuzztime 20s ./transport/internal/handshake/
	$(GO) test -run '^$$' -fuzz FuzzConn -fuzztime 20s ./transport/
	$(GO) test -run '^$$' -fuzz FuzzPacketKeysOpen -fuzztime 20s ./transport/

clean:
	$(GO) run ./cmd/flightline testnet gc || true
