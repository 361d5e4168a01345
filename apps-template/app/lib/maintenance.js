// Maintenance mode (bin/maintenance on|off, docs/app-folder.md "bin/maintenance").
//
// The switch is a file outside the app folder ($DEPLOY_APP_STATE_DIR/maintenance, passed in as
// MAINTENANCE_FILE by bin/start), so a migration never carries it and a restart keeps it. The app
// looks at it every `intervalMs` (no signal: one sent before the handler exists would kill the app).
// While it exists, every request but /healthz gets a 503 page, and once no request admitted
// before is still running the app writes `<file>.drained` with its pid: bin/maintenance on waits
// for that, so when it returns no write is in flight.
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';

const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Down for maintenance</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 4em auto">
<h1>notes is down for maintenance</h1>
<p>We are moving notes to a new server. Nothing you wrote is lost; please come back in a few minutes.</p>
</body>
</html>
`;

/**
 * Tracks the maintenance switch and the requests in flight.
 * `admit(request, response)`: true when the request may run (the caller handles it), false when it
 * was answered with the 503 page.
 */
export function createMaintenance({ file, intervalMs = 200, retryAfterSeconds = 60, log }) {
  const drained = `${file}.drained`;
  let on = existsSync(file);
  let inFlight = 0;

  const tick = () => {
    const now = existsSync(file);
    if (now !== on) log?.info(`maintenance mode ${now ? 'on' : 'off'}`);
    on = now;
    if (on && inFlight === 0 && !existsSync(drained)) {
      // Written whole under another name, then renamed: a reader never sees half a pid.
      try {
        writeFileSync(`${drained}.tmp`, `${process.pid}\n`);
        renameSync(`${drained}.tmp`, drained);
      } catch (error) {
        log?.error(`maintenance: cannot write ${drained}: ${error.message}`);
      }
    }
    if (!on) rmSync(drained, { force: true });
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  tick();

  return {
    get on() {
      return on;
    },
    admit(request, response) {
      const path = new URL(request.url ?? '/', 'http://app.invalid').pathname;
      if (on && path !== '/healthz') {
        response.writeHead(503, {
          'Content-Type': 'text/html; charset=utf-8',
          'Content-Length': Buffer.byteLength(PAGE),
          'Retry-After': String(retryAfterSeconds),
          'Cache-Control': 'no-store',
        });
        response.end(request.method === 'HEAD' ? undefined : PAGE);
        request.resume();
        return false;
      }
      inFlight += 1;
      response.once('close', () => {
        inFlight -= 1;
        if (on && inFlight === 0) tick();
      });
      return true;
    },
    stop() {
      clearInterval(timer);
    },
  };
}
