import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { LABELS } from '@datastation/host';
import { blocksRunBy, FUNCTION_UID, runBlock, tempDir, testDocker } from '@datastation/test-support';

const here = dirname(fileURLToPath(import.meta.url));
// The README.md blocks marked `<!-- run: packages/host/test/station-readme.docker.test.ts -->`.
const blocks = blocksRunBy('packages/host/test/station-readme.docker.test.ts');
const intro = blocks.find((b) => b.code.includes('dsDockerInit('));
const stationExample = blocks.find((b) => b.code.includes('new Station('));

/** The folders the README's paths name, under `root` instead of /srv/station: a csv-stats package with `mean`, and ada's data. */
async function station(root: { write(path: string, content: string): Promise<string> }, user: string): Promise<void> {
  await root.write(`users/${user}/data/trips.json`, JSON.stringify([{ duration: 10 }, { duration: 15 }]));
  await root.write('packages/csv-stats/package.json', JSON.stringify({ type: 'module', main: 'index.js' }));
  await root.write(
    'packages/csv-stats/index.js',
    `import { readFileSync } from 'node:fs';
     export function mean({ column }) {
       const rows = JSON.parse(readFileSync('/data/trips.json', 'utf8'));
       return rows.reduce((sum, row) => sum + row[column], 0) / rows.length;
     }`,
  );
}

it('the first example in the README runs as written', async () => {
  expect(intro).toBeDefined();
  await using root = await tempDir('ds-readme');
  await station(root, 'ada');
  // The data folder belongs to the user functions run as, as the README says (not root).
  if (process.getuid?.() === 0) await chown(join(root.path, 'users/ada/data'), FUNCTION_UID, FUNCTION_UID);
  const result = await runBlock({ ...intro!, code: intro!.code.replaceAll('/srv/station', root.path) }, root.path);
  expect(result.code, result.stderr).toBe(0);
  expect(result.stdout.trim()).toBe('12.5');
});

it('the Station example in the README runs as written', async () => {
  expect(stationExample).toBeDefined();
  const source = stationExample!.code;

  await using root = await tempDir('ds-readme');
  const user = `readme-${randomBytes(4).toString('hex')}`;
  await station(root, user);
  // The same code, on temp folders, for a user of its own, reaping only what that user left.
  const script = source
    .replaceAll('/srv/station', root.path)
    .replace("user: 'alice'", `user: '${user}'`)
    .replace('pauseAfterMs: 5_000,', `pauseAfterMs: 5_000, reap: { labels: ['${LABELS.user}=${user}'] },`);
  expect(script).toContain(`reap: { labels`);
  // Inside this package, so '@datastation/host' resolves (to its source) as it would for a user.
  const file = join(here, `.readme-station-${user}.ts`);
  await writeFile(file, script);
  try {
    const { code, out, err } = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', file], { cwd: join(here, '..'), stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('exit', (code) => resolve({ code, out, err }));
    });
    expect(err).toBe('');
    expect(code).toBe(0);
    const lines = out.trim().split('\n');
    expect(lines[0]).toBe('12.5 cold');
    expect(lines[1]).toBe('warm true');
    expect(out).toMatch(/queueMs.*startMs: 0.*resumeMs: 0.*callMs.*totalMs/s);
    expect(lines.at(-1)).toBe('1');
  } finally {
    await rm(file, { force: true });
  }
  // `await using` closed the station: nothing of the user is left.
  expect(await testDocker().containers.list([`${LABELS.user}=${user}`])).toEqual([]);
});
