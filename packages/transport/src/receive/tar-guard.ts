import { Transform, type TransformCallback } from 'node:stream';
import { TransportError, type SpecialFileSpec, type SpecialFileType } from '@deploykit/core';

const BLOCK = 512;
/** Largest GNU long-name or pax record we accept; real ones are a few KiB at most. */
const MAX_META_BYTES = 1024 * 1024;
/** Entry types that would create a device node or a FIFO: refused unless the app declares the entry. */
const SPECIAL_TYPES: Record<string, { readonly what: string; readonly type: SpecialFileType }> = {
  '3': { what: 'character device', type: 'char' },
  '4': { what: 'block device', type: 'block' },
  '6': { what: 'FIFO', type: 'fifo' },
};

/** Which special files a TarGuard lets through. */
export interface TarGuardOptions {
  /** Device nodes and FIFOs the app declares for this archive (path relative to the archive root, exact type). */
  readonly specialFiles?: readonly SpecialFileSpec[];
  /** Whether declared device nodes may pass: only when tar -x runs as root (it cannot mknod otherwise). */
  readonly allowDevices?: boolean;
}
/** Entry types whose size field counts data blocks that follow the header. */
const TYPES_WITHOUT_DATA = new Set(['1', '2', '3', '4', '5', '6']);

/** Stable error codes of the tar guard (TransportError.code). */
export const TAR_ERROR_CODES = {
  unsafe: 'TAR_UNSAFE_ENTRY',
  special: 'TAR_SPECIAL_FILE',
  garbage: 'TAR_GARBAGE',
} as const;

type GuardState = 'header' | 'data' | 'meta' | 'sparse-extension' | 'end';

interface Overrides {
  path?: string;
  linkpath?: string;
}

/** Splits an archive path into its components, dropping empty and `.` ones. */
function splitPath(path: string): string[] {
  return path.split('/').filter((part) => part !== '' && part !== '.');
}

/** Reads a NUL-terminated string field. */
function readString(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('utf8');
}

/** Pads a size to whole 512-byte blocks. */
function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

/**
 * Passes a tar stream through unchanged while checking every entry header on the fly (ustar, GNU
 * long names 'L'/'K', pax 'x'/'g' path/linkpath, octal and base-256 sizes). Fails with
 * TAR_UNSAFE_ENTRY before the offending header is passed on when an entry has an absolute path or a
 * `..` component, has a parent that is a symlink from the same archive (nothing is ever written
 * through a link), lands on the path of an earlier symlink entry, or is a hard link to an absolute
 * or `..` target or through a symlink. Symlinks themselves are carried verbatim whatever they point
 * at (absolute, dangling, chained): since no path through one is ever used, their targets do not
 * matter, and the check is O(path depth) per entry. Fails with TAR_SPECIAL_FILE on a device node or
 * FIFO unless `options.specialFiles` declares exactly that path with that type (and, for a device,
 * `options.allowDevices` is set), and with TAR_GARBAGE when a header checksum is wrong. Everything after the end-of-archive
 * block passes unchecked (tar stops reading there). Decision record: docs/decisions/0006-*.md.
 */
export class TarGuard extends Transform {
  #state: GuardState = 'header';
  readonly #block = Buffer.alloc(BLOCK);
  #fill = 0;
  #skipLeft = 0;
  #metaType = '';
  #meta: Buffer = Buffer.alloc(0);
  #metaFill = 0;
  #metaSize = 0;
  #sparseDataSize = 0;
  #longName: string | undefined;
  #longLink: string | undefined;
  #pax: Overrides = {};
  /** Every path that is a symlink entry of this archive (or a hard link to one); never shrinks. */
  readonly #symlinks = new Set<string>();
  #symlinkEntries = 0;
  #entries = 0;
  #bytes = 0;
  #sawRootEntry = false;
  /** Declared special files: normalized path -> type. */
  readonly #declared: ReadonlyMap<string, SpecialFileType>;
  readonly #allowDevices: boolean;
  #specialEntries = 0;

  constructor(options: TarGuardOptions = {}) {
    super();
    this.#declared = new Map((options.specialFiles ?? []).map((file) => [splitPath(file.path).join('/'), file.type]));
    this.#allowDevices = options.allowDevices === true;
  }

