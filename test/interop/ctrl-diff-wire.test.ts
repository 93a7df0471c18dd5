// Differential test of the control channel, part 2 (see ctrl-diff.test.ts): how bytes
// arrive (split, byte-by-byte, padded, pipelined, late bodies, early errors), CMD_SET_DATAFD
// with and without a passed fd, and TPM 1.2. Debian's swtpm 0.7.1 against tswtpm.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as T from '../../src/protocol/tpm/commands.js';
import { closeFd, socketPair } from '../../src/transport/fd-channel.js';
import {
  BLOB_STRUCTURE,
  CAPS_TPM2,
  CAPS_TPM12,
  DEADLINE,
  LOCK_OK,
  LONG,
  RANDOM_BYTES,
  ROW,
  allowed,
} from '../helpers/diff-allowed.js';
import { FdPeer, cmd, u32 } from '../helpers/diff-exchange.js';
import { REPEAT_IF_LATE, type Script, diffScript } from '../helpers/diff-run.js';
import { type Transport, haveSwtpm, makeSharedState } from '../helpers/diff-servers.js';

const getBlob = (type: number, offset = 0) => cmd(0x0c, `${u32(0)}${u32(type)}${u32(offset)}`);
const setBlobHead = (type: number, length: number) =>
  cmd(0x0d, `${u32(0)}${u32(type)}${u32(length)}`);
const blobOf = (hex: string) => Buffer.from(hex, 'hex').subarray(16);
const oneByOne = (hex: string, pauseMs: number) =>
  [...Buffer.from(hex.replace(/\s+/g, ''), 'hex')].map((b) => ({
    data: Buffer.from([b]),
    pauseMs,
  }));

