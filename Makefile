# Sentinel: build, container image, Helm chart.
#
#   make build    static binary in bin/sentinel (CGO_ENABLED=0, as in the image)
#   make test     the test suite (the README's command; ~2 min on 2 cores with a warm cache)
#   make test-long  the long tests too: load-harness bench, soak, chaos, LB benchmark (SENTINEL_LONG_TESTS=1)
#   make image    container image $(IMAGE):$(VERSION) with docker build
#   make chart    chart package and repository index in dist/ (helm package + helm repo index)
#   make bench    benchmark Sentinel against stock Caddy and NGINX (BENCHFLAGS="-rounds 3", "-mode soak", "-quick"; docs/benchmarks.md)
#   make docs     regenerate the values tables of README.md and charts/sentinel/README.md
#
# The version lives in VERSION (Chart.yaml's version and appVersion follow
# it; deploy/chart_test.go checks). The binary embeds it (package sentinel),
# so `go build`, `make build` and the Dockerfile need no -ldflags for it;
# `make image` passes it to the image label. Helm runs from its Go module,
# no install needed.

VERSION  := $(shell cat VERSION)
IMAGE    ?= ghcr.io/sentinel-proxy/sentinel
PLATFORM ?= linux/amd64
HELM     ?= go run helm.sh/helm/v3/cmd/helm@v3.22.0
CHART    := charts/sentinel
DIST     ?= dist
REPO_URL ?= https://sentinel-proxy.github.io/sentinel
# helm template/lint run without a cluster: give the Kubernetes version.
KUBE_VERSION ?= 1.31.0

.PHONY: help build test test-long image chart chart-lint docs clean

help:
	@sed -n 's/^#   //p' Makefile

build:
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/sentinel ./cmd/sentinel

test:
	go test -cover ./...

test-long:
	SENTINEL_LONG_TESTS=1 go test -cover -timeout 80m ./integration/...

image:
	docker build --platform $(PLATFORM) --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) .

chart-lint:
	$(HELM) lint --strict --kube-version $(KUBE_VERSION) $(CHART)

# index.yaml is merged with an existing one in $(DIST) (e.g. a checkout of
# the gh-pages branch), so earlier versions stay listed.
chart: chart-lint
	mkdir -p $(DIST)
	$(HELM) package $(CHART) --version $(VERSION) --app-version $(VERSION) --destination $(DIST)
	cp artifacthub-repo.yml $(DIST)/
	if [ -f $(DIST)/index.yaml ]; then \
		$(HELM) repo index $(DIST) --url $(REPO_URL) --merge $(DIST)/index.yaml; \
	else \
		$(HELM) repo index $(DIST) --url $(REPO_URL); \
	fi

.PHONY: bench
bench:
	go run ./integration/loadharness -mode bench $(BENCHFLAGS)

docs:
	go test ./deploy -run TestValuesTable -update

clean:
	rm -rf bin $(DIST)