  /** Declared device nodes and FIFOs let through so far. */
  get specialFiles(): number {
    return this.#specialEntries;
  }

  /** Archive entries checked so far (metadata headers not counted). */
  get entries(): number {
    return this.#entries;
  }

  /** Symlink entries checked so far (carried verbatim). */
  get symlinks(): number {
    return this.#symlinkEntries;
  }

  /** Bytes passed through so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** True when the archive carried an entry for its root (`.` or `./`), which sets the root's mode. */
  get sawRootEntry(): boolean {
    return this.#sawRootEntry;
  }

  /** True once the end-of-archive block was seen. */
  get ended(): boolean {
    return this.#state === 'end';
  }

  /**
   * Checks `chunk` as the next bytes of the archive without passing it on (throws the guard's
   * TransportError): with dataLeft/skipData a file's headers are checked without reading its data.
   */
  check(chunk: Buffer): void {
    this.#scan(chunk);
    this.#bytes += chunk.length;
  }

  /** Bytes of entry data the guard would pass unchecked next (0 when a header or metadata comes next). */
  get dataLeft(): number {
    return this.#state === 'data' ? this.#skipLeft : 0;
  }

  /** Skips `bytes` (at most dataLeft) of entry data that were not read. */
  skipData(bytes: number): void {
    if (bytes > this.dataLeft)
      throw new RangeError(`skipData(${bytes}) beyond the entry's ${this.dataLeft} data bytes`);
    this.#skipLeft -= bytes;
    this.#bytes += bytes;
    if (this.#skipLeft === 0) this.#state = 'header';
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#scan(chunk);
    } catch (error) {
      return callback(error as Error);
    }
    this.#bytes += chunk.length;
    callback(null, chunk);
  }

