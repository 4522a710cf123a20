import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { LABELS } from '@datastation/host';
import { tempDir, testDocker } from '@datastation/test-support';

const here = dirname(fileURLToPath(import.meta.url));

it('the Station example in the README runs as written', async () => {
  const readme = await readFile(join(here, '../README.md'), 'utf8');
  const marker = readme.indexOf('<!-- station-example');
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(marker));
  expect(marker).toBeGreaterThan(0);
  const source = block![1]!;

  await using root = await tempDir('ds-readme');
  const user = `readme-${randomBytes(4).toString('hex')}`;
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
