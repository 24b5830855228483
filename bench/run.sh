#!/usr/bin/env bash
# Load test: Guichet against the same upstream reached directly, through a bare pingora proxy
# and through nginx. Loopback only (127.0.0.1); everything it starts is stopped on exit.
#
#   bash bench/run.sh                 # builds release binaries, then about 13 minutes of load
#   DURATION=5 REPS=1 bash bench/run.sh   # a quick look
#
# Needs wrk, curl, taskset, (for the nginx row) nginx and (for the guichet-prod row)
# redis-server. The proxy under test and the upstream (and guichet-prod's Redis) share core 0;
# wrk runs on core 1. Results and logs go to a temporary directory
# (printed at the end; kept when KEEP=1). See docs/benchmarks.md for how to read the numbers.
#
# Targets (every proxy forwards to the same header-echo app, the one built into `guichet demo`):
#   direct       the echo app itself (no proxy)
#   guichet      `guichet demo` (GUICHET_THREADS threads, access log at info, to a file), authenticated
#                requests with a session cookie: the full pipeline, identity headers included
#   guichet-prod production mode: `guichet run --config` (not demo), GUICHET_THREADS threads,
#                access log at info to a file as the demo, sessions in Redis (encrypted; a
#                redis-server started here on core 0, so its cost counts against the proxy), a
#                local provider linked by e-mail to a file directory cached in process (L1 30s)
#                and in the same Redis (L2 5m), an app with 3 role rules and 5 identity headers
#                (user, email, name, roles, structure; name and structure from the directory)
#   bare         gateway/examples/bare_proxy.rs: pingora, no auth, threads=1
#   nginx        nginx as a plain reverse proxy, 1 worker, upstream keepalive, no access log
# and diagnostic rows that help attribute the difference between guichet and bare:
#   guichet-nolog  the same demo with RUST_LOG=warn (no per-request access log line)
#   guichet-plain  `guichet demo --plain`: no role rules and one identity header, to measure
#                  what the demo's role policy (3 rules) and its 6 identity headers cost
#   bare-t2        the bare proxy with threads=2, as the demo configures Guichet
#   bare-hdrs      the bare proxy (threads=1), the client sending the headers Guichet adds
#                  upstream (x-forwarded-*, x-request-id, x-remote-*, read from a request
#                  through Guichet): the echo app then receives, and answers, the same bytes
#                  as behind Guichet. It echoes every header, so its answer through Guichet is
#                  about twice as large as the plain request's, and costs it (on core 0) more.
#
# Scenarios:
#   max          wrk -t2 -c50: closed loop, throughput at saturation
#   c8           wrk -t1 -c8: closed loop with few connections (still saturating)
#   moderate     wrk -t2 -c16 with a ${PACED_DELAY_MS} ms pause before each request: a fixed
#                offered load of roughly 16 / (pause + latency) requests/s, well under every
#                proxy's capacity, where latency is the proxy's and not queueing

set -euo pipefail

