#!/bin/bash
#
# Persistent dirty bitmaps against Debian's real QEMU tools:
#  - images whose bitmaps we wrote are listed by qemu-img info, pass
#    qemu-img check, and their bits (read through qemu-nbd -B and nbdinfo
#    --map=qemu:dirty-bitmap:NAME) are what our writes set;
#  - bitmaps made and changed by real qemu-img bitmap load in qblock, keep
#    their bits through our open/store, and qemu-img reads back what our
#    qblock-img bitmap did;
#  - qblock-img bitmap's errors, exit codes and info output match
#    qemu-img's.
#
# usage: bitmaps.sh [BUILD_DIR]   (default: $QBLOCK_BUILD or build)
# Ends with "N passed, N failed"; exits 1 if anything failed.

BUILD=$(realpath "${1:-${QBLOCK_BUILD:-build}}")
QBLOCK_IMG=$BUILD/qblock-img
QBLOCK_IO=$BUILD/qblock-io
QEMU_IMG=${QEMU_IMG:-qemu-img}
QEMU_IO=${QEMU_IO:-qemu-io}
QEMU_NBD=${QEMU_NBD:-qemu-nbd}

for t in "$QEMU_IMG" "$QEMU_IO" "$QEMU_NBD" nbdinfo; do
    if ! command -v "$t" >/dev/null; then
        echo "SKIP: $t not installed"
        echo "0 passed, 0 failed"
        exit 0
    fi
done
for t in "$QBLOCK_IMG" "$QBLOCK_IO"; do
    if [ ! -x "$t" ]; then
        echo "error: $t is not executable" >&2
        exit 1
    fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

pass=0
fail=0

ok() {
    echo "ok   $1"
    pass=$((pass + 1))
}

not_ok() {
    echo "FAIL $1"
    [ -n "$2" ] && echo "$2" | sed 's/^/     /'
    fail=$((fail + 1))
}

# check NAME EXPECTED ACTUAL
check() {
    if [ "$2" = "$3" ]; then
        ok "$1"
    else
        not_ok "$1" "$(diff <(echo "$2") <(echo "$3"))"
    fi
}

# Dirty ranges of bitmap $2 in image $1 as "offset length" lines, read by
# the real qemu-nbd + nbdinfo.
dirty_map() {
    nbdinfo --map="qemu:dirty-bitmap:$2" -- \
        [ "$QEMU_NBD" -r -f qcow2 -B "$2" "$1" ] 2>&1 |
        awk '$4 == "dirty" { print $1, $2 }'
}

# "name granularity flags" per bitmap, from real qemu-img info.
bitmap_list() {
    "$QEMU_IMG" info --output=json "$1" | python3 -c '
import json, sys
data = json.load(sys.stdin)["format-specific"]["data"]
for b in data.get("bitmaps", []):
    print(b["name"], b["granularity"], ",".join(b["flags"]))'
}

qemu_check_clean() {
    local out
    out=$("$QEMU_IMG" check "$1" 2>&1)
    if [ $? -eq 0 ] && echo "$out" | grep -q "No errors were found"; then
        ok "$2"
    else
        not_ok "$2" "$out"
    fi
}

# ---- 1. Bitmaps we create and fill ------------------------------------

"$QBLOCK_IMG" create -q -f qcow2 ours.qcow2 64M
"$QBLOCK_IMG" bitmap --add ours.qcow2 b0 &&
"$QBLOCK_IMG" bitmap --add -g 512 ours.qcow2 fine &&
"$QBLOCK_IMG" bitmap --add --disable ours.qcow2 off
check "qblock-img bitmap --add exit status" 0 $?
check "qemu-img info lists our bitmaps" \
"b0 65536 auto
fine 512 auto
off 65536 " "$(bitmap_list ours.qcow2)"
qemu_check_clean ours.qcow2 "qemu-img check: fresh bitmaps"

