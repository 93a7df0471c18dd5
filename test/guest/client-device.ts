// Runs inside the CUSE guest (compiled to dist/test/guest/client-device.js): the client
// library's device transport on a fresh `tswtpm cuse` device. ControlClient (PTM_*
// ioctls) and TpmClient (write()/read()) share one CuseDevice, as QEMU shares one fd.
// Prints `key=value` lines for test/interop/cuse-guest.test.ts.
// usage: node client-device.js /dev/vtpm2
import { createHash } from 'node:crypto';
import {
  ControlClient,
  CuseDevice,
  TpmClient,
  TpmConnectionError,
  TpmDeviceError,
} from '../../src/client/index.js';

const path = process.argv[2] ?? '/dev/vtpm2';
const say = (k: string, v: unknown) => console.log(`${k}=${String(v)}`);
const rc = (rsp: Buffer) => `0x${rsp.readUInt32BE(6).toString(16)}`;

function cmd(tag: number, cc: number, ...body: Buffer[]): Buffer {
  const b = Buffer.concat([Buffer.alloc(10), ...body]);
  b.writeUInt16BE(tag, 0);
  b.writeUInt32BE(b.length, 2);
  b.writeUInt32BE(cc, 6);
  return b;
}
const u32 = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
const hex = (s: string) => Buffer.from(s, 'hex');

const STARTUP = cmd(0x8001, 0x144, hex('0000'));
const GET_RANDOM = cmd(0x8001, 0x17b, hex('0010'));
const DIGEST = createHash('sha256').update('client-device\n').digest();
// PCR_Extend(16) with a password session (TPM_RS_PW, empty auth), one SHA-256 digest.
const PCR_EXTEND = cmd(
  0x8002,
  0x182,
  u32(16),
  u32(9),
  hex('400000090000000000'),
  u32(1),
  hex('000b'),
  DIGEST,
);
// PCR_Read of SHA-256 PCR 16: one selection, 3 bytes, bit 0 of byte 2.
const PCR_READ = cmd(0x8001, 0x17e, u32(1), hex('000b03000001'));
const pcr16 = (rsp: Buffer) => rsp.subarray(30, 62).toString('hex');

const dev = await CuseDevice.open(path);
const ctrl = new ControlClient({ device: dev });
const tpm = new TpmClient({ device: dev });

say('caps', `0x${(await ctrl.getCapability()).mask.toString(16)}`);
await ctrl.init();
say('startup', rc(await tpm.transmit(STARTUP)));
const rnd = await tpm.transmit(GET_RANDOM);
say('getrandom', `${rc(rnd)} bytes=${rnd.readUInt16BE(10)} ${rnd.subarray(12).toString('hex')}`);
say('pcrextend', rc(await tpm.transmit(PCR_EXTEND)));
const expect = createHash('sha256').update(Buffer.alloc(32)).update(DIGEST).digest('hex');
const read1 = await tpm.transmit(PCR_READ);
say('pcrread', `${rc(read1)} ${pcr16(read1) === expect ? 'expected' : pcr16(read1)}`);

// State blobs through 3072-byte ioctls, both ways, around STOP/INIT.
const perm = await ctrl.getStateBlob('permanent');
const vol = await ctrl.getStateBlob('volatile');
say('blobs', `permanent=${perm?.data.length} volatile=${vol?.data.length}`);
await ctrl.stop();
await ctrl.setStateBlob('permanent', perm!.data);
await ctrl.setStateBlob('volatile', vol!.data);
await ctrl.init();
const read2 = await tpm.transmit(PCR_READ);
say('pcrread-after-blobs', `${rc(read2)} ${pcr16(read2) === expect ? 'expected' : pcr16(read2)}`);

// Info, locality, 5000 bytes of hash data (two HASH_DATA ioctls), the established bit.
say('info', JSON.stringify(await ctrl.getInfo(1)));
await ctrl.setLocality(3);
await ctrl.hash(Buffer.alloc(5000, 0x61));
say('established', await ctrl.getTpmEstablished());
await ctrl.resetTpmEstablished(3);
say('established-after-reset', await ctrl.getTpmEstablished());
say('buffersize', JSON.stringify(await ctrl.setBufferSize(0)));

// Errors: an ioctl CUSE does not have, a second opener.
try {
  await ctrl.request({ cmd: 'SET_DATAFD' });
  say('setdatafd', 'accepted');
} catch (e) {
  say('setdatafd', e instanceof TpmDeviceError ? `${e.code} ${e.syscall}` : e);
}
try {
  await new ControlClient({ device: path }).getConfig();
  say('second-open', 'accepted');
} catch (e) {
  say('second-open', e instanceof TpmConnectionError ? e.code : e);
}
await dev.close();

// A device path: opened per call (ControlClient) or kept (TpmClient) by the client.
const own = new ControlClient({ device: path });
say('path-established', await own.getTpmEstablished());
const ownTpm = new TpmClient({ device: path });
const read3 = await ownTpm.transmit(PCR_READ);
say('path-pcrread', `${rc(read3)} ${pcr16(read3) === expect ? 'expected' : pcr16(read3)}`);
await ownTpm.close();
say('done', 'ok');
