#!/usr/bin/env bash
# Times `kaddons render metrics-server --profile kind` against `kubectl kustomize` of the
# equivalent overlay in scripts/bench-render/ (median of many runs each, one after the other).
# Needs hyperfine (Debian package `hyperfine`) and kubectl. Usage: scripts/bench-render.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
for tool in hyperfine kubectl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install hyperfine; kubectl from your distribution)" >&2; exit 2; }
done
cargo build --release --locked --bin kaddons >&2
bin="${CARGO_TARGET_DIR:-target}/release/kaddons"
# Both must produce the same number of objects for the comparison to mean anything.
ours=$("$bin" render metrics-server --profile kind -q | grep -c '^kind:')
theirs=$(kubectl kustomize scripts/bench-render | grep -c '^kind:')
[ "$ours" = "$theirs" ] || { echo "object counts differ: kaddons $ours, kustomize $theirs" >&2; exit 1; }
out=$(mktemp -d)
HOME="$out" hyperfine --shell=none --warmup 3 --runs "$runs" --export-json "$out/render.json" \
  "$bin render metrics-server --profile kind -q" \
  "kubectl kustomize scripts/bench-render" >&2
python3 - "$out/render.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
med = {x["command"].split()[0].rsplit("/", 1)[-1]: x["median"] for x in r}
k, ku = med["kaddons"], med["kubectl"]
print(f"kaddons render: median {k*1000:.2f} ms; kubectl kustomize: median {ku*1000:.2f} ms; ratio {k/ku:.3f}")
PY
rm -rf "$out"