"$QBLOCK_IO" -c 'write -P 1 0 64k' -c 'write 10M 1k' \
             -c 'write -z 20M 128k' ours.qcow2 >/dev/null
qemu_check_clean ours.qcow2 "qemu-img check: after writes through qblock"
check "writes through qblock set b0 (64k granularity)" \
"0 65536
10485760 65536
20971520 131072" "$(dirty_map ours.qcow2 b0)"
check "writes through qblock set fine (512 granularity)" \
"0 65536
10485760 1024
20971520 131072" "$(dirty_map ours.qcow2 fine)"
check "disabled bitmap records nothing" "" "$(dirty_map ours.qcow2 off)"
check "in_use is clear after our close" \
"b0 65536 auto
fine 512 auto
off 65536 " "$(bitmap_list ours.qcow2)"

# Real qemu-io writes on our image: our bitmaps stay usable for QEMU.
"$QEMU_IO" -c 'write 30M 64k' ours.qcow2 >/dev/null
check "real qemu-io extends our bitmap" \
"0 65536
10485760 65536
20971520 131072
31457280 65536" "$(dirty_map ours.qcow2 b0)"

"$QBLOCK_IMG" bitmap --clear ours.qcow2 b0
check "our --clear, read by QEMU" "" "$(dirty_map ours.qcow2 b0)"
"$QBLOCK_IMG" bitmap --merge fine ours.qcow2 b0
check "our --merge across granularities, read by QEMU" \
"0 65536
10485760 65536
20971520 131072
31457280 65536" "$(dirty_map ours.qcow2 b0)"
"$QBLOCK_IMG" bitmap --enable ours.qcow2 off --remove
"$QBLOCK_IMG" bitmap --disable ours.qcow2 fine
check "our --enable/--disable/--remove, read by QEMU" \
"b0 65536 auto
fine 512 " "$(bitmap_list ours.qcow2)"
qemu_check_clean ours.qcow2 "qemu-img check: after our bitmap commands"
"$QBLOCK_IMG" bitmap --remove ours.qcow2 b0 &&
"$QBLOCK_IMG" bitmap --remove ours.qcow2 fine
check "removing every bitmap drops the extension" "" \
    "$(bitmap_list ours.qcow2)"
qemu_check_clean ours.qcow2 "qemu-img check: all bitmaps removed"

# ---- 2. Bitmaps made by real qemu-img ----------------------------------

"$QEMU_IMG" create -q -f qcow2 theirs.qcow2 64M
"$QEMU_IMG" bitmap --add theirs.qcow2 t0
"$QEMU_IMG" bitmap --add -g 128k theirs.qcow2 t1
"$QEMU_IO" -c 'write 0 1M' -c 'write 40M 4k' theirs.qcow2 >/dev/null
"$QEMU_IMG" bitmap --disable theirs.qcow2 t1
before=$(dirty_map theirs.qcow2 t0)
"$QBLOCK_IO" -c 'write 50M 64k' theirs.qcow2 >/dev/null
qemu_check_clean theirs.qcow2 "qemu-img check: QEMU bitmaps after our store"
check "QEMU's bitmap keeps its bits through our store, plus our write" \
"$before
52428800 65536" "$(dirty_map theirs.qcow2 t0)"
check "QEMU's disabled bitmap is not touched by our write" \
"0 1048576
41943040 131072" "$(dirty_map theirs.qcow2 t1)"
check "flags survive our store" \
"t0 65536 auto
t1 131072 " "$(bitmap_list theirs.qcow2)"

"$QEMU_IMG" bitmap --clear theirs.qcow2 t0
"$QEMU_IMG" bitmap --merge t1 theirs.qcow2 t0
"$QBLOCK_IMG" bitmap --add theirs.qcow2 ours
"$QBLOCK_IMG" bitmap --merge t0 theirs.qcow2 ours
check "QEMU's --clear/--merge, then our --merge of the result" \
"0 1048576
41943040 131072" "$(dirty_map theirs.qcow2 ours)"

