#!/usr/bin/env bash
# Builds what the CUSE guest test boots under QEMU (TCG):
#   OUT/vmlinux   Debian's kernel as an ELF with a PVH entry (boots ~4 s faster than the
#                 XZ bzImage under TCG); falls back to a copy of the bzImage
#   OUT/initrd    uncompressed newc cpio (no unpack cost in the guest): busybox, the
#                 fuse/cuse and tpm_vtpm_proxy modules, node (stripped), this project (dist + koffi;
#                 /usr/bin/tswtpm and /usr/bin/tswtpm_ioctl),
#                 libtpms, swtpm_ioctl, tpm2-tools with the device TCTI, and /init
# The system part is cached in OUT/base-*.cpio, keyed by the versions it is built from;
# the project part is rebuilt every time and appended (the kernel unpacks concatenated
# cpio archives in order).
#
# usage: test/guest/build.sh OUT_DIR [EXTRA_DIR]   prints "KERNEL=... INITRD=... KVER=..."
#   EXTRA_DIR (optional) is copied to /opt/extra in the guest (test data made on the host)
# Needs (Debian 12): linux-image-amd64 busybox-static cpio swtpm-tools tpm2-tools
#                    libtss2-tcti-device0 libtpms0 binutils xz-utils
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
OUT=$(realpath -m "${1:?usage: build.sh OUT_DIR [EXTRA_DIR]}")
EXTRA=${2:-}
mkdir -p "$OUT"

# Newest installed kernel that has the cuse module (or has it built in).
KVER=
for v in $(ls -1 /lib/modules 2>/dev/null | sort -rV); do
  [ -e "/boot/vmlinuz-$v" ] || continue
  if ls "/lib/modules/$v/kernel/fs/fuse/cuse.ko"* >/dev/null 2>&1 ||
    grep -q '/cuse.ko' "/lib/modules/$v/modules.builtin" 2>/dev/null; then
    KVER=$v
    break
  fi
done
[ -n "$KVER" ] || { echo "no /boot/vmlinuz-* with a cuse module (apt install linux-image-amd64)" >&2; exit 2; }
MODDIR=/lib/modules/$KVER

# --- kernel: PVH-bootable vmlinux out of the XZ-compressed bzImage ---------------------
KERNEL=$OUT/vmlinux-$KVER
if [ ! -s "$KERNEL" ]; then
  off=$(LC_ALL=C grep -abo "$(printf '\3757zXZ')" "/boot/vmlinuz-$KVER" | head -1 | cut -d: -f1 || true)
  # xz complains about the data after the stream; the ELF before it is complete.
  [ -z "$off" ] || tail -c +$((off + 1)) "/boot/vmlinuz-$KVER" | xz -dc >"$KERNEL.tmp" 2>/dev/null || true
  if [ -s "$KERNEL.tmp" ] && [ "$(head -c 4 "$KERNEL.tmp" | tail -c 3)" = ELF ]; then
    mv "$KERNEL.tmp" "$KERNEL"
  else
    rm -f "$KERNEL.tmp"
    KERNEL=/boot/vmlinuz-$KVER
  fi
fi

# --- system part (cached) ---------------------------------------------------------------
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo none; }
KEY=$(printf '%s\n' "$KVER" "$(node --version)" "$(pkgver busybox-static)" "$(pkgver swtpm-tools)" \
  "$(pkgver tpm2-tools)" "$(pkgver libtpms0)" "$(pkgver libtss2-tcti-device0)" "$(pkgver libseccomp2)" \
  "$(sha256sum "$0" | cut -c1-16)" | sha256sum | cut -c1-16)
BASE=$OUT/base-$KEY.cpio
ROOT=$(mktemp -d "$OUT/root.XXXX")
trap 'rm -rf "$ROOT"' EXIT

