// Runs inside the CUSE guest (compiled to dist/test/guest/blob-rw.js): moves the
// volatile state blob through the read()/write() transfer modes of a CUSE device, with
// read and write sizes other than swtpm_ioctl's SWTPM_IOCTL_BUFFERSIZE transfers (the
// init script checks those). Prints `key=value` lines.
//   GET_STATEBLOB (first 3072 bytes) + read() of the rest
//   STOP, SET_STATEBLOB length 0 (write mode), write() of the blob, SET_STATEBLOB
//   length 0 (commit), INIT
// usage: node blob-rw.js /dev/vtpm0
import { constants, closeSync, openSync, readSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import type koffiModule from 'koffi';
import {
  type CtrlRequest,
  type CtrlResponse,
  PTM_BLOB_TYPE_VOLATILE,
  PTM_STATE_BLOB_SIZE,
  PTM_STATE_FLAG_DECRYPTED,
  decodeIoctlResponse,
  defByName,
  encodeIoctlRequest,
  ioctlNumber,
} from '../../src/protocol/ctrl/index.js';

const koffi = createRequire(import.meta.url)('koffi') as typeof koffiModule;
const ioctl = koffi.load('libc.so.6').func('int ioctl(int, unsigned long, void *)') as (
  fd: number,
  req: number,
  arg: Buffer,
) => number;

const path = process.argv[2] ?? '/dev/vtpm0';
const fd = openSync(path, constants.O_RDWR);

function ptm(req: CtrlRequest): CtrlResponse {
  const def = defByName(req.cmd);
  const arg = encodeIoctlRequest(def, req);
  if (ioctl(fd, ioctlNumber(def), arg) < 0) throw new Error(`${req.cmd}: errno ${koffi.errno()}`);
  return decodeIoctlResponse(def, arg);
}

const get = ptm({
  cmd: 'GET_STATEBLOB',
  stateFlags: PTM_STATE_FLAG_DECRYPTED,
  type: PTM_BLOB_TYPE_VOLATILE,
  offset: 0,
});
const total = get.totLength ?? 0;
const rest = Buffer.alloc(total);
let got = 0;
let reads = 0;
while (got < total - (get.length ?? 0)) {
  const n = readSync(fd, rest, got, Math.min(4000, rest.length - got), null);
  reads++;
  if (n === 0) break;
  got += n;
}
const blob = Buffer.concat([Buffer.from(get.data ?? []), rest.subarray(0, got)]);
console.log(
  `get result=${get.result} totlength=${total} ioctl=${get.length} read=${got} reads=${reads}`,
);

const setMode = (): CtrlResponse =>
  ptm({
    cmd: 'SET_STATEBLOB',
    stateFlags: 0,
    type: PTM_BLOB_TYPE_VOLATILE,
    length: 0,
    data: Buffer.alloc(0),
  });
console.log(`stop result=${ptm({ cmd: 'STOP' }).result}`);
console.log(`set-start result=${setMode().result}`);
let written = 0;
for (let off = 0; off < blob.length; off += PTM_STATE_BLOB_SIZE + 100) {
  written += writeSync(fd, blob.subarray(off, off + PTM_STATE_BLOB_SIZE + 100));
}
console.log(`write bytes=${written}`);
console.log(`set-commit result=${setMode().result}`);
console.log(`init result=${ptm({ cmd: 'INIT', initFlags: 0 }).result}`);
closeSync(fd);
