#!/bin/bash
#
# NBD over TLS: qblock-nbd and qblockd serving with x509 and PSK
# credentials, judged by real clients (libnbd's nbdinfo/nbdcopy, qemu-img,
# qemu-io), and qblock's TLS client (qblock-nbd --list, qblockd's nbd
# nodes) against the real qemu-nbd.  The CA and certificates are made with
# certtool (gnutls-bin) in a temporary directory at every run.
#
# usage: nbd-tls.sh [BUILD_DIR]   (default: $QBLOCK_BUILD or build)
# Ends with "N passed, N failed"; exits 1 if anything failed.  Missing
# peer tools skip their cases.  Every wait is bounded and every server we
# start is killed by PID.

BUILD=$(realpath "${1:-${QBLOCK_BUILD:-build}}")
QBLOCK_NBD=$BUILD/qblock-nbd
QBLOCKD=$BUILD/qblockd

for t in "$QBLOCK_NBD" "$QBLOCKD"; do
    if [ ! -x "$t" ]; then
        echo "error: $t is not executable" >&2
        exit 1
    fi
done

. "$(dirname "$0")/lib.sh"

# refuse NAME COMMAND...: passes if the command fails (in bounded time).
refuse() {
    local name=$1 out
    shift
    if out=$(timeout 60 "$@" 2>&1); then
        fail "$name" "unexpectedly succeeded: $out"
    elif [ $? -eq 124 ]; then
        fail "$name" "timed out"
    else
        ok "$name"
    fi
}

if ! have certtool; then
    skip "NBD over TLS (certtool from gnutls-bin not installed)"
    echo "$passed passed, $failed failed, $skipped skipped"
    exit 0
fi

# ---- Credentials ---------------------------------------------------------

ca=$tmp/ca
srv=$tmp/server
cli=$tmp/client
psk=$tmp/psk
mkdir -p "$ca" "$srv" "$cli" "$psk" "$tmp/wrong"

# gen_cert CA-DIR DIR NAME TEMPLATE-LINES...: a key and a certificate
# signed by the CA in CA-DIR.
gen_cert() {
    local cadir=$1 dir=$2 name=$3
    shift 3
    printf '%s\n' "$@" expiration_days=2 >"$tmp/$name.info"
    certtool --generate-privkey --outfile "$dir/$name-key.pem" \
        >/dev/null 2>&1 &&
    certtool --generate-certificate --load-privkey "$dir/$name-key.pem" \
        --load-ca-certificate "$cadir/ca-cert.pem" \
        --load-ca-privkey "$cadir/ca-key.pem" --template "$tmp/$name.info" \
        --outfile "$dir/$name-cert.pem" >/dev/null 2>&1
}

# gen_ca DIR: a self-signed CA.
gen_ca() {
    printf '%s\n' "cn = qblock test CA" ca cert_signing_key \
        expiration_days=2 >"$tmp/ca.info"
    certtool --generate-privkey --outfile "$1/ca-key.pem" >/dev/null 2>&1 &&
    certtool --generate-self-signed --load-privkey "$1/ca-key.pem" \
        --template "$tmp/ca.info" --outfile "$1/ca-cert.pem" >/dev/null 2>&1
}

if ! gen_ca "$ca" ||
   ! gen_cert "$ca" "$srv" server "organization = qblock" "cn = localhost" \
        "dns_name = localhost" tls_www_server encryption_key signing_key ||
   ! gen_cert "$ca" "$cli" client "organization = qblock" "cn = client" \
        tls_www_client encryption_key signing_key; then
    fail "certtool generates the test CA and certificates"
    echo "$passed passed, $failed failed, $skipped skipped"
    exit 1
fi
cp "$ca/ca-cert.pem" "$srv/"
cp "$ca/ca-cert.pem" "$cli/"
# A client whose certificate another CA signed: the server refuses it.
mkdir -p "$tmp/wrongca"
gen_ca "$tmp/wrongca"
gen_cert "$tmp/wrongca" "$tmp/wrong" client "cn = intruder" \
    tls_www_client encryption_key signing_key
cp "$ca/ca-cert.pem" "$tmp/wrong/"
key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "alice:$key" >"$psk/keys.psk"
echo "alice:00$key" >"$tmp/wrong-keys.psk"
ok "certtool generates the test CA and certificates"

# ---- Credential objects ------------------------------------------------------

qemu-img create -f qcow2 "$tmp/img.qcow2" 4M >/dev/null
qemu-io -c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 2M 512k' \
    "$tmp/img.qcow2" >/dev/null

SOBJ="tls-creds-x509,id=tls0,dir=$srv,endpoint=server"
COBJ="tls-creds-x509,id=tls0,dir=$cli,endpoint=client"
S=$tmp/tls.sock

