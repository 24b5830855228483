#!/usr/bin/env bash
# Memory held by idle keep-alive connections: the release binary in production mode (`guichet
# run`, sessions in Redis, a file directory, role rules, identity headers, as bench/run.sh's
# guichet-prod), CONNECTIONS client connections on loopback that each make one request
# (proxied to the echo app) and then stay open, idle. Prints guichet's resident memory (VmRSS
# from /proc/PID/status) before, with the connections open, and after they are closed.
#
#   bash bench/idle-connections.sh                  # builds the release binary, 10,000 connections
#   CONNECTIONS=2000 SKIP_BUILD=1 bash bench/idle-connections.sh
#   MODE=silent bash bench/idle-connections.sh      # connections that never send a byte
#   CONNECTIONS=500 MODE=active bash bench/idle-connections.sh   # requests in flight
#
# Needs redis-server and python3 (asyncio, standard library only). Raises its open-file limit
# (soft, up to the hard limit) for itself, the client and guichet, which all need one
# descriptor per connection. Everything it starts is stopped on exit; logs go to a temporary
# directory (kept with KEEP=1). See docs/resilience.md, "Resource bounds".

set -euo pipefail

CONNECTIONS=${CONNECTIONS:-10000}
PORT_BASE=${PORT_BASE:-18500}
# Worker threads of the proxy: unset = one per core, guichet's default.
GUICHET_THREADS=${GUICHET_THREADS:-}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP=${KEEP:-0}
SETTLE=${SETTLE:-3}   # seconds between the last connection opened and the measurement
PARALLEL=${PARALLEL:-100}   # connections the client opens at once
# keepalive: each connection makes one request, then stays open (idle keep-alive);
# silent: connections that never send a byte (what a connection costs before any request);
# active: each connection is a request in flight (a POST whose body has begun, proxied to the
# echo app, which waits for the rest).
MODE=${MODE:-keepalive}

HOST=127.0.0.1
ECHO_PORT=$((PORT_BASE + 0))
GUICHET_PORT=$((PORT_BASE + 1))
ADMIN_PORT=$((PORT_BASE + 2))
REDIS_PORT=$((PORT_BASE + 3))

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GUICHET_BIN=$TARGET_DIR/release/guichet
WORK=$(mktemp -d "${TMPDIR:-/tmp}/guichet-idle.XXXXXX")
PIDS=()

log() { printf '[idle] %s\n' "$*" >&2; }

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ $KEEP == 1 ]]; then
        log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need() { command -v "$1" >/dev/null || { log "$1 is required"; exit 1; }; }
need redis-server
need python3
need curl

# One descriptor per connection on each side, plus upstream connections, Redis, logs.
wanted=$((CONNECTIONS + 1024))
hard=$(ulimit -Hn)
if [[ $hard != unlimited && $hard -lt $wanted ]]; then
    log "the hard open-file limit ($hard) is below $wanted: lower CONNECTIONS or raise it"
    exit 1
fi
ulimit -n "$wanted"

if [[ $SKIP_BUILD != 1 ]]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release --bin guichet)
fi
[[ -x $GUICHET_BIN ]] || { log "$GUICHET_BIN is missing"; exit 1; }

