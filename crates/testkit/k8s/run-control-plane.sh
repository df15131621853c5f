#!/usr/bin/env bash
# Starts a real, loopback-only Kubernetes v1.34.4 control plane (etcd,
# kube-apiserver with its in-process aggregator, kube-controller-manager) from
# the binary that build.sh builds, in a fresh temp dir, and prints the admin
# kubeconfig's path. Everything it started is killed on exit or Ctrl-C.
#
#   run-control-plane.sh           start, print KUBECONFIG=..., wait for Ctrl-C
#   run-control-plane.sh --check   start, run the smoke checks, stop
#
# Env: K8S_BIN (dir with the k8s binary; default: build.sh's output),
#      KUBECTL (default: the machine's kubectl.1.33 when present, else kubectl),
#      KEEP_TMP=1 keeps the temp dir (certs, logs, etcd data) after exit.
#
# This script is the reference for the exact flags; the Rust test harness
# follows it. Only 127.0.0.1 is ever bound or contacted.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mode=${1:-serve}
case "$mode" in
  serve | --check) ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
log() { echo "run-control-plane: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

K8S_BIN=${K8S_BIN:-$(bash "$here/build.sh" | tail -n1)}
[[ -x "$K8S_BIN/k8s" ]] || die "no k8s binary in $K8S_BIN"
if [[ -z "${KUBECTL:-}" ]]; then
  KUBECTL=kubectl
  if real=$(readlink -f "$(command -v kubectl 2>/dev/null)" 2>/dev/null) &&
    [[ -x "$(dirname "$real")/kubectl.1.33" ]]; then
    KUBECTL="$(dirname "$real")/kubectl.1.33"
  fi
fi
command -v openssl >/dev/null || die "openssl is needed"
command -v curl >/dev/null || die "curl is needed"

dir=$(mktemp -d "${TMPDIR:-/tmp}/kaddons-cp.XXXXXX")
pids=()
cleanup() {
  local rc=$? pid
  # A second Ctrl-C (or timeout(1) signalling the whole group after the
  # script) must not cut the cleanup short.
  trap - EXIT
  trap '' INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ "${KEEP_TMP:-}" == 1 ]]; then
    log "kept $dir"
  else
    rm -rf "$dir"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free TCP port on 127.0.0.1 (the kernel picks it; small race until use).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------- certificates
pki="$dir/pki"
mkdir -p "$pki"
ossl() { openssl "$@" 2>>"$dir/openssl.log"; }

# new_ca NAME CN
new_ca() {
  ossl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
    -keyout "$pki/$1.key" -out "$pki/$1.crt" -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
}
# new_cert CA NAME SUBJECT EXTKEYUSAGE [SUBJECTALTNAME]
new_cert() {
  local ext="$pki/$2.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$4"
    [[ -z "${5:-}" ]] || echo "subjectAltName=$5"
  } >"$ext"
  ossl req -new -newkey rsa:2048 -nodes -keyout "$pki/$2.key" -out "$pki/$2.csr" -subj "$3"
  ossl x509 -req -in "$pki/$2.csr" -CA "$pki/$1.crt" -CAkey "$pki/$1.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$ext" -out "$pki/$2.crt"
}

t0=$(now)
new_ca ca kaddons-test-ca
new_cert ca apiserver "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1"
new_cert ca admin "/O=system:masters/CN=admin" clientAuth
new_cert ca controller-manager "/CN=system:kube-controller-manager" clientAuth
new_ca front-proxy-ca kaddons-test-front-proxy-ca
new_cert front-proxy-ca front-proxy-client "/CN=front-proxy-client" clientAuth
ossl genrsa -out "$pki/sa.key" 2048
ossl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
log "certificates in $pki ($(elapsed "$t0")s)"

etcd_client=$(free_port)
etcd_peer=$(free_port)
apiserver_port=$(free_port)
kcm_port=$(free_port)
server="https://127.0.0.1:$apiserver_port"

# kubeconfig FILE USER
kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kaddons-test
  cluster:
    server: $server
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $pki/$2.crt
    client-key: $pki/$2.key
contexts:
- name: kaddons-test
  context:
    cluster: kaddons-test
    user: $2
current-context: kaddons-test
EOF
}
kubeconfig "$dir/admin.kubeconfig" admin
kubeconfig "$dir/controller-manager.kubeconfig" controller-manager

# ---------------------------------------------------------------- processes
start=$(now)
"$K8S_BIN/etcd" \
  --name=default \
  --data-dir="$dir/etcd" \
  --listen-client-urls="http://127.0.0.1:$etcd_client" \
  --advertise-client-urls="http://127.0.0.1:$etcd_client" \
  --listen-peer-urls="http://127.0.0.1:$etcd_peer" \
  --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer" \
  --initial-cluster="default=http://127.0.0.1:$etcd_peer" \
  --initial-cluster-state=new \
  --log-level=warn \
  >"$dir/etcd.log" 2>&1 &
pids+=($!)

"$K8S_BIN/kube-apiserver" \
  --advertise-address=127.0.0.1 \
  --bind-address=127.0.0.1 \
  --secure-port="$apiserver_port" \
  --etcd-servers="http://127.0.0.1:$etcd_client" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --authorization-mode=Node,RBAC \
  --client-ca-file="$pki/ca.crt" \
  --tls-cert-file="$pki/apiserver.crt" \
  --tls-private-key-file="$pki/apiserver.key" \
  --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --endpoint-reconciler-type=none \
  --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-username-headers=X-Remote-User \
  --proxy-client-cert-file="$pki/front-proxy-client.crt" \
  --proxy-client-key-file="$pki/front-proxy-client.key" \
  >"$dir/kube-apiserver.log" 2>&1 &
