// A persistent connection for tests that need request/response pairs on one socket
// (QEMU-style): read exactly N bytes, or a whole TPM response (size from its header).
import { Socket } from 'node:net';
import type { Endpoint } from './diff-servers.js';

export class Stream {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private ended = false;

  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiter?.();
    });
    const end = () => {
      this.ended = true;
      this.waiter?.();
    };
    sock.on('close', end);
    sock.on('error', end);
  }

  static connect(ep: Endpoint): Promise<Stream> {
    return new Promise((resolve, reject) => {
      const s = new Socket();
      s.once('error', reject);
      const ok = () => {
        s.off('error', reject);
        s.setNoDelay(true);
        resolve(new Stream(s));
      };
      if ('port' in ep) s.connect(ep.port, '127.0.0.1', ok);
      else s.connect(ep.path, ok);
    });
  }

  get closed(): boolean {
    return this.ended;
  }

  write(data: Uint8Array | string): void {
    this.sock.write(typeof data === 'string' ? Buffer.from(data.replace(/\s+/g, ''), 'hex') : data);
  }

  /** Exactly `n` bytes; rejects on EOF or after `timeoutMs`. */
  async read(n: number, timeoutMs = 30000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.ended) throw new Error(`EOF after ${this.buf.length} of ${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout: ${this.buf.length} of ${n} bytes`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiter = () => {
          clearTimeout(t);
          r();
        };
      });
      this.waiter = undefined;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** One TPM response: the 10-byte header, then the rest its size field announces. */
  async readTpm(timeoutMs = 30000): Promise<Buffer> {
    const head = await this.read(10, timeoutMs);
    const rest = await this.read(head.readUInt32BE(2) - 10, timeoutMs);
    return Buffer.concat([head, rest]);
  }

  /** Resolves true when the peer closes within `ms`, false otherwise. */
  async waitClosed(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.ended && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.ended;
  }

  close(): void {
    this.sock.destroy();
  }
}