DURATION=${DURATION:-10}          # seconds per measured run
REPS=${REPS:-3}                   # repetitions of every (target, scenario); medians are reported
WARMUP=${WARMUP:-3}               # seconds of unrecorded load before a target's first run
PACED_DELAY_MS=${PACED_DELAY_MS:-5}
PORT_BASE=${PORT_BASE:-18400}
# What every target is asked for. `/?echo=fixed`: the echo app answers the same 700 bytes
# whatever headers it gets, so every proxy costs the upstream the same. `/` measures the echo
# page instead, which grows with the headers a proxy adds (Guichet adds ~11).
REQUEST_PATH=${REQUEST_PATH:-/?echo=fixed}
# Guichet's worker threads: 1, like the bare proxy, since both run pinned to one core.
GUICHET_THREADS=${GUICHET_THREADS:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP=${KEEP:-0}
# This machine may be shared: a run during which other processes used more than OTHER_MAX % of a
# core (user mode) is "disturbed", measured again (up to RETRIES times) and left out of the medians when a
# clean run exists. Before each run, wait up to QUIET_WAIT seconds for the machine to be quiet.
OTHER_MAX=${OTHER_MAX:-10}
RETRIES=${RETRIES:-2}
QUIET_WAIT=${QUIET_WAIT:-180}
TARGETS=${TARGETS:-"direct guichet guichet-prod guichet-nolog bare bare-t2 bare-hdrs nginx"}
SCENARIOS=${SCENARIOS:-"max c8 moderate"}

HOST=127.0.0.1
ECHO_PORT=$((PORT_BASE + 0))
GUICHET_PORT=$((PORT_BASE + 1))
ADMIN_PORT=$((PORT_BASE + 2))
ECHO2_PORT=$((PORT_BASE + 10))
GUICHET2_PORT=$((PORT_BASE + 11))
ADMIN2_PORT=$((PORT_BASE + 12))
ECHO3_PORT=$((PORT_BASE + 13))
GUICHET3_PORT=$((PORT_BASE + 14))
ADMIN3_PORT=$((PORT_BASE + 15))
BARE_PORT=$((PORT_BASE + 20))
BARE2_PORT=$((PORT_BASE + 21))
NGINX_PORT=$((PORT_BASE + 30))
REDIS_PORT=$((PORT_BASE + 40))
PROD_PORT=$((PORT_BASE + 41))
PROD_ADMIN_PORT=$((PORT_BASE + 42))
# The proxy process of each target that runs in its own process (the demo rows run the echo
# app in theirs, so their CPU time would include the upstream's): its CPU time per request is
# reported. Redis' too, for the production mode.
declare -A TARGET_PID=()
REDIS_PID=

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GUICHET_BIN=$TARGET_DIR/release/guichet
BARE_BIN=$TARGET_DIR/release/examples/bare_proxy
WORK=$(mktemp -d "${TMPDIR:-/tmp}/guichet-bench.XXXXXX")
PIDS=()

log() { printf '[bench] %s\n' "$*" >&2; }

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        # SIGINT: fast shutdown for pingora and for nginx.
        kill -INT "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "process $pid did not stop: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    if [[ $KEEP == 1 ]]; then
        log "results and logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need() { command -v "$1" >/dev/null || { log "missing: $1"; exit 1; }; }
need wrk
need curl
need taskset
if [[ " $TARGETS " == *" nginx "* ]]; then
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    [[ -x $NGINX ]] || { log "missing: nginx"; exit 1; }
fi
if [[ " $TARGETS " == *" guichet-prod "* ]]; then
    need redis-server
fi
if [[ $(nproc) -lt 2 ]]; then
    log "needs at least 2 cores (proxy on core 0, wrk on core 1)"
    exit 1
fi

# Refuse to start when a port is taken: the numbers would be someone else's.
for port in $ECHO_PORT $GUICHET_PORT $ADMIN_PORT $ECHO2_PORT $GUICHET2_PORT $ADMIN2_PORT \
    $ECHO3_PORT $GUICHET3_PORT $ADMIN3_PORT $BARE_PORT $BARE2_PORT $NGINX_PORT \
    $REDIS_PORT $PROD_PORT $PROD_ADMIN_PORT; do
    if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
        log "port $port is already in use on $HOST (set PORT_BASE)"
        exit 1
    fi
done

if [[ $SKIP_BUILD != 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --bin guichet --example bare_proxy)
fi

# Waits (bounded) until URL answers with an HTTP status.
wait_http() {
    local url=$1
    for _ in $(seq 1 100); do
        if curl -s -o /dev/null --max-time 1 "$url"; then
            return 0
        fi
        sleep 0.1
    done
    log "$url did not come up"
    return 1
}

# Waits (bounded: 30 s) until URL answers with the given HTTP status.
wait_status() { # url status
    local url=$1 want=$2 got=
    for _ in $(seq 1 300); do
        got=$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "$url" || true)
        [[ $got == "$want" ]] && return 0
        sleep 0.1
    done
    log "$url answered ${got:-nothing}, not $want"
    return 1
}

start_guichet() { # listen admin echo log demo-flags [env...]
    local listen=$1 admin=$2 echo=$3 logfile=$4 flags=$5
    shift 5
    # shellcheck disable=SC2086 # flags is a word list
    env "$@" taskset -c 0 "$GUICHET_BIN" demo --listen "$HOST:$listen" --admin "$HOST:$admin" \
        --echo "$HOST:$echo" --threads "$GUICHET_THREADS" $flags >"$logfile" 2>&1 &
    PIDS+=($!)
    wait_http "http://$HOST:$echo/"
    wait_http "http://$HOST:$listen/"
}

# Signs in as alice once; prints the session cookie value. With a second argument, the app's
# answer to the signed-in request must also match that (extended) regular expression.
login() { # base [pattern]
    local base=$1 expect=${2:-}
    local jar=$WORK/cookies.${base##*:}
    local page token status session
    page=$(curl -s --max-time 5 -c "$jar" -b "$jar" "$base/.guichet/login")
    token=$(printf '%s' "$page" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -n1)
    [[ -n $token ]] || { log "no csrf_token in the login form at $base"; return 1; }
    status=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -c "$jar" -b "$jar" \
        --data-urlencode username=alice@example.org --data-urlencode password=alice \
        --data-urlencode "csrf_token=$token" "$base/.guichet/login")
    [[ $status == 302 ]] || { log "login at $base answered $status, expected 302"; return 1; }
    session=$(awk '$6 == "guichet_session" { print $7 }' "$jar" | tail -n1)
    [[ -n $session ]] || { log "no guichet_session cookie after login at $base"; return 1; }
    # The session must be good: 200 from the app, with the identity headers written.
    local body
    body=$(curl -s --max-time 5 -H "Cookie: guichet_session=$session" "$base/")
    if ! grep -q 'x-remote-user' <<<"$body"; then
        log "an authenticated request through $base did not reach the app"
        return 1
    fi
    if [[ -n $expect ]] && ! grep -Eq "$expect" <<<"$body"; then
        log "the app's answer through $base does not match $expect:"
        grep -E 'x-remote-|x-forwarded-' <<<"$body" >&2 || true
        return 1
    fi
    printf '%s' "$session"
}

log "work directory: $WORK"

# Upstream + Guichet (the echo app runs inside this process, on its own thread).
start_guichet "$GUICHET_PORT" "$ADMIN_PORT" "$ECHO_PORT" "$WORK/guichet.log" ""
SESSION=$(login "http://$HOST:$GUICHET_PORT")
# The headers Guichet adds to what the app receives, as "name: value" lines (for bare-hdrs).
curl -s --max-time 5 -H "Cookie: guichet_session=$SESSION" "http://$HOST:$GUICHET_PORT/" |
    sed -n 's#^<tr[^>]*><th>\(x-remote-[^<]*\|x-forwarded-[^<]*\|x-request-id\)</th><td>\([^<]*\)</td></tr>$#\1: \2#p' |
    sed -e 's/&lt;/</g' -e 's/&gt;/>/g' -e 's/&quot;/"/g' -e "s/&#39;/'/g" -e 's/&amp;/\&/g' >"$WORK/added-headers.txt"
ADDED_HEADERS=()
while IFS= read -r header; do
    ADDED_HEADERS+=(-H "$header")
done <"$WORK/added-headers.txt"
if [[ " $TARGETS " == *" bare-hdrs "* ]] && ! grep -q '^x-remote-user: ' "$WORK/added-headers.txt"; then
    log "could not read the headers Guichet adds (for bare-hdrs)"
    exit 1
fi
if [[ " $TARGETS " == *" guichet-nolog "* ]]; then
    start_guichet "$GUICHET2_PORT" "$ADMIN2_PORT" "$ECHO2_PORT" "$WORK/guichet-nolog.log" "" RUST_LOG=warn
    SESSION2=$(login "http://$HOST:$GUICHET2_PORT")
fi
if [[ " $TARGETS " == *" guichet-plain "* ]]; then
    start_guichet "$GUICHET3_PORT" "$ADMIN3_PORT" "$ECHO3_PORT" "$WORK/guichet-plain.log" "--plain"
    SESSION3=$(login "http://$HOST:$GUICHET3_PORT")
fi

# Guichet in production mode: `guichet run` with its own configuration, sessions and the
# directory's L2 cache in a Redis started here (on core 0 too: it is part of what this setup
# costs per request), a file directory giving alice her role, name and structure.
if [[ " $TARGETS " == *" guichet-prod "* ]]; then
    taskset -c 0 redis-server --port "$REDIS_PORT" --bind "$HOST" --save '' --appendonly no \
        --dir "$WORK" >"$WORK/redis.log" 2>&1 &
    PIDS+=($!)
    REDIS_PID=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/$HOST/$REDIS_PORT") 2>/dev/null && break
        sleep 0.1
    done
    cat >"$WORK/people.yaml" <<'EOF'
people:
  - id: p-alice
    attributes: { email: alice@example.org, displayName: Alice Martin }
    structures: ["0750001A"]
    roles: { bip: [utilisateur] }
EOF
    ALICE_HASH=$("$GUICHET_BIN" hash-password <<<alice)
    [[ $ALICE_HASH == '$argon2id$'* ]] || { log "guichet hash-password failed: $ALICE_HASH"; exit 1; }
    cat >"$WORK/prod.yaml" <<EOF
listen:
  - address: $HOST:$PROD_PORT
admin: $HOST:$PROD_ADMIN_PORT
threads: $GUICHET_THREADS
log: { format: human, level: info, access: true }   # as guichet demo: access lines at info
session:
  store:
    kind: redis
    url: "redis://$HOST:$REDIS_PORT/"
    encryption_key: "$(head -c32 /dev/urandom | base64)"
providers:
  - kind: local
    id: staff
    pivot: { attribute: email, directory_attribute: email }
    users:
      - username: alice
        email: alice@example.org
        password_hash: '$ALICE_HASH'
directory:
  backend: { kind: file, path: "$WORK/people.yaml" }
  cache: { l1_ttl: 30s, l2_ttl: 5m }
apps:
  - id: bip
    url: http://$HOST:$PROD_PORT
    upstream: http://$HOST:$ECHO_PORT
    providers: [staff]
    rules:
      - { path_prefix: /static, access: public }
      - { path_prefix: /admin, any_role: [admin] }
      - { path_prefix: /, any_role: [utilisateur, admin] }
    identity_headers:
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: X-Remote-Email, value: "attribute:email" }
        - { name: X-Remote-Name, value: "attribute:displayName" }
        - { name: X-Remote-Roles, value: roles }
        - { name: X-Remote-Structure, value: "attribute:structure" }
