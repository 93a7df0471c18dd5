// Differential test of the control channel (issue 3): the same scripted exchanges run
// against Debian's swtpm 0.7.1 and tswtpm, over TCP and over Unix sockets, compared
// byte for byte. Every allowed difference names its docs/compat.md row (diff-allowed.ts).
// This file: every CMD_* stopped and running, Appendix A, body-length classes, wrong
// states, state blobs, hashing. ctrl-diff-wire.test.ts: split/padded writes, SET_DATAFD,
// TPM 1.2.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as T from '../../src/protocol/tpm/commands.js';
import {
  BLOB_STRUCTURE,
  CAPS_TPM2,
  DEADLINE,
  LOCK_OK,
  LONG,
  RANDOM_BYTES,
  ROW,
  allowed,
} from '../helpers/diff-allowed.js';
import { cmd, u32 } from '../helpers/diff-exchange.js';
import { type Ctx, REPEAT_IF_LATE, type Script, diffScript } from '../helpers/diff-run.js';
import { type Transport, haveSwtpm, makeSharedState } from '../helpers/diff-servers.js';
import * as H from '../helpers/tpm-commands.js';

const ZEROS_8K = Buffer.alloc(0x2000);
const DIGEST = Buffer.alloc(32, 0x5a);

/** GET_INFO request: flags (BE64), offset, pad. */
const info = (flags: number, offset = 0) =>
  cmd(0x12, `${u32(0)}${u32(flags)}${u32(offset)}${u32(0)}`);
const getBlob = (type: number, offset = 0, flags = 0) =>
  cmd(0x0c, `${u32(flags)}${u32(type)}${u32(offset)}`);
const setBlobHead = (type: number, length: number, flags = 0) =>
  cmd(0x0d, `${u32(flags)}${u32(type)}${u32(length)}`);
const setBlob = (type: number, blob: Buffer, flags = 0) =>
  Buffer.concat([setBlobHead(type, blob.length, flags), blob]);
/** The blob carried by a GET_STATEBLOB reply. */
const blobOf = (hex: string) => Buffer.from(hex, 'hex').subarray(16);

/** Every command that needs no running TPM and the answers a stopped TPM gives. */
const stopped: Script = async (c) => {
  await c.x('caps', '00000001', { allow: CAPS_TPM2 });
  await c.x('caps, body ignored', '00000001 deadbeef', { allow: CAPS_TPM2 });
  await c.x('caps + config in one write: no pipelining', '00000001 0000000f', { allow: CAPS_TPM2 });
  await c.x('config', '0000000f');
  await c.x('config + 1 stray byte', '0000000f 00');
  for (const code of [
    '00000000',
    '00000014',
    '00000099',
    '0000ffff',
    'ffffffff',
    '00000014 01020304',
  ]) {
    await c.x(`unknown ${code}`, code);
  }
  // Commands that check "running" before their body: 0x0a even with a bad body.
  for (const [name, req] of [
    ['GET_TPMESTABLISHED', '00000004'],
    ['GET_TPMESTABLISHED + 1 byte', '00000004 00'],
    ['HASH_START', '00000006'],
    ['HASH_START + 1 byte', '00000006 00'],
    ['HASH_DATA', '00000007 00000004 01020304'],
    ['HASH_DATA, more data than length', '00000007 00000001 010203'],
    ['HASH_END', '00000008'],
    ['CANCEL_TPM_CMD', '00000009'],
    ['CANCEL_TPM_CMD + 1 byte', '00000009 00'],
    ['STORE_VOLATILE', '0000000a'],
    ['STORE_VOLATILE + 1 byte', '0000000a 00'],
    ['RESET_TPMESTABLISHED loc 3', '0000000b 03'],
    ['GET_STATEBLOB permanent', getBlob(1)],
    ['GET_STATEBLOB savestate', getBlob(3)],
  ] as const) {
    await c.x(`stopped: ${name}`, req);
  }
  await c.x('SET_LOCALITY 5', '00000005 05');
  await c.x('SET_LOCALITY 4', '00000005 04');
  await c.x('SET_LOCALITY 0 padded', '00000005 00000000');
  await c.x('SET_LOCALITY 0 + 7 extra bytes', '00000005 00 01020304050607');
  await c.x('STOP while stopped', '0000000e');
  await c.x('STOP + 1 byte', '0000000e 00');
  await c.x('GET_CONFIG + 4 bytes', '0000000f 00000000');
  await c.x('SET_DATAFD with --server', '00000010');
  await c.x('SET_DATAFD with --server, body ignored', '00000010 01020304');
  await c.x('SET_STATEBLOB type 7, length 0', setBlobHead(7, 0));
  await c.x('SET_STATEBLOB type 0, length 0', setBlobHead(0, 0));
  await c.x('SET_STATEBLOB savestate, length 0', setBlobHead(3, 0));
  await c.x('SET_BUFFERSIZE query', '00000011 00000000');
  await c.x('SET_BUFFERSIZE query + extra bytes', '00000011 00000000 ffffffff');
  await c.x('SET_BUFFERSIZE 1 (clamped to min)', '00000011 00000001');
  await c.x('SET_BUFFERSIZE 99999 (clamped to max)', '00000011 0001869f');
  await c.x('SET_BUFFERSIZE 4000', '00000011 00000fa0');
  await c.x('SET_BUFFERSIZE query after set', '00000011 00000000');
  await c.x('SET_BUFFERSIZE 4096', '00000011 00001000');
  for (const flags of [0, 1, 2, 3, 4, 7, 0x100]) await c.x(`GET_INFO flags ${flags}`, info(flags));
  for (const off of [1, 2, 3, 1000]) await c.x(`GET_INFO flags 0 offset ${off}`, info(0, off));
  for (const off of [100, 148, 149, 150, 151])
    await c.x(`GET_INFO flags 3 offset ${off}`, info(3, off));
  await c.x('GET_INFO + extra bytes', Buffer.concat([info(3), Buffer.from('ffff', 'hex')]));
  await c.x('LOCK_STORAGE 0', '00000013 00000000', { allow: LOCK_OK });
  await c.x('LOCK_STORAGE 300', '00000013 0000012c', { allow: LOCK_OK });
  await c.d('GetRandom before INIT', T.getRandom2(8));
  await c.d('Startup before INIT', T.startup2());
  await c.x('INIT with 5-byte body', '00000002 0000000000');
  await c.x('SHUTDOWN + 1 byte: no shutdown', '00000003 00');
  await c.x('caps after bad SHUTDOWN', '00000001', { allow: CAPS_TPM2 });
  await c.shutdown();
};

