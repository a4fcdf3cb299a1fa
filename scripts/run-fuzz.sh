#!/bin/bash
# make check-fuzz: builds the libFuzzer targets with clang and runs each one
# for a bounded time on its seed corpus.  Not part of "make check".
#
#   FUZZ_SECONDS=60 scripts/run-fuzz.sh
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
seconds=${FUZZ_SECONDS:-60}
build=${FUZZ_BUILD_DIR:-build-fuzz}

for p in clang libclang-rt-14-dev; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        if [ "$(id -u)" = 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$p"
        else
            echo "run-fuzz: needs $p (apt-get install $p)" >&2
            exit 1
        fi
    fi
done

if [ ! -f "$build/build.ninja" ]; then
    CC=clang ./configure --builddir="$build" --enable-fuzzing --enable-sanitizers
fi
ninja -C "$build"

passed=0
failed=0
for target in "$build"/tests/fuzz/fuzz-*; do
    [ -f "$target" ] && [ -x "$target" ] || continue
    name=$(basename "$target")
    corpus_seed=tests/fuzz/corpus/${name#fuzz-}
    work=tests/fuzz/corpus-run/${name#fuzz-}
    mkdir -p "$work"
    echo "=== $name: ${seconds}s ==="
    if "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
            "$work" "$corpus_seed"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
