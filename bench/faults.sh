#!/usr/bin/env bash
# Fault injection through the shipped binary in production mode (issue #14, part 3).
# Loopback only (127.0.0.1); everything it starts is stopped on exit; results as tables.
#
#   bash bench/faults.sh                # every scenario (about 4 minutes), release build first
#   bash bench/faults.sh redis          # one scenario: redis | directory | upstream | provider
#   SKIP_BUILD=1 KEEP=1 bash bench/faults.sh upstream   # reuse the binary, keep the logs
#
# Needs curl, python3, redis-server, redis-cli and wrk. bench/faultkit.py (standard library
# only) provides the mock upstream, SCIM directory and OpenID provider, and the clients.
#
# The stack of every scenario (started afresh for each one):
#   guichet run        production configuration: Redis sessions, a SCIM directory cached in
#                      process (l1_ttl 2s) and in Redis (l2_ttl 4s, max_stale 1h, timeout 5s),
#                      role rules, identity headers, access log at info; GUICHET_THREADS threads
#   redis-server       appendonly yes, appendfsync everysec (sessions and the directory's L2)
#   app bip  /bip/     the controllable upstream (faultkit upstream: ok | hang), connect
#                      timeout 1s, read timeout 2s; local provider "staff", role rule
#   app cdi  /cdi/     `guichet echo`, a healthy upstream; local provider "staff", role rule
#   app portail /portail/  `guichet echo`; OpenID provider "sso" (faultkit oidc, timeout 5s)
#
# Scenarios (each fault lasts OUTAGE seconds, each measured phase PHASE seconds):
#   redis      Redis SIGKILLed under load and restarted: statuses during the outage, time to
#              the first 200 and the first new login after the restart, sessions that survive
#   directory  the SCIM directory slow (2 s), then stopped, then back: users whose entry was
#              cached and newcomers (first lookup), by status
#   upstream   bip's upstream stopped (502), then hanging (read timeout), then back; the 502
#              and 504 pages checked; cdi measured with wrk in every phase (no starvation)
#   provider   OpenID logins while the token endpoint takes 2 s, then hangs past the
#              provider's timeout; cdi measured with wrk in every phase
# Every scenario also counts: hung requests (client timeout, TIMEOUT s), 200s showing another
# user's identity, 5xx pages without French, English and the correlation id, and "panicked" in
# the gateway's log.

set -euo pipefail

ONLY=${1:-all}
PORT_BASE=${PORT_BASE:-18700}
OUTAGE=${OUTAGE:-10}
PHASE=${PHASE:-10}
TIMEOUT=${TIMEOUT:-10}
GUICHET_THREADS=${GUICHET_THREADS:-2}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP=${KEEP:-0}

if ((OUTAGE < 3 || PHASE < 2)); then
    echo "OUTAGE must be at least 3 s and PHASE at least 2 s" >&2
    exit 2
fi

case $ONLY in
all) SCENARIOS="redis directory upstream provider" ;;
redis | directory | upstream | provider) SCENARIOS=$ONLY ;;
*)
    echo "usage: $0 [all|redis|directory|upstream|provider]" >&2
    exit 2
    ;;
esac

HOST=127.0.0.1
GUICHET_PORT=$((PORT_BASE + 1))
ADMIN_PORT=$((PORT_BASE + 2))
BIP_PORT=$((PORT_BASE + 10))
ECHO_PORT=$((PORT_BASE + 20))
SCIM_PORT=$((PORT_BASE + 30))
REDIS_PORT=$((PORT_BASE + 40))
OP_PORT=$((PORT_BASE + 50))
BASE=http://$HOST:$GUICHET_PORT
OP=http://$HOST:$OP_PORT

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GUICHET_BIN=$TARGET_DIR/release/guichet
KIT=$ROOT/bench/faultkit.py
WRK_SCRIPT=$ROOT/bench/wrk-status.lua
WORK=$(mktemp -d "${TMPDIR:-/tmp}/guichet-faults.XXXXXX")
declare -A PIDS=()
VERDICTS=()

log() { printf '[faults] %s\n' "$*" >&2; }

stop() { # name [signal]
    local name=$1 signal=${2:-TERM} pid
    pid=${PIDS[$name]:-}
    [[ -n $pid ]] || return 0
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name ($pid) did not stop: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    unset "PIDS[$name]"
}

