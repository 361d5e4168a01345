// `npm run bench`: throughput of each transport vs the bare shell pipeline on a two-host lab, peak
// RSS of `deploy` on each side and peak extra disk, written to bench/reports/<date>.md + .json.
// Not a test. BENCH_SIZE_MB (default 1024) sizes the data set; BENCH_TRANSPORTS limits the list.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { formatBytes } from '@deploykit/core';
import { startLab, type Lab } from '@deploykit/testlab';

interface Measurement {
  name: string;
  seconds: number;
  bytes: number;
  mibPerSecond: number;
  /** Peak VmHWM of the `deploy` processes by role (send, receive), MiB. */
  peakRssMiB: Record<string, number>;
  /** Peak growth of used bytes in the lab's file system during the run, MiB (staging + temp). */
  peakExtraDiskMiB: number;
  ok: boolean;
  note?: string;
}

const run = promisify(execFile);
const sizeMb = Number(process.env.BENCH_SIZE_MB ?? '1024');
const transports = (process.env.BENCH_TRANSPORTS ?? 'ssh,ffl,scp,local').split(',').filter(Boolean);

async function readVmHwm(pid: string): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : 0;
}

/** Samples RSS of lab deploy processes and used disk every 200 ms while `run` runs. */
async function measure(lab: Lab, name: string, bytes: number, run: () => Promise<{ ok: boolean; note?: string }>): Promise<Measurement> {
  const peakRssMiB: Record<string, number> = {};
  let peakDisk = 0;
  const tmpDirs = lab.hosts.map((host) => `${host.root}/tmp`);
  const baseDisk = await usedBytes(tmpDirs);
  const sampler = setInterval(() => {
    void (async () => {
      for (const pid of await readdir('/proc').catch(() => [] as string[])) {
        if (!/^\d+$/.test(pid)) continue;
        const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        const role = /deploy\0stream\0(send|receive)/.exec(cmdline)?.[1];
        if (role === undefined || !(await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '')).includes(lab.id)) continue;
        peakRssMiB[role] = Math.max(peakRssMiB[role] ?? 0, await readVmHwm(pid));
      }
      peakDisk = Math.max(peakDisk, (await usedBytes(tmpDirs)) - baseDisk);
    })();
  }, 200);
  const started = process.hrtime.bigint();
  const outcome = await run();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(sampler);
  return { name, seconds, bytes, mibPerSecond: bytes / 1048576 / seconds, peakRssMiB, peakExtraDiskMiB: Math.max(0, peakDisk) / 1048576, ok: outcome.ok, ...(outcome.note ? { note: outcome.note } : {}) };
}

/** Bytes under the hosts' temp dirs (where transports stage), by `du -sb`. */
async function usedBytes(dirs: readonly string[]): Promise<number> {
  const { stdout } = await run('du', ['-sbc', ...dirs]).catch(() => ({ stdout: '' }));
  const total = /^(\d+)\s+total$/m.exec(stdout);
  return total ? Number(total[1]) : 0;
}

