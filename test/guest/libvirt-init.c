/*
 * /init of the libvirt test's guest (test/interop/libvirt.test.ts): a static program
 * without libc, so the initrd stays a few KiB. QEMU 7.2 puts -initrd just below the
 * top of low RAM, where SeaBIOS's ACPI tables (with the 64 KiB TPM event log) also sit:
 * a large initrd overwrites them and the guest sees no TPM (spec/libvirt.md).
 *
 * On the serial console it prints, each line starting with "@@ ":
 *   boot                      once per boot
 *   pcr N HEX                 /sys/class/tpm/tpm0/pcr-sha256/N for N = 0..7
 *   clock HEX                 the response to TPM2_ReadClock (resetCount, restartCount)
 *   ext I HEX                 every second: TPM2_PCR_Extend of PCR 16 with
 *                             sha256("foo\n"), then PCR 16 (I counts from 1 per boot)
 *   error TEXT                something failed (the guest then stops)
 * Build: gcc -static -nostdlib -ffreestanding -fno-builtin -Os -fno-stack-protector -o init libvirt-init.c
 */
typedef unsigned long u64;

static long sys(long n, long a, long b, long c, long d, long e) {
  long r;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  __asm__ volatile("syscall"
                   : "=a"(r)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                   : "rcx", "r11", "memory");
  return r;
}

#define SYS_read 0
#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_nanosleep 35
#define SYS_exit 60
#define SYS_mkdir 83
#define SYS_mount 165
#define O_RDWR 2

static int out = -1;

static u64 len(const char *s) {
  u64 n = 0;
  while (s[n]) n++;
  return n;
}

static void put(const char *s) { sys(SYS_write, out, (long)s, (long)len(s), 0, 0); }

static void puthex(const unsigned char *b, long n) {
  static const char digits[] = "0123456789ABCDEF";
  char buf[2 * 4096 + 1];
  long i;
  for (i = 0; i < n && i < 4096; i++) {
    buf[2 * i] = digits[b[i] >> 4];
    buf[2 * i + 1] = digits[b[i] & 15];
  }
  buf[2 * i] = 0;
  put(buf);
}

static void putnum(long v) {
  char buf[24];
  int i = 23;
  buf[i] = 0;
  do {
    buf[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  put(buf + i);
}

static void sleep_ms(long ms) {
  long ts[2] = {ms / 1000, (ms % 1000) * 1000000};
  sys(SYS_nanosleep, (long)ts, 0, 0, 0, 0);
}

static void fail(const char *what) {
  put("@@ error ");
  put(what);
  put("\n");
  for (;;) sleep_ms(1000000);
}

/* Prints a sysfs PCR file as it is (upper-case hex and a newline). */
static void pcr_line(const char *label, int n) {
  char path[] = "/sys/class/tpm/tpm0/pcr-sha256/NN";
  char buf[128];
  long fd, r;
  char *p = path + len(path) - 2;
  p[0] = n >= 10 ? (char)('0' + n / 10) : (char)('0' + n);
  p[1] = n >= 10 ? (char)('0' + n % 10) : 0;
  fd = sys(SYS_open, (long)path, 0, 0, 0, 0);
  if (fd < 0) fail(path);
  r = sys(SYS_read, fd, (long)buf, sizeof buf - 1, 0, 0);
  sys(SYS_close, fd, 0, 0, 0, 0);
  if (r <= 0) fail(path);
  buf[r] = 0;
  put(label);
  put(buf);
}

/* One command through /dev/tpm0; returns the response length. */
static long transact(long tpm, const unsigned char *cmd, long n, unsigned char *rsp) {
  if (sys(SYS_write, tpm, (long)cmd, n, 0, 0) != n) fail("write /dev/tpm0");
  return sys(SYS_read, tpm, (long)rsp, 4096, 0, 0);
}

static const unsigned char READ_CLOCK[] = {0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x01, 0x81};

/* TPM2_PCR_Extend(PCR 16) with a password session and one sha256 digest ("foo\n"). */
static const unsigned char EXTEND[] = {
    0x80, 0x02, 0, 0, 0, 0x41, 0, 0, 0x01, 0x82, 0, 0, 0, 0x10, 0, 0, 0, 0x09,
    0x40, 0, 0, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0x0b,
    0xb5, 0xbb, 0x9d, 0x80, 0x14, 0xa0, 0xf9, 0xb1, 0xd6, 0x1e, 0x21, 0xe7, 0x96, 0xd7,
    0x8d, 0xcc, 0xdf, 0x13, 0x52, 0xf2, 0x3c, 0xd3, 0x28, 0x12, 0xf4, 0x85, 0x0b, 0x87,
    0x8a, 0xe4, 0x94, 0x4c};

__attribute__((force_align_arg_pointer)) void _start(void) {
  static unsigned char rsp[4096];
  long tpm = -1, n, i;
  sys(SYS_mkdir, (long)"/dev", 0755, 0, 0, 0);
  sys(SYS_mkdir, (long)"/sys", 0755, 0, 0, 0);
  sys(SYS_mount, (long)"dev", (long)"/dev", (long)"devtmpfs", 0, 0);
  sys(SYS_mount, (long)"sys", (long)"/sys", (long)"sysfs", 0, 0);
  out = (int)sys(SYS_open, (long)"/dev/console", O_RDWR, 0, 0, 0);
  if (out < 0) sys(SYS_exit, 1, 0, 0, 0, 0);
  put("@@ boot\n");
  /* The TPM driver may probe after /init starts: wait up to 20 s for the device. */
  for (i = 0; i < 200 && tpm < 0; i++) {
    tpm = sys(SYS_open, (long)"/dev/tpm0", O_RDWR, 0, 0, 0);
    if (tpm < 0) sleep_ms(100);
  }
  if (tpm < 0) fail("no /dev/tpm0");
  for (i = 0; i < 8; i++) {
    put("@@ pcr ");
    putnum(i);
    pcr_line(" ", (int)i);
  }
  n = transact(tpm, READ_CLOCK, sizeof READ_CLOCK, rsp);
  put("@@ clock ");
  puthex(rsp, n);
  put("\n");
  for (i = 1;; i++) {
    n = transact(tpm, EXTEND, sizeof EXTEND, rsp);
    if (n != 19 || rsp[9] != 0) {
      put("@@ extend-rsp ");
      puthex(rsp, n);
      put("\n");
      fail("TPM2_PCR_Extend");
    }
    put("@@ ext ");
    putnum(i);
    pcr_line(" ", 16);
    sleep_ms(1000);
  }
}
