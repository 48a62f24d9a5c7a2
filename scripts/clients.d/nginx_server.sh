# nginx's server side, shared by scripts/clients.d/nginx.sh (the client
# tests) and scripts/bench.d/nginx.sh (scripts/bench-clients): the site, the
# configuration, start and stop (sourced, not run). The caller sets EVSHIM
# (the evshim command) and `front` (the port start_nginx probes); start_nginx
# sets `job` (the background job: nginx with daemon off, or `evshim run`
# around it) and `master` (the master's pid); stop_nginx sets stop_status.
# evshim's mode travels in the environment of start_nginx's caller
# (EVSHIM_SUPERVISED; the configuration keeps it for the workers).

free_ports() {
  python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# write_site DIR: the static files (a small page, a few MB of random data).
write_site() {
  local html=$1/html
  mkdir -p "$html"
  python3 -c 'import sys; sys.stdout.write("<html><body>" + "evshim nginx " * 60 + "</body></html>\n")' >"$html/small.html"
  head -c $((4 * 1024 * 1024 + 123)) /dev/urandom >"$html/big.bin"
}

write_conf() {  # RUNDIR FRONT_PORT BACK_PORT
  local run=$1 front=$2 back=$3 user_line=
  [ "$(id -u)" -eq 0 ] && user_line="user nobody nogroup;"
  mkdir -p "$run/logs" "$run/tmp" "$run/conf"
  chmod 777 "$run/tmp"
  cat >"$run/conf/nginx.conf" <<EOF
$user_line
daemon off;
master_process on;
worker_processes 2;
# nginx clears its workers' environment except what 'env' keeps: evshim's
# mode switch (EVSHIM_SUPERVISED=1, set by --supervised) and the fast path's
# trace channel (EVSHIM_TRACE_CHANNEL, set by \`evshim trace\`) travel in the
# environment (docs/trace.md "Fast mode").
env EVSHIM_SUPERVISED;
env EVSHIM_TRACE_CHANNEL;
pid $run/nginx.pid;
error_log $run/logs/error.log notice;
# timer_resolution: eventport arms timer_create(SIGEV_PORT), delivered as
# PORT_SOURCE_TIMER events (epoll: setitimer and SIGALRM).
timer_resolution 50ms;
# aio threads: file reads on the pool, completions posted with port_send.
thread_pool default threads=4 max_queue=65536;
worker_rlimit_nofile 8192;
events { worker_connections 2048; }
http {
    access_log off;
    default_type application/octet-stream;
    keepalive_requests 1000000;
    keepalive_timeout 30s;
    client_body_temp_path $run/tmp/body;
    proxy_temp_path $run/tmp/proxy;
    fastcgi_temp_path $run/tmp/fastcgi;
    uwsgi_temp_path $run/tmp/uwsgi;
    scgi_temp_path $run/tmp/scgi;
    upstream backend {
        server 127.0.0.1:$back;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$front backlog=1024;
        root $run/html;
        aio threads;
        sendfile off;
        output_buffers 2 64k;
        location /proxy/ {
            proxy_pass http://backend/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        # Big bodies through a new upstream connection each time: see
        # docs/clients.md (nginx's eventport module stalls a keep-alive
        # connection whose previous response had to wait for POLLOUT).
        location /proxy-close/ {
            proxy_pass http://127.0.0.1:$back/;
        }
    }
    server {
        listen 127.0.0.1:$back backlog=1024;
        root $run/html;
        aio threads;
        sendfile on;
    }
}
EOF
}

# Processes running BIN (by /proc/PID/exe): the master, its workers, and any
# leftover. One find, one pgrep: the machine may have many processes.
procs_of() {
  find /proc -mindepth 2 -maxdepth 2 -name exe -lname "$1" 2>/dev/null | cut -d/ -f3
}
workers_of() {  # MASTER_PID
  pgrep -P "$1" -f "nginx: worker process"
}

# start_nginx MODE BIN RUN: starts nginx in the foreground of a background
# job (daemon off) so that the master's exit status is ours to see.
start_nginx() {
  local mode=$1 bin=$2 run=$3 wrap=()
  [ "$mode" = evshim ] && wrap=("$EVSHIM" run "${evshim_opts[@]}" --)
  [ "$mode" = trace ] && wrap=("$EVSHIM" trace -o "$run/trace.log" --)
  rm -f "$run/nginx.pid"
  "${wrap[@]}" "$bin" -p "$run" -c "$run/conf/nginx.conf" -e "$run/logs/error.log" \
    >"$run/logs/stdout.log" 2>&1 &
  job=$!
  local i
  for ((i = 0; i < 200; i++)); do
    if [ -s "$run/nginx.pid" ] && [ "$(workers_of "$(cat "$run/nginx.pid")" | wc -l)" -ge 2 ] &&
       curl -s -o /dev/null "http://127.0.0.1:$front/small.html"; then
      master=$(cat "$run/nginx.pid")
      return 0
    fi
    kill -0 "$job" 2>/dev/null || break
    sleep 0.1
  done
  master=
  return 1
}

evshim_opts=()

# signal_nginx MODE BIN RUN SIGNAL: `nginx -s SIGNAL`, run as the server is.
signal_nginx() {
  local mode=$1 bin=$2 run=$3 wrap=()
  [ "$mode" = evshim ] && wrap=("$EVSHIM" run --)
  "${wrap[@]}" "$bin" -p "$run" -c "$run/conf/nginx.conf" -e "$run/logs/error.log" -s "$4" \
    >>"$run/logs/signal.log" 2>&1
}

# stop_nginx RUN: the clean way; the master's exit status is in $stop_status.
stop_nginx() {
  local mode=$1 bin=$2 run=$3 i
  stop_status=
  [ -n "${job:-}" ] || return 1
  signal_nginx "$mode" "$bin" "$run" quit
  for ((i = 0; i < 150; i++)); do
    kill -0 "$job" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$job" 2>/dev/null; then
    stop_status=timeout
    kill_everything "$bin"
  fi
  wait "$job"
  local rc=$?
  [ -n "$stop_status" ] || stop_status=$rc
  job=
}

# Last resort after a failure: SIGKILL the processes that run our binary
# (started by this script) and the evshim job.
kill_everything() {
  local bin=$1 p
  for p in $(procs_of "$bin"); do kill -9 "$p" 2>/dev/null; done
  [ -n "${job:-}" ] && kill -9 "$job" 2>/dev/null
}
