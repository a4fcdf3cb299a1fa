#!/bin/sh
# Install (on Debian 12) whatever qblock needs to build and test that is not
# present yet.  A quick no-op when everything is installed.
#   scripts/ensure-deps.sh           build and test dependencies
#   scripts/ensure-deps.sh --bench   also what 'make bench' needs
set -e

BUILD_PKGS="meson ninja-build pkg-config gcc libglib2.0-dev libjson-glib-dev \
zlib1g-dev libaio-dev liburing-dev libgnutls28-dev python3"
TEST_PKGS="qemu-utils qemu-system-x86 libnbd-bin nbdkit gnutls-bin"
BENCH_PKGS=""
if [ "$1" = --bench ]; then
    BENCH_PKGS="fio python3-matplotlib"
fi

missing=""
for p in $BUILD_PKGS $TEST_PKGS $BENCH_PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "ensure-deps: missing packages:$missing" >&2
    echo "ensure-deps: run as root: apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
echo "ensure-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $missing
