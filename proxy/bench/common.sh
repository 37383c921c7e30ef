# What both proxy benchmarks share; sourced by run.sh and instructions.sh
# once $ROOT and $CARGO_TARGET_DIR are set.

# The release build of the proxy and the bench tool ($BIN, $TOOL).
echo "building (release)..." >&2
(cd "$ROOT" && cargo build --release -q -p spaceport-proxy --bin spaceport-proxy --example bench_tool)
BIN=$CARGO_TARGET_DIR/release/spaceport-proxy
TOOL=$CARGO_TARGET_DIR/release/examples/bench_tool

# A work folder ($WORK) and the processes started ($PIDS, and nginx by its
# pid file), removed and stopped on exit.
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid" 2>/dev/null)" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# wait_port PORT: until something listens on 127.0.0.1:PORT (up to 30 s).
wait_port() {
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 did not open" >&2; exit 1
}

# The nginx both measure against, configured as a careful operator would:
# keepalive upstreams, no access log, the same forwarded headers spaceport
# sets.
#
# nginx_conf WORK PORT UPSTREAM_PORT MAIN: writes WORK/nginx.conf listening
# on 127.0.0.1:PORT in front of 127.0.0.1:UPSTREAM_PORT; MAIN holds the
# main-context lines that differ between the two (processes, events).
nginx_conf() {
  local work=$1 port=$2 upstream=$3 main=$4
  mkdir -p "$work/nginx/logs" "$work/nginx/tmp"
  cat >"$work/nginx.conf" <<NGINX
$main
pid $work/nginx.pid;
error_log $work/nginx/logs/error.log warn;
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' ''; }
  upstream app { server 127.0.0.1:$upstream; keepalive 256; }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Host \$host;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_read_timeout 3600s;
    }
  }
}
NGINX
}