/** Body shorter than the fixed part: swtpm waits 500 ms, then closes (DEADLINE). */
const deadlines: Script = async (c) => {
  const cases: [string, string][] = [
    ['INIT without body', '00000002'],
    ['INIT with 3-byte body', '00000002 000000'],
    ['SET_LOCALITY without byte', '00000005'],
    ['RESET_TPMESTABLISHED without byte (stopped)', '0000000b'],
    ['HASH_DATA with 2-byte length (stopped)', '00000007 0000'],
    ['GET_STATEBLOB with 8-byte body (stopped)', '0000000c 00000000 00000001'],
    ['SET_STATEBLOB with 11-byte body (stopped)', '0000000d 00000000 00000001 000000'],
    ['3 bytes', '000000'],
  ];
  // One after another: each waits for the 500 ms deadline of its own connection.
  for (const [name, req] of cases) await c.x(name, req, { ...LONG, allow: DEADLINE });
  const dataLate = allowed([ROW.dataDeadline], '|EOF', '00000003|EOF');
  await c.x('SET_STATEBLOB header, announced 16-byte blob missing', setBlobHead(1, 16), {
    ...LONG,
    allow: dataLate,
  });
  await c.x(
    'SET_STATEBLOB header + 8 of 16 blob bytes',
    Buffer.concat([setBlobHead(1, 16), Buffer.alloc(8)]),
    {
      ...LONG,
      allow: dataLate,
    },
  );
  // At-least commands whose body swtpm does not await: answered at once by swtpm,
  // awaited (then the deadline) by tswtpm.
  const late = allowed([ROW.lateBody, ROW.deadline], '00000003', '00000003|EOF');
  await c.x('SET_BUFFERSIZE with 3-byte body', '00000011 000000', { ...LONG, allow: late });
  await c.x('GET_INFO with 12-byte body', '00000012 0000000000000000 00000000', {
    ...LONG,
    allow: late,
  });
  const lateLock = allowed(
    [ROW.lateBody, ROW.deadline, ROW.lockStorage],
    '0000000a',
    '00000003|EOF',
  );
  await c.x('LOCK_STORAGE without body', '00000013', { ...LONG, allow: lateLock });
  await c.x('caps after the deadlines', '00000001', { allow: CAPS_TPM2 });
};

