#!/usr/bin/env bash
# bench/mini_redis.sh [BUILD-DIR | path/to/mini_redis] — workload M1 (DESIGN.md §7):
# examples/mini_redis and redis-server under
#
#   redis-benchmark -h 127.0.0.1 -p PORT -t ping,set,get -c 50 -n 200000 -P {1,16} -q --threads 1
#
# in the same run, one after the other (per round: mini_redis at P1 and
# P16, then redis-server at P1 and P16), ROUNDS rounds, the median of the
# rounds reported. One line per figure on stdout, nothing else:
#
#   peer=crt workload=M1 metric=set_P16 value=1412345.6 unit=rps
#   peer=redis workload=M1 metric=set_P16 value=1398000.0 unit=rps
#
# metric is <test>_P<pipeline> with test one of ping_inline, ping_mbulk
# (redis-benchmark's two PING tests), set, get. Context (versions, load,
# the raw figures of every round) goes to stderr, lines starting with '#'.
#
# Environment:
#   MINI_REDIS   the binary (default: $1 — a build directory, as bench/run
#                passes it, or the binary itself — else build-release/)
#   WORKERS=1    mini_redis --workers (1: see the note in examples/mini_redis.c)
#   ROUNDS=3  N=200000  N_P16=$N  CLIENTS=50  PIPELINES="1 16"  TESTS=ping,set,get
#
# Both servers listen on 127.0.0.1, on ports found free; redis-server runs
# with --save "" --appendonly no. Only the servers this script started are
# stopped, by their pids (also on error or Ctrl-C).
# Exit status: 0 all figures measured; 1 a server or a benchmark failed.
set -u -o pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARG=${1:-$ROOT/build-release}
[[ -d $ARG ]] && ARG=$ARG/examples/mini_redis
BIN=${MINI_REDIS:-$ARG}
WORKERS=${WORKERS:-1}
ROUNDS=${ROUNDS:-3}
N=${N:-200000}
N_P16=${N_P16:-$N}
CLIENTS=${CLIENTS:-50}
PIPELINES=${PIPELINES:-"1 16"}
TESTS=${TESTS:-ping,set,get}

log() { echo "# $*" >&2; }
die() { echo "mini_redis.sh: $*" >&2; exit 1; }

[[ -x $BIN ]] || die "no mini_redis at $BIN (bench/run builds it in build-release/), or pass its path"
for t in redis-server redis-benchmark redis-cli; do command -v "$t" >/dev/null || die "$t not found (install redis-server and redis-tools)"; done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"

TMP=$(mktemp -d /tmp/mini_redis_bench.XXXXXX)
declare -A PID=()
stop_all() {
    local name p i
    for name in "${!PID[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null; done
    for name in "${!PID[@]}"; do
        p=${PID[$name]}
        for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    PID=()
    rm -rf "$TMP"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port for redis-server: below the kernel's ephemeral range (a port there
# may be the local end of some connection even if nobody listens on it),
# not listened on; the start is retried if it was taken meanwhile.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local lo p
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
    ((lo > 12000)) || lo=32768
    for ((p = 10000 + RANDOM % (lo - 11000); p < lo; p += 7)); do
        port_busy "$p" || { echo "$p"; return 0; }
    done
    return 1
}

wait_ping() { # name port: 0 answered, 1 the server exited
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "${PID[$1]}" 2>/dev/null || return 1
        [[ $(timeout 2 redis-cli -h 127.0.0.1 -p "$2" PING 2>/dev/null) == PONG ]] && return 0
        sleep 0.1
    done
    die "$1 does not answer PING on port $2"
}

declare -A PORT=()
"$BIN" --port 0 --workers "$WORKERS" 2>"$TMP/crt.log" &
PID[crt]=$!
for ((i = 0; i < 100; i++)); do
    PORT[crt]=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\),.*/\1/p' "$TMP/crt.log" | head -1)
    [[ -n ${PORT[crt]} ]] && break
    sleep 0.05
done
[[ -n ${PORT[crt]} ]] && wait_ping crt "${PORT[crt]}" || die "mini_redis did not start: $(tail -3 "$TMP/crt.log")"
for ((try = 0; try < 5; try++)); do
    PORT[redis]=$(free_port) || die "no free port"
    redis-server --port "${PORT[redis]}" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
        --dir "$TMP" >"$TMP/redis.log" 2>&1 &
    PID[redis]=$!
    wait_ping redis "${PORT[redis]}" && break
    wait "${PID[redis]}" 2>/dev/null
    unset 'PID[redis]'
done
[[ -n ${PID[redis]:-} ]] || die "redis-server did not start: $(tail -3 "$TMP/redis.log")"

log "M1 $(date -u +%Y-%m-%dT%H:%M:%SZ) nproc=$(nproc) loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
log "$(redis-server --version)"
log "crt: $BIN --workers $WORKERS (port ${PORT[crt]}); redis: port ${PORT[redis]}"
log "redis-benchmark -t $TESTS -c $CLIENTS -n $N (P16: $N_P16) -P {$PIPELINES} -q --threads 1, $ROUNDS rounds, median"

failed=0
for ((round = 1; round <= ROUNDS; round++)); do
    for peer in crt redis; do
        for P in $PIPELINES; do
            n=$N
            [[ $P == 16 ]] && n=$N_P16
            out="$TMP/$peer-P$P-r$round.txt"
            if ! timeout 600 redis-benchmark -h 127.0.0.1 -p "${PORT[$peer]}" -t "$TESTS" -c "$CLIENTS" -n "$n" \
                -P "$P" -q --threads 1 >"$out" 2>&1; then
                log "ERROR: $peer P$P round $round: redis-benchmark failed: $(tr '\r' '\n' <"$out" | tail -2)"
                failed=1
            fi
            tr '\r' '\n' <"$out" | awk -v peer="$peer" -v P="$P" '
                /^[A-Za-z_-]+: [0-9.]+ requests per second/ {
                    m = tolower(substr($1, 1, length($1) - 1)); gsub("-", "_", m)
                    print peer, m "_P" P, $2
                }' >>"$TMP/results"
            log "round $round $peer P$P: $(tr '\r' '\n' <"$out" | grep 'per second' | awk '{printf "%s %s  ", $1, $2}')"
            kill -0 "${PID[$peer]}" 2>/dev/null || { log "ERROR: $peer died"; failed=1; break 3; }
        done
    done
done

# Medians, in a stable order: crt first, then redis; P1 before P16.
[[ -s $TMP/results ]] || die "no results"
for peer in crt redis; do
    for P in $PIPELINES; do
        for t in ping_inline ping_mbulk set get; do
            vals=$(awk -v peer="$peer" -v m="${t}_P$P" '$1 == peer && $2 == m { print $3 }' "$TMP/results" | sort -g)
            [[ -z $vals ]] && continue
            k=$(wc -l <<<"$vals")
            if ((k != ROUNDS)); then
                log "ERROR: $peer ${t}_P$P: $k of $ROUNDS rounds"
                failed=1
            fi
            med=$(awk -v k="$k" 'NR == int((k + 1) / 2) { v = $1 } NR == int(k / 2) + 1 { w = $1 } END { printf "%.1f", (k % 2) ? v : (v + w) / 2 }' <<<"$vals")
            echo "peer=$peer workload=M1 metric=${t}_P$P value=$med unit=rps"
        done
    done
done
exit $failed
