#!/usr/bin/env bash
# User-space instructions per proxied request, spaceport-proxy against
# nginx, counted by valgrind's callgrind: a figure that does not move with
# the load of a shared machine (time-based figures do; see run.sh).
#
# Each proxy runs alone under callgrind with one worker, in front of the
# same loopback upstream. After a warm-up, the counters are zeroed, wrk
# sends requests for DURATION seconds over CONNS connections, the counters
# are dumped, and the instructions are divided by the requests wrk
# completed. Kernel work (the syscalls themselves) is not counted; the
# syscalls per request are the same for both (strace -c).
#
# Needs: valgrind, nginx, wrk (Debian packages), cargo.
# Knobs: DURATION (10), CONNS (4). Prints one line per proxy.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=${DURATION:-10}
CONNS=${CONNS:-4}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
HOST=bench-hello.spaces.test
P_UP=19180 P_NGINX=19181 P_SP=19182

for tool in valgrind callgrind_control nginx wrk cargo; do
  command -v "$tool" >/dev/null || { echo "instructions.sh needs $tool (apt-get install -y valgrind nginx wrk)" >&2; exit 1; }
done
. "$ROOT/proxy/bench/common.sh"


BENCH_THREADS=1 "$TOOL" upstream "127.0.0.1:$P_UP" >/dev/null &
PIDS+=($!)
wait_port $P_UP

# measure NAME PID PORT: zero, load, dump, divide.
measure() {
  local name=$1 pid=$2 port=$3 out n ir dump
  wrk -t1 -c"$CONNS" -d2s -H "Host: $HOST" "http://127.0.0.1:$port/" >/dev/null
  callgrind_control -z "$pid" >/dev/null
  out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "Host: $HOST" "http://127.0.0.1:$port/")
  callgrind_control -d "$pid" >/dev/null
  n=$(awk '/requests in/{print $1}' <<<"$out")
  # The dump taken after zeroing is part 1 of the profile.
  dump=$(ls "$WORK/$name.out".* | head -1)
  ir=$(awk '/^summary:/{print $2}' "$dump")
  echo "$name: $n requests, $ir instructions, $((ir / n)) per request"
}

cat >"$WORK/routes.yaml" <<ROUTES
routes:
  - space: bench/hello
    upstreams: ["127.0.0.1:$P_UP"]
ROUTES
RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/spaceport.out" \
  "$BIN" --routes "$WORK/routes.yaml" --listen "127.0.0.1:$P_SP" --domain spaces.test --workers 1 \
  2>"$WORK/valgrind-spaceport.log" &
SP=$!; PIDS+=($SP)
wait_port $P_SP
measure spaceport $SP $P_SP

# nginx as in run.sh (common.sh), one worker in the foreground so
# callgrind sees it.
nginx_conf "$WORK" $P_NGINX $P_UP "worker_processes 1;
master_process off;
daemon off;
events { worker_connections 1000; }"
valgrind --tool=callgrind --callgrind-out-file="$WORK/nginx.out" \
  nginx -p "$WORK/nginx" -c "$WORK/nginx.conf" 2>"$WORK/valgrind-nginx.log" &
NG=$!; PIDS+=($NG)
wait_port $P_NGINX
measure nginx $NG $P_NGINX
