#!/bin/bash
# Builds a tiny busybox initramfs (clients.md recipe c3) whose /init prints what Linux
# sees of the TPM (/sys/class/tpm/tpm0: version, ACPI description, driver, every PCR of
# every bank) to the console between "=== TPM check start/end ===" and powers off.
# Usage: build-initramfs-tpm.sh OUT.cpio.gz   Needs: busybox-static, cpio, gzip.
set -euo pipefail
out=${1:?usage: $0 OUT.cpio.gz}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,proc,sys,dev}
cp "$(command -v busybox)" "$root/bin/busybox"
for a in sh mount cat ls echo poweroff grep dmesg basename readlink; do ln -s busybox "$root/bin/$a"; done
cat > "$root/init" <<'EOT'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
t=/sys/class/tpm/tpm0
echo "=== TPM check start ==="
dmesg | grep -i tpm
echo "class: $(ls /sys/class/tpm/ 2>&1)"
echo "devices: $(echo $(ls /dev/tpm0 /dev/tpmrm0 2>&1))"
echo "tpm_version_major: $(cat $t/tpm_version_major 2>&1)"
# tpm_crb binds the ACPI device itself, tpm_tis a PNP device whose firmware_node is it.
acpi=$t/device; [ -e $acpi/hid ] || acpi=$t/device/firmware_node
echo "description: $(cat $acpi/description 2>&1)"
echo "hid: $(cat $acpi/hid 2>&1)"
echo "driver: $(basename "$(readlink $t/device/driver)")"
for b in sha1 sha256 sha384 sha512; do
  [ -d $t/pcr-$b ] || continue
  i=0
  while [ $i -lt 24 ]; do echo "pcr-$b/$i: $(cat $t/pcr-$b/$i 2>&1)"; i=$((i + 1)); done
done
echo "=== TPM check end ==="
poweroff -f
EOT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
