#!/usr/bin/env bash
# Benchmarks of `spaceport up` on this machine:
#   1. time from `git push` to the first successful request, for the static
#      example and the docker example (examples/static-hello, docker-hello);
#   2. wake time of a sleeping FROM-scratch busybox Space, from STOPPED to
#      the first byte through the hub, against the raw floor measured in the
#      same run: `docker start` of the same stopped container until its
#      first HTTP answer.
#
# Usage: runtime/scripts/bench-hub.sh [ROUNDS]     (default 10 wake rounds)
# Needs: a release build (cargo build --release -p spaceport-runtime), Docker,
# git, curl, python3, a static busybox at /bin/busybox, and the local base
# image spaceport/python-base:bookworm. No registry is reachable here, so
# the docker example's `FROM python:3.11-slim` is served by tagging the local
# base image with that name (a registry mirror does the same job elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-10}"
bin="${SPACEPORT_BIN:-target/release/spaceport}"
[ -x "$bin" ] || { echo "build first: cargo build --release -p spaceport-runtime" >&2; exit 2; }
[ -x /bin/busybox ] || { echo "needs a static busybox at /bin/busybox" >&2; exit 2; }
docker image inspect python:3.11-slim >/dev/null 2>&1 ||
  docker tag spaceport/python-base:bookworm python:3.11-slim

work="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
token="hf_bench_admin_token_0123456789"
base="http://127.0.0.1:$port"
export GIT_TERMINAL_PROMPT=0 HOME="$work/home"
mkdir -p "$HOME"
git config --global user.name bench; git config --global user.email bench@example.org
git config --global init.defaultBranch main

SPACEPORT_ADMIN_TOKEN="$token" "$bin" up --data-dir "$work/data" --listen "127.0.0.1:$port" \
  --examples none --sleep-check 1 >"$work/hub.log" 2>&1 &
hub=$!
cleanup() {
  kill "$hub" 2>/dev/null || true
  for s in admin/bench-static admin/bench-docker admin/bench-wake; do
    docker ps -aq --filter "label=dev.spaceport.space=$s" | xargs -r docker rm -f >/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do curl -fs "$base/healthz" >/dev/null && break; sleep 0.1; done

now() { date +%s%N; }
since() { echo $(( ($(date +%s%N) - $1) / 1000 )); }   # microseconds
api() { curl -fsS -H "authorization: Bearer $token" -H 'content-type: application/json' "$@"; }
create() { api -X POST "$base/api/repos/create" -d "{\"name\":\"$1\",\"type\":\"space\",\"sdk\":\"$2\"}" >/dev/null; }
stage() { api "$base/api/spaces/admin/$1/runtime" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stage"])'; }
host() { echo "admin-$1.localhost:$port"; }
first_ok() { # space -> microseconds until a 200
  local t0; t0=$(now)
  until curl -fs -o /dev/null -H "host: $(host "$1")" "$base/"; do sleep 0.02; done
  since "$t0"
}
push_folder() { # name folder -> microseconds from push start to first 200
  local dir="$work/$1"
  cp -r "$2" "$dir"
  git -C "$dir" init -q && git -C "$dir" add -A && git -C "$dir" commit -qm bench
  local t0; t0=$(now)
  git -C "$dir" push -q "http://hf_user:$token@127.0.0.1:$port/spaces/admin/$1" main 2>/dev/null
  until curl -fs -o /dev/null -H "host: $(host "$1")" "$base/"; do sleep 0.05; done
  since "$t0"
}

echo "== push to first request"
create bench-static static
echo "static example: $(( $(push_folder bench-static examples/static-hello) / 1000 )) ms"
create bench-docker docker
echo "docker example (cold build): $(( $(push_folder bench-docker examples/docker-hello) / 1000 )) ms"

echo "== wake of a sleeping busybox Space vs docker start ($rounds rounds)"
mkdir -p "$work/wake-src"
cp /bin/busybox "$work/wake-src/busybox"
echo '<h1>awake</h1>' >"$work/wake-src/index.html"
printf -- '---\ntitle: Wake\nsdk: docker\napp_port: 8080\n---\n' >"$work/wake-src/README.md"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nCOPY index.html /www/index.html\nEXPOSE 8080\nCMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]\n' \
  >"$work/wake-src/Dockerfile"
create bench-wake docker
push_folder bench-wake "$work/wake-src" >/dev/null
api -X POST "$base/api/spaces/admin/bench-wake/sleeptime" -d '{"seconds":1}' >/dev/null
# The floor: a container of the same image, published on a fixed loopback
# port, stopped, then started until its first HTTP answer, twice over:
# through the engine's API socket (what spaceport itself calls) and with
# the `docker start` command (which adds the CLI's own start-up). A
# separate container, so the hub's supervisor does not see it stop. The
# three are measured in turn within each round, so load on the machine
# falls on all of them alike.
image=$(docker inspect -f '{{.Config.Image}}' "$(docker ps -aq --filter label=dev.spaceport.space=admin/bench-wake | head -1)")
fport=$((port + 1))
cid=$(docker create -p "127.0.0.1:$fport:8080" --label dev.spaceport.space=admin/bench-wake "$image")
sock="${DOCKER_HOST:-unix:///var/run/docker.sock}"; sock="${sock#unix://}"
wakes=(); floors=(); clis=()
for i in $(seq "$rounds"); do
  until [ "$(stage bench-wake)" = STOPPED ]; do sleep 0.2; done
  wakes+=("$(first_ok bench-wake)")
  t0=$(now)
  curl -fs --unix-socket "$sock" -X POST "http://localhost/containers/$cid/start" >/dev/null
  until curl -fs -o /dev/null "http://127.0.0.1:$fport/"; do sleep 0.005; done
  floors+=("$(since "$t0")")
  docker stop -t 1 "$cid" >/dev/null
  t0=$(now)
  docker start "$cid" >/dev/null
  until curl -fs -o /dev/null "http://127.0.0.1:$fport/"; do sleep 0.005; done
  clis+=("$(since "$t0")")
  docker stop -t 1 "$cid" >/dev/null
done
python3 - "${wakes[*]}" "${floors[*]}" "${clis[*]}" <<'EOF'
import statistics, sys
w = [float(x) / 1e6 for x in sys.argv[1].split()]
f = [float(x) / 1e6 for x in sys.argv[2].split()]
c = [float(x) / 1e6 for x in sys.argv[3].split()]
def p90(xs): return sorted(xs)[max(0, int(round(0.9 * len(xs))) - 1)]
print(f"wake through the hub: median {statistics.median(w)*1000:.0f} ms, p90 {p90(w)*1000:.0f} ms ({len(w)} rounds)")
print(f"floor, engine API:    median {statistics.median(f)*1000:.0f} ms, p90 {p90(f)*1000:.0f} ms ({len(f)} rounds)")
print(f"floor, docker start:  median {statistics.median(c)*1000:.0f} ms, p90 {p90(c)*1000:.0f} ms ({len(c)} rounds)")
print(f"wake minus API floor: {(statistics.median(w)-statistics.median(f))*1000:+.0f} ms (medians); ratio {statistics.median(w)/statistics.median(f):.2f}")
EOF