/** A running TPM (state copied from one made by swtpm, so blobs compare byte for byte). */
const running: Script = async (c) => {
  await c.x('INIT', '00000002 00000000');
  await c.x('GET_TPMESTABLISHED', '00000004');
  await c.d('GetRandom before Startup', T.getRandom2(8));
  await c.d('Startup', T.startup2());
  await c.d('GetRandom', T.getRandom2(8), { mask: RANDOM_BYTES });
  await c.d('PCR_Extend 16', T.pcrExtend2(16, DIGEST));
  const pcr16 = await c.d('PCR_Read 16', T.pcrRead2(16));
  const pcr16value = H.pcrValueHex(Buffer.from(pcr16.hex, 'hex'));
  c.check('PCR 16 = extend(0x5a*32)', pcr16value === H.extendChain(DIGEST));
  await c.d(
    'TCG send-command prefix, locality 0, GetRandom',
    Buffer.concat([Buffer.from('0000000800', 'hex'), Buffer.from(u32(12), 'hex'), T.getRandom2(8)]),
    {
      mask: {
        name: 'random bytes behind the TCG prefix',
        fn: (v) => `${v.slice(0, 32)}..${v.length}`,
      },
    },
  );
  await c.d('vendor SetLocality without allow-set-locality', '80010000000b2000100003');
  await c.x('caps while running', '00000001', { allow: CAPS_TPM2 });
  await c.x('LOCK_STORAGE while running', '00000013 00000000', { allow: LOCK_OK });
  // A data client has come and gone: 0.7.1 then forgets its unixio data server.
  await c.x(
    'SET_DATAFD while running, after data clients left',
    '00000010',
    c.transport === 'unix' ? { allow: allowed([ROW.unixDataServer], '00000003', '0000001f') } : {},
  );
  for (const [name, req] of [
    ['GET_TPMESTABLISHED + 1 byte', '00000004 00'],
    ['HASH_START + 1 byte', '00000006 00'],
    ['HASH_END + 1 byte', '00000008 00'],
    ['CANCEL_TPM_CMD + 1 byte', '00000009 00'],
    ['STORE_VOLATILE + 1 byte', '0000000a 00'],
    ['STOP + 1 byte', '0000000e 00'],
    ['GET_CONFIG + 1 byte', '0000000f 00'],
    ['SHUTDOWN + 4 bytes', '00000003 00000000'],
    ['INIT + 5 bytes', '00000002 0000000000'],
    ['INIT + 8 bytes', '00000002 00000000 00000000'],
    ['SET_LOCALITY 5', '00000005 05'],
    ['SET_LOCALITY 4', '00000005 04'],
    ['SET_LOCALITY 3 padded', '00000005 03000000'],
    ['SET_LOCALITY 0 padded', '00000005 00000000'],
    ['RESET_TPMESTABLISHED loc 0', '0000000b 00'],
    ['RESET_TPMESTABLISHED loc 3', '0000000b 03'],
    ['RESET_TPMESTABLISHED loc 4', '0000000b 04'],
    ['RESET_TPMESTABLISHED loc 5', '0000000b 05'],
    ['RESET_TPMESTABLISHED loc 3 padded', '0000000b 03000000'],
    ['CANCEL_TPM_CMD', '00000009'],
    ['SET_BUFFERSIZE 4000 while running', '00000011 00000fa0'],
    ['SET_BUFFERSIZE query while running', '00000011 00000000'],
    ['GET_INFO flags 3 while running', info(3)],
    ['GET_CONFIG', '0000000f'],
    ['SET_STATEBLOB while running, length 0', setBlobHead(1, 0)],
    ['SET_STATEBLOB while running, 4 data bytes', setBlob(1, Buffer.from('01020304', 'hex'))],
    [
      'SET_STATEBLOB while running, more data than length',
      Buffer.concat([setBlobHead(1, 2), Buffer.alloc(6)]),
    ],
    ['GET_STATEBLOB savestate', getBlob(3)],
    ['GET_STATEBLOB savestate decrypted', getBlob(3, 0, 1)],
    ['GET_STATEBLOB permanent, offset beyond end', getBlob(1, 100000)],
  ] as const) {
    await c.x(name, req);
  }
  // Hashing (H-CRTM / DRTM): established bit, PCR 17.
  await c.x('HASH_START', '00000006');
  await c.x('GET_TPMESTABLISHED after HASH_START', '00000004');
  await c.x('HASH_DATA 4 bytes', '00000007 00000004 01020304');
  await c.x('HASH_DATA 0 bytes', '00000007 00000000');
  await c.x('HASH_END', '00000008');
  await c.x('RESET_TPMESTABLISHED loc 3 after hashing', '0000000b 03');
  await c.x('GET_TPMESTABLISHED after reset', '00000004');
  await c.x('HASH_START (8 KiB)', '00000006');
  await c.x('HASH_DATA 0x2000 bytes in one write', Buffer.concat([cmd(7, u32(0x2000)), ZEROS_8K]));
  await c.x('HASH_END (8 KiB)', '00000008');
  const pcr17 = await c.d('PCR_Read 17', T.pcrRead2(17));
  c.check(
    'PCR 17 = extend(sha256(0x2000 zero bytes))',
    H.pcrValueHex(Buffer.from(pcr17.hex, 'hex')) === H.extendChain(H.sha256(ZEROS_8K)),
  );
  await c.x('HASH_START (split 8 KiB)', '00000006');
  await c.x('HASH_DATA 0x2000 bytes in 3 writes', [
    { data: Buffer.concat([cmd(7, u32(0x2000)), ZEROS_8K.subarray(0, 100)]), pauseMs: 50 },
    { data: ZEROS_8K.subarray(100, 5000), pauseMs: 50 },
    { data: ZEROS_8K.subarray(5000) },
  ]);
  await c.x('HASH_END (split 8 KiB)', '00000008');
  const pcr17b = await c.d('PCR_Read 17 after split hashing', T.pcrRead2(17));
  c.check(
    'PCR 17 the same after split hashing',
    H.pcrValueHex(Buffer.from(pcr17b.hex, 'hex')) === H.pcrValueHex(Buffer.from(pcr17.hex, 'hex')),
  );
  // HASH_DATA whose data misses the deadline is refused whole: swtpm never processes
  // it, so the 100 bytes that did arrive must not reach the hash either.
  await c.x('HASH_START (late data)', '00000006');
  await c.x(
    'HASH_DATA 0x2000 bytes: header + 100 | 800 ms | rest',
    [
      { data: Buffer.concat([cmd(7, u32(0x2000)), ZEROS_8K.subarray(0, 100)]), pauseMs: 800 },
      { data: ZEROS_8K.subarray(100) },
    ],
    { ...LONG, allow: allowed([ROW.dataDeadline], '|EOF', '00000003|EOF') },
  );
  await c.x(
    'HASH_DATA 0x2000 bytes after the refused one',
    Buffer.concat([cmd(7, u32(0x2000)), ZEROS_8K]),
  );
  await c.x('HASH_END (late data)', '00000008');
  const pcr17c = await c.d('PCR_Read 17 after the refused HASH_DATA', T.pcrRead2(17));
  c.check(
    'PCR 17: the refused HASH_DATA left no trace',
    H.pcrValueHex(Buffer.from(pcr17c.hex, 'hex')) === H.pcrValueHex(Buffer.from(pcr17.hex, 'hex')),
  );
  for (const [name, req] of [
    ['SET_STATEBLOB while running, 11-byte body', '0000000d 00000000 00000001 000000'],
    ['GET_STATEBLOB while running, 8-byte body', '0000000c 00000000 00000001'],
    ['RESET_TPMESTABLISHED without byte (running)', '0000000b'],
  ] as const) {
    await c.x(name, req, { ...LONG, allow: DEADLINE });
  }
  await c.x('HASH_DATA announces 16 bytes, sends 4', '00000007 00000010 01020304', {
    ...LONG,
    allow: allowed([ROW.dataDeadline], '|EOF', '00000003|EOF'),
  });
  // Blobs (same seeds on both sides: the permanent blob is byte-identical).
  await c.x('STORE_VOLATILE', '0000000a');
  c.check('volatilestate file after STORE_VOLATILE', c.stateFile('tpm2-00.volatilestate'));
  const perm = await c.x('GET_STATEBLOB permanent', getBlob(1));
  await c.x('GET_STATEBLOB permanent decrypted', getBlob(1, 0, 1));
  await c.x('GET_STATEBLOB permanent offset 100', getBlob(1, 100));
  await c.x(
    'GET_STATEBLOB permanent + 8 extra bytes',
    Buffer.concat([getBlob(1), Buffer.alloc(8)]),
  );
  const vol = await c.x('GET_STATEBLOB volatile', getBlob(2, 0, 1), { mask: BLOB_STRUCTURE });
  for (const type of [0, 4, 7]) {
    await c.x(`GET_STATEBLOB type ${type}`, getBlob(type), {
      allow: allowed(
        [ROW.unknownBlob],
        '00000800 00000000 00000000 00000000',
        '00000009 00000000 00000000 00000000',
      ),
    });
  }
  // Wrong states after STOP.
  await c.x('STOP', '0000000e');
  await c.d('GetRandom after STOP', T.getRandom2(8));
  await c.x('GET_STATEBLOB after STOP', getBlob(1));
  await c.x('STORE_VOLATILE after STOP', '0000000a');
  await c.x('HASH_START after STOP', '00000006');
  await c.x('GET_TPMESTABLISHED after STOP', '00000004');
  // SET of blobs from the same server, then INIT: PCR 16 survives.
  await c.x('SET_STATEBLOB permanent', setBlob(1, blobOf(perm.hex)));
  await c.x(
    'SET_STATEBLOB volatile, header and blob in two writes (QEMU)',
    [{ data: setBlobHead(2, blobOf(vol.hex).length), pauseMs: 50 }, { data: blobOf(vol.hex) }],
    REPEAT_IF_LATE,
  );
  await c.x('INIT after SET_STATEBLOB', '00000002 00000000');
  const pcr16b = await c.d('PCR_Read 16 after SET_STATEBLOB + INIT', T.pcrRead2(16));
  c.check('PCR 16 survived', H.pcrValueHex(Buffer.from(pcr16b.hex, 'hex')) === pcr16value);
  await c.shutdown();
};

