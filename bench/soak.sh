#!/usr/bin/env bash
# Soak: two replicas of the release binary sharing one Redis, mixed traffic for SOAK_SECONDS
# (issue #14, part 4). Loopback only; everything it starts is stopped on exit.
#
#   SOAK_SECONDS=600 bash bench/soak.sh      # builds the release binary first
#   SOAK_SECONDS=60 SKIP_BUILD=1 KEEP=1 bash bench/soak.sh
#
# Needs curl, python3, redis-server. The traffic (bench/soak.py, standard library only):
#   - USERS local users (password form) and OIDC_USERS OpenID users (bench/faultkit.py's
#     provider) each sign in on either replica, make 100-200 requests alternating between the
#     replicas (every 200 checked for its user's identity, and roles), sign out on one
#     replica, and check the cookie is refused on the OTHER (and on that one); again and again;
#   - every ROLE_EVERY seconds one of four users has a role added or removed in the directory
#     file, `guichet directory invalidate` is run, and both replicas must show the new roles
#     (and /bip/admin must follow) within 10 s;
#   - VmRSS of both replicas sampled every 10 s into a CSV, plotted as an SVG
#     (SVG_OUT, default docs/soak-rss.svg; SVG_OUT= to skip).
# Exits non-zero on any 5xx, transport error, wrong identity, or ineffective logout or role
# change.

set -euo pipefail

SOAK_SECONDS=${SOAK_SECONDS:-600}
PORT_BASE=${PORT_BASE:-18900}
USERS=${USERS:-8}
OIDC_USERS=${OIDC_USERS:-2}
ROLE_EVERY=${ROLE_EVERY:-5}
# Seconds between editing the directory file and `guichet directory invalidate`: the file
# backend looks for changes at most once a second.
ROLE_SETTLE=${ROLE_SETTLE:-1.2}
GUICHET_THREADS=${GUICHET_THREADS:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP=${KEEP:-0}

HOST=127.0.0.1
A_PORT=$((PORT_BASE + 1))
A_ADMIN=$((PORT_BASE + 2))
B_PORT=$((PORT_BASE + 3))
B_ADMIN=$((PORT_BASE + 4))
ECHO_PORT=$((PORT_BASE + 10))
REDIS_PORT=$((PORT_BASE + 20))
OP_PORT=$((PORT_BASE + 30))

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GUICHET_BIN=$TARGET_DIR/release/guichet
SVG_OUT=${SVG_OUT-$ROOT/docs/soak-rss.svg}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/guichet-soak.XXXXXX")
PIDS=()

log() { printf '[soak] %s\n' "$*" >&2; }

# shellcheck disable=SC2317 # called by the trap
cleanup() {
    local status=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        # SIGINT is pingora's fast shutdown; SIGTERM for the rest (background jobs of a
        # script ignore SIGINT). Both are sent: each process reacts to one of them.
        kill -INT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do
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

need() { command -v "$1" >/dev/null || { log "missing: $1"; exit 1; }; }
for tool in curl python3 redis-server; do need "$tool"; done

for port in $A_PORT $A_ADMIN $B_PORT $B_ADMIN $ECHO_PORT $REDIS_PORT $OP_PORT; do
    if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
        log "port $port is already in use on $HOST (set PORT_BASE)"
        exit 1
    fi
done

if [[ $SKIP_BUILD != 1 ]]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release --bin guichet)
fi

wait_port() { # port
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    log "nothing listens on port $1"
    return 1
}

log "work directory: $WORK"
redis-server --port "$REDIS_PORT" --bind "$HOST" --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
"$GUICHET_BIN" echo --listen "$HOST:$ECHO_PORT" >"$WORK/echo.log" 2>&1 &
PIDS+=($!)
python3 "$ROOT/bench/faultkit.py" oidc --port "$OP_PORT" >"$WORK/op.log" 2>&1 &
PIDS+=($!)
for port in $REDIS_PORT $ECHO_PORT $OP_PORT; do wait_port "$port"; done

LOCAL_USERS=$(python3 "$ROOT/bench/soak.py" people --out "$WORK/people.yaml" --users "$USERS")
HASH=$("$GUICHET_BIN" hash-password <<<alice)
# shellcheck disable=SC2016 # a literal '$'
[[ $HASH == '$argon2id$'* ]] || { log "guichet hash-password failed"; exit 1; }
USERS_YAML=""
for user in $LOCAL_USERS; do
    USERS_YAML+="      - { username: $user, email: $user@example.org, password_hash: '$HASH' }"$'\n'
done
# One file for both replicas (`--set` gives each its ports), as a Deployment's ConfigMap.
cat >"$WORK/guichet.yaml" <<EOF
listen:
  - address: $HOST:$A_PORT
admin: $HOST:$A_ADMIN
threads: $GUICHET_THREADS
log: { format: json, level: info, access: false }
session:
  login_starts_per_minute: 1000000
  store:
    kind: redis
    url: "redis://$HOST:$REDIS_PORT/"
    encryption_key: "$(head -c32 /dev/urandom | base64)"
providers:
  - kind: local
    id: staff
    pivot: { attribute: email, directory_attribute: email }
    users:
$USERS_YAML  - kind: oidc
    id: sso
    issuer: "http://$HOST:$OP_PORT"
    client_id: guichet
    client_secret: "a-client-secret-of-32-bytes-or-more!"
    allowed_algs: [HS256]
    userinfo: skip
directory:
  backend: { kind: file, path: "$WORK/people.yaml" }
  cache: { l1_ttl: 30s, l2_ttl: 5m }
apps:
  - id: bip
    url: http://guichet.test/bip
    upstream: http://$HOST:$ECHO_PORT
    providers: [staff]
    rules:
      - { path_prefix: /bip/admin, any_role: [admin] }
      - { path_prefix: /bip, any_role: [utilisateur, admin] }
    identity_headers:
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: X-Remote-Roles, value: roles }
        - { name: X-Remote-Email, value: "attribute:email" }
  - id: portail
    url: http://guichet.test/portail
    upstream: http://$HOST:$ECHO_PORT
    providers: [sso]
    identity_headers:
      headers:
        - { name: X-Remote-User, value: subject }
