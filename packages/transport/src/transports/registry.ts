import { UsageError } from '@deploykit/core';
import type { TransportName } from '../contract.js';
import { fflTransport } from './ffl.js';
import { localTransport } from './local.js';
import { scpTransport } from './scp.js';
import { sshTransport } from './ssh.js';
import type { Transport } from './transport.js';

/** Every transport, by name. */
export const TRANSPORTS: Readonly<Record<TransportName, Transport>> = {
  ffl: fflTransport,
  ssh: sshTransport,
  scp: scpTransport,
  local: localTransport,
};

/** The known transport names, in the order help and docs list them. */
export function listTransportNames(): TransportName[] {
  return Object.keys(TRANSPORTS) as TransportName[];
}

/** Finds a transport by name; an unknown name throws UsageError listing the known ones. */
export function resolveTransport(name: string): Transport {
  const transport = (TRANSPORTS as Record<string, Transport | undefined>)[name];
  if (transport === undefined) {
    throw new UsageError('TRANSPORT_UNKNOWN', `unknown transport "${name}"`, {
      hint: `Known transports: ${listTransportNames().join(', ')}.`,
    });
  }
  return transport;
}

/**
 * Finds the transport that delivers a `--from` value on this host (the target half): a link is
 * ffl's, `-` inside an ssh session is ssh's, `-` elsewhere local's, anything else a file (scp).
 */
export function resolveReceiverTransport(from: string, environment: NodeJS.ProcessEnv = process.env): Transport {
  const found = [fflTransport, sshTransport, scpTransport, localTransport].find((transport) =>
    transport.accepts(from, environment),
  );
  if (found === undefined) {
    throw new UsageError('FROM_UNKNOWN', `cannot tell where to read "${from}" from`, {
      hint: 'Give --from - (stdin), a file path, or an ffl link (https://...).',
    });
  }
  return found;
}
