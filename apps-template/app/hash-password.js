// Used by bin/install to seed the admin user: reads a password on stdin (never argv), prints its hash.
import { hashPassword } from './lib/auth.js';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const password = Buffer.concat(chunks)
  .toString('utf8')
  .replace(/\r?\n$/, '');
if (password === '') {
  process.stderr.write('hash-password: empty password on stdin\n');
  process.exit(1);
}
process.stdout.write(`${await hashPassword(password)}\n`);
