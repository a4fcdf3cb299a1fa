#!/bin/bash
#
# NBD interoperability: qblock-nbd judged by real clients (libnbd's
# nbdinfo/nbdcopy, qemu-img, qemu-io, qemu-nbd --list), and qblock's nbd
# client (qblock-img, qblock-io) against real servers (qemu-nbd, nbdkit).
#
# usage: nbd.sh [BUILD_DIR]   (default: $QBLOCK_BUILD or build)
# Ends with "N passed, N failed"; exits 1 if anything failed.  Missing
# peer tools skip their cases.  Every wait is bounded and every server we
# start is killed by PID on exit.

BUILD=$(realpath "${1:-${QBLOCK_BUILD:-build}}")
QBLOCK_NBD=$BUILD/qblock-nbd
QBLOCK_IMG=$BUILD/qblock-img
QBLOCK_IO=$BUILD/qblock-io

for t in "$QBLOCK_NBD" "$QBLOCK_IMG" "$QBLOCK_IO"; do
    if [ ! -x "$t" ]; then
        echo "error: $t is not executable" >&2
        exit 1
    fi
done

. "$(dirname "$0")/lib.sh"

uri() {
    echo "nbd+unix:///$2?socket=$1"
}

# ---- images made by the real tools ------------------------------------
if ! have qemu-img || ! have qemu-io; then
    echo "SKIP: qemu-img / qemu-io not installed"
    echo "0 passed, 0 failed"
    exit 0
fi
qemu-img create -q -f qcow2 "$tmp/base.qcow2" 8M
qemu-io -c 'write -P 0x11 0 1M' -c 'write -P 0x22 4M 64k' "$tmp/base.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b "$tmp/base.qcow2" -F qcow2 "$tmp/top.qcow2"
qemu-io -c 'write -P 0x33 512k 1M' -c 'write -z 6M 64k' "$tmp/top.qcow2" >/dev/null
qemu-img convert -O raw "$tmp/top.qcow2" "$tmp/top.raw"

S=$tmp/q.sock

# ---- qblock-nbd judged by real clients --------------------------------
start_server "$S" "$QBLOCK_NBD" -k "$S" -x fleece -D "fleecing export" \
    -f qcow2 -r -A -t -e 4 "$tmp/top.qcow2" || exit 1

check "qemu-img compare over NBD" \
    qemu-img compare -f raw "$(uri "$S" fleece)" "$tmp/top.raw"

out=$(timeout 30 qemu-img info "$(uri "$S" fleece)" 2>&1)
if grep -q "virtual size: 8 MiB (8388608 bytes)" <<<"$out"; then
    ok "qemu-img info over NBD"
else
    fail "qemu-img info over NBD" "$out"
fi

out=$(timeout 30 qemu-nbd --list -k "$S" 2>&1)
if grep -q "export: 'fleece'" <<<"$out" &&
   grep -q "description: fleecing export" <<<"$out" &&
   grep -q "size:  8388608" <<<"$out" &&
   grep -q "readonly" <<<"$out" &&
   grep -q "qemu:allocation-depth" <<<"$out"; then
    ok "qemu-nbd --list against qblock-nbd"
else
    fail "qemu-nbd --list against qblock-nbd" "$out"
fi

