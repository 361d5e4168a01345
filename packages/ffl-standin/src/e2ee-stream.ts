import { createCipheriv, type Cipher } from 'node:crypto';

/**
 * Offset-addressable stream cipher for the simulated E2EE (AES-256-CTR, not ffl's AES-256-GCM
 * chunks): any resume offset can be decrypted, so handoff and Range resumes keep working.
 */
export function createOffsetCipher(key: Buffer, nonce: Buffer, offset: number): Cipher {
  const block = BigInt(Math.floor(offset / 16));
  const counter = (BigInt(`0x${nonce.toString('hex')}`) + block) % (1n << 128n);
  const iv = Buffer.from(counter.toString(16).padStart(32, '0'), 'hex');
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const skip = offset % 16;
  if (skip > 0) cipher.update(Buffer.alloc(skip));
  return cipher;
}
