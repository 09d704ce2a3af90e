#!/usr/bin/env bash
# tests/test_mini_redis.sh MINI_REDIS — examples/mini_redis driven by clients
# nobody here wrote: redis-cli for every command (replies, errors, expiry),
# raw sockets for pipelining and for malformed input (each bad case must get
# an error reply or a close, and the server must still answer PING after
# it), a connection limit, an idle timeout, and a graceful SIGTERM.
#
# Exit status: 0 all passed, 1 a check failed, 77 skipped (no redis-cli).
# Servers are started on free ports and stopped by their pids.
set -u -o pipefail
export LC_ALL=C

if ! command -v redis-cli >/dev/null 2>&1; then
    echo "SKIP: redis-cli not found (install redis-tools to run this test)"
    exit 77
fi
BIN=${1:?usage: test_mini_redis.sh path/to/mini_redis}
[[ -x $BIN ]] || { echo "not executable: $BIN"; exit 1; }

TMP=$(mktemp -d /tmp/test_mini_redis.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT

pass=0
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
ok() { pass=$((pass + 1)); }

# start_server NAME ARGS... : sets PORT and PID (the server picks a free port).
start_server() {
    local name=$1 i
    shift
    "$BIN" --port 0 "$@" 2>"$TMP/$name.log" &
    PID=$!
    PIDS+=("$PID")
    for ((i = 0; i < 100; i++)); do
        PORT=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\),.*/\1/p' "$TMP/$name.log" | head -1)
        [[ -n $PORT ]] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "FAIL: $name did not start: $(cat "$TMP/$name.log")"
    exit 1
}

cli() { timeout 5 redis-cli -h 127.0.0.1 -p "$PORT" --no-raw "$@" 2>&1; }
expect() { # want, command...
    local want=$1 got
    shift
    got=$(cli "$@")
    if [[ $got == "$want" ]]; then ok; else fail "$* -> '$got' (want '$want')"; fi
}
expect_match() { # regex, command...
    local re=$1 got
    shift
    got=$(cli "$@")
    if [[ $got =~ $re ]]; then ok; else fail "$* -> '$got' (want /$re/)"; fi
}
alive() { # the server answers PING (after whatever came before)
    local got
    got=$(cli PING)
    if [[ $got == PONG ]] && kill -0 "$PID" 2>/dev/null; then ok; else fail "server no longer answers PING after $1 (got '$got')"; fi
}

# raw REQUEST-FILE: send the file's bytes, print what comes back until the
# server closes (status 0) or 3 s pass (status 124).
raw() {
    local fd rc
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || return 2
    cat "$1" >&"$fd" 2>/dev/null
    timeout 3 cat <&"$fd"
    rc=$?
    exec {fd}>&-
    return $rc
}
# bad CASE-NAME REQUEST-FILE: the reply must be a RESP error and the
# connection closed; then the server must still answer PING.
bad() {
    local name=$1 out rc
    out=$(raw "$2" | head -c 200)
    rc=${PIPESTATUS[0]}
    if [[ $out == "-ERR Protocol error"* ]]; then ok; else fail "$name: reply '${out:0:80}' (want -ERR Protocol error...)"; fi
    if ((rc == 0)); then ok; else fail "$name: connection not closed (rc $rc)"; fi
    alive "$name"
}

# ------------------------------------------------------------------ commands
start_server main --workers 2
echo "mini_redis on port $PORT (pid $PID)"

