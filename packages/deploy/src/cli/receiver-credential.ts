import { readFile, stat } from 'node:fs/promises';
import { DeployError, secret, UsageError, type Secret } from '@deploykit/core';
import type { ReceiverCredentialSpec } from '@deploykit/transport';

/** Where a receiver's credential may come from, in the order they are tried. */
export interface CredentialSources {
  readonly environment: NodeJS.ProcessEnv;
  /** `--code-file`: a file only its owner may read. */
  readonly file?: string;
  /** A terminal to ask on (no echo); undefined when there is none. */
  readonly prompt?: (question: string) => Promise<string>;
}

/**
 * Gets the credential a transport's target half needs (ffl's pickup code): from its environment
 * variable, a 0600 file, or a prompt without echo - never argv. Refuses a file others may read and
 * a value of the wrong shape (without echoing it), and says how to pass it when there is no way.
 */
export async function readReceiverCredential(
  spec: ReceiverCredentialSpec,
  sources: CredentialSources,
): Promise<Secret> {
  const how = `set ${spec.envName}, pass --code-file FILE (mode 0600), or run it in a terminal to be asked`;
  let value: string | undefined;
  let where: string;
  if (sources.file !== undefined) {
    where = sources.file;
    const info = await stat(sources.file).catch((error: NodeJS.ErrnoException) => {
      throw new UsageError(
        'CODE_FILE_UNREADABLE',
        `cannot read the ${spec.label} file ${sources.file}: ${error.code ?? error.message}`,
        { hint: `Name an existing file, or ${how}.` },
      );
    });
    if ((info.mode & 0o077) !== 0) {
      throw new UsageError(
        'CODE_FILE_OPEN',
        `the ${spec.label} file ${sources.file} may be read by others (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')})`,
        { hint: `chmod 600 ${sources.file}, then run again.` },
      );
    }
    value = (await readFile(sources.file, 'utf8')).trim();
  } else if (sources.environment[spec.envName] !== undefined && sources.environment[spec.envName] !== '') {
    where = spec.envName;
    value = sources.environment[spec.envName]!.trim();
  } else if (sources.prompt !== undefined) {
    where = 'the prompt';
    value = (
      await sources.prompt(`${spec.label[0]!.toUpperCase()}${spec.label.slice(1)} (shown on the source's terminal): `)
    ).trim();
  } else {
    throw new UsageError(
      'CREDENTIAL_MISSING',
      `this link needs its ${spec.label}, and there is no terminal to ask for it`,
      { hint: `${how[0]!.toUpperCase()}${how.slice(1)}.` },
    );
  }
  if (!spec.pattern.test(value)) {
    throw new UsageError(
      'CREDENTIAL_SHAPE',
      `the ${spec.label} from ${where} is not ${spec.shape} (${value.length} character${value.length === 1 ? '' : 's'})`,
      { hint: `Check it on the source's terminal and enter it again.` },
    );
  }
  return secret(value);
}

/**
 * Asks a question on a terminal and reads the answer without echoing it (raw mode); Enter ends it,
 * Backspace deletes, Ctrl+C interrupts (exit 130) and Ctrl+D cancels. Undefined when stdin is not a
 * terminal.
 */
export function terminalPrompt(
  input: NodeJS.ReadStream = process.stdin,
  output: NodeJS.WriteStream = process.stderr,
): ((question: string) => Promise<string>) | undefined {
  if (!input.isTTY) return undefined;
  return (question) =>
    new Promise((resolve, reject) => {
      // Raw mode (no echo) before the question: keys typed the moment it shows must not be echoed.
      input.setRawMode(true);
      output.write(question);
      let answer = '';
      const finish = (error?: Error): void => {
        input.off('data', onData);
        input.setRawMode(false);
        input.pause();
        output.write('\n');
        if (error) reject(error);
        else resolve(answer);
      };
      const onData = (chunk: Buffer): void => {
        for (const char of chunk.toString('utf8')) {
          if (char === '\r' || char === '\n') return finish();
          if (char === '\u0003')
            return finish(new DeployError('usage', 'INTERRUPTED', 'interrupted (Ctrl+C) at the prompt'));
          if (char === '\u0004')
            return finish(
              new UsageError('CREDENTIAL_CANCELLED', 'no answer at the prompt (Ctrl+D)', {
                hint: 'Run it again and type the code the source shows.',
              }),
            );
          if (char === '\u007f' || char === '\b') answer = answer.slice(0, -1);
          else if (char >= ' ') answer += char;
        }
      };
      input.resume();
      input.on('data', onData);
    });
}
