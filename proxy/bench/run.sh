#!/usr/bin/env bash
# Benchmarks spaceport-proxy against nginx in front of the same loopback
# upstream, in one run, and writes the results into the "Proxy" section of
# BENCHMARKS.md.
#
# Needs: nginx and wrk (Debian: apt-get install -y nginx wrk), python3, cargo.
# Knobs (environment): RUNS (5), DURATION seconds per run (10), CONNS for the
# closed-loop test (64), RATE for the fixed-rate test (2000 req/s),
# WS_COUNT idle WebSockets (10000), OUT (BENCHMARKS.md at the repo root;
# set OUT=- to only print).
# Everything listens on 127.0.0.1 only.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
RATE=${RATE:-2000}
WS_COUNT=${WS_COUNT:-10000}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
HOST=bench-hello.spaces.test
P_UP=18080 P_NGINX=18081 P_SP=18082 P_SPOFF=18083

for tool in nginx wrk python3 cargo; do
  command -v "$tool" >/dev/null || { echo "run.sh needs $tool (apt-get install -y nginx wrk)" >&2; exit 1; }
done
# Each WebSocket through a proxy holds two sockets there (client and
# upstream). Raise the descriptor limit; where the hard limit forbids it (a
# container without CAP_SYS_RESOURCE), hold as many as fit and say so.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FD_LIMIT=$(ulimit -n)
WS_REQUESTED=$WS_COUNT
if [ $((WS_COUNT * 2 + 200)) -gt "$FD_LIMIT" ]; then
  WS_COUNT=$(((FD_LIMIT - 200) / 2))
  echo "descriptor limit $FD_LIMIT: holding $WS_COUNT WebSockets instead of $WS_REQUESTED" >&2
fi

. "$ROOT/proxy/bench/common.sh"


# --- the upstream (one thread, so it is not the bottleneck's twin) ---
BENCH_THREADS=1 "$TOOL" upstream "127.0.0.1:$P_UP" >/dev/null &
PIDS+=($!)
wait_port $P_UP

# --- nginx (common.sh), one worker per core ---
nginx_conf "$WORK" $P_NGINX $P_UP "worker_processes auto;
worker_rlimit_nofile 65536;
events { worker_connections 30000; }"
nginx -p "$WORK/nginx" -c "$WORK/nginx.conf"
wait_port $P_NGINX

# --- spaceport-proxy, metering on and off ---
cat >"$WORK/routes.yaml" <<ROUTES
routes:
  - space: bench/hello
    upstreams: ["127.0.0.1:$P_UP"]
ROUTES
RUST_LOG=warn "$BIN" --routes "$WORK/routes.yaml" --listen "127.0.0.1:$P_SP" --domain spaces.test &
PIDS+=($!); SP_PID=$!
RUST_LOG=warn "$BIN" --routes "$WORK/routes.yaml" --listen "127.0.0.1:$P_SPOFF" --domain spaces.test --no-metering &
PIDS+=($!); SPOFF_PID=$!
wait_port $P_SP; wait_port $P_SPOFF
NGINX_MASTER=$(cat "$WORK/nginx.pid")

pids_of() { # target -> pids whose CPU and memory count
  case $1 in
    direct) echo "" ;;
    nginx) echo "$NGINX_MASTER $(pgrep -P "$NGINX_MASTER" | tr '\n' ' ')" ;;
    spaceport) echo "$SP_PID" ;;
    spaceport-nometer) echo "$SPOFF_PID" ;;
  esac
}
port_of() {
  case $1 in direct) echo $P_UP ;; nginx) echo $P_NGINX ;; spaceport) echo $P_SP ;; spaceport-nometer) echo $P_SPOFF ;; esac
}
cpu_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
rss_kb() { local t=0; for p in "$@"; do t=$((t + $(awk '/^VmRSS/{print $2}' "/proc/$p/status"))); done; echo $t; }
to_us() { # wrk latency like 1.23ms / 950.00us / 1.01s -> microseconds
  python3 -c "import sys,re; v=sys.argv[1]; m=re.match(r'([0-9.]+)(us|ms|s)',v); print(round(float(m[1])*{'us':1,'ms':1e3,'s':1e6}[m[2]]))" "$1"
}

RESULTS=$WORK/results.txt
: >"$RESULTS"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
TICK=$(getconf CLK_TCK)

echo "warming up..." >&2
for t in direct nginx spaceport spaceport-nometer; do
  wrk -t2 -c"$CONNS" -d2s -H "Host: $HOST" "http://127.0.0.1:$(port_of $t)/" >/dev/null
done