expect PONG PING
expect '"hello"' PING hello
expect '"hello world"' ECHO "hello world"
expect OK SET k v1
expect '"v1"' GET k
expect OK set k v2
expect '"v2"' get k
expect '(nil)' GET missing
expect '(nil)' SET k v3 NX
expect '"v2"' GET k
expect '(nil)' SET fresh v XX
expect OK SET fresh v NX
expect '(integer) 2' EXISTS k fresh missing
expect '(integer) 2' DEL k fresh missing
expect '(integer) 0' EXISTS k fresh
expect '(integer) 1' INCR n
expect '(integer) 2' INCR n
expect '(integer) 42' INCRBY n 40
expect '(integer) 41' DECR n
expect '(integer) 40' DECRBY n 1
expect '"40"' GET n
expect OK SET n -7
expect '(integer) -6' INCR n
expect '(integer) 1' DBSIZE
# errors (the connection stays usable)
expect OK SET s abc
expect '(error) ERR value is not an integer or out of range' INCR s
expect OK SET big 9223372036854775807
expect '(error) ERR increment or decrement would overflow' INCR big
expect '(error) ERR value is not an integer or out of range' INCRBY n x
expect "(error) ERR wrong number of arguments for 'get' command" GET
expect "(error) ERR wrong number of arguments for 'set' command" SET k
expect "(error) ERR wrong number of arguments for 'echo' command" ECHO
expect "(error) ERR wrong number of arguments for 'del' command" DEL
expect "(error) ERR wrong number of arguments for 'exists' command" EXISTS
expect "(error) ERR wrong number of arguments for 'incr' command" INCR a b
expect "(error) ERR wrong number of arguments for 'ping' command" PING a b
expect "(error) ERR unknown command 'FLUBBER'" FLUBBER x
expect "(error) ERR invalid expire time in 'set' command" SET k v EX 0
expect "(error) ERR invalid expire time in 'set' command" SET k v PX -5
expect '(error) ERR value is not an integer or out of range' SET k v EX ten
expect '(error) ERR syntax error' SET k v BOGUS
expect '(error) ERR syntax error' SET k v NX XX
# expiry
expect OK SET e v PX 1500
expect '"v"' GET e
expect_match '^\(integer\) ([1-9][0-9]{0,2}|1[0-4][0-9][0-9]|1500)$' PTTL e
sleep 1.7
expect '(nil)' GET e
expect '(integer) 0' EXISTS e
expect '(integer) -2' TTL e
expect OK SET t v EX 100
expect_match '^\(integer\) (99|100)$' TTL t
expect '(integer) 1' EXPIRE t 5
expect_match '^\(integer\) [45]$' TTL t
expect '(integer) 0' EXPIRE nokey 5
expect OK SET forever v
expect '(integer) -1' TTL forever
expect OK SET gone v EX 100
expect '(integer) 1' EXPIRE gone 0
expect '(nil)' GET gone
# the active expiry drops keys nobody reads again
for i in $(seq 1 50); do cli SET "tmp:$i" v PX 50 >/dev/null; done
sleep 1.2
got=$(cli DBSIZE)
if [[ $got =~ ^\(integer\)\ ([0-9]+)$ ]] && ((BASH_REMATCH[1] < 50)); then ok; else fail "active expiry: DBSIZE '$got' after 50 keys expired"; fi
# binary-safe values, and a large one
printf 'a\000b\377\r\nc' >"$TMP/bin"
redis-cli -h 127.0.0.1 -p "$PORT" -x SET bin <"$TMP/bin" >/dev/null
redis-cli -h 127.0.0.1 -p "$PORT" --raw GET bin | head -c "$(stat -c %s "$TMP/bin")" >"$TMP/bin.out"
if cmp -s "$TMP/bin" "$TMP/bin.out"; then ok; else fail "binary value did not round-trip"; fi
head -c 3000000 /dev/urandom | base64 -w0 >"$TMP/large"
expect OK -x SET large <"$TMP/large"
redis-cli -h 127.0.0.1 -p "$PORT" --raw GET large | head -c "$(stat -c %s "$TMP/large")" >"$TMP/large.out"
if cmp -s "$TMP/large" "$TMP/large.out"; then ok; else fail "large value did not round-trip"; fi

# ---------------------------------------------------------------- pipelining
C=$'\r\n'
req="PING$C*3$C\$3${C}SET$C\$2${C}pk$C\$3${C}abc$C"
want="+PONG$C+OK$C"
for i in $(seq 1 100); do
    req+="*2$C\$4${C}INCR$C\$2${C}pn$C"
    want+=":$i$C"
done
req+="GET pk${C}ECHO pipe${C}DEL pk pn${C}QUIT$C"
want+="\$3${C}abc$C\$4${C}pipe$C:2$C+OK$C"
printf '%s' "$req" >"$TMP/pipe"
got=$(raw "$TMP/pipe" | od -An -v -tx1 | tr -d ' \n')
if [[ $got == "$(printf '%s' "$want" | od -An -v -tx1 | tr -d ' \n')" ]]; then ok; else fail "pipelined exchange (hex $got)"; fi
# a pipeline of 5000 commands written at once (this client reads only
# after writing it all, so the 25 kB of replies must fit in the buffers)
for i in $(seq 1 5000); do printf 'SET key%d value%d\r\n' "$((i % 100))" "$i"; done >"$TMP/many"
printf 'QUIT\r\n' >>"$TMP/many"
n=$(raw "$TMP/many" | grep -c '^+OK')
if [[ $n == 5001 ]]; then ok; else fail "5000 pipelined SETs: $n replies"; fi

