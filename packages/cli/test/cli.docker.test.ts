import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { LABELS, RUNTIME_IMAGE } from '@datastation/host';
import { functionPackage, type TempDir, tempDir, testDocker } from '@datastation/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDs, startDs } from '../src/testing.js';
import { craftArchive, flipByte, repackArchive } from '@datastation/test-support';

// Every package here runs on a tag of the runtime image made for this file, so a rebuild of
// datastation/runtime:latest by another suite cannot change the image under the test.
const docker = testDocker();
const run = randomBytes(4).toString('hex');
const REPO = 'ds-cli-test/runtime';
const IMAGE = `${REPO}:${run}`;

let box: TempDir;
beforeAll(async () => {
  await docker.images.tag(RUNTIME_IMAGE, REPO, run);
  box = await tempDir('ds-cli-docker');
});
afterAll(async () => {
  await box?.remove();
  await docker.images.remove(IMAGE); // only the tag: the runtime image keeps its own
});

const ds = (...args: string[]) => runDs(args, { cwd: box.path });
const containersOf = (pkg: string) => docker.containers.list([`${LABELS.package}=${pkg}`]);
const json = (text: string) => JSON.parse(text) as Record<string, unknown>;

describe('init → run → package → verify → run', () => {
  const name = `round-trip-${run}`;
  let pkgFile = '';

  beforeAll(async () => {
    const init = await ds('init', 'fns', '--name', name, '--registry');
    expect(init.code, init.stderr).toBe(0);
  });
  afterAll(async () => {
    expect(await containersOf(name)).toEqual([]);
  });

  it('runs a fresh scaffold at once', async () => {
    const hello = await ds('run', 'fns', 'hello', '--hand-over-data', '--data', 'fns/data', '--args', '{"name":"Ada"}', '--image', IMAGE);
    expect(hello.code, hello.stderr).toBe(0);
    expect(json(hello.stdout)).toEqual({ greeting: 'Hello, Ada!' });
  });

  it('packages it, verifies it, and packages it again to the same bytes', async () => {
    const packed = await ds('package', 'fns', '--image', IMAGE, '-o', 'fns.dspkg', '--json');
    expect(packed.code, packed.stderr).toBe(0);
    const info = json(packed.stdout);
    expect(info).toMatchObject({
      name,
      version: '0.1.0',
      functions: ['hello', 'wordCount'],
      connectors: ['summary'],
      image: { ref: IMAGE, id: (await docker.images.inspect(IMAGE))!.id },
    });
    pkgFile = join(box.path, 'fns.dspkg');

    const verified = await ds('verify', 'fns.dspkg', '--json');
    expect(verified.code, verified.stderr).toBe(0);
    expect(json(verified.stdout)).toMatchObject({ ok: true, sha256: info.sha256, name, files: 3 });

    const again = await ds('package', 'fns', '--image', IMAGE, '-o', 'again.dspkg');
    expect(again.code, again.stderr).toBe(0);
    expect((await readFile(join(box.path, 'again.dspkg'))).equals(await readFile(pkgFile))).toBe(true);
  });

  it('runs a function and a connector from the package', async () => {
    const data = await box.write('data2/words.txt', 'one two three four five\n');
    const dataDir = join(data, '..');
    const count = await ds('run', 'fns.dspkg', 'wordCount', '--hand-over-data', '--data', dataDir, '--args', '{"file":"words.txt"}');
    expect(count.code, count.stderr).toBe(0);
    expect(json(count.stdout)).toEqual({ file: 'words.txt', words: 5, out: 'out/words.txt.json' });
    expect(count.stderr).toContain('words.txt: 5 words'); // the function's log, on stderr
    expect(json(await readFile(join(dataDir, 'out/words.txt.json'), 'utf8'))).toEqual({ file: 'words.txt', words: 5 });

    const summary = await ds(
      'run',
      'fns.dspkg',
      'summary',
      '--connector',
      '--hand-over-data',
      '--data',
      dataDir,
      '--args',
      '{"file":"words.txt","name":"Bo"}',
      '--json',
    );
    expect(summary.code, summary.stderr).toBe(0);
    expect(summary.stdout).toBe('{"greeting":"Hello, Bo!","file":"words.txt","words":5}\n');
  });

  it('verify (and run) refuse the package with one byte changed', async () => {
    const changed = await repackArchive(await readFile(pkgFile), (e) =>
      e.name === 'code/index.js' ? { ...e, content: flipByte(e.content as Buffer, 100) } : e,
    );
    await box.write('changed.dspkg', changed);
    const verified = await ds('verify', 'changed.dspkg');
    expect(verified.code).toBe(16);
    expect(verified.stderr).toMatch(/^error BAD_REQUEST: code\/index\.js does not match its digest/);
    const ran = await ds('run', 'changed.dspkg', 'hello', '--hand-over-data', '--data', 'fns/data');
    expect(ran.code).toBe(16);
  });
});

