#!/bin/bash
#
# Runs qblock-img and Debian's qemu-img with the same arguments on copies of
# the same images and compares what they print (stdout, stderr) and their
# exit codes, after replacing the program names.
#
# usage: img-output-diff.sh [QBLOCK_IMG]    (default: $QBLOCK_IMG or
#        build/qblock-img); -v shows the diff of failing cases.
# Ends with "N passed, N failed"; exits 1 if any case differs.

verbose=0
if [ "$1" = "-v" ]; then
    verbose=1
    shift
fi
QBLOCK_IMG=$(realpath "${1:-${QBLOCK_IMG:-build/qblock-img}}")
QEMU_IMG=${QEMU_IMG:-qemu-img}
QEMU_IO=${QEMU_IO:-qemu-io}

if ! command -v "$QEMU_IMG" >/dev/null || ! command -v "$QEMU_IO" >/dev/null
then
    echo "SKIP: $QEMU_IMG / $QEMU_IO not installed"
    echo "0 passed, 0 failed"
    exit 0
fi
if [ ! -x "$QBLOCK_IMG" ]; then
    echo "error: $QBLOCK_IMG is not executable" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
seed=$tmp/seed
mkdir -p "$seed/sub"

# ---- Reference images, all made by the real tools --------------------
(
    cd "$seed" || exit 1
    q() { "$QEMU_IMG" "$@" >/dev/null; }
    io() { "$QEMU_IO" "$@" >/dev/null; }
    q create -f qcow2 base.qcow2 64M
    io -c 'write -P 1 0 128k' -c 'write -z 1M 64k' \
       -c 'write -P 7 5M 3M' base.qcow2
    q create -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2
    io -c 'write -P 2 64k 128k' -c 'write -P 3 6M 64k' overlay.qcow2
    q create -f qcow2 -o cluster_size=4096,compat=0.10 small.qcow2 1M
    q create -f qcow2 -o lazy_refcounts=on lazy.qcow2 8M
    q create -f qcow2 -b ../base.qcow2 -F qcow2 sub/child.qcow2
    q create -f qcow2 -u -b missing.qcow2 -F qcow2 dangling.qcow2 1M
    q convert -O raw base.qcow2 base.raw
    q create -f raw empty.raw 16M
    cp --sparse=always base.raw longer.raw
    truncate -s 65M longer.raw
    cp --sparse=always base.raw changed.raw
    io -f raw -c 'write -P 9 3000k 512' changed.raw
    q convert -c -O qcow2 base.qcow2 compressed.qcow2
    # A leaked cluster: drop the first L2 entry of a copy.
    cp base.qcow2 leak.qcow2
    python3 - leak.qcow2 <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
hdr = f.read(72)
l1 = struct.unpack('>Q', hdr[40:48])[0]
f.seek(l1)
l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
f.seek(l2)
f.write(b'\0' * 8)
PY
    # A corruption: a second L2 entry pointing at the first data cluster.
    cp base.qcow2 corrupt.qcow2
    python3 - corrupt.qcow2 <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
hdr = f.read(72)
l1 = struct.unpack('>Q', hdr[40:48])[0]
f.seek(l1)
l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
f.seek(l2)
first = struct.unpack('>Q', f.read(8))[0]
f.seek(l2 + 16)
f.write(struct.pack('>Q', first))
PY
) || { echo "error: could not prepare images" >&2; exit 1; }

pass=0
fail=0
failed=()

# Normalises what a tool printed so both tools can be compared.
normalise() {
    sed -e 's/qemu-img/PROG/g' -e 's/qblock-img/PROG/g' "$@"
}

