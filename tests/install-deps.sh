#!/bin/sh
# Install the Debian packages minidbx needs to build and test, if missing.
# Needs root (or sudo) only when something is missing.
set -u
# clang and libclang-rt-14-dev (libFuzzer): the clang build, tests/fuzz
# libxml2-dev: the s3:// backend; ceph-mon ceph-osd radosgw: the Ceph RGW
# that tests/s3 runs on 127.0.0.1
pkgs="gcc libc6-dev meson ninja-build pkg-config python3 binutils git
      liblmdb-dev libssl-dev libcjson-dev check libsqlite3-dev
      libmicrohttpd-dev libcurl4-openssl-dev libjson-c-dev curl openssl clang
      libclang-rt-14-dev valgrind libxml2-dev ceph-mon ceph-osd radosgw"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
