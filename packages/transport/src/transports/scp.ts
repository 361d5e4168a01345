import { createReadStream, createWriteStream, openSync } from 'node:fs';
import { open, rm, unlink } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { DependencyError, UsageError, formatBytes, type Host, type HostProcess, type RunResult } from '@deploykit/core';
import { buildControlPath, preferredSshCiphers, SshHost } from '@deploykit/host';
import { tailText } from '../pipeline/stage-failure.js';
import { waitAtMost } from '../pipeline/timing.js';
import { describeExit } from './receiver-process.js';
import { checkDeployOnHost } from './ssh.js';
import { isStagedStreamFile, SCP_FILE_MAGIC, SCP_HEADER_BYTES, StagedFileWriter } from './scp-file.js';
import type { ProducerFile, SenderChannel, SenderChannelExit, Transport } from './transport.js';

/** Room kept free besides the staged file (framing overhead, other writers). */
const SPACE_MARGIN_BYTES = 64 * 1024 * 1024;

/** Builds the scp argv copying `file` to `remotePath` on an ssh target, reusing its ControlMaster. */
export function buildScpArgv(target: SshHost, file: string, remotePath: string): string[] {
  const { sshConfig, controlDir, destination } = target.target;
  const argv = ['scp', '-q', '-B'];
  if (sshConfig) argv.push('-F', sshConfig);
  // The same cipher preference as the ssh sessions (a ControlMaster, when there is one, already has it).
  const ciphers = target.target.ciphers === undefined ? preferredSshCiphers() : target.target.ciphers;
  if (ciphers !== null) argv.push('-o', `Ciphers=${ciphers}`);
  if (controlDir)
    argv.push(
      '-o',
      'ControlMaster=auto',
      '-o',
      `ControlPath=${buildControlPath(controlDir)}`,
      '-o',
      'ControlPersist=60',
    );
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
export async function assertFreeSpace(
  host: Host,
  dir: string,
  needed: number | undefined,
  role: string,
): Promise<void> {
  if (needed === undefined) return;
  const free = await readFreeBytes(host, dir);
  if (free === undefined || free >= needed + SPACE_MARGIN_BYTES) return;
  throw new DependencyError(
    'NO_SPACE_FOR_SCP',
    `${role} host ${host.name} has ${formatBytes(free)} free in ${dir}, the scp transport needs ${formatBytes(needed + SPACE_MARGIN_BYTES)} there (the whole stream is staged as a file)`,
    {
      hint: 'Free space there, or choose a streaming transport (--transport ssh or ffl) that stages nothing.',
      details: { free, needed },
    },
  );
}

/** The temp dir of a host's user (TMPDIR or /tmp). */
export async function readTempDir(host: Host): Promise<string> {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, run by sh on the host
  const result = await host.run({ argv: ['sh', '-c', 'printf %s "${TMPDIR:-/tmp}"'], timeoutMs: 30_000 });
  return result.stdout.trim() || '/tmp';
}

/** scp (legacy): the bytes go to a file on the source, scp copies it, the target command reads the file and deletes it. */
export const scpTransport: Transport = {
  name: 'scp',
  summary: 'legacy: a file on the source, scp, the target reads the file; needs the whole size free on both sides',
  interactive: false,
  guarantees: {
    encryption: 'SSH (scp)',
    needsSshTrust: true,
    stagedBytes: 'the whole transfer, on the source and on the target',
    retry: 'a new file and copy, resuming after the parts the target verified',
    pathDetection: 'always `file`',
  },
  async preflight(context) {
    if (!(context.target instanceof SshHost)) {
      throw new UsageError(
        'SCP_NEEDS_SSH_TARGET',
        `the scp transport needs a remote target reached over ssh, not ${context.target.name}`,
        {
          hint: 'Name the target with --to HOST (from the config), or use --transport local.',
        },
      );
    }
    // The local checks run beside the target's (each is a round trip, the deploy check a node
    // start-up on the target); the target's run one after the other, so the first of them opens the
    // ControlMaster the others reuse. The first failing check in this order is reported, as when all
    // ran one by one.
    const target = context.target;
    const scpCheck = context.source.run({ argv: ['sh', '-c', 'command -v scp'], timeoutMs: 30_000 }).then((scp) => {
      if (scp.exitCode !== 0) {
        throw new DependencyError(
          'SCP_MISSING',
          `scp is not installed on host ${context.source.name} (looked in PATH)`,
          {
            hint: 'Install openssh-client, or choose --transport ssh.',
          },
        );
      }
    });
    const deployCheck = checkDeployOnHost(target, context.deployCommand);
    const sourceSpace = (async () => {
      const sourceDir = context.options.scp?.sourceStagingDir ?? (await readTempDir(context.source));
      await assertFreeSpace(context.source, sourceDir, context.estimatedBytes, 'source');
    })();
    const targetSpace = deployCheck.then(async () =>
      assertFreeSpace(target, await readTempDir(target), context.estimatedBytes, 'target'),
    );
    const checks = await Promise.allSettled([scpCheck, deployCheck, sourceSpace, targetSpace]);
    const failed = checks.find((check) => check.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  },
  async openSender(context): Promise<SenderChannel> {
    const target = context.target;
    if (!(target instanceof SshHost))
      throw new UsageError('SCP_NEEDS_SSH_TARGET', 'the scp transport needs an ssh target');
    const localFile = join(
      context.options.scp?.sourceStagingDir ?? context.attemptDir,
      `${context.stream}-${context.runId}-${context.attempt}.dk`,
    );
    // One fd for both ways in: a producer process writing it directly (producerFile, the stream
    // pipeline) or bytes written into `sink` (a migration's bundle).
    const fd = openSync(localFile, 'w+', 0o600);
    const sink = createWriteStream(localFile, { fd, highWaterMark: 1024 * 1024 });
    const staged = new StagedFileWriter(fd);
    // The file could not be completed (the producer wrote before its start): nothing to copy.
    let stagingFailed: (error: Error) => void = () => undefined;
    const stagingFailure = new Promise<never>((_resolve, reject) => {
      stagingFailed = reject;
    });
    stagingFailure.catch(() => undefined);
    let direct = false;
    const stagedBytes = (): number => (direct ? SCP_HEADER_BYTES + staged.bytes : sink.bytesWritten);
    const producerFile: ProducerFile = {
      fd,
      start() {
        direct = true;
        staged.start();
      },
      get bytes() {
        return staged.bytes;
      },
      get lastMoveAt() {
        return staged.lastMoveAt;
      },
      async finish(status) {
        try {
          const trailer = await staged.finish(status);
          sink.end();
          return trailer;
        } catch (error) {
          stagingFailed(error as Error);
          throw error;
        }
      },
    };
    const output = new PassThrough();
    const errors = new PassThrough();
    let remoteDir: string | undefined;
    let command: HostProcess | undefined;
    let copied = 0;
    let aborting = false;
    let commandEnded = false;
    sink.on('error', (error) =>
      context.report({
        stage: 'sender',
        code: 'SCP_STAGING_WRITE',
        message: `cannot write the staged file ${localFile}: ${error.message}`,
        at: Date.now(),
        hint: 'Free space on the source, or use a streaming transport.',
      }),
    );
    const removeCopies = async (): Promise<void> => {
      await rm(localFile, { force: true });
      if (remoteDir !== undefined) await target.run({ argv: ['rm', '-rf', '--', remoteDir], timeoutMs: 30_000 });
    };
    const ended = (result: RunResult, failure?: SenderChannelExit['failure']): SenderChannelExit => {
      output.end();
      errors.end();
      return { result, ...(failure === undefined ? {} : { failure }) };
    };
    const exited = (async (): Promise<SenderChannelExit> => {
      try {
        try {
          await Promise.race([once(sink, 'finish'), stagingFailure]);
        } catch (error) {
          return ended(emptyResult('not copied'), {
            stage: 'sender',
            code: 'SCP_STAGING_WRITE',
            message: `cannot write the staged file ${localFile}: ${(error as Error).message}`,
          });
        }
        if (aborting) return ended(emptyResult('aborted'));
        const made = await target.run({
          argv: ['mktemp', '-d', '-t', `dk-scp-${context.runId}-XXXXXX`],
          timeoutMs: 30_000,
        });
        if (made.exitCode !== 0) {
          return ended(made, {
            stage: 'receiver',
            code: 'SCP_TARGET_STAGING',
            message: `cannot create a staging dir on ${target.name}: ${made.stderr.trim()}`,
          });
        }
        remoteDir = made.stdout.trim();
        const remoteFile = `${remoteDir}/${context.stream}.dk`;
        // scp shows no progress without a tty; polling the file size keeps stall detection informed.
        const poll = setInterval(() => {
          void target.run({ argv: ['stat', '-c', '%s', remoteFile], timeoutMs: 5000 }).then((r) => {
            const size = Number(r.stdout.trim());
            if (r.exitCode === 0 && Number.isFinite(size)) copied = size;
          });
        }, 1000);
        const copy = await context.source
          .run({ argv: buildScpArgv(target, localFile, remoteFile), timeoutMs: 24 * 3600_000 })
          .finally(() => clearInterval(poll));
        if (copy.exitCode !== 0) {
          return ended(copy, {
            stage: 'sender',
            code: 'SCP_FAILED',
            message: `scp to ${target.name} failed (${describeExit(copy)}): ${tailText(copy.stderr, context.secrets, 2)}`,
            hint: 'Check free space on the target and the ssh connection, then retry.',
          });
        }
        copied = stagedBytes();
        await rm(localFile, { force: true });
        if (aborting) return ended(emptyResult('aborted'));
        command = target.spawn({
          argv: context.targetArgv({ from: remoteFile, deleteAfter: true }),
          ...(context.targetEnv ? { env: context.targetEnv } : {}),
          label: `receiver ${context.stream}`,
          maxBuffer: 64 * 1024,
        });
        command.stdout.pipe(output);
        command.stderr.pipe(errors);
        const result = await command.wait();
        commandEnded = true;
        return { result };
      } finally {
        await removeCopies();
      }
    })();
    let aborted: Promise<void> | undefined;
    return {
      sink,
      output,
      errors,
      ready: Promise.resolve(),
      exited,
      interactive: false,
      path: 'file',
      producerFile,
      transportBytes: () => copied + stagedBytes(),
      stagedBytes,
      interrupt: () => command?.kill('SIGINT'),
      abort() {
        aborted ??= (async () => {
          aborting = true;
          staged.stop();
          if (!sink.writableFinished) sink.destroy();
          if (command !== undefined && !commandEnded) {
            command.kill('SIGTERM');
            await waitAtMost(command.wait(), 3000);
            command.kill('SIGKILL');
          }
          await waitAtMost(exited, 5000);
          await removeCopies();
        })();
        return aborted;
      },
    };
  },
  accepts: (from) => from !== '-' && !/^https?:\/\//i.test(from),
  async openReceiver(context) {
    const stream = createReadStream(context.from, { highWaterMark: 1024 * 1024 });
    let closed = false;
    // A staged stream file (the stream pipeline's) is checked and read in place; anything else
    // (a migration's bundle) is read as a stream.
    const staged = await open(context.from, 'r').then(
      async (handle) => {
        const start = Buffer.alloc(SCP_FILE_MAGIC.length);
        const { bytesRead } = await handle.read(start, 0, start.length, 0).finally(() => handle.close());
        return isStagedStreamFile(start.subarray(0, bytesRead));
      },
      // Unreadable: the stream reports it.
      () => false,
    );
    return {
      stream,
      ...(staged ? { stagedFile: context.from } : {}),
      path: 'file',
      secrets: [],
      transportFailure: async () => undefined,
      onEnded: () => undefined,
      complete: async () => undefined,
      async close() {
        if (closed) return;
        closed = true;
        stream.destroy();
        if (context.deleteAfter) await unlink(context.from).catch(() => undefined);
      },
    };
  },
};

/** A stand-in result for a command that never ran (the transfer was aborted first). */
function emptyResult(reason: string): RunResult {
  return { argv: [], exitCode: null, signal: null, stdout: '', stderr: reason, durationMs: 0, timedOut: false };
}