EOF
    if ! "$GUICHET_BIN" check --config "$WORK/prod.yaml" >"$WORK/prod-check.log" 2>&1; then
        log "guichet check refused $WORK/prod.yaml:"
        cat "$WORK/prod-check.log" >&2
        exit 1
    fi
    taskset -c 0 "$GUICHET_BIN" run --config "$WORK/prod.yaml" >"$WORK/guichet-prod.log" 2>&1 &
    PIDS+=($!)
    TARGET_PID[guichet-prod]=$!
    if ! wait_status "http://$HOST:$PROD_ADMIN_PORT/readyz" 200; then
        tail -n 20 "$WORK/guichet-prod.log" "$WORK/redis.log" >&2 || true
        exit 1
    fi
    wait_http "http://$HOST:$PROD_PORT/"
    # The directory must have given alice her role: without it every request would be a 403.
    SESSION_PROD=$(login "http://$HOST:$PROD_PORT" 'x-remote-roles</th><td>([^<]*,)?utilisateur(,[^<]*)?</td>')
    # What one session costs Redis: the sealed record of alice (a person with a name, an
    # e-mail, a structure and a role), as stored.
    session_key=$(redis-cli -h "$HOST" -p "$REDIS_PORT" --scan --pattern 'guichet:s:*' | head -n1)
    SESSION_RECORD_BYTES=$(redis-cli -h "$HOST" -p "$REDIS_PORT" STRLEN "$session_key")
    log "session record in Redis: $SESSION_RECORD_BYTES bytes (sealed)"
