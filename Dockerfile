# syntax=docker/dockerfile:1
#
# Sentinel container image: a static binary (CGO_ENABLED=0) on distroless,
# running as the non-root user 65532.
#
#   make image                       # docker build -t ghcr.io/sentinel-proxy/sentinel:$(cat VERSION) .
#   docker run --rm -p 8080:8080 -p 9090:9090 ghcr.io/sentinel-proxy/sentinel:0.1.0
#
# The image serves /etc/sentinel/sentinel.kdl (the embedded default config
# is copied there; mount your own over it). Caddy writes its data and
# autosaved config to /data and /config, so the root filesystem may be
# read-only (the Helm chart mounts emptyDir volumes there).

ARG GO_VERSION=1.26.8

# The operator's image (docs/operator.md), a target of its own:
#   docker build --target operator -t ghcr.io/sentinel-proxy/sentinel-operator:$(cat VERSION) .
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build-operator
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/sentinel-operator ./cmd/sentinel-operator

FROM gcr.io/distroless/static-debian12:nonroot AS operator
ARG VERSION=dev
LABEL org.opencontainers.image.title="sentinel-operator" \
      org.opencontainers.image.description="The Sentinel Kubernetes operator" \
      org.opencontainers.image.source="https://github.com/sentinel-proxy/sentinel" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build-operator /out/sentinel-operator /usr/bin/sentinel-operator
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/bin/sentinel-operator"]

# The proxy's image: the last stage, the default target.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first: a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/sentinel ./cmd/sentinel
# Writable directories for Caddy, owned by the runtime user.
RUN mkdir -p /out/data /out/config /out/etc/sentinel \
    && cp default.kdl /out/etc/sentinel/sentinel.kdl

FROM gcr.io/distroless/static-debian12:nonroot
# The binary embeds VERSION itself; this is only the image label (make
# image passes $(cat VERSION)).
ARG VERSION=dev
LABEL org.opencontainers.image.title="sentinel" \
      org.opencontainers.image.description="Sentinel, a security-first reverse proxy configured in KDL, built on Caddy v2" \
      org.opencontainers.image.source="https://github.com/sentinel-proxy/sentinel" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/sentinel /usr/bin/sentinel
COPY --from=build /out/etc/sentinel/sentinel.kdl /etc/sentinel/sentinel.kdl
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 /out/config /config
ENV XDG_DATA_HOME=/data \
    XDG_CONFIG_HOME=/config
USER 65532:65532
# main listener, TLS listener (TCP, and UDP for HTTP/3), ops listener
# (health, metrics), control-plane API.
EXPOSE 8080 8443 8443/udp 9090 9901
ENTRYPOINT ["/usr/bin/sentinel"]
CMD ["run", "--config", "/etc/sentinel/sentinel.kdl"]