# Merge from another image (-b), ours and QEMU's side by side.
cp theirs.qcow2 mine-b.qcow2
cp theirs.qcow2 qemu-b.qcow2
"$QEMU_IMG" create -q -f qcow2 src.qcow2 64M
"$QEMU_IMG" bitmap --add src.qcow2 s
"$QEMU_IO" -c 'write 60M 64k' src.qcow2 >/dev/null
"$QBLOCK_IMG" bitmap --merge s -b src.qcow2 -F qcow2 mine-b.qcow2 t0
"$QEMU_IMG" bitmap --merge s -b src.qcow2 -F qcow2 qemu-b.qcow2 t0
check "--merge -b: same bits as qemu-img" \
    "$(dirty_map qemu-b.qcow2 t0)" "$(dirty_map mine-b.qcow2 t0)"

# A bitmap left in_use (its writer died) loads as inconsistent.
"$QEMU_IMG" create -q -f qcow2 inuse.qcow2 16M
"$QEMU_IMG" bitmap --add inuse.qcow2 stale
python3 - inuse.qcow2 <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
hdr = f.read(4096)
pos = struct.unpack(">I", hdr[100:104])[0]
while True:
    magic, length = struct.unpack(">II", hdr[pos:pos + 8])
    if magic == 0x23852875:
        break
    pos += 8 + (length + 7) // 8 * 8
dir_off = struct.unpack(">Q", hdr[pos + 24:pos + 32])[0]
f.seek(dir_off + 12)
flags = struct.unpack(">I", f.read(4))[0]
f.seek(dir_off + 12)
f.write(struct.pack(">I", flags | 1))
PY
check "in-use flag as QEMU reports it" "stale 65536 in-use,auto" \
    "$(bitmap_list inuse.qcow2)"

# ---- 3. Same messages and exit codes as qemu-img bitmap --------------

"$QEMU_IMG" create -q -f qcow2 -o compat=0.10 v2.qcow2 1M
"$QEMU_IMG" create -q -f qcow2 err.qcow2 32M
"$QEMU_IMG" bitmap --add err.qcow2 b0
long=$(printf 'n%.0s' $(seq 1 1024))

# run_both NAME ARGS...: qemu-img and qblock-img on copies of the images.
run_both() {
    local name=$1
    shift
    local out_q out_b rc_q rc_b
    rm -rf q b
    mkdir q b
    cp err.qcow2 v2.qcow2 inuse.qcow2 src.qcow2 q/
    cp err.qcow2 v2.qcow2 inuse.qcow2 src.qcow2 b/
    out_q=$(cd q && "$QEMU_IMG" bitmap "$@" 2>&1; echo "rc=$?")
    out_b=$(cd b && "$QBLOCK_IMG" bitmap "$@" 2>&1; echo "rc=$?")
    # Program names and generated node names differ by design.
    out_b=$(echo "$out_b" | sed 's/qblock-img/qemu-img/g')
    out_q=$(echo "$out_q" | sed "s/'#block[0-9]*'/'#blockN'/g; s/ #block[0-9]*:/ #blockN:/g")
    out_b=$(echo "$out_b" | sed "s/'#block[0-9]*'/'#blockN'/g; s/ #block[0-9]*:/ #blockN:/g")
    check "error output: $name" "$out_q" "$out_b"
    check "resulting image: $name" "$(bitmap_list q/err.qcow2)" \
        "$(bitmap_list b/err.qcow2)"
}

