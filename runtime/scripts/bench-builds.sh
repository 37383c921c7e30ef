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
set -euo pipefail
cd "$(dirname "$0")/../.."
build_runs="${1:-3}"
start_runs="${2:-15}"
base="${SPACEPORT_BASE_IMAGE:-spaceport/python-base:bookworm}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"

cargo build -q --release -p spaceport-runtime --example bench_space
bench="$CARGO_TARGET_DIR/release/examples/bench_space"
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
declare -A samples
for run in $(seq 1 "$build_runs"); do
  space="$work/gradio-$run"
  cp -r examples/gradio-hello "$space"
  # spaceport: cold, no-op, code-only
  docker images -q --filter reference='spaceport/bench-space:*' | xargs -r docker rmi -f >/dev/null 2>&1 || true
  cold=$("$bench" build "$space" "cold$run" "$base" "$work/Dockerfile" | cut -d' ' -f1)
  noop=$("$bench" build "$space" "noop$run" "$base" | cut -d' ' -f1)
  echo "# code change $run" >> "$space/app.py"
  code=$("$bench" build "$space" "code$run" "$base" | cut -d' ' -f1)
  docker images -q --filter reference='spaceport/bench-space:*' | xargs -r docker rmi -f >/dev/null 2>&1 || true
  # anchor: plain docker build of the same Dockerfile and context
  anchor="$work/anchor-$run"
  cp -r examples/gradio-hello "$anchor"
  cp "$work/Dockerfile" "$anchor/.spaceport.Dockerfile"
  docker rmi -f "$anchor_tag" >/dev/null 2>&1 || true
  t=$(now); DOCKER_BUILDKIT=0 docker build -q -f "$anchor/.spaceport.Dockerfile" -t "$anchor_tag" "$anchor" >/dev/null; a_cold=$(since "$t")
  t=$(now); DOCKER_BUILDKIT=0 docker build -q -f "$anchor/.spaceport.Dockerfile" -t "$anchor_tag" "$anchor" >/dev/null; a_noop=$(since "$t")
  echo "# code change $run" >> "$anchor/app.py"
  t=$(now); DOCKER_BUILDKIT=0 docker build -q -f "$anchor/.spaceport.Dockerfile" -t "$anchor_tag" "$anchor" >/dev/null; a_code=$(since "$t")
  docker rmi -f "$anchor_tag" >/dev/null 2>&1 || true
  echo "run $run: spaceport cold $cold noop $noop code $code | docker build cold $a_cold noop $a_noop code $a_code"
  samples[cold]+="$cold "; samples[noop]+="$noop "; samples[code]+="$code "
  samples[a_cold]+="$a_cold "; samples[a_noop]+="$a_noop "; samples[a_code]+="$a_code "
done
for k in cold noop code a_cold a_noop a_code; do
  echo "median $k: $(tr ' ' '\n' <<<"${samples[$k]}" | grep . | median) s"
done

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
: > "$work/anchor"
for i in $(seq 1 "$start_runs"); do
  t=$(now)
  docker start spaceport-bench-anchor >/dev/null
  port=$(docker port spaceport-bench-anchor 8080/tcp | head -1 | sed 's/.*://')
  until curl -fs -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.01; done
  since "$t" >> "$work/anchor"
  docker stop -t 0 spaceport-bench-anchor >/dev/null
done
echo "median plain docker start -> curl: $(median < "$work/anchor") s"
