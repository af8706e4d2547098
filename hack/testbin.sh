#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries that tests run against
# (kube-apiserver, etcd, kube-controller-manager, kube-scheduler, kubectl,
# kwok) from the Go module proxy, into a cache outside the checkout keyed by
# version and by the tools modules' go.sum. Rebuilds only what is missing.
#
# Prints the directory holding the binaries on its last line of stdout.
# Usage: hack/testbin.sh [--print-dir]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
k8s_version="$(awk '$1=="k8s.io/kubernetes"{print $2}' "$root/hack/tools/k8s/go.mod")"
etcd_version="$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2}' "$root/hack/tools/k8s/go.mod")"
kwok_version="$(awk '$1=="require" && $2=="sigs.k8s.io/kwok"{print $3}' "$root/hack/tools/kwok/go.mod")"
sum="$(cat "$root/hack/tools/k8s/go.sum" "$root/hack/tools/kwok/go.sum" | sha256sum | cut -c1-12)"

cache="${FLOTILLA_TESTBIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flotilla/testbin}"
dir="$cache/k8s-${k8s_version}_etcd-${etcd_version}_kwok-${kwok_version}_${sum}"

if [[ "${1:-}" == "--print-dir" ]]; then
  echo "$dir"
  exit 0
fi

want=(kube-apiserver etcd kube-controller-manager kube-scheduler kubectl kwok)
missing=()
for b in "${want[@]}"; do
  [[ -x "$dir/$b" ]] || missing+=("$b")
done
[[ -d "$dir/kwok-stages" ]] || missing+=(kwok-stages)

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "testbin: cached in $dir" >&2
  echo "$dir"
  exit 0
fi

echo "testbin: building ${missing[*]} into $dir" >&2
echo "testbin: a cold build takes about 10 minutes on 2 cores; progress follows" >&2
mkdir -p "$dir"
tmp="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

progress() {
  # go build -v prints one line per package compiled; summarise them.
  awk -v what="$1" '{n++; if (n % 200 == 0) {printf "testbin:   %s: %d packages compiled\n", what, n; fflush()}} END {printf "testbin:   %s: %d packages compiled in total\n", what, n}' >&2
}

start=$(date +%s)
ldver="-X k8s.io/component-base/version.gitVersion=${k8s_version} -X k8s.io/component-base/version.gitMajor=$(echo "${k8s_version#v}" | cut -d. -f1) -X k8s.io/component-base/version.gitMinor=$(echo "${k8s_version#v}" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean"

need_k8s=0
for b in kube-apiserver etcd kube-controller-manager kube-scheduler kubectl; do
  [[ -x "$dir/$b" ]] || need_k8s=1
done
if [[ $need_k8s == 1 ]]; then
  echo "testbin: [1/2] Kubernetes ${k8s_version} and etcd ${etcd_version}" >&2
  (
    cd "$root/hack/tools/k8s"
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -v -trimpath -ldflags "-s -w $ldver" -o "$tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kubectl \
      go.etcd.io/etcd/server/v3 2>&1
  ) | progress "kubernetes"
  mv "$tmp/server" "$tmp/etcd"
  for b in kube-apiserver etcd kube-controller-manager kube-scheduler kubectl; do
    [[ -x "$tmp/$b" ]] || { echo "testbin: ERROR: $b was not built; see the go build output above" >&2; exit 1; }
    mv -f "$tmp/$b" "$dir/$b"
  done
  echo "testbin:   done after $(( $(date +%s) - start ))s" >&2
fi

if [[ ! -x "$dir/kwok" || ! -d "$dir/kwok-stages" ]]; then
  echo "testbin: [2/2] kwok ${kwok_version}" >&2
  (
    cd "$root/hack/tools/kwok"
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -v -trimpath -ldflags "-s -w" -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok 2>&1
  ) | progress "kwok"
  [[ -x "$tmp/kwok" ]] || { echo "testbin: ERROR: kwok was not built; see the go build output above" >&2; exit 1; }
  kwokdir="$(cd "$root/hack/tools/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  mkdir -p "$tmp/kwok-stages"
  for s in node/fast node/heartbeat-with-lease pod/fast; do
    for f in "$kwokdir/kustomize/stage/$s"/*.yaml; do
      [[ "$(basename "$f")" == kustomization.yaml ]] && continue
      cp "$f" "$tmp/kwok-stages/$(echo "$s" | tr / -)-$(basename "$f")"
    done
  done
  chmod -R u+w "$tmp/kwok-stages"
  rm -rf "$dir/kwok-stages"
  mv -f "$tmp/kwok" "$dir/kwok"
  mv "$tmp/kwok-stages" "$dir/kwok-stages"
  echo "testbin:   done after $(( $(date +%s) - start ))s" >&2
fi

echo "testbin: ready in $dir ($(( $(date +%s) - start ))s)" >&2
echo "$dir"
