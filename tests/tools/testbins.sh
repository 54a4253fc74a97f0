#!/usr/bin/env bash
# Builds the third-party binaries the tests run against, from the Go module proxy:
# kube-apiserver and kubectl (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3) and helm
# (helm.sh/helm/v4, for the chart's checks). They are cached under $MULTI_ENI_CACHE (default ~/.cache/multi-eni) and reused when present.
# The last line printed is the absolute path of the directory holding the binaries.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
HELM_VERSION=${HELM_VERSION:-v4.3.1}
CACHE=${MULTI_ENI_CACHE:-$HOME/.cache/multi-eni}
BIN="$CACHE/testbins/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

mkdir -p "$BIN" "$CACHE/gosrc"

# helm: a plain module (no replace directives); built when its pinned version is missing.
if [[ ! -x $BIN/helm-$HELM_VERSION ]]; then
  echo "building helm $HELM_VERSION" >&2
  GOFLAGS= GOBIN="$CACHE/gosrc/helm-$HELM_VERSION" go install -trimpath \
    -ldflags="-s -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  mv "$CACHE/gosrc/helm-$HELM_VERSION/helm" "$BIN/helm-$HELM_VERSION"
fi
[[ $(readlink "$BIN/helm") == "helm-$HELM_VERSION" ]] || ln -sfn "helm-$HELM_VERSION" "$BIN/helm"

if [[ -x $BIN/kube-apiserver && -x $BIN/kubectl && -x $BIN/etcd ]]; then
  echo "$BIN"
  exit 0
fi

# etcd: a one-line main around etcdmain, because etcd's own go.mod has replace directives
# that `go install module@version` refuses.
etcd_mod="$CACHE/gosrc/etcd-$ETCD_VERSION"
mkdir -p "$etcd_mod"
cat >"$etcd_mod/go.mod" <<MOD
module multi-eni.local/etcd
go 1.24
require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
echo "building etcd $ETCD_VERSION" >&2
(cd "$etcd_mod" && go build -trimpath -ldflags=-s -o "$BIN/etcd" go.etcd.io/etcd/server/v3)

# Kubernetes: k8s.io/kubernetes points its staging modules at ./staging; replace each one
# with its published v0.x release.
k8s_mod="$CACHE/gosrc/kubernetes-$K8S_VERSION"
mkdir -p "$k8s_mod"
gomod=$(cd "$k8s_mod" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
staging_version="v0.${K8S_VERSION#v1.}"
{
  echo "module multi-eni.local/kubernetes"
  echo "go 1.24"
  echo "require k8s.io/kubernetes $K8S_VERSION"
  grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
} >"$k8s_mod/go.mod"
echo "building kube-apiserver and kubectl $K8S_VERSION" >&2
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
done
(cd "$k8s_mod" && go build -trimpath -ldflags="$ldflags" -o "$BIN/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl)

echo "$BIN"