wait_status() {   # URL STATUS: wait up to 30 s for URL to answer STATUS
    for _ in $(seq 1 300); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" || true) == "$2" ]] && return 0
        sleep 0.1
    done
    log "$1 did not answer $2"
    return 1
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# Resident memory split: anonymous (heap, stacks) and file-backed (the binary's code).
rss_split() { awk '/^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } END { printf "anon %.1f MiB, file %.1f MiB", a / 1024, f / 1024 }' "/proc/$1/status"; }
threads() { awk '/^Threads:/ { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

"$GUICHET_BIN" echo --listen "$HOST:$ECHO_PORT" >"$WORK/echo.log" 2>&1 &
PIDS+=($!)

redis-server --port "$REDIS_PORT" --bind "$HOST" --save '' --appendonly no \
    --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
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
THREADS_LINE=""
[[ -n $GUICHET_THREADS ]] && THREADS_LINE="threads: $GUICHET_THREADS"
cat >"$WORK/prod.yaml" <<EOF
listen:
  - address: $HOST:$GUICHET_PORT
admin: $HOST:$ADMIN_PORT
$THREADS_LINE
log: { format: json, level: warn }
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
    url: http://$HOST:$GUICHET_PORT
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
# The default limits, except: room for every connection, and each one kept open for the whole
# measurement (idle, silent or mid-body), which the default timeouts would start closing.
limits:
  max_connections: $((CONNECTIONS + 100))
  idle_timeout: 10m
  header_timeout: $([[ $MODE == silent ]] && echo 10m || echo 10s)
  body_timeout: $([[ $MODE == active ]] && echo 10m || echo 30s)
EOF
"$GUICHET_BIN" check --config "$WORK/prod.yaml" >"$WORK/check.log" 2>&1 \
    || { cat "$WORK/check.log" >&2; exit 1; }
"$GUICHET_BIN" run --config "$WORK/prod.yaml" >"$WORK/guichet.log" 2>&1 &
GUICHET_PID=$!
PIDS+=($GUICHET_PID)
wait_status "http://$HOST:$ADMIN_PORT/readyz" 200
wait_status "http://$HOST:$GUICHET_PORT/static/warm-up?echo=fixed" 200
# A few requests so that what one request allocates once (upstream pool, caches) is there.
for _ in $(seq 1 20); do
    curl -s -o /dev/null "http://$HOST:$GUICHET_PORT/static/warm-up?echo=fixed"
done
sleep 1
BEFORE=$(rss_kib "$GUICHET_PID")
BEFORE_SPLIT=$(rss_split "$GUICHET_PID")
log "guichet pid $GUICHET_PID, $(threads "$GUICHET_PID") threads, RSS $(mib "$BEFORE") MiB before"

# The client: opens the connections (PARALLEL at a time), one request each (read whole), then
# holds them open without a byte until told to close them (a line on stdin).
cat >"$WORK/client.py" <<'EOF'
import asyncio, sys

HOST, PORT, COUNT, PARALLEL, MODE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
REQUEST = f"GET /static/idle?echo=fixed HTTP/1.1\r\nHost: {HOST}:{PORT}\r\n\r\n".encode()

async def open_one(slots):
    async with slots:
        reader, writer = await asyncio.open_connection(HOST, PORT)
        if MODE == "silent":
            return writer
        if MODE == "active":
            writer.write(f"POST /static/upload HTTP/1.1\r\nHost: {HOST}:{PORT}\r\nContent-Length: 100000\r\n\r\n".encode() + b"x" * 1000)
            await writer.drain()
            return writer
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split()[1])
        length = 0
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
        await reader.readexactly(length)
        if status != 200:
            raise RuntimeError(f"status {status}")
        return writer

async def main():
    slots = asyncio.Semaphore(PARALLEL)
    writers = await asyncio.gather(*(open_one(slots) for _ in range(COUNT)))
    print(f"open {len(writers)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for writer in writers:
        writer.close()
    print("closed", flush=True)

asyncio.run(main())
EOF
mkfifo "$WORK/client.in"
python3 "$WORK/client.py" "$HOST" "$GUICHET_PORT" "$CONNECTIONS" "$PARALLEL" "$MODE" <"$WORK/client.in" >"$WORK/client.out" 2>"$WORK/client.err" &
CLIENT_PID=$!
PIDS+=($CLIENT_PID)
exec 4>"$WORK/client.in"
started=$(date +%s)
until grep -q '^open' "$WORK/client.out" 2>/dev/null; do
    if ! kill -0 "$CLIENT_PID" 2>/dev/null; then
        log "the client failed:"; cat "$WORK/client.err" >&2; exit 1
    fi
    sleep 0.2
done
log "$CONNECTIONS connections opened in $(( $(date +%s) - started )) s"
sleep "$SETTLE"
OPEN=$(curl -s "http://$HOST:$ADMIN_PORT/metrics" | awk '/^guichet_connections_open / { print $2 }')
WITH=$(rss_kib "$GUICHET_PID")
WITH_SPLIT=$(rss_split "$GUICHET_PID")
WITH_THREADS=$(threads "$GUICHET_PID")
# Still serving with all of them open.
SERVED=$(curl -s -o /dev/null -w '%{http_code}' "http://$HOST:$GUICHET_PORT/static/x?echo=fixed")

echo >&4
until grep -q '^closed' "$WORK/client.out" 2>/dev/null; do sleep 0.2; done
sleep "$SETTLE"
AFTER=$(rss_kib "$GUICHET_PID")
OPEN_AFTER=$(curl -s "http://$HOST:$ADMIN_PORT/metrics" | awk '/^guichet_connections_open / { print $2 }')

per_conn=$(awk -v a="$WITH" -v b="$BEFORE" -v n="$CONNECTIONS" 'BEGIN { printf "%.2f", (a - b) / n }')
cat <<EOF
guichet $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $WITH_THREADS threads
$MODE connections open (guichet_connections_open): ${OPEN:-?} of $CONNECTIONS
RSS before:                   $(mib "$BEFORE") MiB ($BEFORE_SPLIT)
RSS with the connections:     $(mib "$WITH") MiB ($WITH_SPLIT; +$per_conn KiB per connection)
RSS after closing them:       $(mib "$AFTER") MiB (connections open: ${OPEN_AFTER:-?})
a request while they are open: $SERVED
EOF
