#!/usr/bin/env bash
# The model cache against its anchors, in one run on loopback:
#   1. fill throughput: `spaceport cache fill` of a model repo with one large
#      file, from spaceport's own download API, against plain `curl` of the
#      same file from the same server (target: at least 0.8x curl);
#   2. `huggingface_hub.snapshot_download` of the same repo against
#      spaceport's own fill.
# Runs are interleaved and repeated; the medians and their ratio are
# printed as a Markdown table for BENCHMARKS.md.
#
# Needs: a release build (cargo build --release -p spaceport-runtime), git,
# curl, python3 with huggingface_hub.
# Usage: runtime/scripts/bench-cache.sh [RUNS] [SIZE_MB]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-7}"
size_mb="${2:-256}"
bin="${SPACEPORT_BIN:-target/release/spaceport}"
[ -x "$bin" ] || { echo "build first: cargo build --release -p spaceport-runtime" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl is missing" >&2; exit 2; }
python3 -c 'import huggingface_hub' 2>/dev/null || { echo "pip install huggingface_hub" >&2; exit 2; }

work="$(mktemp -d)"
token="hf_bench_cache_token_0123456789abcdef"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
cleanup() { kill "$hub" 2>/dev/null || true; wait "$hub" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

SPACEPORT_ADMIN_TOKEN="$token" SPACEPORT_LOG=warn "$bin" up --runner process \
  --data-dir "$work/data" --listen "127.0.0.1:$port" --examples none >"$work/hub.log" 2>&1 &
hub=$!
for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done

curl -sf -X POST -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"bench-model","organization":"admin","type":"model"}' "$base/api/repos/create" >/dev/null
mkdir -p "$work/model"
(
  cd "$work/model"
  git init -q -b main
  echo '{"hidden_size": 8}' > config.json
  head -c "$((size_mb << 20))" /dev/urandom > weights.bin
  git add . && git -c user.name=b -c user.email=b@b commit -qm weights
  git push -q "http://admin:$token@127.0.0.1:$port/admin/bench-model" main
)
url="$base/admin/bench-model/resolve/main/weights.bin"
# The first request makes the SHA-256-addressed copy of the blob; time
# what comes after, as every later download is served.
curl -sf -o /dev/null "$url"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }
: >"$work/curl" ; : >"$work/curlsync" ; : >"$work/fill" ; : >"$work/snap"
for i in $(seq "$runs"); do
  t0=$(now); curl -sf -o "$work/curl.out" "$url"; t1=$(now)
  echo "$t1 - $t0" | bc -l >>"$work/curl"; rm -f "$work/curl.out"
  # The same, made durable as the fill makes its blobs (fsync).
  t0=$(now); curl -sf -o "$work/curl.out" "$url"; sync -d "$work/curl.out"; t1=$(now)
  echo "$t1 - $t0" | bc -l >>"$work/curlsync"; rm -f "$work/curl.out"
  rm -rf "$work/cache"
  t0=$(now); "$bin" cache fill --cache "$work/cache" --endpoint "$base" admin/bench-model >/dev/null; t1=$(now)
  echo "$t1 - $t0" | bc -l >>"$work/fill"
  rm -rf "$work/hfcache"
  t0=$(now)
  HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_DISABLE_TELEMETRY=1 python3 -c "
from huggingface_hub import snapshot_download
snapshot_download('admin/bench-model', endpoint='$base', cache_dir='$work/hfcache')" >/dev/null 2>&1
  t1=$(now)
  echo "$t1 - $t0" | bc -l >>"$work/snap"
done
c=$(median <"$work/curl"); cs=$(median <"$work/curlsync"); f=$(median <"$work/fill"); s=$(median <"$work/snap")
mb=$(echo "$size_mb * 1048576 / 1000000" | bc -l)
rate() { echo "$mb / $1" | bc -l | xargs printf '%.0f'; }
echo "machine: $(nproc) cores, $(uname -m); load before: $(cut -d' ' -f1-3 /proc/loadavg); runs: $runs; file: $size_mb MiB"
echo
echo "| | median time | throughput | ratio |"
echo "|---|---:|---:|---:|"
printf '| curl of the file (anchor) | %.3f s | %s MB/s | 1.00 |\n' "$c" "$(rate "$c")"
printf '| curl, then fsync of the file | %.3f s | %s MB/s | %.2f |\n' "$cs" "$(rate "$cs")" "$(echo "$c / $cs" | bc -l)"
printf '| spaceport cache fill (repo) | %.3f s | %s MB/s | %.2fx curl throughput (%.2fx curl+fsync) |\n' "$f" "$(rate "$f")" "$(echo "$c / $f" | bc -l)" "$(echo "$cs / $f" | bc -l)"
printf '| huggingface_hub snapshot_download (repo) | %.3f s | %s MB/s | %.2fx the fill time |\n' "$s" "$(rate "$s")" "$(echo "$s / $f" | bc -l)"