# run_case NAME ARGS...: both tools on fresh copies of the images.
# An argument "@filter=SED" before the tool arguments filters the output.
run_case() {
    local name=$1 filter=
    shift
    if [[ $1 == @filter=* ]]; then
        filter=${1#@filter=}
        shift
    fi
    for t in q b; do
        rm -rf "${tmp:?}/$t"
        cp -a --sparse=always "$seed" "$tmp/$t"
        local tool=$QEMU_IMG
        [ $t = b ] && tool=$QBLOCK_IMG
        (cd "$tmp/$t" && "$tool" "$@" >"$tmp/$t.out" 2>"$tmp/$t.err"
         echo "exit=$?" >>"$tmp/$t.out")
        cat "$tmp/$t.err" >>"$tmp/$t.out"
        normalise "$tmp/$t.out" >"$tmp/$t.norm"
        if [ -n "$filter" ]; then
            sed -i -e "$filter" "$tmp/$t.norm"
        fi
    done
    if cmp -s "$tmp/q.norm" "$tmp/b.norm"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        failed+=("$name")
        echo "FAIL: $name ($*)"
        if [ $verbose = 1 ]; then
            diff -u "$tmp/q.norm" "$tmp/b.norm" | sed 's/^/    /'
        fi
    fi
}

# run_after NAME 'SETUP ARGS' [@filter=SED] CHECK-ARGS...: runs a modifying
# command with each tool (its output compared too), then the real qemu-img
# with CHECK-ARGS on each result, so the resulting images are compared.
# Host offsets depend on the qcow2 driver's allocation order, not on the
# tool: the map checks of converted images filter them out.
run_after() {
    local name=$1 setup=$2 filter=
    shift 2
    if [[ $1 == @filter=* ]]; then
        filter=${1#@filter=}
        shift
    fi
    for t in q b; do
        rm -rf "${tmp:?}/$t"
        cp -a --sparse=always "$seed" "$tmp/$t"
        local tool=$QEMU_IMG
        [ $t = b ] && tool=$QBLOCK_IMG
        # SETUP is shell words (quotes allowed, e.g. -b '').
        (cd "$tmp/$t" && eval "\"\$tool\" $setup" >"$tmp/$t.out" 2>&1
         echo "exit=$?" >>"$tmp/$t.out"
         "$QEMU_IMG" "$@" >>"$tmp/$t.out" 2>&1
         echo "exit=$?" >>"$tmp/$t.out")
        normalise "$tmp/$t.out" |
            sed -e '/^disk size:/d' -e '/"actual-size"/d' >"$tmp/$t.norm"
        if [ -n "$filter" ]; then
            sed -i -e "$filter" "$tmp/$t.norm"
        fi
    done
    if cmp -s "$tmp/q.norm" "$tmp/b.norm"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        failed+=("$name")
        echo "FAIL: $name ($setup; qemu-img $*)"
        if [ $verbose = 1 ]; then
            diff -u "$tmp/q.norm" "$tmp/b.norm" | sed 's/^/    /'
        fi
    fi
}

# ---- General usage ---------------------------------------------------
run_case noargs
run_case unknown-command frobnicate
run_case unknown-option info --bogus base.qcow2
run_case unknown-short-option info -Z base.qcow2
run_case missing-argument info -f
run_case info-two-files info base.qcow2 overlay.qcow2

# ---- create ------------------------------------------------------------
run_after create-qcow2 "create -f qcow2 new.qcow2 64M" info new.qcow2
run_after create-raw "create -f raw new.raw 1G" info new.raw
run_after create-default "create new.img 1M" info new.img
run_after create-suffix "create -f qcow2 new.qcow2 1.5M" info new.qcow2
run_after create-backing "create -f qcow2 -b base.qcow2 -F qcow2 new.qcow2" \
    info new.qcow2
run_after create-backing-size \
    "create -f qcow2 -b base.qcow2 -F qcow2 new.qcow2 128M" info new.qcow2
run_after create-opts "create -f qcow2 -o cluster_size=4k,compat=0.10 new.qcow2 1M" \
    info new.qcow2
run_after create-lazy "create -f qcow2 -o lazy_refcounts=on new.qcow2 1M" \
    info --output=json new.qcow2
run_after create-quiet "create -q -f qcow2 new.qcow2 1M" check new.qcow2
run_after create-unsafe "create -f qcow2 -u -b nothere.qcow2 -F qcow2 new.qcow2 1M" \
    info new.qcow2
run_case create-no-backing-fmt create -f qcow2 -b base.qcow2 new.qcow2
run_case create-missing-backing create -f qcow2 -b nothere -F qcow2 new.qcow2
run_case create-no-size create -f qcow2 new.qcow2
run_case create-bad-size create -f qcow2 new.qcow2 1Q
run_case create-bad-opt create -f qcow2 -o bogus=1 new.qcow2 1M
run_case create-bad-size-opt create -f qcow2 -o cluster_size=abc new.qcow2 1M
run_case create-bad-bool-opt create -f qcow2 -o lazy_refcounts=xx new.qcow2 1M
run_case create-unknown-fmt create -f foo new 1M
run_case create-extra-arg create -f qcow2 new.qcow2 1M 2M
run_case create-no-file create -f qcow2
run_case create-help-qcow2 create -f qcow2 -o help
run_case create-help-raw create -f raw -o help

# ---- info ----------------------------------------------------------------
for img in base.qcow2 overlay.qcow2 small.qcow2 lazy.qcow2 base.raw \
           compressed.qcow2 sub/child.qcow2 dangling.qcow2; do
    run_case "info-$img" info "$img"
    run_case "info-json-$img" info --output=json "$img"
done
run_case info-chain info --backing-chain overlay.qcow2
run_case info-chain-json info --backing-chain --output=json overlay.qcow2
run_case info-chain-missing info --backing-chain dangling.qcow2
run_case info-image-opts info --image-opts driver=qcow2,file.filename=base.qcow2
run_case map-image-opts map --image-opts driver=qcow2,file.filename=base.qcow2
run_case info-fmt-raw info -f raw base.qcow2
run_case info-missing info nothere.qcow2
run_case info-bad-output info --output=xml base.qcow2

# ---- check ---------------------------------------------------------------
for img in base.qcow2 small.qcow2 compressed.qcow2 leak.qcow2 corrupt.qcow2 \
           base.raw; do
    run_case "check-$img" @filter='/^Leaked cluster\|^ERROR cluster\|^Repairing/d' \
        check "$img"
    run_case "check-json-$img" @filter='/^Leaked cluster\|^ERROR cluster\|^Repairing/d' \
        check --output=json "$img"
done
run_case check-quiet @filter='/^Leaked cluster/d' check -q leak.qcow2
run_case check-repair-leaks @filter='/^Leaked cluster\|^Repairing/d' \
    check -r leaks leak.qcow2
run_case check-repair-all-json @filter='/^Leaked cluster\|^Repairing/d' \
    check -r all --output=json leak.qcow2
run_case check-bad-repair check -r foo base.qcow2

# ---- map -------------------------------------------------------------------
for img in base.qcow2 overlay.qcow2 sub/child.qcow2; do
    run_case "map-$img" map "$img"
    run_case "map-json-$img" map --output=json "$img"
done
run_case map-range map --output=json --start-offset=64k --max-length=1M \
    overlay.qcow2
run_case map-unaligned-start map --output=json --start-offset 100000 \
    base.qcow2
run_case map-compressed map compressed.qcow2
run_case map-compressed-json map --output=json compressed.qcow2
run_case map-bad-offset map --start-offset=abc base.qcow2

# ---- compare ---------------------------------------------------------------
run_case compare-same compare base.qcow2 base.qcow2
run_case compare-differ compare base.qcow2 overlay.qcow2
run_case compare-converted compare base.qcow2 base.raw
run_case compare-fmts compare -f raw -F qcow2 base.raw base.qcow2
run_case compare-strict compare -s base.qcow2 base.raw
run_case compare-changed compare base.raw changed.raw
run_case compare-longer compare base.raw longer.raw
run_case compare-longer-strict compare -s base.raw longer.raw
run_case compare-empty compare base.qcow2 empty.raw
run_case compare-quiet compare -q base.qcow2 overlay.qcow2
run_case compare-missing compare base.qcow2 nothere
run_case compare-one-file compare base.qcow2

# ---- convert -----------------------------------------------------------------
run_after convert-raw "convert -O raw base.qcow2 out.raw" \
    compare base.qcow2 out.raw
run_after convert-qcow2 "convert -O qcow2 overlay.qcow2 out.qcow2" \
    @filter='s/, "offset": [0-9]*//' map --output=json out.qcow2
run_after convert-compressed "convert -c -O qcow2 base.qcow2 out.qcow2" \
    @filter='s/, "offset": [0-9]*//' map --output=json out.qcow2
run_after convert-backing \
    "convert -O qcow2 -B base.qcow2 -F qcow2 overlay.qcow2 out.qcow2" \
    @filter='s/, "offset": [0-9]*//' map --output=json out.qcow2
run_after convert-qcow2-content "convert -O qcow2 overlay.qcow2 out.qcow2" \
    compare -s overlay.qcow2 out.qcow2
run_after convert-backing-content \
    "convert -O qcow2 -B base.qcow2 -F qcow2 overlay.qcow2 out.qcow2" \
    compare overlay.qcow2 out.qcow2
run_after convert-compressed-content "convert -c -O qcow2 base.qcow2 out.qcow2" \
    compare base.qcow2 out.qcow2
run_after convert-sparse-off "convert -S 0 -O qcow2 base.qcow2 out.qcow2" \
    map --output=json out.qcow2
run_after convert-progress "convert -p -O raw base.qcow2 out.raw" \
    compare base.qcow2 out.raw
run_after convert-concat "convert -O qcow2 small.qcow2 base.qcow2 out.qcow2" \
    info out.qcow2
run_after convert-unordered "convert -W -m 16 -O qcow2 base.raw out.qcow2" \
    compare base.raw out.qcow2
run_after convert-existing "convert -n -O qcow2 base.qcow2 lazy.qcow2" \
    compare -s base.qcow2 lazy.qcow2
run_case convert-compress-raw convert -c -O raw base.qcow2 out.raw
run_case convert-no-backing-fmt convert -O qcow2 -B base.qcow2 overlay.qcow2 o
run_case convert-bad-coroutines convert -m 20 -O raw base.qcow2 out.raw
run_case convert-no-source convert -O raw base.qcow2
run_case convert-missing-target convert -n -O qcow2 base.qcow2 nothere.qcow2

# ---- resize, amend, rebase, measure -------------------------------------------
run_after resize-grow "resize base.qcow2 +1M" info base.qcow2
run_after resize-shrink "resize --shrink base.raw 10M" info base.raw
run_case resize-shrink-refused resize base.qcow2 1M
run_case resize-relative-shrink-refused resize base.qcow2 -1M
run_case resize-bad-size resize base.qcow2 foo
run_case resize-zero resize base.qcow2 0
run_case resize-no-size resize base.qcow2
run_after amend-compat "amend -o compat=1.1 small.qcow2" info small.qcow2
run_case amend-no-opts amend small.qcow2
run_after rebase-unsafe "rebase -u -b new.qcow2 -F qcow2 overlay.qcow2" \
    info overlay.qcow2
run_after rebase-unsafe-remove "rebase -u -b '' overlay.qcow2" \
    info overlay.qcow2
run_after rebase-safe-remove "rebase -b '' overlay.qcow2" \
    compare overlay.qcow2 base.qcow2
run_after rebase-safe-content "rebase -b changed.raw -F raw overlay.qcow2" \
    compare overlay.qcow2 changed.raw
run_case rebase-no-fmt rebase -u -b new.qcow2 overlay.qcow2
run_case rebase-no-backing rebase overlay.qcow2
run_case measure-size measure --size 1G -O qcow2
run_case measure-size-json measure --output=json --size 1G -O qcow2
run_case measure-image measure -O qcow2 base.qcow2
run_case measure-image-json measure --output=json -O qcow2 base.qcow2
run_case measure-raw measure -O raw base.qcow2
run_case measure-cluster measure -O qcow2 -o cluster_size=4k --size 10G
run_case measure-nothing measure -O qcow2
run_case measure-both measure -O qcow2 --size 1G base.qcow2

for name in "${failed[@]}"; do
    echo "failed: $name"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