/** Requests in several writes with short pauses (< 500 ms), padded and pipelined writes. */
const split: Script = async (c) => {
  // Each piece arrives in its own read, all within the 500 ms receive deadline that
  // both implementations time from the first byte: both must reassemble. On a loaded
  // machine the client may not manage that (0.7.1 then closes, or answers the partial
  // request): REPEAT_IF_LATE sends again until it did (see diff-run.ts).
  await c.x(
    'INIT: code | body',
    [{ data: '00000002', pauseMs: 100 }, { data: '00000000' }],
    REPEAT_IF_LATE,
  );
  await c.x('INIT byte by byte', oneByOne('00000002 00000000', 15), REPEAT_IF_LATE);
  await c.x(
    'SET_LOCALITY: code | locality',
    [{ data: '00000005', pauseMs: 100 }, { data: '02' }],
    REPEAT_IF_LATE,
  );
  await c.x(
    'SET_LOCALITY: 3 bytes | 1 byte | locality',
    [{ data: '000000', pauseMs: 50 }, { data: '05', pauseMs: 50 }, { data: '00' }],
    REPEAT_IF_LATE,
  );
  await c.x(
    'RESET_TPMESTABLISHED: code | locality',
    [{ data: '0000000b', pauseMs: 100 }, { data: '03' }],
    REPEAT_IF_LATE,
  );
  await c.x(
    'GET_STATEBLOB savestate: code + 4 | 8',
    [{ data: '0000000c 00000000', pauseMs: 100 }, { data: '00000003 00000000' }],
    REPEAT_IF_LATE,
  );
  await c.x(
    'GET_STATEBLOB permanent byte by byte',
    oneByOne('0000000c 00000000 00000001 00000000', 5),
    { ...REPEAT_IF_LATE, mask: BLOB_STRUCTURE },
  );
  await c.x('HASH_START', '00000006');
  // Repeatable here: nothing in this script reads PCR 17.
  await c.x(
    'HASH_DATA: code | length | data',
    [{ data: '00000007', pauseMs: 80 }, { data: '00000004', pauseMs: 80 }, { data: '01020304' }],
    REPEAT_IF_LATE,
  );
  await c.x('HASH_END', '00000008');
  await c.x('SET_LOCALITY padded (QEMU)', '00000005 02000000');
  await c.x('RESET_TPMESTABLISHED padded (QEMU)', '0000000b 03000000');
  // Two requests on one connection, each in its own write.
  await c.x(
    'persistent connection: GET_CONFIG, then caps',
    [{ data: '0000000f', pauseMs: 60 }, { data: '00000001' }],
    {
      allow: allowed(
        [ROW.caps],
        '0000000000000000 000000000000ffff',
        '0000000000000000 000000000001ffff',
      ),
    },
  );
  // No pipelining: one read is one request.
  await c.x('INIT + GET_CONFIG in one write', '00000002 00000000 0000000f');
  await c.x('GET_CONFIG + caps in one write', '0000000f 00000001');
  await c.x('SET_LOCALITY 0 + caps in one write', '00000005 00 00000001');
  // swtpm reads only the code of these, answers 0x03 and takes the body for a new request.
  await c.x(
    'SET_BUFFERSIZE: code | body',
    [{ data: '00000011', pauseMs: 100 }, { data: '00000000' }],
    {
      ...REPEAT_IF_LATE,
      allow: allowed([ROW.lateBody], '00000003 0000000a', '00000000 00001000 00000af8 00001000'),
    },
  );
  await c.x(
    'GET_INFO: code | body',
    [{ data: '00000012', pauseMs: 100 }, { data: '0000000000000000 00000000 00000000' }],
    {
      ...REPEAT_IF_LATE,
      allow: allowed([ROW.lateBody], '00000003 0000000a', '00000000 00000003 00000003 7b7d00'),
    },
  );
  await c.x(
    'LOCK_STORAGE: code | body',
    [{ data: '00000013', pauseMs: 100 }, { data: '00000000' }],
    {
      ...REPEAT_IF_LATE,
      allow: allowed([ROW.lateBody, ROW.lockStorage], '0000000a 0000000a', '00000000'),
    },
  );
  // A pause longer than the 500 ms deadline.
  await c.x(
    'SET_LOCALITY: code | 800 ms | locality',
    [{ data: '00000005', pauseMs: 800 }, { data: '00' }],
    {
      ...LONG,
      allow: DEADLINE,
    },
  );
  await c.x(
    'INIT: code + 2 | 800 ms | 2',
    [{ data: '00000002 0000', pauseMs: 800 }, { data: '0000' }],
    {
      ...LONG,
      allow: DEADLINE,
    },
  );
  // HASH_DATA with more bytes than `length` (swtpm ≤ 0.10 keeps reading: no reply).
  await c.x('HASH_START before overrun', '00000006');
  await c.x('HASH_DATA length 1 with 3 bytes', '00000007 00000001 010203', {
    allow: allowed([ROW.hashOverrun], '', '00000003'),
  });
  await c.x('caps after the overrun', '00000001', { allow: CAPS_TPM2 });
  // Early errors while the announced data has not arrived yet.
  await c.x(
    'SET_STATEBLOB while running: header | 20 zero bytes',
    [{ data: setBlobHead(1, 20), pauseMs: 60 }, { data: Buffer.alloc(20) }],
    REPEAT_IF_LATE,
  );
  // swtpm answers once its 4104-byte buffer is full, then parses the rest as requests.
  await c.x(
    'SET_STATEBLOB while running: header + 4088 | 1000 zero bytes',
    [
      { data: Buffer.concat([setBlobHead(1, 5088), Buffer.alloc(4088)]), pauseMs: 60 },
      { data: Buffer.alloc(1000) },
    ],
    { allow: allowed([ROW.earlyError], '0000000a 0000000a', '0000000a|EOF') },
  );
  await c.x('STOP', '0000000e');
  await c.x(
    'HASH_DATA while stopped: header | 16 zero bytes',
    [{ data: cmd(7, u32(16)), pauseMs: 60 }, { data: Buffer.alloc(16) }],
    REPEAT_IF_LATE,
  );
  await c.x(
    'HASH_DATA while stopped: header + 4096 | 8 zero bytes',
    [
      { data: Buffer.concat([cmd(7, u32(4104)), Buffer.alloc(4096)]), pauseMs: 60 },
      { data: Buffer.alloc(8) },
    ],
    { allow: allowed([ROW.earlyError], '0000000a 0000000a', '0000000a|EOF') },
  );
  await c.x('SET_STATEBLOB length 600000 (> 512 KiB)', setBlobHead(1, 600000), {
    ...LONG,
    allow: allowed([ROW.bigBlob], '|EOF', '00000009|EOF'),
  });
  await c.x('caps at the end', '00000001', { allow: CAPS_TPM2 });
  await c.shutdown();
};