# ----------------------------------------------------------- malformed input
printf '*1\r\n$1073741824\r\n' >"$TMP/b1"
bad "1 GiB bulk length" "$TMP/b1"
printf '*1\r\n$1073741824\r\nabcdef' >"$TMP/b1b"
bad "1 GiB bulk length with data" "$TMP/b1b"
printf '*99999999999\r\n' >"$TMP/b2"
bad "huge multibulk length" "$TMP/b2"
printf '*2\r\n$3\r\nGET\r\n$abc\r\n' >"$TMP/b3"
bad "bad bulk length" "$TMP/b3"
printf '*1\r\n$-3\r\n' >"$TMP/b4"
bad "negative bulk length" "$TMP/b4"
printf '*2\r\n$3\r\nGET\r\n:1\r\n' >"$TMP/b5"
bad "not a bulk string" "$TMP/b5"
printf '*1\r\n$4\r\nPINGxx' >"$TMP/b6"
bad "bad bulk terminator" "$TMP/b6"
printf '*1x\r\n' >"$TMP/b7"
bad "junk in the multibulk length" "$TMP/b7"
head -c 100000 /dev/zero | tr '\0' 'x' >"$TMP/b8"
bad "100 kB inline line" "$TMP/b8"
printf '*12345678901234567890123456789012345678901234567890' >"$TMP/b9"
bad "endless multibulk header" "$TMP/b9"
# binary garbage: whatever the reply, the server lives and serves others
head -c 200000 /dev/urandom >"$TMP/garbage"
raw "$TMP/garbage" >/dev/null 2>&1
alive "binary garbage"
# a client that sends half a command and stalls; and 50 of them
exec {stall}<>"/dev/tcp/127.0.0.1/$PORT"
printf '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc' >&"$stall"
alive "a stalled half command"
expect OK SET after-stall ok
stalls=()
for i in $(seq 1 50); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf '*2\r\n$3\r\nGET\r\n$10\r\n' >&"$fd"
    stalls+=("$fd")
done
alive "50 stalled clients"
for fd in "${stalls[@]}"; do exec {fd}>&-; done
exec {stall}>&-
# a client that sends a huge declared value (within the limit) and leaves
printf '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10000000\r\nabc' >"$TMP/leave"
(exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" && cat "$TMP/leave" >&"$fd" && exec {fd}>&-)
alive "a client that left mid-value"
# the most that one argument may be (--max-bulk, 16 MiB by default)
printf '*2\r\n$4\r\nECHO\r\n$16777217\r\n' >"$TMP/b10"
bad "bulk over --max-bulk" "$TMP/b10"

# --------------------------------------------------------- graceful shutdown
exec {idle}<>"/dev/tcp/127.0.0.1/$PORT" # an idle client must not hold the server up
kill -TERM "$PID"
start=$SECONDS
wait "$PID"
rc=$?
if ((rc == 0)); then ok; else fail "exit status $rc after SIGTERM; log: $(tail -5 "$TMP/main.log")"; fi
if ((SECONDS - start <= 5)); then ok; else fail "shutdown took $((SECONDS - start)) s"; fi
if grep -q "SIGTERM, shutting down" "$TMP/main.log"; then ok; else fail "no shutdown message: $(cat "$TMP/main.log")"; fi
exec {idle}>&-

# ------------------------------------------------------ connection limit, idle
start_server limit --workers 1 --maxclients 2 --timeout 1
exec {c1}<>"/dev/tcp/127.0.0.1/$PORT"
exec {c2}<>"/dev/tcp/127.0.0.1/$PORT"
printf 'PING\r\n' >&"$c1"
printf 'PING\r\n' >&"$c2"
r1=$(timeout 2 head -c 7 <&"$c1")
r2=$(timeout 2 head -c 7 <&"$c2")
if [[ $r1 == $'+PONG\r' && $r2 == $'+PONG\r' ]]; then ok; else fail "two clients under --maxclients 2: '$r1' '$r2'"; fi
printf 'PING\r\n' >"$TMP/ping"
out=$(raw "$TMP/ping")
if [[ $out == "-ERR max number of clients reached"* ]]; then ok; else fail "third client: '$out'"; fi
sleep 1.6 # --timeout 1: the two idle clients are closed
if [[ -z $(timeout 2 cat <&"$c1") ]]; then ok; else fail "idle client not closed"; fi
exec {c1}>&-
exec {c2}>&-
sleep 0.1
got=$(cli PING)
if [[ $got == PONG ]]; then ok; else fail "a slot did not come back after the idle close: '$got'"; fi
kill -INT "$PID"
wait "$PID"
rc=$?
if ((rc == 0)); then ok; else fail "exit status $rc after SIGINT"; fi

echo "$pass checks passed, $fails failed"
((fails == 0))
