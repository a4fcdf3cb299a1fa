#!/bin/bash
#
# Runs qblock-io and Debian's qemu-io with the same arguments (or the same
# piped input) on copies of the same images and compares what they print
# (stdout and stderr separately), their exit codes and the images they
# leave behind (with the real qemu-img compare).  Program names and the
# timing figures of the statistics lines are normalised first.
#
# usage: io-output-diff.sh [-v] [QBLOCK_IO]  (default: $QBLOCK_IO, else
#        $QBLOCK_BUILD_DIR/qblock-io, else build/qblock-io); -v shows the
#        diff of failing cases.
# Ends with "N passed, N failed"; exits 1 if any case differs.

verbose=0
if [ "$1" = "-v" ]; then
    verbose=1
    shift
fi
QBLOCK_IO=$(realpath "${1:-${QBLOCK_IO:-${QBLOCK_BUILD_DIR:-build}/qblock-io}}")
QEMU_IMG=${QEMU_IMG:-qemu-img}
QEMU_IO=${QEMU_IO:-qemu-io}

if ! command -v "$QEMU_IMG" >/dev/null || ! command -v "$QEMU_IO" >/dev/null
then
    echo "SKIP: $QEMU_IMG / $QEMU_IO not installed"
    echo "0 passed, 0 failed"
    exit 0
fi
if [ ! -x "$QBLOCK_IO" ]; then
    echo "error: $QBLOCK_IO is not executable" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
seed=$tmp/seed
mkdir -p "$seed"

# ---- Reference images, all made by the real tools --------------------
(
    cd "$seed" || exit 1
    q() { "$QEMU_IMG" "$@" >/dev/null; }
    io() { "$QEMU_IO" "$@" >/dev/null; }
    q create -f qcow2 empty.qcow2 1M
    q create -f qcow2 base.qcow2 4M
    io -c 'write -P 0xaa 0 1M' -c 'write -z 2M 64k' base.qcow2
    q create -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2
    io -c 'write -P 0xbb 512k 1M' -c 'write -z 3M 128k' overlay.qcow2
    q create -f qcow2 -o cluster_size=4k small.qcow2 256k
    q create -f qcow2 big.qcow2 10G
    io -c 'write 5G 1M' -c 'write -z 6G 1G' -c 'write 9G 64k' big.qcow2
    q create -f raw disk.raw 1M
    io -f raw -c 'write -P 0x41 4k 4k' disk.raw
    printf 'Hello\000\001\177\200 world~ !"#$%%&abcdefghijklmnopqrstuvwxyz' \
        >pattern.bin
    : >empty.bin
) || { echo "error: could not prepare images" >&2; exit 1; }

pass=0
fail=0
failed=()

# Makes the outputs of both tools comparable: program names, and the
# timing part of "N bytes, 1 ops; 00.00 sec (...)" and of -C lines.
normalise() {
    sed -E -e 's/qemu-io/PROG/g' -e 's/qblock-io/PROG/g' \
        -e 's/ ops; [0-9:.]+( sec)? \(.* ops\/sec\)$/ ops; TIME/' \
        -e 's/^([0-9]+),([0-9]+),[0-9]+:[0-9]{2}:[0-9.]+,[0-9.]+,[0-9.]+$/\1,\2,CSV/' \
        "$@"
}

# Image files of the seed, compared after each case.
images=(empty.qcow2 base.qcow2 overlay.qcow2 small.qcow2 big.qcow2 disk.raw)

# run_tool DIR TOOL STDIN FILTER ARGS...: one tool in DIR; fills DIR.norm
# (FILTER: an extra sed script, may be empty).
run_tool() {
    local dir=$1 tool=$2 input=$3 filter=$4
    shift 4
    rm -rf "$dir"
    cp -a --sparse=always "$seed" "$dir"
    (cd "$dir" && printf '%s' "$input" |
        timeout 60 "$tool" "$@" >"$dir.out" 2>"$dir.err"
     echo "exit=$?" >>"$dir.out")
    { cat "$dir.out"; echo "--- stderr"; cat "$dir.err"; } |
        normalise | sed -e "$filter" >"$dir.norm"
}

