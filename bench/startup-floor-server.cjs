// The least a Node TPM server can do before its first answer, for bench/startup-floor.ts:
// `node startup-floor-server.cjs PORT MODE`, MODE one of
//   net    a node:net server that answers every read with a fixed TPM response;
//   koffi  the same, with koffi's native module loaded first;
//   tpm    koffi, libtpms (RTLD_DEEPBIND) with in-memory NV callbacks, a new TPM 2
//          manufactured by TPMLIB_MainInit, TPM2_Startup(CLEAR), then one blocking
//          accept() and recv()/send() loop through libc: no node:net, no options, no
//          state file, no lock, no seccomp.
// CommonJS on purpose: an ES module entry costs Node 20 about 12 ms more to start. It binds
// libtpms itself instead of importing src/engine: loading our modules would put part
// of tswtpm's own start into the floor it is compared with.
'use strict';
const port = Number(process.argv[2]);
const mode = process.argv[3];

if (mode === 'net' || mode === 'koffi') {
  if (mode === 'koffi') loadKoffi();
  const fixed = Buffer.from('80010000000a00000000', 'hex');
  require('node:net')
    .createServer((s) => s.on('data', () => s.write(fixed)))
    .listen(port, '127.0.0.1');
} else if (mode === 'tpm') {
  serveTpm();
} else {
  throw new Error(`unknown mode ${mode}`);
}

function loadKoffi() {
  const arch = process.arch;
  return require(`@koromix/koffi-linux-${arch}/linux_${arch}/koffi.node`);
}

function serveTpm() {
  const koffi = loadKoffi();
  const u32 = 'uint32_t';
  const lib = koffi.load('libtpms.so.0', { deep: true });
  const P = {
    init: koffi.proto(`${u32} floor_init(void)`),
    load: koffi.proto(`${u32} floor_load(void *, void *, ${u32}, const char *)`),
    store: koffi.proto(`${u32} floor_store(void *, ${u32}, ${u32}, const char *)`),
    del: koffi.proto(`${u32} floor_del(${u32}, const char *, uint8_t)`),
    io: koffi.proto(`${u32} floor_io(void)`),
    loc: koffi.proto(`${u32} floor_loc(void *, ${u32})`),
    pp: koffi.proto(`${u32} floor_pp(void *, ${u32})`),
  };
  const Callbacks = koffi.struct('floor_callbacks', {
    size: 'int',
    init: koffi.pointer(P.init),
    load: koffi.pointer(P.load),
    store: koffi.pointer(P.store),
    del: koffi.pointer(P.del),
    io: koffi.pointer(P.io),
    loc: koffi.pointer(P.loc),
    pp: koffi.pointer(P.pp),
  });
  const reg = (fn, proto) => koffi.register(fn, koffi.pointer(proto));
  const TPM_RETRY = 0x800; // "nothing stored": MainInit manufactures
  lib.func('TPMLIB_ChooseTPMVersion', u32, ['int'])(1);
  lib.func('TPMLIB_RegisterCallbacks', u32, [koffi.pointer(Callbacks)])({
    size: koffi.sizeof(Callbacks),
    init: reg(() => 0, P.init),
    load: reg(() => TPM_RETRY, P.load),
    store: reg(() => 0, P.store),
    del: reg(() => 0, P.del),
    io: reg(() => 0, P.io),
    loc: reg((p) => {
      koffi.encode(p, 'uint32_t', 0);
      return 0;
    }, P.loc),
    pp: null,
  });
  if (lib.func(`${u32} TPMLIB_MainInit(void)`)() !== 0) throw new Error('TPMLIB_MainInit failed');
  const processCmd = lib.func(`${u32} TPMLIB_Process(void *, void *, void *, void *, ${u32})`);
  const rsp = Buffer.alloc(8);
  const rspLen = Buffer.alloc(4);
  const rspSize = Buffer.alloc(4);
  const run = (cmd, n) => {
    processCmd(rsp, rspLen, rspSize, cmd, n);
    const len = rspLen.readUInt32LE(0);
    return Buffer.from(koffi.view(rsp.readBigUInt64LE(0), len));
  };
  run(Buffer.from('80010000000c000001440000', 'hex'), 12); // TPM2_Startup(SU_CLEAR)

  const libc = koffi.load('libc.so.6');
  const c = (decl) => libc.func(decl);
  const socket = c('int socket(int, int, int)');
  const setsockopt = c('int setsockopt(int, int, int, const void *, uint32_t)');
  const bind = c('int bind(int, const void *, uint32_t)');
  const listen = c('int listen(int, int)');
  const accept = c('int accept(int, void *, void *)');
  const recv = c('long recv(int, void *, size_t, int)');
  const send = c('long send(int, const void *, size_t, int)');
  const close = c('int close(int)');
  const fd = socket(2, 1, 0);
  const one = Buffer.alloc(4);
  one.writeInt32LE(1);
  setsockopt(fd, 1, 2, one, 4); // SO_REUSEADDR
  const addr = Buffer.alloc(16);
  addr.writeUInt16LE(2, 0);
  addr.writeUInt16BE(port, 2);
  addr.set([127, 0, 0, 1], 4);
  if (bind(fd, addr, 16) !== 0 || listen(fd, 1) !== 0) throw new Error('bind/listen failed');
  const buf = Buffer.alloc(4096);
  for (;;) {
    const client = accept(fd, null, null);
    for (;;) {
      const n = Number(recv(client, buf, buf.length, 0));
      if (n <= 0) break;
      const out = run(buf, n);
      send(client, out, out.length, 0x4000); // MSG_NOSIGNAL
    }
    close(client);
  }
}