run_both "no action" err.qcow2 b0
run_both "missing bitmap name" --add err.qcow2
run_both "extra argument" --add err.qcow2 x y
run_both "exists" --add err.qcow2 b0
run_both "empty name" --add err.qcow2 ''
run_both "name too long" --add err.qcow2 "$long"
run_both "not found (remove)" --remove err.qcow2 nope
run_both "not found (clear)" --clear err.qcow2 nope
run_both "not found (enable)" --enable err.qcow2 nope
run_both "not found (disable)" --disable err.qcow2 nope
run_both "merge source not found" --merge nope err.qcow2 b0
run_both "granularity not a power of 2" --add -g 1000 err.qcow2 x
run_both "granularity too small" --add -g 256 err.qcow2 x
run_both "granularity 4G (32-bit wrap)" --add -g 4G err.qcow2 x
run_both "granularity 2G" --add -g 2G err.qcow2 x
run_both "granularity 0 means default" --add -g 0 err.qcow2 x
run_both "granularity not a number" --add -g abc err.qcow2 x
run_both "granularity without --add" -g 64k --enable err.qcow2 b0
run_both "-F without -b" -F qcow2 --enable err.qcow2 b0
run_both "-b without --merge" -b src.qcow2 --add err.qcow2 x
run_both "-b missing file" --merge s -b nofile err.qcow2 b0
run_both "missing image" --add nofile.qcow2 x
run_both "qcow2 v2" --add v2.qcow2 x
run_both "raw cannot store" -f raw --add err.qcow2 x
run_both "inconsistent bitmap" --clear inuse.qcow2 stale
run_both "inconsistent can be removed" --remove inuse.qcow2 stale
run_both "actions run in order" --remove --add err.qcow2 b0
run_both "stops at first failure" --disable --merge nope err.qcow2 b0
run_both "unknown option" --bogus err.qcow2 b0
run_both "missing option argument" --add err.qcow2 b0 --merge

# ---- 4. info output, human and JSON -----------------------------------

"$QEMU_IMG" create -q -f qcow2 info.qcow2 16M
"$QEMU_IMG" bitmap --add info.qcow2 a
"$QEMU_IMG" bitmap --add -g 1M --disable info.qcow2 b
for fmt in human json; do
    check "info --output=$fmt with bitmaps" \
        "$("$QEMU_IMG" info --output=$fmt info.qcow2 2>&1)" \
        "$("$QBLOCK_IMG" info --output=$fmt info.qcow2 2>&1)"
done
check "info with an in-use bitmap" \
    "$("$QEMU_IMG" info inuse.qcow2 2>&1)" \
    "$("$QBLOCK_IMG" info inuse.qcow2 2>&1)"

# ---- 5. measure and stale extensions -----------------------------------

for o in "" "-o cluster_size=4k" "-o cluster_size=2M"; do
    # shellcheck disable=SC2086
    check "measure -O qcow2 $o counts the bitmaps" \
        "$("$QEMU_IMG" measure -O qcow2 $o info.qcow2 2>&1)" \
        "$("$QBLOCK_IMG" measure -O qcow2 $o info.qcow2 2>&1)"
done

# Autoclear bit 0 clear: a program without bitmap support wrote the image.
cp info.qcow2 stale.qcow2
python3 - stale.qcow2 <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
f.seek(88)
bits = struct.unpack(">Q", f.read(8))[0]
f.seek(88)
f.write(struct.pack(">Q", bits & ~1))
PY
check "stale bitmaps extension: info and warning" \
    "$("$QEMU_IMG" info stale.qcow2 2>&1 | sed 's/^qemu-img:/PROG:/')" \
    "$("$QBLOCK_IMG" info stale.qcow2 2>&1 | sed 's/^qblock-img:/PROG:/')"
cp stale.qcow2 stale-q.qcow2
cp stale.qcow2 stale-b.qcow2
"$QEMU_IO" -c 'write 0 4k' stale-q.qcow2 >/dev/null 2>&1
"$QBLOCK_IO" -c 'write 0 4k' stale-b.qcow2 >/dev/null 2>&1
check "stale extension dropped on write: same check result as QEMU" \
    "$("$QEMU_IMG" check stale-q.qcow2 2>&1)" \
    "$("$QEMU_IMG" check stale-b.qcow2 2>&1)"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