/** SET_STATEBLOB with garbage while stopped. */
const garbage: Script = async (c) => {
  await c.x('INIT', '00000002 00000000');
  const perm = blobOf((await c.x('GET_STATEBLOB permanent', getBlob(1))).hex);
  await c.x('STOP', '0000000e');
  const bad = (edit: (b: Buffer) => void) => {
    const b = Buffer.from(perm);
    edit(b);
    return b;
  };
  for (const [name, blob, flags] of [
    ['5-byte blob (short header)', perm.subarray(0, 5), 0],
    ['10-byte header only', perm.subarray(0, 10), 0],
    ['bad totlen', bad((b) => b.writeUInt32BE(b.length + 1, 6)), 0],
    ['bad hdrsize', bad((b) => b.writeUInt16BE(11, 2)), 0],
    ['min_version 3', bad((b) => b.writeUInt8(3, 1)), 0],
    ['version 1 header', bad((b) => b.writeUInt8(1, 0)), 0],
    ['state_flags ENCRYPTED without key', perm, 2],
    ['truncated TLV', bad((b) => b.writeUInt32BE(0x7fffffff, 12)), 0],
  ] as const) {
    await c.x(`SET_STATEBLOB permanent: ${name}`, setBlob(1, Buffer.from(blob), flags));
  }
  await c.x('SET_STATEBLOB type 7 with a valid blob', setBlob(7, perm));
  await c.x('SET_STATEBLOB savestate with a valid blob', setBlob(3, perm));
  await c.x(
    'SET_STATEBLOB more bytes than length',
    Buffer.concat([setBlob(1, perm), Buffer.alloc(2)]),
  );
  await c.x('INIT after garbage', '00000002 00000000');
  await c.d('Startup after garbage', T.startup2());
  await c.x('STOP again', '0000000e');
  await c.x('SET_STATEBLOB permanent, valid', setBlob(1, perm));
  await c.x('INIT after valid SET', '00000002 00000001');
  await c.d('Startup after valid SET', T.startup2());
  await c.shutdown();
};

const SCRIPTS: [string, Script, { shared?: boolean }][] = [
  ['stopped TPM 2: every command, Appendix A, body classes', stopped, {}],
  ['incomplete fixed parts and the 500 ms deadline', deadlines, {}],
  ['running TPM 2: every command, hashing, blobs', running, { shared: true }],
  ['SET_STATEBLOB with garbage', garbage, { shared: true }],
];

describe(
  'control channel vs Debian swtpm 0.7.1',
  { concurrency: true, skip: !haveSwtpm && 'swtpm not installed' },
  () => {
    const shared = haveSwtpm ? makeSharedState() : Promise.resolve('');
    for (const transport of ['tcp', 'unix'] as Transport[]) {
      describe(`over ${transport}`, { concurrency: true }, () => {
        for (const [name, script, o] of SCRIPTS) {
          it(name, { timeout: 120000 }, async () => {
            const from = o.shared ? { stateFrom: await shared } : {};
            const diffs = await diffScript(
              { transport, ...from },
              script as (c: Ctx) => Promise<void>,
            );
            assert.deepEqual(diffs, []);
          });
        }
      });
    }
  },
);
