#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) from
# the Go module proxy into bin/k8s/<version>/, once per machine. setup-envtest's download
# sources are not reachable everywhere, so the binaries come from source instead.
#
# k8s.io/kubernetes is not meant to be consumed as a module: its go.mod replaces every
# k8s.io/* staging module with a path inside its own repository. A small wrapper module
# requires it and replaces each staging module with its published release instead.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
STAGING_VERSION=${STAGING_VERSION:-v0.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.6}

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bin/k8s/$K8S_VERSION"
work="$root/bin/k8s/build"
mkdir -p "$out" "$work"

log() { printf '[control-plane] %s %s\n' "$(date +%H:%M:%S)" "$*"; }

build_etcd() {
  if [ -x "$out/etcd" ]; then log "etcd present"; return; fi
  log "building etcd $ETCD_VERSION (about 1 minute the first time)"
  local dir="$work/etcd"
  mkdir -p "$dir"
  cat >"$dir/main.go" <<'GO'
// Command etcd runs the etcd server through its library entry point.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (
    cd "$dir"
    [ -f go.mod ] || go mod init rolecall.local/etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null
    go mod tidy >/dev/null
    go build -o "$out/etcd" .
  )
  log "etcd ready"
}

build_kube() {
  local missing=()
  for bin in kube-apiserver kube-controller-manager kubectl; do
    [ -x "$out/$bin" ] || missing+=("$bin")
  done
  if [ ${#missing[@]} -eq 0 ]; then log "kubernetes binaries present"; return; fi
  log "building ${missing[*]} $K8S_VERSION (about 12-15 minutes the first time on 2 cores)"
  local dir="$work/kubernetes"
  mkdir -p "$dir"
  (
    cd "$dir"
    if [ ! -f go.mod ]; then
      go mod init rolecall.local/kubernetes >/dev/null 2>&1
      go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
      local modfile
      modfile=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod
      # Every "k8s.io/x => ./staging/src/k8s.io/x" line becomes "k8s.io/x => k8s.io/x vX".
      awk -v v="$STAGING_VERSION" '/=> \.\/staging\/src\// {print "-replace=" $1 "=" $1 "@" v}' "$modfile" \
        | xargs go mod edit
      go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
      cat >tools.go <<'GO'
//go:build tools

// Package tools pins the Kubernetes commands this module builds.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
      log "resolving modules"
      go mod tidy -e >/dev/null 2>&1 || true
    fi
    for bin in "${missing[@]}"; do
      log "compiling $bin"
      go build -tags tools -o "$out/$bin" "k8s.io/kubernetes/cmd/$bin"
      log "$bin ready"
    done
  )
}

build_etcd
build_kube
log "binaries in $out"
