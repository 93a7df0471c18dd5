/**
 * A byte connection as the session layer sees it: chunks in (each one read, with any
 * fds that rode along), whole buffers out. Transports implement it; they know nothing
 * of the protocol.
 */
export interface Conn {
  /** Sends the whole buffer as one write (swtpm answers with one write/writev). */
  write(buf: Uint8Array): void;
  /** Closes this connection; `onClose` fires once. */
  close(): void;
  /** Stops or restarts delivery of chunks (back-pressure while a command runs). */
  pause(): void;
  resume(): void;
  onData: (chunk: Buffer, fds: readonly number[]) => void;
  onClose: () => void;
  /** For logs. */
  readonly peer: string;
}

/** A listening transport that hands out one connection at a time. */
export interface ConnServer {
  /** Called for each accepted connection, only after the previous one closed. */
  onConn: (conn: Conn) => void;
  /** Stops listening; removes a Unix socket file. */
  close(): void;
  /** Human readable address (port or path), for logs and tests. */
  readonly address: string;
}

export const noop = (): void => {};
