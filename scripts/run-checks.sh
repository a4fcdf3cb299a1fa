#!/bin/bash
# Runs every test layer of "make check" and prints one closing line
# "N passed, N failed, N skipped" summing them all.
#
#   1. unit tests (meson test --suite unit) in the normal build
#   2. the same unit tests under ASan/UBSan
#   3. qemu-iotests for qcow2 and raw
#   4. interop tests against Debian's QEMU tools and libnbd
set -u
build=${1:-build}
asan_build=${2:-build-asan}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

passed=0
failed=0
skipped=0
failed_layers=()

# Adds the counts of a runner's closing line "N passed, N failed[, N skipped]".
add_summary() {
    local layer=$1 line=$2 p f s
    p=$(sed -n 's/.*\b\([0-9]\+\) passed.*/\1/p' <<<"$line")
    f=$(sed -n 's/.*\b\([0-9]\+\) failed.*/\1/p' <<<"$line")
    s=$(sed -n 's/.*\b\([0-9]\+\) skipped.*/\1/p' <<<"$line")
    if [ -z "$p" ] || [ -z "$f" ]; then
        echo "run-checks: $layer printed no summary line; counting it as failed"
        failed=$((failed + 1))
        failed_layers+=("$layer")
        return
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + ${s:-0}))
    [ "$f" -gt 0 ] && failed_layers+=("$layer")
}

# meson's own summary ("Ok: N", "Fail: N", ...) turned into our format.
run_meson_unit() {
    local layer=$1 dir=$2 out ok fail skip
    echo "=== $layer ==="
    out=$(meson test -C "$dir" --suite unit --print-errorlogs 2>&1)
    echo "$out" | grep -E '^ *[0-9]+/[0-9]+ ' || true
    ok=$(sed -n 's/^Ok: *\([0-9]\+\).*/\1/p' <<<"$out")
    fail=$(sed -n 's/^Fail: *\([0-9]\+\).*/\1/p' <<<"$out")
    skip=$(sed -n 's/^Skipped: *\([0-9]\+\).*/\1/p' <<<"$out")
    timeout=$(sed -n 's/^Timeout: *\([0-9]\+\).*/\1/p' <<<"$out")
    if [ -z "$ok" ]; then
        echo "$out" | tail -40
        add_summary "$layer" ""
        return
    fi
    [ "${fail:-0}" -gt 0 ] || [ "${timeout:-0}" -gt 0 ] && echo "$out" | tail -80
    add_summary "$layer" "$ok passed, $(( ${fail:-0} + ${timeout:-0} )) failed, ${skip:-0} skipped"
}

run_layer() {
    local layer=$1; shift
    local out
    echo "=== $layer ==="
    out=$("$@" 2>&1)
    echo "$out"
    add_summary "$layer" "$(grep -E '[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -1)"
}

run_meson_unit "unit" "$build"

echo "=== building the ASan/UBSan variant ==="
if [ ! -f "$asan_build/build.ninja" ]; then
    ./configure --builddir="$asan_build" --enable-sanitizers >/dev/null
fi
if ninja -C "$asan_build" >/dev/null; then
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        run_meson_unit "unit-asan" "$asan_build"
else
    ninja -C "$asan_build" | tail -30
    add_summary "asan-build" ""
fi

export QBLOCK_BUILD_DIR="$top/$build"
if [ -x tests/qemu-iotests/check ]; then
    run_layer "iotests-qcow2" bash -c "cd tests/qemu-iotests && ./check -qcow2"
    run_layer "iotests-raw" bash -c "cd tests/qemu-iotests && ./check -raw"
fi
if [ -x tests/interop/run ]; then
    run_layer "interop" tests/interop/run
fi

echo
if [ ${#failed_layers[@]} -gt 0 ]; then
    echo "failing layers: ${failed_layers[*]}"
fi
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
