#!/usr/bin/env bash
# Build and start times of Spaces for BENCHMARKS.md, each beside an anchor
# measured in the same run:
#   gradio example (examples/gradio-hello) through spaceport's builder:
#     cold build (no layer of it cached; the base image is), no-op rebuild,
#     code-only rebuild (app.py changed); anchor: plain `docker build` of the
#     same generated Dockerfile with the classic builder.
#   static-binary Space (FROM scratch, static busybox httpd): container start
#     to first HTTP answer through spaceport's runner; anchor: plain
#     `docker start` of the same image, then curl until it answers.
# Prints every sample and the medians. Needs Docker, the base image
# (base-image.sh), /bin/busybox (busybox-static), curl, and PyPI.
#
# Usage: bench-builds.sh [BUILD_RUNS (default 3)] [START_RUNS (default 15)]
# (one cold build per tool; BUILD_RUNS no-op and code-only rebuilds each;
# BUILD_RUNS 0 measures only the starts)
set -euo pipefail
cd "$(dirname "$0")/../.."
build_runs="${1:-3}"
start_runs="${2:-15}"
base="${SPACEPORT_BASE_IMAGE:-spaceport/python-base:bookworm}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"

# A debug build is enough: the time measured is spent in the engine.
cargo build -q -p spaceport-runtime --example bench_space
bench="$CARGO_TARGET_DIR/debug/examples/bench_space"
work="$(mktemp -d)"
anchor_tag="spaceport-bench/anchor:latest"
cleanup() {
  docker ps -aq --filter label=dev.spaceport.space=bench/start | xargs -r docker rm -f >/dev/null
  docker rm -f spaceport-bench-anchor >/dev/null 2>&1 || true
  docker images -q --filter reference='spaceport/bench-space:*' | xargs -r docker rmi -f >/dev/null 2>&1 || true
  docker rmi -f "$anchor_tag" spaceport-bench/static:latest >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

echo "machine: $(nproc) cores, $(docker version --format '{{.Server.Version}}') engine; base image $base"

# ---- gradio builds -------------------------------------------------------
# Per tool: one cold build (a cold build costs minutes here), then
# BUILD_RUNS no-op rebuilds and BUILD_RUNS code-only rebuilds (app.py
# changed each time). spaceport first, then its layers are removed so the
# anchor starts cold too.
if [ "$build_runs" -gt 0 ]; then
rm_images() { docker images -q --filter reference="$1" | xargs -r docker rmi -f >/dev/null 2>&1 || true; }
space="$work/gradio"
cp -r examples/gradio-hello "$space"
rm_images 'spaceport/bench-space:*'
cold=$("$bench" build "$space" cold "$base" "$work/Dockerfile" | cut -d' ' -f1)
: > "$work/noop"; : > "$work/code"
for run in $(seq 1 "$build_runs"); do
  "$bench" build "$space" "noop$run" "$base" | cut -d' ' -f1 >> "$work/noop"
  echo "# code change $run" >> "$space/app.py"
  "$bench" build "$space" "code$run" "$base" | cut -d' ' -f1 >> "$work/code"
done
rm_images 'spaceport/bench-space:*'
anchor="$work/anchor"
cp -r examples/gradio-hello "$anchor"
cp "$work/Dockerfile" "$anchor/.spaceport.Dockerfile"
build_anchor() { t=$(now); DOCKER_BUILDKIT=0 docker build -q -f "$anchor/.spaceport.Dockerfile" -t "$anchor_tag" "$anchor" >/dev/null 2>&1; since "$t"; }
rm_images "$anchor_tag"
a_cold=$(build_anchor)
: > "$work/a_noop"; : > "$work/a_code"
for run in $(seq 1 "$build_runs"); do
  build_anchor >> "$work/a_noop"
  echo "# code change $run" >> "$anchor/app.py"
  build_anchor >> "$work/a_code"
done
rm_images "$anchor_tag"
echo "spaceport cold: $cold s; no-op: $(paste -sd' ' "$work/noop"); code-only: $(paste -sd' ' "$work/code")"
echo "docker build cold: $a_cold s; no-op: $(paste -sd' ' "$work/a_noop"); code-only: $(paste -sd' ' "$work/a_code")"
echo "median spaceport no-op: $(median < "$work/noop") s, code-only: $(median < "$work/code") s"
echo "median docker build no-op: $(median < "$work/a_noop") s, code-only: $(median < "$work/a_code") s"
fi

# ---- static-binary Space start --------------------------------------------
static="$work/static"
mkdir -p "$static"
cp /bin/busybox "$static/busybox"
echo '<h1>hello</h1>' > "$static/index.html"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nCOPY index.html /www/index.html\nEXPOSE 8080\nCMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]\n' > "$static/Dockerfile"
docker build -q -t spaceport-bench/static:latest "$static" >/dev/null
echo "spaceport runner, container start -> RUNNING (first HTTP answer), s:"
"$bench" start spaceport-bench/static:latest 8080 "$start_runs" | tee "$work/ours"
echo "median spaceport start: $(median < "$work/ours") s"
docker create -q --name spaceport-bench-anchor --label dev.spaceport.managed=true -p 127.0.0.1::8080 spaceport-bench/static:latest >/dev/null
: > "$work/start_anchor"
for i in $(seq 1 "$start_runs"); do
  t=$(now)
  docker start spaceport-bench-anchor >/dev/null
  port=$(docker port spaceport-bench-anchor 8080/tcp | head -1 | sed 's/.*://')
  until curl -fs -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.01; done
  since "$t" >> "$work/start_anchor"
  docker stop -t 0 spaceport-bench-anchor >/dev/null
done
echo "median plain docker start -> curl: $(median < "$work/start_anchor") s"