copy_elf() { # SRC DST: the binary plus every library ldd lists, at the same paths
  install -D -m 0755 "$1" "$ROOT$2"
  ldd "$1" | awk '/=> \//{print $3} /^\t\/lib64/{print $1}' | while read -r lib; do
    [ -e "$ROOT$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$ROOT$lib"
  done
}

if [ ! -s "$BASE" ]; then
  rm -f "$OUT"/base-*.cpio
  mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,lib/modules,proc,sys,dev,tmp,run,etc}
  cp /bin/busybox "$ROOT/bin/busybox"
  for app in $(/bin/busybox --list-full); do
    [ -e "$ROOT/$app" ] || ln -s /bin/busybox "$ROOT/$app"
  done
  for m in fuse cuse; do
    grep -q "/$m.ko" "$MODDIR/modules.builtin" 2>/dev/null && continue
    src=$(ls "$MODDIR/kernel/fs/fuse/$m.ko"* | head -1)
    case $src in
    *.xz) xz -dc "$src" >"$ROOT/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$src" >"$ROOT/lib/modules/$m.ko" ;;
    *) cp "$src" "$ROOT/lib/modules/$m.ko" ;;
    esac
  done
  # The vTPM proxy (chardev --vtpm-proxy): `modinfo -F depends` is empty (TCG_TPM=y).
  if ! grep -q '/tpm_vtpm_proxy.ko' "$MODDIR/modules.builtin" 2>/dev/null; then
    src=$(ls "$MODDIR/kernel/drivers/char/tpm/tpm_vtpm_proxy.ko"* | head -1)
    case $src in
    *.xz) xz -dc "$src" >"$ROOT/lib/modules/tpm_vtpm_proxy.ko" ;;
    *.zst) zstd -qdc "$src" >"$ROOT/lib/modules/tpm_vtpm_proxy.ko" ;;
    *) cp "$src" "$ROOT/lib/modules/tpm_vtpm_proxy.ko" ;;
    esac
  fi
  strip -o "$OUT/node.stripped" "$(readlink -f "$(command -v node)")"
  copy_elf "$OUT/node.stripped" /usr/bin/node
  rm -f "$OUT/node.stripped"
  copy_elf /usr/bin/swtpm_ioctl /usr/bin/swtpm_ioctl
  copy_elf /usr/bin/tpm2 /usr/bin/tpm2
  for t in startup getrandom pcrextend pcrread createprimary flushcontext; do
    ln -s tpm2 "$ROOT/usr/bin/tpm2_$t"
  done
  MA=/usr/lib/x86_64-linux-gnu
  copy_elf "$MA/libtss2-tcti-device.so.0" "$MA/libtss2-tcti-device.so.0"
  copy_elf "$(readlink -f "$MA/libtpms.so.0")" "$MA/libtpms.so.0"
  # dlopen()ed by the seccomp filter (src/sandbox/seccomp.ts), so ldd of node misses it
  copy_elf "$(readlink -f "$MA/libseccomp.so.2")" "$MA/libseccomp.so.2"
  mknod -m 0600 "$ROOT/dev/console" c 5 1
  (cd "$ROOT" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) >"$BASE.tmp"
  mv "$BASE.tmp" "$BASE"
  rm -rf "${ROOT:?}"/*
fi

# --- project part (every run) -----------------------------------------------------------
P=$ROOT/opt/tswtpm
mkdir -p "$P/node_modules/@koromix" "$ROOT/usr/bin"
cp "$PROJECT/package.json" "$P/"
cp -r "$PROJECT/bin" "$P/"
(cd "$PROJECT" && find dist/src dist/test/guest -name '*.js' -print0 | cpio --null -pdm --quiet "$P")
cp -r "$PROJECT/node_modules/koffi" "$P/node_modules/"
cp -r "$PROJECT/node_modules/@koromix/koffi-linux-x64" "$P/node_modules/@koromix/"
rm -rf "$P/node_modules/koffi/doc" "$P/node_modules/koffi/vendor" \
  "$P/node_modules/@koromix/koffi-linux-x64/musl_x64"
for b in tswtpm tswtpm_ioctl; do
  printf '#!/bin/sh\nexec /usr/bin/node /opt/tswtpm/bin/%s.js "$@"\n' $b >"$ROOT/usr/bin/$b"
  chmod 0755 "$ROOT/usr/bin/$b"
done
install -m 0755 "$HERE/init" "$ROOT/init"
[ -z "$EXTRA" ] || cp -r "$EXTRA" "$ROOT/opt/extra"
(cd "$ROOT" && find . -mindepth 1 -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) >"$OUT/project.cpio"
cat "$BASE" "$OUT/project.cpio" >"$OUT/initrd"
rm -f "$OUT/project.cpio"
echo "KERNEL=$KERNEL INITRD=$OUT/initrd KVER=$KVER"
