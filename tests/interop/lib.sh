# Shared harness for the interop scripts (sourced, not run: the runner
# only runs executable *.sh files).
#
# Provides: $tmp (removed at exit), pids (killed and reaped at exit by
# PID), the pass/fail/skip counters with ok/fail/skip, have, check,
# wait_socket and start_server/stop_server.

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
skipped=0

ok() {
    echo "ok: $1"
    passed=$((passed + 1))
}

fail() {
    echo "FAIL: $1"
    [ -n "$2" ] && sed 's/^/    /' <<<"$2"
    failed=$((failed + 1))
}

skip() {
    echo "skip: $1"
    skipped=$((skipped + 1))
}

have() {
    command -v "$1" >/dev/null
}

# check NAME COMMAND...: passes if the command exits 0 within 60 s.
check() {
    local name=$1 out
    shift
    if out=$(timeout 60 "$@" 2>&1); then
        ok "$name"
    else
        fail "$name" "$out"
    fi
}

# wait_socket PATH: up to 10 s for a unix socket to appear.
wait_socket() {
    for _ in $(seq 100); do
        [ -S "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# start_server SOCKET CMD...: runs a server in the background and waits
# for its socket; the server's output goes to $tmp/server.log.
server_pid=
start_server() {
    local sock=$1
    shift
    rm -f "$sock"
    "$@" >"$tmp/server.log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    if ! wait_socket "$sock"; then
        echo "server did not start: $*" >&2
        cat "$tmp/server.log" >&2
        return 1
    fi
}

stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
        server_pid=
    fi
}
