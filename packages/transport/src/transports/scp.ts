import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { DependencyError, UsageError, formatBytes, type Host } from '@deploykit/core';
import { SshHost } from '@deploykit/host';
import { StageFailureError, tailText, type StageFailure } from '../pipeline/stage-failure.js';
import { waitAtMost } from './pipe-session.js';
import { buildReceiverArgv } from './receiver-argv.js';
import { describeExit, startReceiverProcess, type ReceiverProcess } from './receiver-process.js';
import { checkDeployOnHost } from './ssh.js';
import type { ReceiverDone, SenderSession, Transport } from './transport.js';

/** Room kept free besides the staged stream (framing overhead, other writers). */
const SPACE_MARGIN_BYTES = 64 * 1024 * 1024;

/** Builds the scp argv copying `file` to `remotePath` on an ssh target, reusing its ControlMaster. */
export function buildScpArgv(target: SshHost, file: string, remotePath: string): string[] {
  const { sshConfig, controlDir, destination } = target.target;
  const argv = ['scp', '-q', '-B'];
  if (sshConfig) argv.push('-F', sshConfig);
  if (controlDir) argv.push('-o', 'ControlMaster=auto', '-o', `ControlPath=${controlDir}/%C`, '-o', 'ControlPersist=60');
  argv.push('--', file, `${destination}:${remotePath}`);
  return argv;
}

/** Free bytes of the file system holding `dir` on a host (`df -Pk`); undefined when unknown. */
export async function readFreeBytes(host: Host, dir: string): Promise<number | undefined> {
  const result = await host.run({ argv: ['df', '-Pk', dir], timeoutMs: 30_000 });
  const fields = result.stdout.trim().split('\n').pop()?.split(/\s+/) ?? [];
  const availableKiB = Number(fields[3]);
  return result.exitCode === 0 && Number.isFinite(availableKiB) ? availableKiB * 1024 : undefined;
}

/** Refuses with numbers when `dir` on `host` lacks room for `needed` bytes. */
export async function assertFreeSpace(host: Host, dir: string, needed: number | undefined, role: string): Promise<void> {
  if (needed === undefined) return;
  const free = await readFreeBytes(host, dir);
  if (free === undefined || free >= needed + SPACE_MARGIN_BYTES) return;
  throw new DependencyError(
    'NO_SPACE_FOR_SCP',
    `${role} host ${host.name} has ${formatBytes(free)} free in ${dir}, the scp transport needs ${formatBytes(needed + SPACE_MARGIN_BYTES)} there (the whole stream is staged as a file)`,
    { hint: 'Free space there, or choose a streaming transport (--transport ssh or ffl) that stages nothing.', details: { free, needed } },
  );
}

/** The temp dir of a host's user (TMPDIR or /tmp). */
async function readTempDir(host: Host): Promise<string> {
  const result = await host.run({ argv: ['sh', '-c', 'printf %s "${TMPDIR:-/tmp}"'], timeoutMs: 30_000 });
  return result.stdout.trim() || '/tmp';
}