async function main(): Promise<void> {
  // ffl runs as the stand-in here; at its real timings (3 MiB/s) it would measure the stand-in's pacing,
  // not our pipeline. BENCH_FFL_TIME_SCALE=1 measures with the real delays.
  const lab = await startLab({ hosts: 2, fflTimeScale: Number(process.env.BENCH_FFL_TIME_SCALE ?? '0') });
  const results: Measurement[] = [];
  try {
    const a = lab.host('a');
    const b = lab.host('b');
    const data = `${a.root}/bench-data`;
    const repo = `${a.root}/bench-repo`;
    // Mixed files: one large incompressible file plus many small ones, as an app volume has.
    const setup = await lab.ssh(
      'a',
      `set -e; mkdir -p ${data}/small; head -c ${Math.floor(sizeMb * 0.8)}M /dev/urandom > ${data}/large.bin
for i in $(seq 1 ${Math.max(1, Math.floor(sizeMb * 2))}); do head -c 100K /dev/urandom > ${data}/small/f$i; done
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes; borg init -e none ${repo}; cd ${data} && borg create --compression none ${repo}::bench .
borg export-tar ${repo}::bench - | wc -c`,
    );
    if (setup.exitCode !== 0) throw new Error(setup.stderr);
    const bytes = Number(setup.stdout.trim());
    const producer = JSON.stringify(['borg', 'export-tar', `${repo}::bench`, '-']);
    results.push(
      await measure(lab, 'bare: borg export-tar | ssh b tar -x', bytes, async () => {
        const r = await lab.ssh('a', `mkdir -p ${b.root}/bare && borg export-tar ${repo}::bench - | ssh -F ${lab.sshConfigPath} b tar -x -C ${b.root}/bare`);
        await lab.ssh('b', `rm -rf ${b.root}/bare`);
        return { ok: r.exitCode === 0, ...(r.exitCode === 0 ? {} : { note: r.stderr.slice(-300) }) };
      }),
    );
    for (const transport of transports) {
      const into = transport === 'local' ? `${a.root}/dest-local/data` : `${b.root}/dest-${transport}/data`;
      results.push(
        await measure(lab, `deploy stream send --transport ${transport}`, bytes, async () => {
          const to = transport === 'local' ? '' : '--to b';
          const r = await lab.ssh('a', `deploy stream send -q --name bench --transport ${transport} ${to} --producer '${producer}' --into ${into}`);
          await lab.ssh(transport === 'local' ? 'a' : 'b', `rm -rf ${into}`);
          return { ok: r.exitCode === 0, ...(r.exitCode === 0 ? {} : { note: r.stderr.slice(-300) }) };
        }),
      );
    }
  } finally {
    await lab.down();
  }
  const bare = results[0]!;
  const lines = [
    `# Transport benchmark ${new Date().toISOString()}`,
    '',
    `Data set: ${formatBytes(results[0]?.bytes ?? 0)} tar stream from a Borg archive (80% one random file, the rest 100 KiB files); 2-host loopback lab; ${process.env.BENCH_SIZE_MB ?? '1024'} MB requested.`,
    '',
    `ffl is the stand-in (docs/ffl-standin.md) at FFL_STANDIN_TIME_SCALE=${process.env.BENCH_FFL_TIME_SCALE ?? '0'}: at 0 it adds no delays and no pacing, so its row measures our pipeline around ffl, not ffl (the real one ran at 2.3-4 MiB/s from source).`,
    '',
    '| run | ok | seconds | MiB/s | vs bare | deploy RSS send / receive (MiB) | peak extra disk (MiB) |',
    '|---|---|---|---|---|---|---|',
    ...results.map((m) => `| ${m.name.replace(/\|/g, '\\|')} | ${m.ok ? 'yes' : `NO ${m.note ?? ''}`} | ${m.seconds.toFixed(2)} | ${m.mibPerSecond.toFixed(1)} | ${((m.mibPerSecond / bare.mibPerSecond) * 100).toFixed(0)}% | ${(m.peakRssMiB.send ?? 0).toFixed(0)} / ${(m.peakRssMiB.receive ?? 0).toFixed(0)} | ${m.peakExtraDiskMiB.toFixed(0)} |`),
    '',
    'Targets: ssh within 10% of the bare pipeline; zero staged bytes (peak growth of both hosts\' TMPDIR) for streaming transports; deploy RSS < 150 MiB regardless of size.',
  ];
  const reports = fileURLToPath(new URL('../reports/', import.meta.url));
  await mkdir(reports, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  await writeFile(join(reports, `${stamp}.md`), `${lines.join('\n')}\n`);
  await writeFile(join(reports, `${stamp}.json`), `${JSON.stringify({ sizeMb, results }, null, 2)}\n`);
  process.stdout.write(`${lines.join('\n')}\nreport: bench/reports/${stamp}.md\n`);
}

await main();
