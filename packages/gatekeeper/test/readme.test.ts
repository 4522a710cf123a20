import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { blocksRunBy } from '@datastation/test-support';
import { afterEach, expect, it, vi } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
// The README.md blocks marked `<!-- run: packages/gatekeeper/test/readme.test.ts -->`.
const blocks = blocksRunBy('packages/gatekeeper/test/readme.test.ts');
let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  vi.restoreAllMocks();
});

/** Imports one block as a module in a temp folder, the package imported from its source. */
async function importBlock(code: string, name: string): Promise<void> {
  const source = code.replaceAll(`from '@datastation/gatekeeper'`, `from ${JSON.stringify(path.join(here, '../src/index.ts'))}`);
  mkdirSync(path.join(dir!, 'src'), { recursive: true });
  const file = path.join(dir!, 'src', `${name}.ts`);
  writeFileSync(file, source);
  await import(pathToFileURL(file).href);
}

it('runs the README example', async () => {
  const snippet = blocks.find((b) => b.code.includes('store.principals.issue'))?.code;
  expect(snippet).toBeDefined();
  dir = mkdtempSync(path.join(tmpdir(), 'ds-readme-'));
  const url = `sqlite:${path.join(dir, 'state', 'station.db')}`;
  const source = snippet!.replace(`'sqlite:./state/station.db'`, JSON.stringify(url));
  expect(source).toContain(url);
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  await importBlock(source, 'example');
  expect(log.mock.calls).toEqual([[4.5], [{ ok: true, entries: 2, head: expect.stringMatching(/^[0-9a-f]{64}$/) }]]);
});

it("runs the README's HTTP API block: listens, answers /healthz, closes", async () => {
  const snippet = blocks.find((b) => b.code.includes('createGatekeeper('))?.code;
  expect(snippet).toBeDefined();
  dir = mkdtempSync(path.join(tmpdir(), 'ds-readme-'));
  mkdirSync(path.join(dir, 'srv/station/state'), { recursive: true });
  // Its folders under a temp folder, and any free port (8080 may be a station that is up).
  const source = snippet!.replaceAll('/srv/station', path.join(dir, 'srv/station')).replace('port: 8080', 'port: 0');
  expect(source).toContain('port: 0');
  // Before the close, the block's own gatekeeper answers /healthz (`url` is the block's variable).
  const probe = "globalThis.__health = (await fetch(url + '/healthz')).status;\n";
  await importBlock(source.replace('await gatekeeper.close();', `${probe}await gatekeeper.close();`), 'http');
  expect((globalThis as { __health?: number }).__health).toBe(200);
});