fi

if [[ " $TARGETS " == *" bare "* || " $TARGETS " == *" bare-hdrs "* ]]; then
    taskset -c 0 "$BARE_BIN" "$HOST:$BARE_PORT" "$HOST:$ECHO_PORT" 1 >"$WORK/bare.log" 2>&1 &
    PIDS+=($!)
    TARGET_PID[bare]=$! TARGET_PID[bare-hdrs]=$!
    wait_http "http://$HOST:$BARE_PORT/"
fi
if [[ " $TARGETS " == *" bare-t2 "* ]]; then
    taskset -c 0 "$BARE_BIN" "$HOST:$BARE2_PORT" "$HOST:$ECHO_PORT" 2 >"$WORK/bare-t2.log" 2>&1 &
    PIDS+=($!)
    TARGET_PID[bare-t2]=$!
    wait_http "http://$HOST:$BARE2_PORT/"
fi

if [[ " $TARGETS " == *" nginx "* ]]; then
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/client_body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_requests 1000000;
    upstream echo {
        server $HOST:$ECHO_PORT;
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        listen $HOST:$NGINX_PORT;
        location / {
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    taskset -c 0 "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" \
        -g 'daemon off;' >"$WORK/nginx/stdout.log" 2>&1 &
    PIDS+=($!)
    TARGET_PID[nginx]=$!
    wait_http "http://$HOST:$NGINX_PORT/"
fi

# wrk reports through this script: one machine-readable line, and the optional pacing.
cat >"$WORK/report.lua" <<'EOF'
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "")
if pause and pause > 0 then
    function delay() return pause end
end
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
        "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
        summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
        e.connect, e.read, e.write, e.status, e.timeout))