refuse "missing credentials directory is refused" \
    "$QBLOCK_NBD" --object "tls-creds-x509,id=tls0,dir=$tmp/none,endpoint=server" \
    --tls-creds tls0 -k "$S" "$tmp/img.qcow2"
refuse "client credentials cannot serve" \
    "$QBLOCK_NBD" --object "$COBJ" --tls-creds tls0 -k "$S" "$tmp/img.qcow2"
refuse "unknown --tls-creds id is refused" \
    "$QBLOCK_NBD" --object "$SOBJ" --tls-creds nope -k "$S" "$tmp/img.qcow2"

# ---- qblock-nbd with x509 ----------------------------------------------------

uri() {
    echo "nbds+unix:///?socket=$S&tls-certificates=$1"
}
IOPTS="driver=nbd,server.type=unix,server.path=$S,tls-creds=tls0,tls-hostname=localhost"

if start_server "$S" "$QBLOCK_NBD" --object "$SOBJ" --tls-creds tls0 \
        -t -e 4 -k "$S" "$tmp/img.qcow2"; then
    if have nbdinfo; then
        out=$(timeout 30 nbdinfo --list "$(uri "$cli")" 2>&1)
        if grep -q "with TLS" <<<"$out" &&
           grep -q "export-size: 4194304" <<<"$out"; then
            ok "nbdinfo --list over TLS"
        else
            fail "nbdinfo --list over TLS" "$out"
        fi
        out=$(timeout 30 nbdinfo --list "nbd+unix:///?socket=$S" 2>&1)
        # libnbd reports NBD_REP_ERR_TLS_REQD as ENOTSUP.
        if [ $? -ne 0 ] && grep -q "not supported" <<<"$out"; then
            ok "plain nbdinfo is refused"
        else
            fail "plain nbdinfo is refused" "$out"
        fi
        refuse "client certificate of another CA is refused" \
            nbdinfo --size "$(uri "$tmp/wrong")"
        check "nbdcopy out of the TLS export" \
            nbdcopy "$(uri "$cli")" "$tmp/copy.raw"
        check "nbdcopy copy is identical" \
            qemu-img compare -U "$tmp/copy.raw" "$tmp/img.qcow2"
        qemu-img create -f raw "$tmp/src.raw" 4M >/dev/null
        qemu-io -f raw -c 'write -P 0x77 1M 1M' "$tmp/src.raw" >/dev/null
        check "nbdcopy into the TLS export" \
            nbdcopy "$tmp/src.raw" "$(uri "$cli")"
    else
        skip "libnbd clients (nbdinfo not installed)"
    fi
    check "qemu-img info over TLS" \
        qemu-img info --object "$COBJ" --image-opts "$IOPTS"
    check "qemu-io writes over TLS" \
        qemu-io --object "$COBJ" --image-opts \
        -c 'write -P 0x33 3M 256k' "$IOPTS"
    check "qemu-img compare over TLS" \
        qemu-img compare -U --object "$COBJ" --image-opts "$IOPTS" \
        "driver=qcow2,file.filename=$tmp/img.qcow2"
    refuse "plain qemu-img is refused" \
        qemu-img info --image-opts \
        "driver=nbd,server.type=unix,server.path=$S"
    refuse "qemu-img checking the wrong host name is refused" \
        qemu-img info --object "$COBJ" --image-opts \
        "driver=nbd,server.type=unix,server.path=$S,tls-creds=tls0,tls-hostname=elsewhere"
    check "qblock-nbd --list over TLS" \
        "$QBLOCK_NBD" --object "$COBJ" --tls-creds tls0 \
        --tls-hostname localhost -L -k "$S"
    out=$(timeout 30 "$QBLOCK_NBD" -L -k "$S" 2>&1)
    if [ $? -ne 0 ] && grep -q "TLS negotiation required" <<<"$out"; then
        ok "plain qblock-nbd --list is refused with TLS_REQD"
    else
        fail "plain qblock-nbd --list is refused with TLS_REQD" "$out"
    fi
    stop_server
    check "data written over TLS reached the image" \
        qemu-io -r -c 'read -P 0x33 3M 256k' "$tmp/img.qcow2"
    if have nbdinfo; then
        check "data nbdcopy wrote over TLS reached the image" \
            qemu-io -r -c 'read -P 0x77 1M 1M' "$tmp/img.qcow2"
    fi
else
    fail "qblock-nbd serves with x509 credentials" "$(cat "$tmp/server.log")"
fi

# ---- qblock-nbd with PSK -----------------------------------------------------

