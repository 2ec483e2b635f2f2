#!/bin/sh
# Install the Debian packages minidbx needs to build and test, if missing.
# Needs root (or sudo) only when something is missing.
set -u
# clang and libclang-rt-14-dev (libFuzzer): the clang build, tests/fuzz
# libxml2-dev: the s3:// backend
pkgs="gcc libc6-dev meson ninja-build pkg-config python3 binutils git
      liblmdb-dev libssl-dev libcjson-dev check libsqlite3-dev
      libmicrohttpd-dev libcurl4-openssl-dev libjson-c-dev curl openssl clang
      libclang-rt-14-dev valgrind libxml2-dev"
# The Ceph RGW that tests/s3 runs on 127.0.0.1. Where these cannot be
# installed the run goes on, and the s3 tests say so and count as skipped.
ceph="ceph-mon ceph-osd radosgw"

# install_missing LIST: apt-get install what of LIST is not installed.
install_missing() {
    missing=""
    for p in $1; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "installing:$missing"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

export DEBIAN_FRONTEND=noninteractive
install_missing "$pkgs" || exit 1
install_missing "$ceph" ||
    echo "WARNING: $ceph could not be installed: the s3 tests (tests/s3) will be SKIPPED" >&2
exit 0