end
EOF

url_of() {
    case $1 in
        direct) echo "http://$HOST:$ECHO_PORT$REQUEST_PATH" ;;
        guichet) echo "http://$HOST:$GUICHET_PORT$REQUEST_PATH" ;;
        guichet-nolog) echo "http://$HOST:$GUICHET2_PORT$REQUEST_PATH" ;;
        guichet-plain) echo "http://$HOST:$GUICHET3_PORT$REQUEST_PATH" ;;
        guichet-prod) echo "http://$HOST:$PROD_PORT$REQUEST_PATH" ;;
        bare | bare-hdrs) echo "http://$HOST:$BARE_PORT$REQUEST_PATH" ;;
        bare-t2) echo "http://$HOST:$BARE2_PORT$REQUEST_PATH" ;;
        nginx) echo "http://$HOST:$NGINX_PORT$REQUEST_PATH" ;;
    esac
}

headers_of() { # target: sets HEADERS, wrk's -H arguments
    case $1 in
        guichet) HEADERS=(-H "Cookie: guichet_session=$SESSION") ;;
        guichet-nolog) HEADERS=(-H "Cookie: guichet_session=$SESSION2") ;;
        guichet-plain) HEADERS=(-H "Cookie: guichet_session=$SESSION3") ;;
        guichet-prod) HEADERS=(-H "Cookie: guichet_session=$SESSION_PROD") ;;
        bare-hdrs) HEADERS=("${ADDED_HEADERS[@]}") ;;
        *) HEADERS=() ;;
    esac
}

# Busy share of core 0 (where the proxy and the upstream run) between two /proc/stat reads.
cpu0() { awk '$1 == "cpu0" { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
# Other processes are detected from user-mode time only: a tick in user mode is charged to the
# task that was running, exactly. Kernel time is not: the network softirqs that the load itself
# causes are partly charged to no task (softirq work run from the idle loop), which would look
# like another process. Compilers and test suites, what disturbs runs here, are mostly user time.
# User-mode clock ticks of the whole machine (user, nice).
all_ticks() { awk '$1 == "cpu" { print $2 + $3 }' /proc/stat; }
# User-mode clock ticks used so far by the processes this script started (all threads; nginx's
# worker too).
ours_ticks() {
    local pid pids=() total=0
    for pid in "${PIDS[@]}"; do
        pids+=("$pid")
        # shellcheck disable=SC2207
        pids+=($(pgrep -P "$pid" || true))
    done
    for pid in "${pids[@]}"; do
        total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 }' || echo 0)))
    done
    echo "$total"
}
# CPU clock ticks (user + system) used so far by a process and its children (nginx's worker).
proc_ticks() { # pid
    local pid total=0
    for pid in "$1" $(pgrep -P "$1" || true); do
        total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0)))
    done
    echo "$total"
}
# CPU microseconds per request of `pid` between two proc_ticks readings.
us_per_request() { # ticks-before ticks-after seconds rps
    awk -v b="$1" -v a="$2" -v t="$3" -v r="$4" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { if (r > 0 && t > 0) printf "%.1f", (a - b) * 1e6 / hz / (r * t); else print "nan" }'
}
# User-mode clock ticks used by this shell's waited-for children (wrk), from `times`. Call it
# in the shell that ran wrk, not in a $(...) subshell, which has children of its own.
children_ticks() { # file to write the ticks to
    times >"$1.times"
    tail -n1 "$1.times" | awk -v hz="$(getconf CLK_TCK)" '{ split($1, a, /[ms]/); printf "%.0f", (a[1] * 60 + a[2]) * hz }' >"$1"
}