if start_server "$S" "$QBLOCK_NBD" \
        --object "tls-creds-psk,id=tls0,dir=$psk,endpoint=server" \
        --tls-creds tls0 -t -k "$S" "$tmp/img.qcow2"; then
    if have nbdinfo; then
        out=$(timeout 30 nbdinfo --size \
              "nbds+unix://alice@/?socket=$S&tls-psk-file=$psk/keys.psk" 2>&1)
        if [ "$out" = 4194304 ]; then
            ok "nbdinfo over TLS-PSK"
        else
            fail "nbdinfo over TLS-PSK" "$out"
        fi
        refuse "nbdinfo with the wrong PSK is refused" \
            nbdinfo --size \
            "nbds+unix://alice@/?socket=$S&tls-psk-file=$tmp/wrong-keys.psk"
    else
        skip "nbdinfo over TLS-PSK (nbdinfo not installed)"
    fi
    check "qemu-img compare over TLS-PSK" \
        qemu-img compare -U \
        --object "tls-creds-psk,id=tls0,dir=$psk,endpoint=client,username=alice" \
        --image-opts "driver=nbd,server.type=unix,server.path=$S,tls-creds=tls0" \
        "driver=qcow2,file.filename=$tmp/img.qcow2"
    check "qblock-nbd --list over TLS-PSK" \
        "$QBLOCK_NBD" \
        --object "tls-creds-psk,id=tls0,dir=$psk,endpoint=client,username=alice" \
        --tls-creds tls0 -L -k "$S"
    stop_server
else
    fail "qblock-nbd serves with PSK credentials" "$(cat "$tmp/server.log")"
fi

# ---- qblockd: TLS client to qemu-nbd, TLS server to libnbd -----------------

Q=$tmp/qemu.sock
D=$tmp/qblockd.sock
cp "$tmp/img.qcow2" "$tmp/chain.qcow2"
rm -f "$Q"
qemu-nbd --object "$SOBJ" --tls-creds tls0 -t -f qcow2 -k "$Q" \
    "$tmp/chain.qcow2" >"$tmp/qemu-nbd.log" 2>&1 &
qpid=$!
pids+=("$qpid")
if wait_socket "$Q"; then
    check "qblock-nbd --list of qemu-nbd over TLS" \
        "$QBLOCK_NBD" --object "$COBJ" --tls-creds tls0 \
        --tls-hostname localhost -L -k "$Q"
    if start_server "$D" "$QBLOCKD" \
            --object "tls-creds-x509,id=c0,dir=$cli,endpoint=client" \
            --object "tls-creds-x509,id=s0,dir=$srv,endpoint=server" \
            --blockdev "driver=nbd,node-name=n0,server.type=unix,server.path=$Q,tls-creds=c0,tls-hostname=localhost" \
            --nbd-server "addr.type=unix,addr.path=$D,tls-creds=s0" \
            --export type=nbd,id=e0,node-name=n0,name=chain,writable=on; then
        if have nbdinfo; then
            check "nbdcopy through qblockd's TLS server and TLS client" \
                nbdcopy "nbds+unix:///chain?socket=$D&tls-certificates=$cli" \
                "$tmp/chain.raw"
            check "the chained copy is identical" \
                qemu-img compare -U "$tmp/chain.raw" "$tmp/chain.qcow2"
            refuse "plain client of qblockd's TLS server is refused" \
                nbdinfo --size "nbd+unix:///chain?socket=$D"
        fi
        check "qemu-io writes through both TLS hops" \
            qemu-io --object "$COBJ" --image-opts -c 'write -P 0x44 0 64k' \
            "driver=nbd,server.type=unix,server.path=$D,export=chain,tls-creds=tls0,tls-hostname=localhost"
        stop_server
        check "the write reached qemu-nbd's image" \
            qemu-io -U -r -c 'read -P 0x44 0 64k' "$tmp/chain.qcow2"
    else
        fail "qblockd serves over TLS" "$(cat "$tmp/server.log")"
    fi
    refuse "qblockd refuses server credentials for an nbd node" \
        "$QBLOCKD" --object "tls-creds-x509,id=c0,dir=$srv,endpoint=server" \
        --blockdev "driver=nbd,node-name=n0,server.type=unix,server.path=$Q,tls-creds=c0"
    refuse "a plain nbd node cannot attach to qemu-nbd with TLS" \
        "$QBLOCKD" \
        --blockdev "driver=nbd,node-name=n0,server.type=unix,server.path=$Q"
else
    fail "qemu-nbd serves with x509 credentials" "$(cat "$tmp/qemu-nbd.log")"
fi
kill "$qpid" 2>/dev/null
wait "$qpid" 2>/dev/null

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