EOF
"$GUICHET_BIN" check --config "$WORK/guichet.yaml" >/dev/null

"$GUICHET_BIN" run --config "$WORK/guichet.yaml" >"$WORK/replica1.log" 2>&1 &
A_PID=$!
PIDS+=("$A_PID")
"$GUICHET_BIN" run --config "$WORK/guichet.yaml" --set "listen[0].address=$HOST:$B_PORT" \
    --set "admin=$HOST:$B_ADMIN" >"$WORK/replica2.log" 2>&1 &
B_PID=$!
PIDS+=("$B_PID")
for admin in $A_ADMIN $B_ADMIN; do
    ready=
    for _ in $(seq 1 300); do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$HOST:$admin/readyz") == 200 ]]; then
            ready=1
            break
        fi
        sleep 0.1
    done
    [[ -n $ready ]] || { log "the replica with admin port $admin did not become ready"; exit 1; }
done

echo "Guichet soak, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, ${SOAK_SECONDS}s, binary $GUICHET_BIN"
echo "replica 1: pid $A_PID, port $A_PORT; replica 2: pid $B_PID, port $B_PORT; threads $GUICHET_THREADS each"
status=0
python3 "$ROOT/bench/soak.py" drive --ports "$A_PORT" "$B_PORT" --pids "$A_PID" "$B_PID" \
    --seconds "$SOAK_SECONDS" --people "$WORK/people.yaml" --config "$WORK/guichet.yaml" \
    --guichet "$GUICHET_BIN" --op "http://$HOST:$OP_PORT" --users "$USERS" --oidc-users "$OIDC_USERS" \
    --role-every "$ROLE_EVERY" --settle "$ROLE_SETTLE" --rss-csv "$WORK/rss.csv" || status=$?

panics=$(cat "$WORK/replica1.log" "$WORK/replica2.log" | grep -c panicked || true)
errors=$(cat "$WORK/replica1.log" "$WORK/replica2.log" | grep -c '"level":"ERROR"' || true)
echo "gateway logs: $panics panicked, $errors ERROR lines"
for pid in "$A_PID" "$B_PID"; do
    kill -0 "$pid" 2>/dev/null || { echo "replica $pid is gone"; status=1; }
done
[[ $panics == 0 ]] || status=1
echo "RSS samples (CSV):"
cat "$WORK/rss.csv"
if [[ -n $SVG_OUT ]]; then
    python3 "$ROOT/bench/soak.py" svg --csv "$WORK/rss.csv" --out "$SVG_OUT" \
        --title "Guichet soak: VmRSS of two replicas, ${SOAK_SECONDS}s of mixed traffic"
    echo "plot written to $SVG_OUT"
fi
exit "$status"