# One wrk run. Prints wrk's RESULT line plus cpu0= (busy % of core 0) and other= (user-mode CPU,
# in % of one core, used during the run by processes this script did not start: anything above a
# few % means something else was running and the run is suspect).
run_wrk() { # target scenario duration
    local target=$1 scenario=$2 duration=$3 args delay=0
    headers_of "$target"
    case $scenario in
        max) args=(-t2 -c50) ;;
        c8) args=(-t1 -c8) ;;
        moderate) args=(-t2 -c16) delay=$PACED_DELAY_MS ;;
    esac
    local before after all0 ours0 kids0 t0 all1 ours1 kids1 t1 pid=${TARGET_PID[$target]:-}
    local proxy0=0 proxy1=0 redis0=0 redis1=0
    children_ticks "$WORK/kids0"
    [[ -n $pid ]] && proxy0=$(proc_ticks "$pid")
    [[ $target == guichet-prod ]] && redis0=$(proc_ticks "$REDIS_PID")
    before=$(cpu0) all0=$(all_ticks) ours0=$(ours_ticks) kids0=$(<"$WORK/kids0") t0=$(date +%s.%N)
    WRK_DELAY_MS=$delay timeout $((duration + 30)) taskset -c 1 wrk "${args[@]}" -d"${duration}s" \
        --timeout 5s -s "$WORK/report.lua" "${HEADERS[@]}" "$(url_of "$target")" \
        >"$WORK/wrk.out" 2>&1 || { log "wrk failed for $target/$scenario"; cat "$WORK/wrk.out" >&2; return 1; }
    children_ticks "$WORK/kids1"
    after=$(cpu0) all1=$(all_ticks) ours1=$(ours_ticks) kids1=$(<"$WORK/kids1") t1=$(date +%s.%N)
    [[ -n $pid ]] && proxy1=$(proc_ticks "$pid")
    [[ $target == guichet-prod ]] && redis1=$(proc_ticks "$REDIS_PID")
    local line
    line=$(grep '^RESULT' "$WORK/wrk.out") || { cat "$WORK/wrk.out" >&2; return 1; }
    read -r b_busy b_all <<<"$before"
    read -r a_busy a_all <<<"$after"
    local rps seconds
    rps=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<" $line")
    seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    printf '%s proxy_us=%s redis_us=%s cpu0=%s other=%s\n' "$line" \
        "$(if [[ -n $pid ]]; then us_per_request "$proxy0" "$proxy1" "$seconds" "$rps"; else echo nan; fi)" \
        "$(if [[ $target == guichet-prod ]]; then us_per_request "$redis0" "$redis1" "$seconds" "$rps"; else echo nan; fi)" \
        "$(awk -v b="$((a_busy - b_busy))" -v a="$((a_all - b_all))" 'BEGIN { printf "%.0f", a ? 100 * b / a : 0 }')" \
        "$(awk -v f="$(( (all1 - all0) - (ours1 - ours0) - (kids1 - kids0) ))" -v t0="$t0" -v t1="$t1" \
            -v hz="$(getconf CLK_TCK)" 'BEGIN { v = 100 * f / ((t1 - t0) * hz); printf "%.0f", v < 0 ? 0 : v }')"
}

# Waits (at most QUIET_WAIT seconds) until other processes use at most OTHER_MAX % of a core.
wait_quiet() {
    local hz all0 ours0 all1 ours1 other waited=0
    hz=$(getconf CLK_TCK)
    while ((waited < QUIET_WAIT)); do
        all0=$(all_ticks) ours0=$(ours_ticks)
        sleep 1
        all1=$(all_ticks) ours1=$(ours_ticks)
        other=$(( 100 * ((all1 - all0) - (ours1 - ours0)) / hz ))
        if ((other <= OTHER_MAX)); then
            return 0
        fi
        if ((waited == 0)); then
            log "machine busy (other processes: ${other}% of a core): waiting up to ${QUIET_WAIT}s"
        fi
        waited=$((waited + 1))
    done
    log "machine still busy after ${QUIET_WAIT}s: measuring anyway (the run will be marked)"
}