/** scp (legacy): frame into a file on the source, scp it, receive from the file, delete both copies. */
export const scpTransport: Transport = {
  name: 'scp',
  summary: 'legacy: framed file on the source, scp, receive from the file; needs the whole size free on both sides',
  guarantees: {
    encryption: 'SSH (scp)',
    needsSshTrust: true,
    stagedBytes: 'the whole stream, on the source and on the target',
    retry: 'whole stream re-run from the producer',
    pathDetection: 'always `file`',
  },
  async preflight(context) {
    if (!(context.target instanceof SshHost)) {
      throw new UsageError('SCP_NEEDS_SSH_TARGET', `the scp transport needs a remote target reached over ssh, not ${context.target.name}`, {
        hint: 'Name the target with --to HOST (from the config), or use --transport local.',
      });
    }
    const scp = await context.source.run({ argv: ['sh', '-c', 'command -v scp'], timeoutMs: 30_000 });
    if (scp.exitCode !== 0) {
      throw new DependencyError('SCP_MISSING', `scp is not installed on host ${context.source.name} (looked in PATH)`, { hint: 'Install openssh-client, or choose --transport ssh.' });
    }
    await checkDeployOnHost(context.target, context.deployCommand);
    const sourceDir = context.options.scp?.sourceStagingDir ?? (await readTempDir(context.source));
    await assertFreeSpace(context.source, sourceDir, context.estimatedBytes, 'source');
    await assertFreeSpace(context.target, await readTempDir(context.target), context.estimatedBytes, 'target');
  },
  async start(context): Promise<SenderSession> {
    const target = context.target;
    if (!(target instanceof SshHost)) throw new UsageError('SCP_NEEDS_SSH_TARGET', 'the scp transport needs an ssh target');
    const localFile = join(context.options.scp?.sourceStagingDir ?? context.attemptDir, `${context.stream}-${context.runId}-${context.attempt}.dkstream`);
    const sink = createWriteStream(localFile, { mode: 0o600 });
    let remoteDir: string | undefined;
    let receiver: ReceiverProcess | undefined;
    let written = 0;
    let copied = 0;
    sink.on('error', (error) => context.report({ stage: 'sender', code: 'SCP_STAGING_WRITE', message: `cannot write the staged stream ${localFile}: ${error.message}`, at: Date.now(), hint: 'Free space on the source, or use a streaming transport.' }));
    const fail = (failure: Omit<StageFailure, 'at'>): never => {
      const full = { ...failure, at: Date.now() };
      context.report(full);
      throw new StageFailureError(full);
    };
    const removeCopies = async (): Promise<void> => {
      await rm(localFile, { force: true });
      if (remoteDir !== undefined) await target.run({ argv: ['rm', '-rf', '--', remoteDir], timeoutMs: 30_000 });
    };
    const finished = (async (): Promise<ReceiverDone> => {
      try {
        await once(sink, 'finish');
        written = sink.bytesWritten;
        const made = await target.run({ argv: ['mktemp', '-d', '-t', `dk-scp-${context.runId}-XXXXXX`], timeoutMs: 30_000 });
        if (made.exitCode !== 0) fail({ stage: 'receiver', code: 'SCP_TARGET_STAGING', message: `cannot create a staging dir on ${target.name}: ${made.stderr.trim()}` });
        remoteDir = made.stdout.trim();
        const remoteFile = `${remoteDir}/${context.stream}.dkstream`;
        // scp shows no progress without a tty; polling the file size keeps the stall watchdog informed.
        const poll = setInterval(() => {
          void target.run({ argv: ['stat', '-c', '%s', remoteFile], timeoutMs: 5000 }).then((r) => {
            const size = Number(r.stdout.trim());
            if (r.exitCode === 0 && Number.isFinite(size)) copied = size;
          });
        }, 1000);
        const copy = await context.source.run({ argv: buildScpArgv(target, localFile, remoteFile), timeoutMs: 24 * 3600_000 }).finally(() => clearInterval(poll));
        if (copy.exitCode !== 0) {
          fail({ stage: 'sender', code: 'SCP_FAILED', message: `scp to ${target.name} failed (${describeExit(copy)})`, exitCode: copy.exitCode, signal: copy.signal, stderrTail: tailText(copy.stderr, context.secrets), hint: 'Check free space on the target and the ssh connection, then retry.' });
        }
        copied = written;
        await rm(localFile, { force: true });
        receiver = startReceiverProcess(context, {
          host: target,
          argv: buildReceiverArgv({ deployCommand: context.deployCommand, transport: 'scp', stream: context.stream, runId: context.runId, consumer: context.consumer, stallSeconds: context.stallSeconds, file: remoteFile, deleteAfter: true }),
          stdin: 'ignore',
        });
        return await receiver.finished;
      } finally {
        await removeCopies();
      }
    })();
    finished.catch(() => undefined);
    let aborted: Promise<void> | undefined;
    return {
      sink,
      ready: Promise.resolve(),
      finished,
      consumerBytes: () => (receiver?.consumerBytes() ?? 0) + copied + sink.bytesWritten,
      abort() {
        aborted ??= (async () => {
          sink.destroy();
          if (receiver !== undefined) {
            receiver.process.kill('SIGTERM');
            await waitAtMost(receiver.exited, 3000);
            receiver.process.kill('SIGKILL');
          }
          await removeCopies();
        })();
        return aborted;
      },
    };
  },
};