if have nbdinfo; then
    out=$(timeout 30 nbdinfo --list "nbd+unix://?socket=$S" 2>&1)
    if grep -q 'export="fleece"' <<<"$out" &&
       grep -q "description: fleecing export" <<<"$out"; then
        ok "nbdinfo --list"
    else
        fail "nbdinfo --list" "$out"
    fi

    # base:allocation must agree with qemu-nbd serving the same image.
    ours=$(timeout 30 nbdinfo --map "$(uri "$S" fleece)" 2>&1)
    depth=$(timeout 30 nbdinfo --map=qemu:allocation-depth \
            "$(uri "$S" fleece)" 2>&1)
    QS=$tmp/qemu.sock
    stop_server
    if start_server "$QS" qemu-nbd -k "$QS" -f qcow2 -r -A -t \
            "$tmp/top.qcow2"; then
        theirs=$(timeout 30 nbdinfo --map "$(uri "$QS")" 2>&1)
        tdepth=$(timeout 30 nbdinfo --map=qemu:allocation-depth \
                 "$(uri "$QS")" 2>&1)
        stop_server
        if [ "$ours" = "$theirs" ]; then
            ok "nbdinfo --map matches qemu-nbd"
        else
            fail "nbdinfo --map matches qemu-nbd" \
                 "$(diff <(echo "$theirs") <(echo "$ours"))"
        fi
        if [ "$depth" = "$tdepth" ]; then
            ok "nbdinfo --map=qemu:allocation-depth matches qemu-nbd"
        else
            fail "nbdinfo --map=qemu:allocation-depth matches qemu-nbd" \
                 "$(diff <(echo "$tdepth") <(echo "$depth"))"
        fi
    else
        fail "qemu-nbd reference server"
    fi
    start_server "$S" "$QBLOCK_NBD" -k "$S" -x fleece -f qcow2 -r -t -e 4 \
        "$tmp/top.qcow2" || exit 1
else
    skip "nbdinfo (libnbd-bin not installed)"
fi

if have nbdcopy; then
    # -e 4 on a read-only export advertises multi-conn: 4 connections.
    check "nbdcopy export to file" \
        nbdcopy --connections=4 --requests=32 "$(uri "$S" fleece)" \
        "$tmp/copy.raw"
    check "nbdcopy result equals the image" \
        cmp "$tmp/copy.raw" "$tmp/top.raw"
else
    skip "nbdcopy (libnbd-bin not installed)"
fi

check "qblock-img compare through our client" \
    "$QBLOCK_IMG" compare -f raw -F raw "$(uri "$S" fleece)" "$tmp/top.raw"
stop_server

# ---- writes through a writable export land in the image ---------------
cp "$tmp/top.qcow2" "$tmp/w.qcow2"
start_server "$S" "$QBLOCK_NBD" -k "$S" -f qcow2 -t "$tmp/w.qcow2" || exit 1
check "qemu-io writes over NBD" \
    qemu-io -f raw -c 'write -P 0x5a 2M 256k' -c 'write -z 0 64k' \
    -c 'discard 7M 64k' -c 'flush' "$(uri "$S")"
check "qemu-io reads back over NBD" \
    qemu-io -f raw -c 'read -P 0x5a 2M 256k' -c 'read -P 0 0 64k' "$(uri "$S")"
stop_server
check "writes landed in the image" \
    qemu-io -r -c 'read -P 0x5a 2M 256k' -c 'read -P 0 0 64k' \
    -c 'read -P 0x11 64k 448k' "$tmp/w.qcow2"
check "image is consistent (qemu-img check)" qemu-img check -q "$tmp/w.qcow2"

# ---- without -t the server exits after its client ---------------------
start_server "$S" "$QBLOCK_NBD" -k "$S" -f qcow2 -r "$tmp/top.qcow2" || exit 1
timeout 30 qemu-img compare -f raw "$(uri "$S")" "$tmp/top.raw" >/dev/null 2>&1
for _ in $(seq 100); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then
    fail "qblock-nbd exits after the last client without -t"
    stop_server
else
    ok "qblock-nbd exits after the last client without -t"
fi

# ---- --fork and --pid-file --------------------------------------------
rm -f "$S"
if timeout 30 "$QBLOCK_NBD" --fork --pid-file "$tmp/pid" -k "$S" -f qcow2 \
        -r -t "$tmp/top.qcow2" && [ -S "$S" ] && [ -s "$tmp/pid" ]; then
    server_pid=$(cat "$tmp/pid")
    pids+=("$server_pid")
    check "--fork server answers" \
        qemu-img compare -f raw "$(uri "$S")" "$tmp/top.raw"
    kill "$server_pid"
    for _ in $(seq 50); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ ! -S "$S" ]; then
        ok "SIGTERM removes the socket"
    else
        fail "SIGTERM removes the socket"
    fi
