/**
 * Seed 001's `0x03` binary file transfer, kept in memory and bounded: a few files per user and
 * a total byte budget, oldest dropped first. A real service would stream them to object
 * storage; the acknowledgement (`Status binary_received` with the sha256) is the core's.
 */
import { createHash } from 'node:crypto';
import type { BinaryHandler } from 'switchyard';

export interface ReceivedFile {
  id: number;
  user: string;
  size: number;
  /** `sha256:<hex>`, as in the acknowledgement. */
  checksum: string;
  receivedAt: number;
  data: Buffer;
}

export interface FileInboxOptions {
  /** Files kept per user; the oldest goes first. Default 16. */
  maxFilesPerUser?: number;
  /** Bytes kept over all users; the oldest files go first. Default 16 MiB. */
  maxTotalBytes?: number;
}

export class FileInbox {
  readonly #files: ReceivedFile[] = [];
  readonly #maxPerUser: number;
  readonly #maxBytes: number;
  #bytes = 0;
  #ids = 0;

  constructor(options: FileInboxOptions = {}) {
    this.#maxPerUser = options.maxFilesPerUser ?? 16;
    this.#maxBytes = options.maxTotalBytes ?? 16 * 1024 * 1024;
  }

  /** The envelope's `binary.file_transfer` handler. */
  readonly handler: BinaryHandler = (conn, data) => void this.add(conn.principal.id, data);

  add(user: string, data: Buffer): ReceivedFile {
    const file: ReceivedFile = {
      id: ++this.#ids,
      user,
      size: data.length,
      checksum: `sha256:${createHash('sha256').update(data).digest('hex')}`,
      receivedAt: Date.now(),
      data: Buffer.from(data), // a copy: the frame's buffer may be reused
    };
    this.#files.push(file);
    this.#bytes += file.size;
    while (this.list(user).length > this.#maxPerUser) this.#drop(this.#files.findIndex((f) => f.user === user));
    while (this.#bytes > this.#maxBytes && this.#files.length > 0) this.#drop(0);
    return file;
  }

  /** A user's files, oldest first. */
  list(user: string): ReceivedFile[] {
    return this.#files.filter((f) => f.user === user);
  }

  get totalBytes(): number {
    return this.#bytes;
  }

  #drop(index: number): void {
    const [file] = this.#files.splice(index, 1);
    if (file !== undefined) this.#bytes -= file.size;
  }
}