RAW=$WORK/raw.tsv
printf 'rep\ttarget\tscenario\trps\tp50_us\tp90_us\tp99_us\tmax_us\terrors\tcpu0_busy_pct\tother_cpu_pct\tproxy_cpu_us_per_req\tredis_cpu_us_per_req\n' >"$RAW"

for target in $TARGETS; do
    log "warm-up: $target (${WARMUP}s)"
    run_wrk "$target" max "$WARMUP" >/dev/null
done

total=$(( REPS * $(wc -w <<<"$TARGETS") * $(wc -w <<<"$SCENARIOS") ))
n=0
for rep in $(seq 1 "$REPS"); do
    for target in $TARGETS; do
        for scenario in $SCENARIOS; do
            n=$((n + 1))
            get() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<" $result"; }
            getn() { sed -n "s/.* $1=\([0-9.a-z]*\).*/\1/p" <<<" $result"; }
            for attempt in $(seq 0 "$RETRIES"); do
                wait_quiet
                result=$(run_wrk "$target" "$scenario" "$DURATION")
                if (($(get other) <= OTHER_MAX)); then
                    break
                elif ((attempt < RETRIES)); then
                    log "$target $scenario disturbed (other processes $(get other)%): measuring again"
                fi
            done
            errors=$(( $(get err_connect) + $(get err_read) + $(get err_write) + $(get err_status) + $(get err_timeout) ))
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$target" "$scenario" \
                "$(get rps)" "$(get p50_us)" "$(get p90_us)" "$(get p99_us)" "$(get max_us)" \
                "$errors" "$(get cpu0)" "$(get other)" "$(getn proxy_us)" "$(getn redis_us)" >>"$RAW"
            log "[$n/$total] rep $rep $target $scenario: $(get rps) req/s, p50 $(get p50_us) us, p99 $(get p99_us) us, errors $errors, core0 $(get cpu0)%, other processes $(get other)%"
        done
    done
done

# Median of a column for one (target, scenario), over the undisturbed runs when there are any.
clean_runs() { # target scenario
    awk -F'\t' -v t="$1" -v s="$2" -v max="$OTHER_MAX" 'NR > 1 && $2 == t && $3 == s && $11 <= max { n++ } END { print n + 0 }' "$RAW"
}
median() { # target scenario column
    local max=$OTHER_MAX
    [[ $(clean_runs "$1" "$2") -gt 0 ]] || max=1000000
    awk -F'\t' -v t="$1" -v s="$2" -v c="$3" -v max="$max" 'NR > 1 && $2 == t && $3 == s && $11 <= max { print $c }' "$RAW" |
        sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
col() { case $1 in rps) echo 4 ;; p50) echo 5 ;; p99) echo 7 ;; errors) echo 9 ;; cpu) echo 10 ;; other) echo 11 ;; proxy_us) echo 12 ;; redis_us) echo 13 ;; esac; }
m() { median "$1" "$2" "$(col "$3")"; }

echo
echo "== Raw runs (tab-separated) =="
cat "$RAW"
echo
echo "== Summary: medians of $REPS run(s) of ${DURATION}s; latency in ms; proxy+upstream on core 0, wrk on core 1 =="
echo "   (clean: runs during which other processes used at most ${OTHER_MAX}% of a core; medians use those)"
echo "   (proxy us: CPU microseconds per request of the proxy's own process, user + system, for the"
echo "    targets running in a process of their own; redis us: the production mode's Redis)"
for scenario in $SCENARIOS; do
    echo
    case $scenario in
        max) echo "-- max: wrk -t2 -c50 (saturation)" ;;
        c8) echo "-- c8: wrk -t1 -c8 (closed loop, few connections)" ;;
        moderate) echo "-- moderate: wrk -t2 -c16, ${PACED_DELAY_MS} ms pause before each request (fixed offered load)" ;;
    esac
    printf '%-14s %12s %9s %9s %8s %8s %8s %6s %9s %9s\n' target 'req/s' 'p50 ms' 'p99 ms' errors 'core0 %' 'other %' clean 'proxy us' 'redis us'
    for target in $TARGETS; do
        printf '%-14s %12.0f %9.3f %9.3f %8.0f %8.0f %8.0f %6s %9s %9s\n' "$target" "$(m "$target" "$scenario" rps)" \
            "$(awk -v v="$(m "$target" "$scenario" p50)" 'BEGIN { print v / 1000 }')" \
            "$(awk -v v="$(m "$target" "$scenario" p99)" 'BEGIN { print v / 1000 }')" \
            "$(m "$target" "$scenario" errors)" "$(m "$target" "$scenario" cpu)" \
            "$(m "$target" "$scenario" other)" "$(clean_runs "$target" "$scenario")/$REPS" \
            "$(m "$target" "$scenario" proxy_us)" "$(m "$target" "$scenario" redis_us)"
    done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a == a) printf "%.1f%%", 100 * a / b; else print "n/a" }'; }
