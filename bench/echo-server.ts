/**
 * Node's floor for a round trip: a node:net server that does no TPM work at all. It
 * listens like tswtpm (`--server` and `--ctrl` in swtpm's syntax, TCP or Unix, one
 * client at a time is not enforced) and answers every data chunk with a fixed
 * 28-byte TPM success response (the size of a GetRandom(16) answer) and every control
 * chunk with 8 bytes (a GET_CAPABILITY answer). Measured with the same client, it
 * shows what any Node server pays before it does any work.
 *
 * `node dist/bench/echo-server.js --server type=tcp,port=P --ctrl type=unixio,path=S`
 */
import { unlinkSync } from 'node:fs';
import net from 'node:net';

const DATA_RSP = Buffer.alloc(28);
DATA_RSP.writeUInt16BE(0x8001, 0);
DATA_RSP.writeUInt32BE(28, 2);
DATA_RSP.writeUInt16BE(16, 10);
const CTRL_RSP = Buffer.from([0, 0, 0, 0, 0, 0, 0xff, 0xff]);

function listen(spec: string, rsp: Buffer): void {
  const kv = new Map(spec.split(',').map((p) => p.split('=') as [string, string]));
  const server = net.createServer({ noDelay: true }, (sock) => {
    sock.on('data', () => sock.write(Buffer.from(rsp)));
    sock.on('error', () => {});
  });
  const path = kv.get('path');
  if (kv.get('type') === 'unixio' && path !== undefined) {
    try {
      unlinkSync(path);
    } catch {}
    server.listen(path);
  } else {
    server.listen(Number(kv.get('port')), '127.0.0.1');
  }
}

const args = process.argv.slice(2);
for (let i = 0; i < args.length; i += 2) {
  const spec = args[i + 1] ?? '';
  if (args[i] === '--server') listen(spec, DATA_RSP);
  else if (args[i] === '--ctrl') listen(spec, CTRL_RSP);
}
process.on('SIGTERM', () => process.exit(0));