/** No `--server`: the data channel comes with CMD_SET_DATAFD (Unix control socket only). */
const datafd: Script = async (c) => {
  await c.x('SET_DATAFD without fd', '00000010');
  if (c.transport === 'unix') {
    const [mine, theirs] = socketPair('stream');
    await c.x('SET_DATAFD with a stream fd', [{ data: '00000010', fds: [theirs] }]);
    closeFd(theirs);
    const peer = new FdPeer(mine);
    await c.p('GetRandom before INIT', peer, T.getRandom2(8));
    const [, extra] = socketPair('stream');
    await c.x('SET_DATAFD again, with an fd', [{ data: '00000010', fds: [extra] }]);
    closeFd(extra);
    await c.x('SET_DATAFD again, without fd', '00000010');
    await c.x('INIT', '00000002 00000000');
    await c.p('Startup', peer, T.startup2());
    await c.p('GetRandom', peer, T.getRandom2(16), { mask: RANDOM_BYTES });
    await c.p(
      'TCG prefix, locality 0, GetRandom',
      peer,
      Buffer.concat([
        Buffer.from('0000000800', 'hex'),
        Buffer.from(u32(12), 'hex'),
        T.getRandom2(8),
      ]),
      {
        mask: {
          name: 'random bytes behind the TCG prefix',
          fn: (v) => `${v.slice(0, 32)}..${v.length}`,
        },
      },
    );
    peer.close();
    await new Promise((r) => setTimeout(r, 200));
    const [mine2, theirs2] = socketPair('dgram');
    await c.x('SET_DATAFD after the data peer left, datagram fd', [
      { data: '00000010', fds: [theirs2] },
    ]);
    closeFd(theirs2);
    const peer2 = new FdPeer(mine2);
    await c.p('GetRandom over the datagram fd', peer2, T.getRandom2(8), { mask: RANDOM_BYTES });
    await c.x('STOP', '0000000e');
    await c.p('GetRandom after STOP', peer2, T.getRandom2(8));
    peer2.close();
  }
  await c.x('caps', '00000001', { allow: CAPS_TPM2 });
  await c.shutdown();
};

/** `--server` given: SET_DATAFD must fail with 0x1f, with or without an fd. */
const datafdWithServer: Script = async (c) => {
  await c.x('SET_DATAFD without fd', '00000010');
  if (c.transport === 'unix') {
    const [mine, theirs] = socketPair('stream');
    await c.x('SET_DATAFD with an fd', [{ data: '00000010', fds: [theirs] }]);
    closeFd(theirs);
    closeFd(mine);
  }
  await c.d('GetRandom before INIT (a data client that then leaves)', T.getRandom2(8));
  await new Promise((r) => setTimeout(r, 100));
  if (c.transport === 'unix') {
    // 0.7.1 forgets its unixio data server once a data client left.
    const forget = ROW.unixDataServer;
    await c.x('SET_DATAFD without fd, after a data client left', '00000010', {
      allow: allowed([forget], '00000003', '0000001f'),
    });
    const [mine, theirs] = socketPair('stream');
    await c.x(
      'SET_DATAFD with an fd, after a data client left',
      [{ data: '00000010', fds: [theirs] }],
      {
        allow: allowed([forget], '00000000', '0000001f'),
      },
    );
    closeFd(theirs);
    closeFd(mine);
  } else {
    await c.x('SET_DATAFD without fd, after a data client left', '00000010');
  }
  await c.shutdown();
};

/** TPM 1.2 INIT runs libtpms' self-test (~200 ms idle, seconds on a loaded machine). */
const SLOW = { emptyQuietMs: 8000 } as const;