pids+=($!)

curl_admin() {
  curl -sS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$@"
}
deadline=$(($(date +%s) + 90))
until [[ "$(curl_admin "$server/readyz" 2>/dev/null)" == ok ]]; do
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || {
      tail -n 20 "$dir"/*.log >&2
      die "a process exited early (pid $pid); logs above, in $dir"
    }
  done
  if (($(date +%s) > deadline)); then
    curl_admin "$server/readyz?verbose" >&2 || true
    die "kube-apiserver not ready after 90s; logs in $dir"
  fi
  sleep 0.1
done
log "kube-apiserver /readyz ok $(elapsed "$start")s after etcd and kube-apiserver were started"

# kube-controller-manager starts only after /readyz: before the RBAC bootstrap
# (poststarthook/rbac/bootstrap-roles) it cannot read
# kube-system/extension-apiserver-authentication and exits at once with
# "unable to load configmap based request-header-client-ca-file: ... forbidden".
kcm_start=$(now)
"$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$dir/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$dir/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$dir/controller-manager.kubeconfig" \
  --use-service-account-credentials \
  --service-account-private-key-file="$pki/sa.key" \
  --root-ca-file="$pki/ca.crt" \
  --cluster-signing-cert-file="$pki/ca.crt" \
  --cluster-signing-key-file="$pki/ca.key" \
  --leader-elect=false \
  --bind-address=127.0.0.1 \
  --secure-port="$kcm_port" \
  --controllers='*' \
  --flex-volume-plugin-dir="$dir/flexvolume" \
  >"$dir/kube-controller-manager.log" 2>&1 &
pids+=($!)

until [[ "$(curl -sS --max-time 5 -k "https://127.0.0.1:$kcm_port/healthz" 2>/dev/null)" == ok ]]; do
  kill -0 "${pids[-1]}" 2>/dev/null || {
    tail -n 20 "$dir/kube-controller-manager.log" >&2
    die "kube-controller-manager exited early; log above, in $dir"
  }
  (($(date +%s) <= deadline)) || die "kube-controller-manager not healthy after 90s; log in $dir"
  sleep 0.1
done
log "kube-controller-manager /healthz ok $(elapsed "$kcm_start")s after its start ($(elapsed "$start")s after etcd's)"

export KUBECONFIG="$dir/admin.kubeconfig"
log "logs: $dir/{etcd,kube-apiserver,kube-controller-manager}.log"
echo "KUBECONFIG=$KUBECONFIG"

if [[ "$mode" == serve ]]; then
  log "running; Ctrl-C stops everything"
  wait -n "${pids[@]}" || true
  die "a process exited; logs in $dir"
fi

# ---------------------------------------------------------------- --check
k() { "$KUBECTL" "$@"; }
check() { log "check: $*"; }

check "kubectl version reports v1.34.4"
k version
k version -o json | grep -q '"gitVersion": "v1.34.4"' || die "server is not v1.34.4"

check "APIServices (kube-aggregator in process)"
k get apiservices
k get apiservice v1.apps -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' | grep -qx True

check "Deployment -> ReplicaSet -> Pods (Pending, no node)"
k create deployment smoke --image=registry.k8s.io/pause:3.10 --replicas=2
for _ in $(seq 100); do
  [[ "$(k get pods -l app=smoke -o name | wc -l)" == 2 ]] && break
  sleep 0.2
done
k get deploy,rs,pods -l app=smoke -o wide
[[ "$(k get pods -l app=smoke -o jsonpath='{.items[*].status.phase}')" == "Pending Pending" ]] || die "pods not Pending"

check "server-side apply with a field manager"
cat >"$dir/cm.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: smoke
  namespace: default
data:
  a: "1"
EOF
k apply --server-side --field-manager=kaddons-smoke -f "$dir/cm.yaml"
k get cm smoke --show-managed-fields -o jsonpath='{.metadata.managedFields[*].manager}' | grep -qw kaddons-smoke
sed 's/"1"/"2"/' "$dir/cm.yaml" >"$dir/cm2.yaml"
if k apply --server-side --field-manager=other -f "$dir/cm2.yaml" 2>"$dir/conflict.txt"; then
  die "expected a conflict"
fi
grep -q conflict "$dir/conflict.txt" && log "conflict as expected: $(head -n1 "$dir/conflict.txt")"

check "--dry-run=server"
k create configmap dry --from-literal=x=y --dry-run=server -o name
if k get cm dry 2>/dev/null; then die "dry run wrote"; fi
k apply --server-side --field-manager=kaddons-smoke --dry-run=server -f "$dir/cm2.yaml" -o jsonpath='{.data.a}{"\n"}'
[[ "$(k get cm smoke -o jsonpath='{.data.a}')" == 1 ]] || die "server dry-run apply wrote"

check "delete with foreground propagation"
k delete deployment smoke --cascade=foreground --timeout=60s
for _ in $(seq 100); do
  [[ -z "$(k get rs,pods -l app=smoke -o name)" ]] && break
  sleep 0.2
done
[[ -z "$(k get deploy,rs,pods -l app=smoke -o name)" ]] || die "dependents left after foreground delete"

log "all checks passed"
