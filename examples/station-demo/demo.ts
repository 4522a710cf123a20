/**
 * The station demo, end to end, with `ds` as each person would type it: the station stood up
 * (`ds up`: images built offline if need be, docker compose, SQLite) with only its admin; the
 * admin adds the owner acme, the developer dev and the user ann; acme brings its data (`ds data
 * put`); this package packed and uploaded by the developer, granted by the owner, run by the user
 * over HTTP; a read outside the
 * grant refused; a run over review-only data staged and then released by the owner; the audit
 * trail printed and its hash chain verified. The station stays up: `pnpm ds down` stops it.
 *
 * Run from the repository root: `pnpm demo`. Environment: DS_STATION_STATE (the station folder),
 * DS_STATION_NAME and DS_PORT (a second station beside the first), DS_RUNTIME (runc or runsc).
 * Exits non-zero, naming the step, when any step does not do what it should.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dsCommand } from '@datastation/cli/testing';

const here = fileURLToPath(new URL('.', import.meta.url));
const say = (text: string) => process.stdout.write(`\n» ${text}\n`);

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `ds ...args`, echoing the command and (unless `quiet`) what it printed. */
async function ds(args: string[], options: { quiet?: boolean } = {}): Promise<Ran> {
  process.stdout.write(`$ ds ${args.map((a) => (/^[\w@./:=,-]+$/.test(a) ? a : `'${a}'`)).join(' ')}\n`);
  const [command, ...prefix] = dsCommand();
  const child = spawn(command, [...prefix, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    if (!options.quiet) process.stdout.write(d);
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    process.stderr.write(d);
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  return { code, stdout, stderr };
}

function expectOk(step: string, ran: Ran): Ran {
  if (ran.code !== 0) throw new Error(`${step}: ds exited ${ran.code}`);
  return ran;
}

const work = await mkdtemp(join(tmpdir(), 'ds-demo-'));
try {
  say('the station: gatekeeper (SQLite) + function containers, on this machine');
  const upArgs = ['up', '--progress'];
  if (process.env.DS_RUNTIME) upArgs.push('--runtime', process.env.DS_RUNTIME);
  const up = expectOk('ds up', await ds(upArgs));
  const url = /^station \S+ at (\S+)$/m.exec(up.stdout)?.[1] ?? '(unknown)';

  say('the admin adds the people: acme owns data, dev writes packages, ann runs them (each token saved here for --as)');
  for (const [id, role] of [
    ['acme', 'owner'],
    ['dev', 'developer'],
    ['ann', 'user'],
  ] as const) {
    expectOk(`ds principals add ${id}`, await ds(['principals', 'add', id, '--role', role, '--as', 'admin'], { quiet: true }));
    process.stdout.write(`added ${id} (${role})\n`);
  }

  say('acme brings its data: trips, salaries for review, and a private note no grant names');
  expectOk('ds data put', await ds(['data', 'put', join(here, 'data', 'acme'), 'owners/acme/', '--as', 'acme']));
  expectOk('ds data ls', await ds(['data', 'ls', 'owners/acme', '--as', 'acme']));

  say('the developer packages this example and uploads it; its digest names it from now on');
  const pkgFile = join(work, 'station-demo.dspkg');
  expectOk('ds package', await ds(['package', here, '-o', pkgFile, '--quiet']));
  const upload = expectOk('ds upload', await ds(['upload', pkgFile, '--as', 'dev', '--json'], { quiet: true }));
  const digest = (JSON.parse(upload.stdout) as { id: string }).id;
  process.stdout.write(`uploaded ${digest}\n`);

  say('the owner acme grants the user ann its trips, results released at once');
  expectOk('ds grant', await ds(['grant', digest, '--user', 'ann', '--read', 'owners/acme/trips/*.csv', '--release', 'release', '--as', 'acme']));

  say('ann runs the tripReport connector (it calls columnStats in the container) and gets the value');
  const trips = expectOk('ds call tripReport', await ds(['call', digest, 'tripReport', '--as', 'ann']));
  const report = JSON.parse(trips.stdout) as { trips: number; minutes: number };
  if (report.trips !== 3 || report.minutes !== 42) throw new Error(`tripReport: expected 3 trips and 42 minutes, got ${trips.stdout}`);

  say('ann asks for a file outside the grant: the host refuses the read, nothing is served');
  const peek = await ds(['call', digest, 'peek', '--function', '--args', '{"path":"/owners/acme/private/notes.txt"}', '--as', 'ann']);
  if (peek.code === 0 || !/POLICY_DENIED/.test(peek.stderr)) throw new Error(`peek outside the grant: expected POLICY_DENIED, got exit ${peek.code}`);

  // One grant per owner, user and package: the new one replaces the first. Its release mode
  // covers every run of the package, not only the runs that read the reviewed folder: a function
  // could otherwise copy reviewed data into the user's /data in one run and return it in the next.
  say("acme widens ann's grant to the reviewed folder, and from now on reviews each result");
  expectOk(
    'ds grant review',
    await ds([
      'grant',
      digest,
      '--user',
      'ann',
      '--read',
      'owners/acme/trips/*.csv',
      '--read',
      'owners/acme/reviewed/*.csv',
      '--release',
      'review',
      '--as',
      'acme',
    ]),
  );
  const staged = expectOk('ds call payrollReport', await ds(['call', digest, 'payrollReport', '--as', 'ann', '--json']));
  const run = JSON.parse(staged.stdout) as { id: string; status: string };
  if (run.status !== 'pending') throw new Error(`payrollReport: expected a pending (staged) run, got ${run.status}`);

  say('acme looks at the staged result, with the reads it made, and releases it');
  expectOk('ds runs', await ds(['runs', run.id, '--as', 'acme']));
  expectOk('ds release', await ds(['release', run.id, '--as', 'acme']));
  const released = expectOk('ds runs (ann)', await ds(['runs', run.id, '--as', 'ann', '--json'], { quiet: true }));
  const seen = JSON.parse(released.stdout) as { status: string; value?: { payroll?: number } };
  if (seen.status !== 'released' || seen.value?.payroll !== 11_200) throw new Error(`after release: expected ann to see payroll 11200, got ${released.stdout}`);
  process.stdout.write(`ann now sees: ${JSON.stringify(seen.value)}\n`);

  say("the audit trail of acme's data: every upload, grant, run, read and release, hash-chained");
  expectOk('ds audit', await ds(['audit', '--as', 'acme']));
  expectOk('ds audit --verify', await ds(['audit', '--verify', '--as', 'acme']));

  say(
    `done. The station is still up at ${url}; its owners' console is ${url}/console/ (sign in with acme's token above). ` +
      '`pnpm ds down` stops it, `pnpm ds down --volumes` also removes its data.',
  );
} catch (error) {
  process.stderr.write(`demo failed: ${(error as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await rm(work, { recursive: true, force: true });
}