describe('verify against a changed image', () => {
  const tag = `${run}-swap`;
  const ref = `${REPO}:${tag}`;
  afterAll(() => docker.images.remove(ref));

  it('gives IMAGE_MISMATCH once another image holds the recorded reference', async () => {
    await docker.images.tag(RUNTIME_IMAGE, REPO, tag);
    await using fns = await functionPackage({ 'index.js': 'export const one = () => 1;\n' });
    const packed = await runDs(['package', fns.path, '--image', ref, '-o', 'swap.dspkg'], { cwd: box.path });
    expect(packed.code, packed.stderr).toBe(0);
    expect((await ds('verify', 'swap.dspkg')).code).toBe(0);

    // A different image under the same reference: the runtime image plus one label.
    const dockerfile = Buffer.from(`FROM ${IMAGE}\n`);
    const context = await craftArchive([{ name: 'Dockerfile', content: dockerfile }]);
    const swapped = await docker.images.build(Readable.from([context]), { tag: ref, labels: { 'io.datastation.test': run } });
    expect(swapped).not.toBe((await docker.images.inspect(IMAGE))!.id);

    const verified = await ds('verify', 'swap.dspkg');
    expect(verified.code).toBe(22);
    expect(verified.stderr).toMatch(
      new RegExp(`^error IMAGE_MISMATCH: ${ref.replace(/[/.]/g, '\\$&')} is ${swapped} on this engine, but the package was built against sha256:`),
    );
    expect((await ds('run', 'swap.dspkg', 'one', '--hand-over-data', '--data', fns.path)).code).toBe(22);
  });
});

describe('ds run failures', () => {
  const name = `failing-${run}`;
  let fns: TempDir;
  beforeAll(async () => {
    fns = await functionPackage({
      'package.json': JSON.stringify({ name, version: '0.0.1', type: 'module', main: 'index.js' }),
      'index.js': [
        "export async function boom() { throw new Error('kaboom'); }",
        'export async function nap() { await new Promise((resolve) => setTimeout(resolve, 30_000)); return 1; }',
        '',
      ].join('\n'),
    });
    await fns.write('data/.keep', '');
  });
  afterAll(async () => {
    await fns.remove();
    expect(await containersOf(name)).toEqual([]);
  });
  const dsRun = (...args: string[]) => ds('run', fns.path, ...args, '--hand-over-data', '--data', join(fns.path, 'data'), '--image', IMAGE);

  it('prints the code of a failing function on stderr and exits with its exit code', async () => {
    const boom = await dsRun('boom');
    expect(boom.code).toBe(11);
    expect(boom.stdout).toBe('');
    expect(boom.stderr).toMatch(/^error FUNCTION_ERROR: kaboom\n {2}hint: /);
    expect(boom.stderr).toMatch(/at boom \(file:\/\/\/opt\/ds\/functions\/index\.js/);
    expect((await dsRun('nope')).code).toBe(10);
    const late = await dsRun('nap', '--timeout', '300');
    expect(late.code).toBe(12);
    expect(late.stderr).toMatch(/^error TIMEOUT: /);
    // The hint names this command's flag, not the library's option.
    expect(late.stderr).toMatch(/hint: Give it longer with --timeout <ms> \(it had 300\)/);
  });

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('on %s removes the container and exits %i', async (signal, code) => {
    const child = startDs(['run', fns.path, 'nap', '--hand-over-data', '--data', join(fns.path, 'data'), '--image', IMAGE, '--progress'], { cwd: box.path });
    await child.waitForStderr(/container [0-9a-f]{12} started/);
    expect(await containersOf(name)).toHaveLength(1);
    child.child.kill(signal);
    const result = await child.exited;
    expect(result.code).toBe(code);
    expect(result.stderr).toContain(`interrupted by ${signal}`);
    expect(await containersOf(name)).toEqual([]);
  });
});

describe('ds run with a read policy', () => {
  it('serves station reads under --read-root that an --allow glob grants, and refuses the rest', async () => {
    await using fns = await functionPackage({
      'index.js': "import { readText } from '@datastation/dev-utils';\nexport const peek = ({ path }) => readText(path);\n",
    });
    await box.write('station/owners/acme/trips.csv', 'id,km\n1,3\n');
    await box.write('station/owners/other/secret.csv', 'no');
    await box.write('reader-data/.keep', '');
    const peek = (path: string, ...policy: string[]) =>
      ds('run', fns.path, 'peek', '--hand-over-data', '--data', 'reader-data', '--image', IMAGE, '--args', JSON.stringify({ path }), ...policy);
    const granted = ['--read-root', 'station', '--allow', 'owners/acme/*.csv'];

    const ok = await peek('/owners/acme/trips.csv', ...granted);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toBe('id,km\n1,3\n');
    const other = await peek('/owners/other/secret.csv', ...granted);
    expect(other.code).toBe(18);
    expect(other.stderr).toMatch(/^error POLICY_DENIED: /);
    expect((await peek('/owners/acme/trips.csv')).code).toBe(18); // no policy, no reads
  });
});

describe('ds image build', () => {
  it('reports the runtime image (reused when nothing changed)', async () => {
    const built = await ds('image', 'build', '--offline', '--json');
    expect(built.code, built.stderr).toBe(0);
    const image = json(built.stdout);
    expect(image.id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(image.tags).toContain(RUNTIME_IMAGE);
  });
});