diff_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.3f ms", (a - b) / 1000 }'; }
has() { [[ " $TARGETS " == *" $1 "* && " $SCENARIOS " == *" $2 "* ]]; }

echo
echo "== Ratios and targets =="
if has guichet max; then
    g=$(m guichet max rps)
    has bare max && echo "throughput guichet / bare pingora (max):  $(ratio "$g" "$(m bare max rps)")   (target: >= 80%)" || true
    has nginx max && echo "throughput guichet / nginx (max):         $(ratio "$g" "$(m nginx max rps)")" || true
    has bare max && has nginx max && echo "throughput bare pingora / nginx (max):    $(ratio "$(m bare max rps)" "$(m nginx max rps)")" || true
    has guichet-plain max && has guichet max && echo "policies + 6 headers, guichet / guichet-plain (max): $(ratio "$(m guichet max rps)" "$(m guichet-plain max rps)")   (target: slower by < 5%)" || true
    has guichet-nolog max && has bare max && echo "diagnostic guichet-nolog / bare (max):    $(ratio "$(m guichet-nolog max rps)" "$(m bare max rps)")" || true
    has guichet-nolog max && has bare-t2 max && echo "diagnostic guichet-nolog / bare-t2 (max): $(ratio "$(m guichet-nolog max rps)" "$(m bare-t2 max rps)")" || true
    has bare-hdrs max && echo "diagnostic guichet / bare-hdrs (max):       $(ratio "$g" "$(m bare-hdrs max rps)")" || true
    has guichet-nolog max && has bare-hdrs max && echo "diagnostic guichet-nolog / bare-hdrs (max): $(ratio "$(m guichet-nolog max rps)" "$(m bare-hdrs max rps)")" || true
fi
if has guichet-prod max; then
    p=$(m guichet-prod max rps)
    has bare max && echo "production mode, guichet-prod / bare pingora (max): $(ratio "$p" "$(m bare max rps)")" || true
    has nginx max && echo "guichet-prod / nginx (max):                         $(ratio "$p" "$(m nginx max rps)")" || true
    has guichet max && echo "guichet-prod / guichet (demo, memory store) (max): $(ratio "$p" "$(m guichet max rps)")" || true
    echo "CPU us per request at max, proxy process: guichet-prod $(m guichet-prod max proxy_us) (+ Redis $(m guichet-prod max redis_us))$(has bare max && echo ", bare $(m bare max proxy_us)")$(has nginx max && echo ", nginx $(m nginx max proxy_us)")"
    echo "session record in Redis (alice, sealed): ${SESSION_RECORD_BYTES:-?} bytes (target: < 1 KiB)"
fi
if has guichet moderate && has direct moderate; then
    echo "added p99 at moderate load, guichet - direct:  $(diff_ms "$(m guichet moderate p99)" "$(m direct moderate p99)")   (target: < 1 ms)"
    echo "added p50 at moderate load, guichet - direct:  $(diff_ms "$(m guichet moderate p50)" "$(m direct moderate p50)")"
    has bare moderate && echo "added p99 at moderate load, bare - direct:     $(diff_ms "$(m bare moderate p99)" "$(m direct moderate p99)")" || true
    has nginx moderate && echo "added p99 at moderate load, nginx - direct:    $(diff_ms "$(m nginx moderate p99)" "$(m direct moderate p99)")" || true
fi
if has guichet-prod moderate && has direct moderate; then
    echo "added p99 at moderate load, guichet-prod - direct: $(diff_ms "$(m guichet-prod moderate p99)" "$(m direct moderate p99)")"
fi
if has guichet c8 && has direct c8; then
    echo "added p99 at c8 (saturated), guichet - direct: $(diff_ms "$(m guichet c8 p99)" "$(m direct c8 p99)")"
fi