for run in $(seq 1 "$RUNS"); do
  for t in direct nginx spaceport spaceport-nometer; do
    pids=$(pids_of $t)
    c0=0; [ -n "$pids" ] && c0=$(cpu_ticks $pids)
    out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $HOST" "http://127.0.0.1:$(port_of $t)/")
    c1=0; rss=0; [ -n "$pids" ] && { c1=$(cpu_ticks $pids); rss=$(rss_kb $pids); }
    rps=$(awk '/^Requests\/sec/{print $2}' <<<"$out")
    p50=$(to_us "$(awk '$1=="50%"{print $2}' <<<"$out")")
    p99=$(to_us "$(awk '$1=="99%"{print $2}' <<<"$out")")
    errs=$(awk '/Non-2xx|Socket errors/{print}' <<<"$out" | tr '\n' ' ')
    cpu=$(python3 -c "print(round(($c1-$c0)/$TICK/$DURATION*100))")
    echo "closed $t $run $rps $p50 $p99 $cpu $rss" >>"$RESULTS"
    echo "run $run $t: $rps req/s p50 ${p50}us p99 ${p99}us cpu ${cpu}% rss ${rss}KB $errs" >&2
  done
  for t in direct nginx spaceport spaceport-nometer; do
    pids=$(pids_of $t)
    c0=0; [ -n "$pids" ] && c0=$(cpu_ticks $pids)
    read -r p50 p99 p999 sent errors < <(BENCH_THREADS=1 "$TOOL" rate "http://127.0.0.1:$(port_of $t)/" "$HOST" "$RATE" "$DURATION" 16)
    c1=0; [ -n "$pids" ] && c1=$(cpu_ticks $pids)
    cpu_us=$(python3 -c "print(round(($c1-$c0)/$TICK*1e6/max($sent,1),1))")
    echo "fixed $t $run $p50 $p99 $p999 $sent $errors $cpu_us" >>"$RESULTS"
    echo "run $run fixed $RATE/s $t: p50 ${p50}us p99 ${p99}us p99.9 ${p999}us ($sent sent, $errors errors) cpu ${cpu_us}us/req" >&2
  done
done

# --- idle WebSockets: RSS growth per connection, spaceport and nginx ---
for t in spaceport nginx; do
  pids=$(pids_of $t)
  before=$(rss_kb $pids)
  coproc HOLD { BENCH_THREADS=2 "$TOOL" hold-ws "127.0.0.1:$(port_of $t)" "$HOST" /ws "$WS_COUNT"; }
  read -r ready held _failed failed <&"${HOLD[0]}"
  sleep 1
  after=$(rss_kb $pids)
  echo "ws $t $held $failed $before $after" >>"$RESULTS"
  echo "ws $t: held $held (failed $failed), RSS ${before}KB -> ${after}KB" >&2
  eval "exec ${HOLD[1]}>&-"
  wait "$HOLD_PID" 2>/dev/null || true
  sleep 2
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$RESULTS" "$OUT" "$RUNS" "$DURATION" "$CONNS" "$RATE" "$WS_COUNT" "$LOAD_BEFORE" "$LOAD_AFTER" "$WS_REQUESTED" "$FD_LIMIT" <<'PY'
import re, statistics, sys, platform, os, datetime
res, out, runs, dur, conns, rate, ws_count, load0, load1, ws_req, fd_limit = sys.argv[1:]
rows = [l.split() for l in open(res)]
med = lambda xs: statistics.median(xs)
def closed(t, i): return med([float(r[3 + i]) for r in rows if r[0] == "closed" and r[1] == t])
def fixed(t, i): return med([float(r[3 + i]) for r in rows if r[0] == "fixed" and r[1] == t])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
lines = []
w = lines.append
w(f"Measured {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC by `proxy/bench/run.sh` "
  f"(RUNS={runs} DURATION={dur} CONNS={conns} RATE={rate} WS_COUNT={ws_count}).")
w(f"Machine: {os.cpu_count()} cores ({cpu}), shared and noisy; load average {load0} before, "
  f"{load1} after. Load generator, upstream and proxy all share these cores, and other "
  "work (compiles) may run at the same time, so compare ratios within a run, not absolute numbers.")
w("Every figure is the median of the runs. Upstream: a minimal hyper HTTP/1.1 server answering 13 bytes. "
  "nginx: Debian package, `worker_processes auto`, keepalive upstream pool, access log off. "
  "spaceport-proxy: release build, default settings, routes file with one Space.")