else
    fail "--fork with --pid-file"
fi

# ---- -B: a persistent dirty bitmap as qemu:dirty-bitmap:NAME -----------
if have nbdinfo; then
    qemu-img create -q -f qcow2 "$tmp/bm.qcow2" 4M
    qemu-img bitmap --add "$tmp/bm.qcow2" bm0
    qemu-io -c 'write 1M 64k' "$tmp/bm.qcow2" >/dev/null
    start_server "$S" "$QBLOCK_NBD" -k "$S" -r -t -B bm0 "$tmp/bm.qcow2" ||
        exit 1
    out=$(timeout 30 nbdinfo --map=qemu:dirty-bitmap:bm0 "$(uri "$S")" 2>&1)
    stop_server
    expect=$(printf '%10s %11s %4s  %s\n' 0 1048576 0 clean \
             1048576 65536 1 dirty 1114112 3080192 0 clean)
    if [ "$out" = "$expect" ]; then
        ok "nbdinfo --map=qemu:dirty-bitmap:bm0 (-B)"
    else
        fail "nbdinfo --map=qemu:dirty-bitmap:bm0 (-B)" "$out"
    fi
fi

# ---- qblock's client against real servers -----------------------------
QS=$tmp/qemu.sock
if start_server "$QS" qemu-nbd -k "$QS" -x exp -f qcow2 -r -t "$tmp/top.qcow2"
then
    check "qblock-img convert from qemu-nbd" \
        "$QBLOCK_IMG" convert -O raw "$(uri "$QS" exp)" "$tmp/conv.raw"
    check "converted data equals the image" cmp "$tmp/conv.raw" "$tmp/top.raw"
    out=$(timeout 30 "$QBLOCK_NBD" -L -k "$QS" 2>&1)
    theirs=$(timeout 30 qemu-nbd -L -k "$QS" 2>&1)
    if [ "$out" = "$theirs" ]; then
        ok "qblock-nbd -L output equals qemu-nbd -L"
    else
        fail "qblock-nbd -L output equals qemu-nbd -L" \
             "$(diff <(echo "$theirs") <(echo "$out"))"
    fi
    ours=$(timeout 30 "$QBLOCK_IMG" map --output=json "$(uri "$QS" exp)" 2>&1)
    theirs=$(timeout 30 qemu-img map --output=json "$(uri "$QS" exp)" 2>&1)
    if [ "$ours" = "$theirs" ]; then
        ok "qblock-img map over NBD equals qemu-img map"
    else
        fail "qblock-img map over NBD equals qemu-img map" \
             "$(diff <(echo "$theirs") <(echo "$ours"))"
    fi
    stop_server
else
    fail "qemu-nbd reference server"
fi

if have nbdkit; then
    KS=$tmp/kit.sock
    if start_server "$KS" nbdkit -f --unix "$KS" memory 16M; then
        check "qblock-io writes to nbdkit memory" \
            "$QBLOCK_IO" -f raw -c 'write -P 0x42 1M 2M' \
            -c 'write -z 4M 1M' -c 'flush' "$(uri "$KS")"
        check "qblock-io reads back from nbdkit" \
            "$QBLOCK_IO" -f raw -r -c 'read -P 0x42 1M 2M' \
            -c 'read -P 0 4M 1M' "$(uri "$KS")"
        check "qemu-io agrees with what we wrote" \
            qemu-io -f raw -r -c 'read -P 0x42 1M 2M' "$(uri "$KS")"
        check "qblock-img convert from nbdkit" \
            "$QBLOCK_IMG" convert -O qcow2 "$(uri "$KS")" "$tmp/kit.qcow2"
        check "converted nbdkit data is right" \
            qemu-io -r -c 'read -P 0x42 1M 2M' -c 'read -P 0 0 1M' \
            "$tmp/kit.qcow2"
        stop_server
    else
        fail "nbdkit memory server"
    fi
else
    skip "nbdkit (not installed)"
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
