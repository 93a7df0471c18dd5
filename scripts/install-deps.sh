#!/usr/bin/env bash
# Installs the Debian 12 packages tswtpm and its test suite need:
#   libtpms0            the TPM itself (loaded with koffi)
#   libseccomp2         the --seccomp filter (on by default, as in swtpm; loaded with koffi)
#   swtpm, swtpm-tools  C swtpm 0.7.1 and swtpm_ioctl, the oracle of the differential tests
#   tpm2-tools          real TPM clients (tcti-swtpm)
#   qemu-system-x86, seabios, linux-image-amd64, busybox-static, cpio
#                       QEMU boot and guest tests (TCG)
#   gcc, linux-libc-dev the FUSE uapi layout check of the CUSE front end
#   tshark              reads the `--pcap` captures back (pcap test)
#   libvirt-daemon-driver-qemu, libvirt-clients, libvirt-daemon
#                       libvirtd 9.0 + virsh, started by hand in the libvirt end-to-end
#                       test (no libvirt-daemon-system: no systemd units, no default config)
#   g++, libclang-rt-14-dev
#                       the Jazzer.js fuzzer's native addon, built against Debian's
#                       libFuzzer by scripts/fuzz-addon.js (docs/reliability.md)
# Node.js 20 and npm are expected to be there already.
# `--runtime` installs only what running tswtpm needs (libtpms0, libseccomp2).
set -euo pipefail
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
pkgs=(libtpms0 libseccomp2 swtpm swtpm-tools tpm2-tools socat qemu-system-x86 seabios qemu-utils
  linux-image-amd64 busybox-static cpio gzip kmod gcc libc6-dev linux-libc-dev python3 procps
  tshark g++ libclang-rt-14-dev libvirt-daemon-driver-qemu libvirt-clients libvirt-daemon)
if [ "${1:-}" = --runtime ]; then pkgs=(libtpms0 libseccomp2); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
