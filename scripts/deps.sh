#!/usr/bin/env bash
# Installs what agentpen needs to build and run, on Debian/Ubuntu, as root or through sudo.
# --test: also what only the tests and benchmarks use (the test world's servers, the
# real agents' installs, the TUI test's terminal).
set -euo pipefail
packages=(bubblewrap passt nftables iproute2 libseccomp-dev libnl-3-dev libnl-route-3-dev
          pkg-config gcc make git python3 util-linux)
if [ "${1:-}" = --test ]; then
    packages+=(openssl curl nginx-light hyperfine iputils-ping python3-venv python3-pip pipx unzip tmux openssh-server xfsprogs btrfs-progs)
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# pasta opens /dev/net/tun as the calling user; some images ship it 0600 instead of
# the distribution's 0666.
if [ -e /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != "666" ]; then
    $sudo chmod 0666 /dev/net/tun
fi
# make fuzz and make test build libFuzzer targets with `swiftc -sanitize=fuzzer,address`:
# the runtime ships with the swift.org toolchain (not with Debian's clang), so only say
# when it is missing; fuzz/run.sh then fails with the same message.
if command -v swiftc >/dev/null; then
    rt=$(dirname "$(readlink -f "$(command -v swiftc)")")/../lib/clang
    if ! compgen -G "$rt/*/lib/linux/libclang_rt.fuzzer-$(uname -m).a" >/dev/null; then
        echo "deps: this Swift toolchain has no libFuzzer runtime ($rt/*/lib/linux); install the swift.org toolchain for make fuzz" >&2
    fi
fi
