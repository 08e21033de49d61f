#!/bin/sh
# Installs what vmed's build needs on Debian 12 (and Ubuntu): a C compiler,
# CMake, cJSON, libspng (PNG), libjpeg-turbo (JPEG), FreeType and the fonts the
# Pix2Struct header is drawn with (DejaVu Sans; Liberation Sans stands in
# for the Arial real DePlot used). With --fuzz also
# clang, whose libFuzzer `make fuzz` uses.
set -e
PKGS="build-essential cmake pkg-config libcjson-dev libspng-dev libjpeg62-turbo-dev libfreetype-dev fonts-dejavu-core fonts-liberation libcurl4-openssl-dev"
if [ "$1" = "--fuzz" ]; then PKGS="$PKGS clang libclang-rt-dev"; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
