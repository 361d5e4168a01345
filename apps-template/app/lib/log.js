// Two append-only files in the logs volume: access.log (one line per request) and error.log
// (warnings and errors, the file deploy's log-scan check reads). SIGHUP reopens both so an
// external logrotate can move them away.
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 };

/** Creates a logger writing into `logDir`; messages below `level` are dropped. */
export function createLogger(logDir, level = 'info') {
  mkdirSync(logDir, { recursive: true });
  const threshold = LEVELS[level] ?? LEVELS.info;
  let access;
  let errors;
  const open = () => {
    access = createWriteStream(join(logDir, 'access.log'), { flags: 'a', mode: 0o640 });
    errors = createWriteStream(join(logDir, 'error.log'), { flags: 'a', mode: 0o640 });
    // A log file we cannot write must not crash the app; say so on stderr (captured in server.out).
    for (const stream of [access, errors])
      stream.on('error', (error) => process.stderr.write(`log write failed: ${error.message}\n`));
  };
  open();
  const write = (name, message) => {
    if (LEVELS[name] < threshold) return;
    const line = `${new Date().toISOString()} ${name} ${message}\n`;
    (LEVELS[name] >= LEVELS.warn ? errors : access).write(line);
    if (LEVELS[name] >= LEVELS.warn) process.stderr.write(line);
  };
  return {
    debug: (message) => write('debug', message),
    info: (message) => write('info', message),
    warn: (message) => write('warn', message),
    error: (message) => write('error', message),
    /** One access line: time, client, method, path, status, duration, bytes. */
    access(request, status, milliseconds, bytes) {
      const client = request.socket.remoteAddress ?? '-';
      access.write(
        `${new Date().toISOString()} ${client} "${request.method} ${request.url}" ${status} ${milliseconds}ms ${bytes}B\n`,
      );
    },
    reopen() {
      access.end();
      errors.end();
      open();
    },
    close() {
      return Promise.all([access, errors].map((stream) => new Promise((resolve) => stream.end(resolve))));
    },
  };
}