stop_all() {
    local name
    for name in "${!PIDS[@]}"; do
        # SIGINT: pingora's fast shutdown. Background jobs of a script ignore SIGINT, so
        # everything else gets SIGTERM.
        if [[ $name == guichet ]]; then
            stop "$name" INT
        else
            stop "$name" TERM
        fi
    done
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_all
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
for tool in curl python3 redis-server redis-cli wrk; do need "$tool"; done

for port in $GUICHET_PORT $ADMIN_PORT $BIP_PORT $ECHO_PORT $SCIM_PORT $REDIS_PORT $OP_PORT; do
    if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
        log "port $port is already in use on $HOST (set PORT_BASE)"
        exit 1
    fi
done

if [[ $SKIP_BUILD != 1 ]]; then
    log "building the release binary"
    (cd "$ROOT" && cargo build --release --bin guichet)
fi

# Starts a background process, output to $DIR/name.log.
start() { # name command...
    local name=$1
    shift
    "$@" >"$DIR/$name.log" 2>&1 &
    PIDS[$name]=$!
}

wait_port() { # port [seconds]
    local port=$1 tries=$((${2:-10} * 10))
    for _ in $(seq 1 "$tries"); do
        (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    log "nothing listens on port $port"
    return 1
}

now() { date +%s.%N; }
mark() { printf '%s %s\n' "$1" "$(now)" >>"$DIR/events"; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

# Users: 4 "known" people, 400 newcomers (each looked up for the first time when it first signs
# in), all in the directory with a role on bip and cdi; password "alice" for all.
KNOWN="alice bob carol dave"
NEWCOMERS=$(printf 'new%03d ' $(seq 1 400))
PASSWORD_HASH=$("$GUICHET_BIN" hash-password <<<alice)
# shellcheck disable=SC2016 # a literal '$'
[[ $PASSWORD_HASH == '$argon2id$'* ]] || { log "guichet hash-password failed"; exit 1; }
# shellcheck disable=SC2086 # word lists
python3 - "$WORK/people.json" $KNOWN $NEWCOMERS <<'EOF'
import json, sys
people = [{"id": "p-" + u, "email": u + "@example.org", "displayName": u.title(),
           "groups": ["bip:utilisateur", "cdi:utilisateur"]} for u in sys.argv[2:]]
json.dump(people, open(sys.argv[1], "w"))
EOF

write_config() { # file
    local users="" user
    for user in $KNOWN $NEWCOMERS; do
        users+="      - { username: $user, email: $user@example.org, password_hash: '$PASSWORD_HASH' }"$'\n'
    done
    cat >"$1" <<EOF
listen:
  - address: $HOST:$GUICHET_PORT
admin: $HOST:$ADMIN_PORT
threads: $GUICHET_THREADS
log: { format: human, level: info, access: true }
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
    rate_limit: { max_failures_per_account: 2000, max_failures_per_account_and_address: 1000, slow_down_address_after: 100000 }
    users:
$users  - kind: oidc
    id: sso
    issuer: "$OP"
    client_id: guichet
    client_secret: "a-client-secret-of-32-bytes-or-more!"
    allowed_algs: [HS256]
    userinfo: skip
    timeout: 5s
directory:
  backend: { kind: scim, url: "http://$HOST:$SCIM_PORT/scim/v2", timeout: 5s }
  cache: { l1_ttl: 2s, l2_ttl: 4s, max_stale: 1h }
apps:
  - id: bip
    url: $BASE/bip
    upstream: http://$HOST:$BIP_PORT
    upstream_connect_timeout: 1s
    upstream_read_timeout: 2s
    providers: [staff]
    rules:
      - { path_prefix: /bip, any_role: [utilisateur] }
    identity_headers:
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: X-Remote-Roles, value: roles }
  - id: cdi
    url: $BASE/cdi
    upstream: http://$HOST:$ECHO_PORT
    providers: [staff]
    rules:
      - { path_prefix: /cdi, any_role: [utilisateur] }
    identity_headers:
      headers:
        - { name: X-Remote-User, value: subject }
        - { name: X-Remote-Roles, value: roles }
  - id: portail
    url: $BASE/portail
    upstream: http://$HOST:$ECHO_PORT
    providers: [sso]
    identity_headers:
      headers:
        - { name: X-Remote-User, value: subject }
EOF
}

start_redis() {
    start redis redis-server --port "$REDIS_PORT" --bind "$HOST" --save '' \
        --appendonly yes --appendfsync everysec --dir "$DIR/redis-data"
    wait_port "$REDIS_PORT"
    for _ in $(seq 1 100); do
        [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && return 0
        sleep 0.1
    done
    log "redis did not answer PING"
    return 1
}

start_scim() { start scim python3 "$KIT" scim --port "$SCIM_PORT" --people "$WORK/people.json"; wait_port "$SCIM_PORT"; }
start_bip() { start bip python3 "$KIT" upstream --port "$BIP_PORT" --name bip --mode "${1:-ok}"; wait_port "$BIP_PORT"; }

# A fresh stack for one scenario, in $DIR.
start_stack() {
    mkdir -p "$DIR/redis-data"
    : >"$DIR/events"
    start_redis
    start_scim
    start_bip
    start echo "$GUICHET_BIN" echo --listen "$HOST:$ECHO_PORT"
    wait_port "$ECHO_PORT"
    start op python3 "$KIT" oidc --port "$OP_PORT"
    wait_port "$OP_PORT"
    write_config "$DIR/guichet.yaml"
    "$GUICHET_BIN" check --config "$DIR/guichet.yaml" >/dev/null
    start guichet "$GUICHET_BIN" run --config "$DIR/guichet.yaml"
    for _ in $(seq 1 300); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$HOST:$ADMIN_PORT/readyz") == 200 ]] && return 0
        sleep 0.1
    done
    log "guichet did not become ready"
    tail -n 20 "$DIR/guichet.log" >&2
    return 1
}

# Signs in each user (local form) and writes "user cookie" lines.
sign_in() { # file users...
    local file=$1 user cookie
    shift
    : >"$file"
    for user in "$@"; do
        cookie=$(python3 "$KIT" login --base "$BASE" --start /bip/ --user "$user" --password alice)
        printf '%s %s\n' "$user" "$cookie" >>"$file"
    done
}

cookie_of() { awk -v u="$1" '$1 == u { print $2 }' "$2"; }

PGID=$(ps -o pgid= $$ | tr -d ' ')

# wrk on cdi for PHASE seconds, with alice's session: one table line, with the CPU that
# processes outside this script used meanwhile (% of one core: other engineers' builds...).
wrk_phase() { # label cookie
    local out=$DIR/wrk-$1.txt busy0 ours0 hz busy1 ours1 t0 t1 other
    read -r busy0 ours0 hz < <(python3 "$KIT" cpu --pgid "$PGID")
    t0=$(now)
    wrk -t1 -c8 -d"${PHASE}s" --timeout "${TIMEOUT}s" --latency -s "$WRK_SCRIPT" \
        -H "Cookie: guichet_session=$2" -H 'Accept: application/json' "$BASE/cdi/?echo=fixed" >"$out" 2>&1 || true
    local rps p50 p99 max statuses timeouts
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    read -r p50 p99 max < <(sed -n 's/^LATENCY p50=\([^ ]*\) p99=\([^ ]*\) max=\([^ ]*\)$/\1 \2 \3/p' "$out")
    statuses=$(sed -n 's/^STATUS //p' "$out")
    timeouts=$(sed -n 's/^TOTAL .*timeouts=\([0-9]*\).*/\1/p' "$out")
    read -r busy1 ours1 _ < <(python3 "$KIT" cpu --pgid "$PGID")
    t1=$(now)
    other=$(python3 -c 'import sys; b0,o0,b1,o1,hz,t0,t1=map(float,sys.argv[1:]); print(f"{max(0,(b1-b0)-(o1-o0))/hz/(t1-t0)*100:.0f}")' \
        "$busy0" "$ours0" "$busy1" "$ours1" "$hz" "$t0" "$t1")
    printf '%-22s %9s %9s %9s %9s %9s %8s  %s\n' "$1" "${rps:-?}" "${p50:-?}" "${p99:-?}" "${max:-?}" "${timeouts:-?}" "$other" "${statuses:-?}" >>"$DIR/wrk-table"
}

wrk_header() {
    printf '%-22s %9s %9s %9s %9s %9s %8s  %s\n' phase 'req/s' 'p50 ms' 'p99 ms' 'max ms' timeouts 'other %' statuses >"$DIR/wrk-table"
}

panics() { grep -c panicked "$DIR/guichet.log" || true; }

totals() { grep '^TOTALS ' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1; }

# One verdict line: scenario, hung, wrong identity, bad pages, retried, panics, notes.
verdict() { # scenario summary-files... -- note
    local scenario=$1 hung=0 wrong=0 bad=0 retried=0 file note
    shift
    while [[ $# -gt 0 && $1 != -- ]]; do
        file=$1
        hung=$((hung + $(totals timeout "$file")))
        wrong=$((wrong + $(totals wrong "$file")))
        bad=$((bad + $(totals bad_page "$file")))
        retried=$((retried + $(totals retried "$file")))
        shift
    done
    shift || true
    note="$*"
    VERDICTS+=("$(printf '%-10s %7s %9s %9s %8s %7s  %s' "$scenario" "$hung" "$wrong" "$bad" "$retried" "$(panics)" "$note")")
}

# ---------------------------------------------------------------------------------------------

scenario_redis() {
    log "redis: SIGKILL under load, restart after ${OUTAGE}s"
    start_stack
    # shellcheck disable=SC2086 # a word list
    sign_in "$DIR/cookies" $KNOWN
    # appendfsync everysec: what was written more than a second ago is on disk.
    sleep 2
    local total=$((PHASE + OUTAGE + PHASE + 2))
    start load python3 "$KIT" load --url "$BASE/bip/" --url "$BASE/cdi/" --cookies "$DIR/cookies" \
        --threads 4 --pause-ms 2 --timeout "$TIMEOUT" --duration "$total" --out "$DIR/load.csv"
    start logins python3 "$KIT" logins --base "$BASE" --start /bip/ --check /bip/ \
        --users "$(tr ' ' ',' <<<"${NEWCOMERS% }")" --password alice --threads 1 --pause-ms 100 \
        --timeout "$TIMEOUT" --duration "$total" --out "$DIR/logins.csv"
    mark baseline
    sleep "$PHASE"
    redis-cli -p "$REDIS_PORT" --scan --pattern 'guichet:s:*' | sort >"$DIR/sessions-before"
    mark redis-killed
    kill -KILL "${PIDS[redis]}"
    wait "${PIDS[redis]}" 2>/dev/null || true
    unset "PIDS[redis]"
    local killed_at
    killed_at=$(now)
    # The pages a user sees meanwhile (after the in-process session cache's second).
    sleep 2
    {
        python3 "$KIT" page --url "$BASE/bip/" --cookie "$(cookie_of alice "$DIR/cookies")" --status 503 \
            --label "signed-in user, Redis down" --fr "service de sessions" --en "session service" || true
        python3 "$KIT" page --url "$BASE/bip/" --status 503 --label "new login, Redis down" \
            --fr "service de sessions" --en "session service" || true
    } >>"$DIR/pages"
    local ready_down
    ready_down=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$HOST:$ADMIN_PORT/readyz" || true)
    sleep $((OUTAGE - 2))
    start_redis
    mark redis-restarted
    local restarted_at ready_at=""
    restarted_at=$(now)
    redis-cli -p "$REDIS_PORT" --scan --pattern 'guichet:s:*' | sort >"$DIR/sessions-after"
    for _ in $(seq 1 300); do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$HOST:$ADMIN_PORT/readyz") == 200 ]]; then
            ready_at=$(now)
            break
        fi
        sleep 0.05
    done
    wait "${PIDS[load]}" "${PIDS[logins]}" || true
    unset "PIDS[load]" "PIDS[logins]"

    # Sessions opened before the kill: each cookie must still work, for its own user.
    local user cookie answer survived=0 known=0
    while read -r user cookie; do
        known=$((known + 1))
        answer=$(curl -s --max-time "$TIMEOUT" -H "Cookie: guichet_session=$cookie" -H 'Accept: application/json' "$BASE/cdi/")
        if python3 -c 'import json,sys; h=dict(json.loads(sys.argv[1])["headers"]); sys.exit(h.get("x-remote-user") != sys.argv[2])' "$answer" "$user" 2>/dev/null; then
            survived=$((survived + 1))
        fi
    done <"$DIR/cookies"
    local lost
    lost=$(comm -23 "$DIR/sessions-before" "$DIR/sessions-after" | wc -l)

    {
        echo "== redis: killed (SIGKILL) at t=0 for ${OUTAGE}s, appendonly yes, appendfsync everysec"
        python3 "$KIT" summary --records "$DIR/load.csv" --events "$DIR/events" --recovery redis-restarted \
            --title "4 signed-in users, requests to bip and cdi every 2 ms (statuses of the requests)" | tee "$DIR/summary-load"
        echo
        python3 "$KIT" summary --records "$DIR/logins.csv" --events "$DIR/events" --ok 302 --recovery redis-restarted \
            --title "new logins, one after the other (status that ended each login: 302 = signed in)" | tee "$DIR/summary-logins"
        echo
        echo "error pages during the outage:"
        cat "$DIR/pages"
        if [[ -n $ready_at ]]; then
            echo "readyz during the outage: $ready_down; back to 200 $(elapsed "$restarted_at" "$ready_at") s after the restart"
        else
            echo "readyz during the outage: $ready_down; NOT back to 200 within 15 s of the restart"
        fi
        echo "sessions in Redis at the kill: $(wc -l <"$DIR/sessions-before"), after the restart: $(wc -l <"$DIR/sessions-after"), lost: $lost"
        echo "sessions opened >2 s before the kill still working, for their own user, after it: $survived / $known"
        echo "Redis down for $(elapsed "$killed_at" "$restarted_at") s (SIGKILL to port open again)"
        echo "gateway log: $(panics) panicked, $(grep -c 'session lookup failed\|session store failure' "$DIR/guichet.log" || true) store-failure error lines"
    } | tee "$DIR/report"
    verdict redis "$DIR/summary-load" "$DIR/summary-logins" -- "sessions kept $survived/$known, lost in Redis $lost, $(sed -n 's/^recovery after redis-restarted: //p' "$DIR/summary-load" | head -n1)"
    stop_all
}

scenario_directory() {
    log "directory: slow (2 s) for ${PHASE}s, stopped for ${OUTAGE}s, back"
    start_stack
    # shellcheck disable=SC2086 # a word list
    sign_in "$DIR/cookies" $KNOWN
    local user cookie
    while read -r user cookie; do
        curl -s -o /dev/null --max-time "$TIMEOUT" -H "Cookie: guichet_session=$cookie" -H 'Accept: application/json' "$BASE/bip/"
    done <"$DIR/cookies"
    local total=$((PHASE + PHASE + OUTAGE + PHASE + 2))
    start load python3 "$KIT" load --url "$BASE/bip/" --cookies "$DIR/cookies" \
        --threads 4 --pause-ms 5 --timeout "$TIMEOUT" --duration "$total" --out "$DIR/load.csv"
    start logins python3 "$KIT" logins --base "$BASE" --start /bip/ --check /bip/ \
        --users "$(tr ' ' ',' <<<"${NEWCOMERS% }")" --password alice --threads 1 --pause-ms 200 \
        --timeout "$TIMEOUT" --duration "$total" --out "$DIR/logins.csv"
    mark baseline
    sleep "$PHASE"
    curl -s -o /dev/null "http://$HOST:$SCIM_PORT/__fault?mode=slow:2"
    mark directory-slow
    sleep "$PHASE"
    mark directory-down
    stop scim TERM
    sleep 2
    # A newcomer's first request with the directory down: the 503 page.
    local late
    late=$(python3 "$KIT" login --base "$BASE" --start /bip/ --user new400 --password alice)
    python3 "$KIT" page --url "$BASE/bip/" --cookie "$late" --status 503 --label "newcomer, directory down" \
        --fr "annuaire ne répond pas" --en "directory is not responding" >>"$DIR/pages" || true
    python3 "$KIT" page --url "$BASE/bip/" --cookie "$(cookie_of alice "$DIR/cookies")" --status 200 \
        --label "known user, directory down" >>"$DIR/pages" 2>&1 || true
    sleep $((OUTAGE - 2))
    start_scim
    mark directory-back
    wait "${PIDS[load]}" "${PIDS[logins]}" || true
    unset "PIDS[load]" "PIDS[logins]"
    local lookups
    lookups=$(curl -s "http://$HOST:$SCIM_PORT/__fault/stats")
    {
        echo "== directory: SCIM slow (every answer 2 s, timeout 5 s), then stopped, then back; l1_ttl 2s, l2_ttl 4s, max_stale 1h"
        python3 "$KIT" summary --records "$DIR/load.csv" --events "$DIR/events" --recovery directory-back \
            --title "4 users whose entries were cached (requests to bip every 5 ms)" | tee "$DIR/summary-load"
        echo
        python3 "$KIT" summary --records "$DIR/logins.csv" --events "$DIR/events" --field check --recovery directory-back \
            --title "newcomers: login, then their first request (status of that request; 'other' = login failed)" | tee "$DIR/summary-logins"
        echo
        echo "pages (the 'known user' line expects 200: not an error page, its checks do not apply):"
        cat "$DIR/pages"
        echo "directory requests after it came back: $lookups"
        echo "gateway log: $(panics) panicked, $(grep -c 'serving the last answer' "$DIR/guichet.log" || true) stale answers logged, $(grep -c 'directory lookup failed' "$DIR/guichet.log" || true) 'directory lookup failed' lines"
    } | tee "$DIR/report"
    verdict directory "$DIR/summary-load" "$DIR/summary-logins" -- "$(sed -n 's/^recovery after directory-back: /newcomers: /p' "$DIR/summary-logins" | head -n1)"
    stop_all
}

scenario_upstream() {
    log "upstream: bip's upstream stopped, then hanging, then back; cdi measured with wrk"
    start_stack
    # shellcheck disable=SC2086 # a word list
    sign_in "$DIR/cookies" $KNOWN
    local alice total
    alice=$(cookie_of alice "$DIR/cookies")
    total=$((4 * (PHASE + 2) + 4))
    # 64 clients on bip, one request each 0.5 s: when bip hangs, 64 requests wait at once.
    start load python3 "$KIT" load --url "$BASE/bip/" --cookies "$DIR/cookies" \
        --threads 64 --pause-ms 500 --timeout "$TIMEOUT" --duration "$total" --out "$DIR/load.csv"
    # And cdi's answers checked for identity at a low rate, all along.
    start check python3 "$KIT" load --url "$BASE/cdi/" --cookies "$DIR/cookies" \
        --threads 2 --pause-ms 20 --timeout "$TIMEOUT" --duration "$total" --out "$DIR/check.csv"
    wrk_header
    mark baseline
    sleep 1
    wrk_phase baseline "$alice"
    mark upstream-down
    stop bip TERM
    python3 "$KIT" page --url "$BASE/bip/" --cookie "$alice" --status 502 --label "bip's upstream down" \
        --fr "application ne répond pas" --en "application is not responding" >>"$DIR/pages" || true
    sleep 1
    wrk_phase upstream-down "$alice"
    start_bip hang
    mark upstream-hang
    python3 "$KIT" page --url "$BASE/bip/" --cookie "$alice" --status 504 --label "bip's upstream hangs (2 s timeout)" \
        --fr "application ne répond pas" --en "application is not responding" >>"$DIR/pages" || true
    wrk_phase upstream-hang "$alice"
    curl -s -o /dev/null "http://$HOST:$BIP_PORT/__fault?mode=ok"
    mark upstream-back
    sleep 1
    wrk_phase upstream-back "$alice"
    wait "${PIDS[load]}" "${PIDS[check]}" || true
    unset "PIDS[load]" "PIDS[check]"
    {
        echo "== upstream: bip's upstream stopped (connection refused), then hanging (read timeout 2 s), then back"
        python3 "$KIT" summary --records "$DIR/load.csv" --events "$DIR/events" --recovery upstream-back \
            --title "bip: 64 clients, each a request every 0.5 s" | tee "$DIR/summary-load"
        echo
        python3 "$KIT" summary --records "$DIR/check.csv" --events "$DIR/events" \
            --title "cdi (healthy upstream): identity checks, 2 clients every 20 ms" | tee "$DIR/summary-check"
        echo
        echo "cdi under wrk -t1 -c8 (alice's session), one run of ${PHASE}s per phase:"
        cat "$DIR/wrk-table"
        echo
        echo "error pages:"
        cat "$DIR/pages"
        echo "gateway log: $(panics) panicked, $(grep -c 'Fail to proxy' "$DIR/guichet.log" || true) 'Fail to proxy' error lines, $(grep -c 'status=502' "$DIR/guichet.log" || true) access lines with status=502, $(grep -c 'status=504' "$DIR/guichet.log" || true) with status=504"
    } | tee "$DIR/report"
    verdict upstream "$DIR/summary-load" "$DIR/summary-check" -- "$(sed -n 's/^recovery after upstream-back: /bip: /p' "$DIR/summary-load" | head -n1); status of the hang page: $(sed -n "s/^bip's upstream hangs (2 s timeout) *\([0-9]*\) .*/\1/p" "$DIR/pages")"
    stop_all
}

scenario_provider() {
    log "provider: OpenID logins while the token endpoint takes 2 s, then hangs; cdi measured with wrk"
    start_stack
    sign_in "$DIR/cookies" alice
    local alice total
    alice=$(cookie_of alice "$DIR/cookies")
    total=$((4 * (PHASE + 2) + 4))
    start logins python3 "$KIT" logins --base "$BASE" --start /portail/ --check /portail/ \
        --users "$(printf 'sso%03d,' $(seq 1 200) | sed 's/,$//')" --oidc "$OP" --threads 4 --pause-ms 100 \
        --timeout "$TIMEOUT" --duration "$total" --out "$DIR/logins.csv"
    start check python3 "$KIT" load --url "$BASE/cdi/" --cookies "$DIR/cookies" \
        --threads 2 --pause-ms 20 --timeout "$TIMEOUT" --duration "$total" --out "$DIR/check.csv"
    wrk_header
    mark baseline
    sleep 1
    wrk_phase baseline "$alice"
    curl -s -o /dev/null "$OP/__fault?mode=slow:2"
    mark provider-slow
    sleep 1
    wrk_phase provider-slow "$alice"
    curl -s -o /dev/null "$OP/__fault?mode=hang"
    mark provider-hangs
    sleep 1
    wrk_phase provider-hangs "$alice"
    curl -s -o /dev/null "$OP/__fault?mode=ok"
    mark provider-back
    sleep 1
    wrk_phase provider-back "$alice"
    wait "${PIDS[logins]}" "${PIDS[check]}" || true
    unset "PIDS[logins]" "PIDS[check]"
    {
        echo "== provider: the OpenID provider's token endpoint answers in 2 s, then hangs (the provider's timeout: 5 s), then is back"
        python3 "$KIT" summary --records "$DIR/logins.csv" --events "$DIR/events" --ok 302 --recovery provider-back \
            --title "OpenID logins by 4 clients (status that ended each login: 302 = signed in)" | tee "$DIR/summary-logins"
        echo
        python3 "$KIT" summary --records "$DIR/check.csv" --events "$DIR/events" \
            --title "cdi (local sessions): identity checks, 2 clients every 20 ms" | tee "$DIR/summary-check"
        echo
        echo "cdi under wrk -t1 -c8 (alice's session), one run of ${PHASE}s per phase:"
        cat "$DIR/wrk-table"
        echo "gateway log: $(panics) panicked, $(grep -c 'event="login_failure"' "$DIR/guichet.log" || true) login_failure audit events ($(grep 'event="login_failure"' "$DIR/guichet.log" | sed -n 's/.*reason="\([^"]*\)".*/\1/p' | sort | uniq -c | sort -rn | head -n 3 | tr -s ' ' | tr '\n' ';'))"
    } | tee "$DIR/report"
    verdict provider "$DIR/summary-logins" "$DIR/summary-check" -- "$(sed -n 's/^recovery after provider-back: /logins: /p' "$DIR/summary-logins" | head -n1)"
    stop_all
}

log "work directory: $WORK"
echo "Guichet fault injection, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, binary $GUICHET_BIN"
for scenario in $SCENARIOS; do
    DIR=$WORK/$scenario
    mkdir -p "$DIR"
    echo
    "scenario_$scenario"
done

echo
echo "== verdicts"
echo "hung: requests without an answer within ${TIMEOUT}s; wrong-id: 200s showing another user's identity;"
echo "bad-page: 5xx without French, English and the correlation id (JSON: without the id);"
echo "retried: requests sent again because the gateway closed a connection it had announced as kept alive"
printf '%-10s %7s %9s %9s %8s %7s  %s\n' scenario hung wrong-id bad-page retried panics notes
printf '%s\n' "${VERDICTS[@]}"
