import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, expect, it, vi } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  vi.restoreAllMocks();
});

it('runs the README example', async () => {
  const readme = readFileSync(path.join(here, '../README.md'), 'utf8');
  const snippet = /<!-- example: run by test\/readme\.test\.ts -->\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(snippet).toBeDefined();
  dir = mkdtempSync(path.join(tmpdir(), 'ds-readme-'));
  const url = `sqlite:${path.join(dir, 'state', 'station.db')}`;
  const source = snippet!
    .replace(`from '@datastation/gatekeeper'`, `from ${JSON.stringify(path.join(here, '../src/index.ts'))}`)
    .replace(`'sqlite:./state/station.db'`, JSON.stringify(url));
  expect(source).toContain(url);
  mkdirSync(path.join(dir, 'src'));
  const file = path.join(dir, 'src', 'example.ts');
  writeFileSync(file, source);
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  await import(pathToFileURL(file).href);
  expect(log.mock.calls).toEqual([[4.5], [{ ok: true, entries: 2, head: expect.stringMatching(/^[0-9a-f]{64}$/) }]]);
});
