import { createServer } from 'node:net';
import { randomInt } from 'node:crypto';
import { ConflictError } from '@deploykit/core';

/** The ports each lab service tries, in order; the first that binds on every host's address wins. */
export const LAB_PORT_CANDIDATES = {
  ssh: [22, 2222],
  postgres: [5432, 15432],
  mysql: [3306, 13306],
} as const;

/** Addresses and ports chosen for one lab. */
export interface LabAddressPlan {
  addresses: string[];
  sshPort: number;
  pgPort: number;
  mysqlPort: number;
}

/** The loopback addresses of a lab block: 127.<a>.<b>.2, .3, ... one per host. */
export function buildLabAddresses(a: number, b: number, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `127.${a}.${b}.${index + 2}`);
}

/** Resolves true when a TCP listener can bind address:port right now (then closes it again). */
export function probeBind(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

async function pickPort(addresses: readonly string[], candidates: readonly number[]): Promise<number | undefined> {
  for (const port of candidates) {
    const results = await Promise.all(addresses.map((address) => probeBind(address, port)));
    if (results.every(Boolean)) return port;
  }
  return undefined;
}

/**
 * Picks a random 127.a.b.0/24 block whose addresses bind free on the ports the lab needs, so labs
 * running at the same time never clash; throws ConflictError after `attempts` tries.
 */
export async function pickLabAddresses(
  count: number,
  needs: { mysql: boolean },
  attempts = 20,
): Promise<LabAddressPlan> {
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    // a = 0 is left out: 127.0.0.x is where system services and other tools usually listen.
    const addresses = buildLabAddresses(randomInt(1, 255), randomInt(0, 256), count);
    const sshPort = await pickPort(addresses, LAB_PORT_CANDIDATES.ssh);
    if (sshPort === undefined) continue;
    const pgPort = await pickPort(addresses, LAB_PORT_CANDIDATES.postgres);
    if (pgPort === undefined) continue;
    const mysqlPort = needs.mysql ? await pickPort(addresses, LAB_PORT_CANDIDATES.mysql) : LAB_PORT_CANDIDATES.mysql[0];
    if (mysqlPort === undefined) continue;
    return { addresses, sshPort, pgPort, mysqlPort };
  }
  throw new ConflictError(
    'LAB_NO_ADDRESSES',
    `found no free loopback block for ${count} lab hosts in ${attempts} tries`,
    {
      hint: 'Something listens on the lab ports (22/2222, 5432/15432, 3306/13306) of every 127.x.y.z address; stop it or stop old labs with `npm run lab -- down`.',
    },
  );
}
