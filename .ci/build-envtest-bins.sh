#!/usr/bin/env bash
# Builds etcd + kube-apiserver for envtest from the Go module proxy only.
# Copied from ../shared/reference/build-envtest-bins.sh (docs: envtest-from-source.md).
# .ci/run calls it when the binaries are not in the cache yet.
set -euo pipefail
K8S=${K8S:-v1.37.2}; STG=${STG:-v0.37.2}; ETCD=${ETCD:-v3.7.3}
OUT=${OUT:-$PWD/.envtest-bin}; W=$(mktemp -d); mkdir -p "$OUT"
NICE=${NICE:-nice -n 19}

# --- etcd ---
mkdir -p "$W/etcd" && cd "$W/etcd"
cat > go.mod <<EOM
module local/etcdbuild

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD
EOM
cat > main.go <<'EOM'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOM
$NICE go mod tidy
$NICE go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" .

# --- kube-apiserver ---
mkdir -p "$W/kas" && cd "$W/kas"
go mod download -json k8s.io/kubernetes@$K8S >/dev/null
KMOD=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S.mod
{ printf 'module local/kasbuild\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$K8S"
  sed -n '/^require (/,/^)/p' "$KMOD" | awk -v v="$STG" '$1 ~ /^k8s\.io\// && $2=="v0.0.0" {print "\t"$1" => "$1" "v}'
  echo ')'; } > go.mod
printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' > tools.go
$NICE go mod tidy
V=k8s.io/component-base/version
$NICE go build -trimpath -ldflags "-s -w -X $V.gitVersion=$K8S -X $V.gitTreeState=clean" \
  -o "$OUT/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
"$OUT/etcd" --version | head -1; "$OUT/kube-apiserver" --version