  #scan(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && this.#state !== 'end') {
      const rest = chunk.length - offset;
      if (this.#state === 'data') {
        const take = Math.min(this.#skipLeft, rest);
        this.#skipLeft -= take;
        offset += take;
        if (this.#skipLeft === 0) this.#state = 'header';
      } else if (this.#state === 'meta') {
        const take = Math.min(this.#meta.length - this.#metaFill, rest);
        chunk.copy(this.#meta, this.#metaFill, offset, offset + take);
        this.#metaFill += take;
        offset += take;
        if (this.#metaFill === this.#meta.length) this.#completeMeta();
      } else {
        const take = Math.min(BLOCK - this.#fill, rest);
        chunk.copy(this.#block, this.#fill, offset, offset + take);
        this.#fill += take;
        offset += take;
        if (this.#fill === BLOCK) {
          this.#fill = 0;
          if (this.#state === 'header') this.#completeHeader(this.#block);
          else this.#completeSparseExtension(this.#block);
        }
      }
    }
  }

  #garbage(message: string): TransportError {
    return new TransportError(TAR_ERROR_CODES.garbage, `payload is not a valid tar stream: ${message}`, {
      hint: 'The producer did not write a tar archive; check the stream producer on the source host.',
      details: { entries: this.#entries },
    });
  }

  #unsafe(name: string, reason: string): TransportError {
    return new TransportError(TAR_ERROR_CODES.unsafe, `refusing tar entry ${JSON.stringify(name)}: ${reason}`, {
      hint: 'The archive would write outside the target folder; nothing was swapped in. Inspect the archive on the source host.',
      details: { entry: name, reason },
    });
  }

  #readNumber(block: Buffer, start: number, length: number, what: string): number {
    const first = block[start]!;
    if (first & 0x80) {
      // GNU base-256: big-endian two's complement; 0xff marks a negative number.
      if (first === 0xff) throw this.#garbage(`negative ${what}`);
      let value = first & 0x7f;
      for (let index = start + 1; index < start + length; index += 1) value = value * 256 + block[index]!;
      if (!Number.isSafeInteger(value)) throw this.#garbage(`${what} too large`);
      return value;
    }
    const text = block
      .subarray(start, start + length)
      .toString('latin1')
      .replace(/[\0 ]+$/, '')
      .replace(/^ +/, '');
    if (text === '') return 0;
    if (!/^[0-7]+$/.test(text)) throw this.#garbage(`${what} field ${JSON.stringify(text)} is not octal`);
    return parseInt(text, 8);
  }

  #completeHeader(block: Buffer): void {
    if (block.every((byte) => byte === 0)) {
      this.#state = 'end';
      return;
    }
    this.#verifyChecksum(block);
    const type = String.fromCharCode(block[156]!);
    const size = this.#readNumber(block, 124, 12, 'size');
    if (type === 'L' || type === 'K' || type === 'x' || type === 'g') {
      if (size > MAX_META_BYTES) throw this.#garbage(`metadata record of ${size} bytes`);
      this.#metaType = type;
      this.#metaSize = size;
      this.#meta = Buffer.alloc(padded(size));
      this.#metaFill = 0;
      this.#state = this.#meta.length === 0 ? 'header' : 'meta';
      if (this.#meta.length === 0) this.#completeMeta();
      return;
    }
    const magic = block.subarray(257, 263).toString('latin1');
    const shortName = readString(block, 0, 100);
    const prefix = magic === 'ustar\0' ? readString(block, 345, 155) : '';
    const name = this.#pax.path ?? this.#longName ?? (prefix === '' ? shortName : `${prefix}/${shortName}`);
    const linkName = this.#pax.linkpath ?? this.#longLink ?? readString(block, 157, 100);
    this.#pax = {};
    this.#longName = undefined;
    this.#longLink = undefined;
    this.#checkEntry(name, type, linkName);
    this.#entries += 1;
    const dataSize = TYPES_WITHOUT_DATA.has(type) ? 0 : padded(size);
    // Old GNU sparse headers may be followed by extension blocks before the data.
    if (type === 'S' && magic !== 'ustar\0' && block[482] !== 0) {
      this.#sparseDataSize = dataSize;
      this.#state = 'sparse-extension';
      return;
    }
    this.#skip(dataSize);
  }

  #skip(bytes: number): void {
    this.#skipLeft = bytes;
    this.#state = bytes === 0 ? 'header' : 'data';
  }

  #completeSparseExtension(block: Buffer): void {
    if (block[504] === 0) this.#skip(this.#sparseDataSize);
  }

  #verifyChecksum(block: Buffer): void {
    const stored = this.#readNumber(block, 148, 8, 'checksum');
    let unsigned = 0;
    let signed = 0;
    for (let index = 0; index < BLOCK; index += 1) {
      const byte = index >= 148 && index < 156 ? 0x20 : block[index]!;
      unsigned += byte;
      signed += byte > 127 ? byte - 256 : byte;
    }
    if (stored !== unsigned && stored !== signed)
      throw this.#garbage(`header checksum mismatch after ${this.#entries} entries`);
  }

  #completeMeta(): void {
    const data = this.#meta.subarray(0, this.#metaSize);
    this.#state = 'header';
    if (this.#metaType === 'L') this.#longName = readString(data, 0, data.length);
    else if (this.#metaType === 'K') this.#longLink = readString(data, 0, data.length);
    else {
      const records = this.#parsePax(data);
      if (this.#metaType === 'x') this.#pax = records;
      // A global header's path makes no sense for one entry; still refuse a hostile one.
      else if (records.path !== undefined) this.#checkEntry(records.path, '0', '');
    }
  }

  #parsePax(data: Buffer): Overrides {
    const out: Overrides = {};
    let position = 0;
    while (position < data.length) {
      if (data[position] === 0) break;
      const space = data.indexOf(0x20, position);
      const length = space === -1 ? NaN : Number(data.subarray(position, space).toString('latin1'));
      if (!Number.isInteger(length) || length <= space - position || position + length > data.length)
        throw this.#garbage('malformed pax header');
      const record = data.subarray(space + 1, position + length - 1).toString('utf8');
      const equals = record.indexOf('=');
      const key = record.slice(0, equals);
      const value = record.slice(equals + 1);
      if (key === 'path' || key === 'GNU.sparse.name') out.path = value;
      else if (key === 'linkpath') out.linkpath = value;
      position += length;
    }
    return out;
  }

  #checkEntry(name: string, type: string, linkName: string): void {
    if (name.startsWith('/')) throw this.#unsafe(name, 'absolute path');
    const parts = name.split('/');
    if (parts.includes('..')) throw this.#unsafe(name, 'path has a ".." component');
    const clean = splitPath(name);
    const special = SPECIAL_TYPES[type];
    if (special !== undefined) this.#checkSpecial(name, clean.join('/'), special);
    if (clean.length === 0) {
      if (type !== '5' && type !== 'D') throw this.#unsafe(name, 'the archive root is not a directory');
      this.#sawRootEntry = true;
      return;
    }
    const through = this.#symlinkParent(clean);
    if (through !== undefined)
      throw this.#unsafe(name, `path goes through the symlink ${JSON.stringify(through)} from the same archive`);
    const key = clean.join('/');
    // A regular archive names each path once; a second entry on a symlink's path would make tar
    // replace (or write through) it depending on the entry type: refused rather than reasoned about.
    if (this.#symlinks.has(key)) throw this.#unsafe(name, 'the archive already holds a symlink at this path');
    if (type === '1') {
      if (linkName.startsWith('/')) throw this.#unsafe(name, `hard link to absolute path ${JSON.stringify(linkName)}`);
      if (linkName.split('/').includes('..'))
        throw this.#unsafe(name, `hard link target ${JSON.stringify(linkName)} has a ".." component`);
      const target = splitPath(linkName);
      const linkThrough = this.#symlinkParent(target);
      if (linkThrough !== undefined)
        throw this.#unsafe(name, `hard link target goes through the symlink ${JSON.stringify(linkThrough)}`);
      // link(2) does not follow a symlink: the new name is a second name of the symlink itself.
      if (this.#symlinks.has(target.join('/'))) this.#symlinks.add(key);
    } else if (type === '2') {
      // The link itself is carried verbatim, whatever it points at: nothing is ever written through it.
      this.#symlinks.add(key);
      this.#symlinkEntries += 1;
    }
  }

  /** The first proper prefix of `parts` (a parent directory of the entry) that is a symlink from this archive. */
  #symlinkParent(parts: readonly string[]): string | undefined {
    if (this.#symlinks.size === 0) return undefined;
    let prefix = '';
    for (let index = 0; index < parts.length - 1; index += 1) {
      prefix = index === 0 ? parts[0]! : `${prefix}/${parts[index]!}`;
      if (this.#symlinks.has(prefix)) return prefix;
    }
    return undefined;
  }

  /** Lets a device node or FIFO through only when declared with this exact path and type (and devices only as root). */
  #checkSpecial(name: string, key: string, special: { readonly what: string; readonly type: SpecialFileType }): void {
    const declared = this.#declared.get(key);
    if (declared === undefined) {
      throw this.#refusedSpecial(
        name,
        special.what,
        'not declared',
        `Remove it from the volume on the source (bin/start can create it), or declare it in app.yaml under the volume: special_files: [{ path: ${JSON.stringify(key)}, type: ${special.type} }] (docs/app-folder.md); then run the migration again.`,
      );
    }
    if (declared !== special.type) {
      throw this.#refusedSpecial(
        name,
        special.what,
        `declared as ${declared}`,
        `app.yaml declares ${JSON.stringify(key)} with type ${declared}, the archive holds a ${special.what}: correct the declaration or the entry on the source, then run the migration again.`,
      );
    }
    if (special.type !== 'fifo' && !this.#allowDevices) {
      throw this.#refusedSpecial(
        name,
        special.what,
        'declared, but devices are only created by root',
        'Only root can create device nodes: run deploy receive as root on the target, or remove the device from the volume and its declaration.',
      );
    }
    this.#specialEntries += 1;
  }

  #refusedSpecial(name: string, what: string, why: string, hint: string): TransportError {
    return new TransportError(
      TAR_ERROR_CODES.special,
      `refusing tar entry ${JSON.stringify(name)}: a ${what} (${why}; device nodes and FIFOs are carried only when the app declares them)`,
      {
        hint,
        details: { entry: name, reason: what },
      },
    );
  }
}