# check_case NAME ARGS...: compares the two runs and the images they left.
check_case() {
    local name=$1 img ok=1
    shift
    cmp -s "$tmp/q.norm" "$tmp/b.norm" || ok=0
    for img in "${images[@]}"; do
        local fmt=qcow2
        [[ $img == *.raw ]] && fmt=raw
        if ! "$QEMU_IMG" compare -q -f $fmt -F $fmt "$tmp/q/$img" \
                "$tmp/b/$img" 2>/dev/null; then
            ok=0
            echo "    image $img differs after $name" >>"$tmp/b.norm"
        fi
    done
    if [ $ok = 1 ]; then
        pass=$((pass + 1))
        return
    fi
    fail=$((fail + 1))
    failed+=("$name")
    echo "FAIL: $name ($*)"
    if [ $verbose = 1 ]; then
        diff -u "$tmp/q.norm" "$tmp/b.norm" | sed 's/^/    /'
    fi
}

# run_case NAME [@filter=SED] ARGS...: both tools with ARGS, stdin empty.
run_case() {
    local name=$1 filter=
    shift
    if [[ $1 == @filter=* ]]; then
        filter=${1#@filter=}
        shift
    fi
    run_tool "$tmp/q" "$QEMU_IO" "" "$filter" "$@"
    run_tool "$tmp/b" "$QBLOCK_IO" "" "$filter" "$@"
    check_case "$name" "$@"
}

# run_stdin NAME INPUT ARGS...: both tools reading commands from a pipe.
run_stdin() {
    local name=$1 input=$2
    shift 2
    run_tool "$tmp/q" "$QEMU_IO" "$input" "" "$@"
    run_tool "$tmp/b" "$QBLOCK_IO" "$input" "" "$@"
    check_case "$name" "$@"
}

# ---- program options ---------------------------------------------------
run_case no-file-length -c length
# Extended help is prose in our own words: compare its first line only.
exthelp='/^ \|^$/d'
run_case no-file-help-ok @filter="$exthelp" -c 'help read'
run_case missing-image nothere.qcow2
run_case wrong-format -f qcow2 -c length disk.raw
run_case unknown-format -f foo disk.raw
run_case bad-cache -t foo -f raw disk.raw
run_case bad-aio -i foo -f raw disk.raw
run_case bad-discard -d foo -f raw disk.raw
run_case image-opts --image-opts -c length driver=raw,file.filename=disk.raw
run_case image-opts-qcow2 --image-opts -c map \
    driver=qcow2,file.driver=file,file.filename=base.qcow2
run_case image-opts-and-f --image-opts -f raw driver=raw,file.filename=disk.raw
run_case read-only-write -r -c 'write 0 512' base.qcow2
run_case read-only-read -r -c 'read -P 0xaa 0 4k' base.qcow2
run_case nocache -n -c 'write -P 5 0 64k' -c 'read -P 5 0 64k' base.qcow2
run_case cache-modes -t writeback -c 'write 0 4k' -c flush base.qcow2
run_case cache-unsafe -t unsafe -d unmap -c 'discard 0 64k' -c map base.qcow2
run_case misalign -m -n -c 'write -P 9 512 4k' -c 'read -P 9 512 4k' base.qcow2

# ---- read / write ----------------------------------------------------------
run_case write-read -c 'write -P 1 0 64k' -c 'read -P 1 0 64k' \
    -c 'read -P 2 0 512' empty.qcow2
run_case read-dump -c 'read -v 0 40' -c 'read -v 4090 20' -f raw disk.raw
run_case read-dump-file -f raw -c 'write -s pattern.bin 1 45' \
    -c 'read -v 0 50' -c 'read -v 17 3' disk.raw
run_case write-file-repeat -f raw -c 'write -s pattern.bin 0 1k' \
    -c 'read -v 40 64' disk.raw
run_case write-file-missing -f raw -c 'write -s nothere 0 512' disk.raw
run_case write-file-empty -f raw -c 'write -s empty.bin 0 512' disk.raw
run_case read-pattern-range -c 'read -P 0xaa -s 5 -l 6 100 512' \
    -c 'read -P 1 -s 5 -l 6 100 512' -c 'read -P 1 -s 600 0 512' \
    -c 'read -P 1 -l 600 0 512' -c 'read -s 5 0 512' base.qcow2
run_case read-quiet -c 'read -q 0 1' -c 'read -q -P 1 0 4' \
    -c 'read -P 1 -v -q 0 4' base.qcow2
run_case read-csv -c 'read -C 0 512' -c 'write -C 0 512' \
    -c 'discard -C 0 64k' -c 'readv -C 0 1 2' -c 'readv -C -q 0 1 2' \
    empty.qcow2
run_case read-sizes -c 'read 0 1.5k' -c 'read 0 0x200' -c 'read 010 512' \
    -c 'read 0 0' -c 'write 0 0' -c 'read 0 1M' -c 'read 0 1b' \
    -c 'read 0 0.5k' base.qcow2
run_case read-size-spellings -c 'read 0 1K' -c 'read 0 1e3' -c 'read 0 1T' \
    -c 'read 0 1 2' -c 'read 0x10 0x10' -c 'read 1k' -c 'read 0 512b' \
    -c 'read 0 1.5' -c 'read 0 1.25k' -c 'read 0 1P' -c 'read 0 k' base.qcow2
# qemu-io truncates fractional sizes and accepts a leading '+'.
run_case read-size-fraction -c 'read 0 0.1k' -c 'read 0 +5' base.qcow2
run_case read-dump-punctuation -f raw -c 'write -q -P 0x20 0 16' \
    -c 'write -q -P 0x2e 16 16' -c 'write -q -P 0x5f 32 16' \
    -c 'read -v 0 48' -c 'read -P 1 -v 0 4' disk.raw
run_case read-bad-numbers -c 'read x 1' -c 'read 0 1k5' -c 'read 0 1.1' \
    -c 'read 0 99999999999999999999' -c 'read 0 8E' -c 'read 0 3G' \
    -c 'read 0 -1' -c 'read -P 300 0 1' -c 'read -P x 0 1' \
    -c 'read -P -1 0 1' base.qcow2
run_case read-beyond-eof -c 'read 4M 1' -c 'read 4194303 2' \
    -c 'write 4M 1' -c 'readv 4M 1' base.qcow2
run_case read-options -c 'read -Q 0 1' -c 'read -a 0 512' -c 'read -p 0 1' \
    -c 'read 10 -- 1' -c 'read -P' -c 'read' base.qcow2
run_case write-flags -c 'write -f 0 512' -c 'write -z 64k 64k' \
    -c 'write -zu 128k 64k' -c 'write -z -f 192k 4k' -c map base.qcow2
run_case write-flag-errors -c 'write -u 0 512' -c 'write -n 0 512' \
    -c 'write -z -P 1 0 512' -c 'write -s x -P 1 0 512' \
    -c 'write -b -z 0 512' -c 'write -b 1 512' -c 'write -b 0 5' \
    -c 'write 0 2G' -c 'write -z 0 3G' -c 'write -P 0x1ff 0 1' base.qcow2
run_case write-compressed -c 'write -c -P 3 1M 64k' -c 'read -P 3 1M 64k' \
    -c 'write -c 0 1' empty.qcow2
run_case write-raw-compressed -f raw -c 'write -c 0 512' disk.raw
run_case vmstate -f raw -c 'read -b 0 512' -c 'write -b 0 512' disk.raw
run_case aliases -c 'r -q 0 1' -c 'w -q 0 1' -c 'l' -c 'a 0' -c 'd -q 0 512' \
    -c 't 2M' -c 'l' -c 'f' base.qcow2
run_case alias-info -c 'i' base.qcow2

# ---- readv / writev ----------------------------------------------------------
run_case writev-readv -c 'writev -P 3 0 512 1k' -c 'readv -P 3 0 512 1k' \
    -c 'readv -v 0 8 8' -c 'writev -f -q 4k 1 2' -c 'readv -P 0xcd 4k 3' \
    empty.qcow2
run_case vector-errors -c 'writev -q 0 x' -c 'writev -q 0 3G' \
    -c 'readv 0 2G 2G' -c 'readv 0 1G 1G' -c 'writev -z 0 1' -c 'readv 0' \
    empty.qcow2

# ---- aio -----------------------------------------------------------------------
run_case aio-write-read -c 'aio_write -P 1 0 64k' -c aio_flush \
    -c 'aio_read -P 1 0 64k' -c aio_flush -c 'aio_read -P 2 0 512' \
    -c aio_flush -c 'aio_read -v 0 16' -c aio_flush empty.qcow2
run_case aio-vector -c 'aio_write -P 2 64k 64k 4k' -c aio_flush \
    -c 'aio_read -P 2 64k 4k 64k' -c aio_flush -c 'aio_read -C -v 64k 4' \
    -c aio_flush empty.qcow2
run_case aio-errors -c 'aio_read -i 0 512' -c 'aio_write -i 0 512' \
    -c 'aio_write -z 0 512 512' -c 'aio_write -u 0 512' \
    -c 'aio_read 0 8M' -c aio_flush -c 'aio_write 8M 512' -c aio_flush \
    -c 'aio_read 0' empty.qcow2
run_case aio-quiet -c 'aio_write -q -P 7 0 4k' -c 'aio_read -q -P 7 0 4k' \
    -c 'aio_read -q -P 8 0 4k' -c aio_flush empty.qcow2
run_case aio-many -c 'aio_write -q -P 1 0 4k' -c 'aio_write -q -P 2 4k 4k' \
    -c 'aio_write -q -P 3 8k 4k' -c 'aio_write -q -P 4 12k 4k' -c aio_flush \
    -c 'read -P 3 8k 4k' empty.qcow2
run_case aio-pending-at-exit -c 'aio_write -q -P 6 0 64k' -f raw disk.raw

# ---- discard, truncate, length, info, map, alloc -------------------------------
run_case discard -c 'discard 0 64k' -c 'discard -q 64k 64k' -c 'discard 0 0' \
    -c 'discard 0 x' -c 'discard 0 3G' -c 'discard 0' -c map base.qcow2
run_case discard-raw -f raw -c 'discard 0 64k' -c 'read -P 0 4k 4k' \
    -c 'discard -C 0 0' disk.raw
run_case discard-ignored -d ignore -c 'write -q -P 7 0 4k' \
    -c 'discard 0 64k' -c 'read -q -P 7 0 4k' base.qcow2
run_case truncate -c 'truncate 8M' -c length -c 'truncate x' \
    -c 'truncate -m foo 1M' -c 'truncate -m off 1 2' base.qcow2
run_case truncate-raw -f raw -c 'truncate 2M' -c length \
    -c 'truncate -m full 3M' -c length -c 'truncate 1M' -c length disk.raw
run_case info-qcow2 -c info -c length base.qcow2
run_case info-raw -f raw -c info disk.raw
run_case map-chain -c map -c 'alloc 0 4M' -c 'alloc 512k 4M' -c 'alloc 3M' \
    overlay.qcow2
run_case map-base -c map -c 'alloc 0' -c 'alloc 0 2M' -c 'alloc 1 3' \
    -c 'alloc 5M 1' -c 'alloc 0 0' base.qcow2
run_case map-big -r -c map -c 'alloc 0 10G' -c 'alloc 5G 2G' \
    -c 'alloc 9G 1G' -c 'alloc 1000 1' -c 'alloc 1048577 1' -c length \
    big.qcow2
run_case map-raw -f raw -c map -c 'alloc 0 1M' disk.raw
run_case map-small -c 'write 4k 4k' -c 'write 12k 8k' -c map small.qcow2
run_case alloc-errors -c 'alloc' -c 'alloc x' -c 'alloc -1' -c 'alloc 0 x' \
    -c 'alloc 8E' base.qcow2

# ---- command handling ---------------------------------------------------------
run_case help -c help -f raw disk.raw
run_case help-commands @filter="$exthelp" -c 'help read' -c 'help flush' -c 'help foo' \
    -c 'help a b' -c '? length' -f raw disk.raw
run_case unknown-command -c foo -c 'length' -f raw disk.raw
run_case arg-counts -c 'map x' -c 'length x' -c 'info x' -c 'flush x' \
    -c 'sleep' -c 'aio_flush x' -c 'close x' -c 'break x' -c 'resume' \
    -c 'truncate -m off 1 2' -c 'open' -f raw disk.raw
run_case sleep -c 'sleep 10' -c 'sleep x' -f raw disk.raw
# cache=unsafe: no fdatasync, whose latency on a busy disk could outlast
# the sleep on either side.
run_case sleep-completes-aio -t unsafe -c 'aio_write -P 1 0 4k' \
    -c 'sleep 100' -c 'read -P 1 0 4k' base.qcow2
run_case spaces -c 'read  -q  0   1' -c ' length' -c 'length ' \
    -c 'read "0" 1' -f raw disk.raw
run_case close-reopen -c close -c 'read 0 1' -c close \
    -c 'open -o driver=raw disk.raw' -c 'read -P 0x41 4k 4k' -f raw disk.raw
run_case open-twice -c 'open -o driver=raw disk.raw' -f raw disk.raw
run_case open-options -c 'open -r -o driver=qcow2 base.qcow2' \
    -c 'write 0 1' -c 'read -q -P 0xaa 0 1' -c close \
    -c 'open -n -t writeback -d unmap base.qcow2' -c 'write -q 0 1' \
    -c close -c 'open -r -U base.qcow2' -c close -c 'open -t foo x' -c 'open -d foo x' -c 'open -i foo x' \
    -c 'open -f raw x' -c 'open -r nothere'
run_case open-force-share-rw -c 'open -U base.qcow2' -c 'write -q 0 1'
run_case open-no-path -c 'open -o driver=raw,file.filename=disk.raw' \
    -c length
run_case reopen -c 'reopen -r' -c 'write 0 1' -c 'reopen -w' \
    -c 'write -q -P 4 0 1' -c 'reopen -r -w' -c 'reopen -c foo' \
    -c 'reopen -c none' -c 'read -q -P 4 0 1' -c 'reopen x' \
    -c 'reopen -o driver=raw' -c 'reopen -x' -c 'reopen' -c 'read -q 0 1' \
    base.qcow2
run_case quit-stops -c 'read -P 9 0 1' -c quit -c 'read 0 1' -f raw disk.raw
run_case no-file-commands -c 'read 0 1' -c length -c info -c map -c close \
    -c flush -c aio_flush -c help
run_case breakpoints-unsupported -c 'break write_aio A' -c 'resume A' \
    -c 'remove_break A' base.qcow2

# ---- interactive input -----------------------------------------------------------
run_stdin stdin-basic $'read  -q  0   1\nread\t0 1\n\n   \nlength\nq\nlength\n' \
    -f raw disk.raw
run_stdin stdin-eof $'write -P 5 0 4k\nread -P 5 0 4k\nread -P 6 0 1' \
    -f raw disk.raw
run_stdin stdin-aio $'aio_write -P 5 0 4k\naio_flush\nread -P 5 0 4k\n' \
    base.qcow2
run_stdin stdin-open $'open -o driver=raw disk.raw\nlength\nclose\nlength\n'

for name in "${failed[@]}"; do
    echo "failed: $name"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