w("")
w(f"### Closed loop (wrk -t2 -c{conns} -d{dur}s)")
w("")
w("| target | requests/s | p50 | p99 | CPU (of one core) | RSS |")
w("|---|---:|---:|---:|---:|---:|")
for t in ["direct", "nginx", "spaceport", "spaceport-nometer"]:
    rss = closed(t, 4)
    w(f"| {t} | {closed(t,0):,.0f} | {closed(t,1)/1000:.2f} ms | {closed(t,2)/1000:.2f} ms | "
      f"{'-' if t=='direct' else f'{closed(t,3):.0f}%'} | {'-' if t=='direct' else f'{rss/1024:.1f} MB'} |")
w("")
def per_run(a, b):
    xs = {r[2]: float(r[3]) for r in rows if r[0] == "closed" and r[1] == a}
    ys = {r[2]: float(r[3]) for r in rows if r[0] == "closed" and r[1] == b}
    return [xs[k] / ys[k] for k in sorted(xs) if k in ys]
ratios = per_run("spaceport", "nginx")
meter = per_run("spaceport", "spaceport-nometer")
w(f"- Throughput, spaceport / nginx: **{med(ratios):.2f}x**, median of the per-run ratios "
  f"({', '.join(f'{x:.2f}' for x in ratios)}); target: at least 1.0x.")
w(f"- Metering: spaceport with metering on / off: **{med(meter):.2f}x**, median of the per-run ratios "
  f"({', '.join(f'{x:.2f}' for x in meter)}); target: a cost under 5%, i.e. at least 0.95x.")
w("- The spread of the per-run ratios is the noise of this machine; a single ratio means little.")
w("")
w(f"### Fixed rate ({rate} requests/s, 16 connections, open loop, latency from the scheduled send time)")
w("")
w("| target | p50 | p99 | p99.9 | added p99 vs direct | proxy CPU per request |")
w("|---|---:|---:|---:|---:|---:|")
for t in ["direct", "nginx", "spaceport", "spaceport-nometer"]:
    added = "-" if t == "direct" else f"{(fixed(t,1)-fixed('direct',1))/1000:+.3f} ms"
    cpu_req = "-" if t == "direct" else f"{fixed(t,5):.0f} us"
    w(f"| {t} | {fixed(t,0)/1000:.3f} ms | {fixed(t,1)/1000:.3f} ms | {fixed(t,2)/1000:.3f} ms | {added} | {cpu_req} |")
w("")
w("CPU per request (user + system time of the proxy's processes over requests sent, at a fixed rate) "
  "is the figure least disturbed by other load on the machine. "
  f"spaceport / nginx: {fixed('spaceport',5)/fixed('nginx',5):.2f}x the CPU per request; "
  f"metering on / off: {fixed('spaceport',5)/fixed('spaceport-nometer',5):.2f}x.")
w("")
w("wrk2 is not packaged in Debian; `proxy/examples/bench_tool.rs rate` does the same coordinated-omission "
  "correction (each request is timed from when it was due).")
w("")
w(f"### {ws_count} idle WebSockets")
w("")
if ws_count != ws_req:
    w(f"{ws_req} were asked for, but the open-file hard limit here is {fd_limit} and cannot be raised "
      f"(no CAP_SYS_RESOURCE), and each WebSocket takes two descriptors in the proxy, so {ws_count} "
      "were held. Growth per connection does not depend on the count.")
    w("")
w("| target | held | failed | RSS before | RSS after | growth per connection |")
w("|---|---:|---:|---:|---:|---:|")
for r in rows:
    if r[0] == "ws":
        _, t, held, failed, before, after = r
        per = (int(after) - int(before)) * 1024 / max(int(held), 1)
        w(f"| {t} | {held} | {failed} | {int(before)/1024:.1f} MB | {int(after)/1024:.1f} MB | {per/1024:.1f} KB |")
w("")
w("Each WebSocket through the proxy is two sockets (client and upstream); RSS is summed over the "
  "proxy's processes (nginx: master and workers).")
section = "\n".join(lines) + "\n"
if out == "-":
    print(section); sys.exit()
text = open(out).read()
head = "## Proxy (spaceport-proxy)\n"
i = text.index(head) + len(head)
m = re.search(r"^## ", text[i:], re.M)
j = i + m.start() if m else len(text)
keep_fuzz = ""
# Hand-written subsections ("### Notes", "### Fuzzing") survive a rerun.
fz = re.search(r"^### (Notes|Fuzzing).*?(?=^## |\Z)", text[i:j], re.M | re.S)
if fz:
    keep_fuzz = "\n" + fz.group(0).rstrip() + "\n"
text = text[:i] + "\n" + section + keep_fuzz + ("\n" if m else "") + text[j:]
open(out, "w").write(text)
print(section)
PY