/** TPM 1.2: the same channel, the 1.2 result codes. */
const tpm12: Script = async (c) => {
  await c.x('caps', '00000001', { allow: CAPS_TPM12 });
  for (const flags of [1, 2, 3, 4]) {
    await c.x(`GET_INFO flags ${flags}`, cmd(0x12, `${u32(0)}${u32(flags)}${u32(0)}${u32(0)}`));
  }
  await c.x('SET_BUFFERSIZE query', '00000011 00000000');
  await c.x('SET_BUFFERSIZE 1', '00000011 00000001');
  await c.x('SET_BUFFERSIZE 99999', '00000011 0001869f');
  await c.d('GetRandom before INIT', T.getRandom12(8));
  await c.x('GET_TPMESTABLISHED before INIT', '00000004');
  await c.x('INIT', '00000002 00000000', SLOW);
  await c.x('HASH_START before TPM_Startup', '00000006');
  // libtpms then fails its self-test until the next INIT.
  await c.d('TPM_Startup after the refused HASH_START', T.startup12());
  await c.x('STOP after the refused HASH_START', '0000000e');
  await c.x('INIT again', '00000002 00000000', SLOW);
  await c.d('TPM_Startup(ST_CLEAR)', T.startup12());
  await c.d('GetRandom', T.getRandom12(8), { mask: RANDOM_BYTES });
  await c.x('HASH_DATA without HASH_START', '00000007 00000004 01020304');
  await c.x('HASH_END without HASH_START', '00000008');
  await c.x('HASH_START', '00000006');
  await c.x('GET_TPMESTABLISHED after HASH_START', '00000004');
  await c.x('HASH_DATA', '00000007 00000004 01020304');
  await c.x('HASH_END', '00000008');
  await c.x('RESET_TPMESTABLISHED loc 0', '0000000b 00');
  await c.x('RESET_TPMESTABLISHED loc 3', '0000000b 03');
  await c.x('GET_TPMESTABLISHED after reset', '00000004');
  await c.x('SET_LOCALITY 4', '00000005 04');
  await c.x('SET_LOCALITY 0', '00000005 00');
  await c.x('STORE_VOLATILE', '0000000a');
  c.check('volatilestate file after STORE_VOLATILE', c.stateFile('tpm-00.volatilestate'));
  const perm = await c.x('GET_STATEBLOB permanent', getBlob(1), { mask: BLOB_STRUCTURE });
  await c.x('GET_STATEBLOB volatile', getBlob(2), { mask: BLOB_STRUCTURE });
  // Both delete the volatile file (also the one STORE_VOLATILE wrote).
  c.fact('volatilestate file after GET_STATEBLOB volatile', c.stateFile('tpm-00.volatilestate'));
  await c.x('GET_STATEBLOB savestate', getBlob(3));
  await c.x('LOCK_STORAGE', '00000013 00000000', { allow: LOCK_OK });
  await c.x('STOP', '0000000e');
  await c.d('GetRandom after STOP', T.getRandom12(8));
  const p = blobOf(perm.hex);
  await c.x('SET_STATEBLOB permanent', Buffer.concat([setBlobHead(1, p.length), p]));
  await c.x('INIT after SET_STATEBLOB', '00000002 00000001', SLOW);
  // No volatile state is left, so INIT starts fresh and wants a TPM_Startup.
  await c.d('TPM_Startup after SET_STATEBLOB + INIT', T.startup12());
  await c.shutdown();
};

const SCRIPTS: [
  string,
  Script,
  { tpm2?: boolean; noServer?: boolean; flags?: string; shared?: 12 },
][] = [
  ['split, padded, pipelined and late writes', split, { flags: 'not-need-init' }],
  ['CMD_SET_DATAFD without --server', datafd, { noServer: true }],
  ['CMD_SET_DATAFD with --server', datafdWithServer, {}],
  ['TPM 1.2', tpm12, { tpm2: false, shared: 12 }],
];

describe(
  'control channel vs Debian swtpm 0.7.1 (wire)',
  { concurrency: true, skip: !haveSwtpm && 'swtpm not installed' },
  () => {
    const shared12 = haveSwtpm ? makeSharedState(false) : Promise.resolve('');
    for (const transport of ['tcp', 'unix'] as Transport[]) {
      describe(`over ${transport}`, { concurrency: true }, () => {
        for (const [name, script, o] of SCRIPTS) {
          it(name, { timeout: 120000 }, async () => {
            const { shared, ...rest } = o;
            const from = shared ? { stateFrom: await shared12 } : {};
            assert.deepEqual(await diffScript({ transport, ...rest, ...from }, script), []);
          });
        }
      });
    }
  },
);
