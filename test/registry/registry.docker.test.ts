/**
 * The packages as their users get them: every public package published to a local registry
 * with changesets' own flow, then used from a fresh folder outside the workspace that knows
 * only that registry, as the scaffold's README and the host's README say.
 *
 * - The registry is Verdaccio on 127.0.0.1 (./verdaccio.ts), started and stopped here.
 *   `@datastation/*` exist only there (no uplink); third-party packages (ws, dockerode, esbuild,
 *   tsx...) are proxied by it from registry.npmjs.org, the one place the network rule lets
 *   dependencies come from. The fresh folders have no other registry configured.
 * - What is published is a copy of this checkout as it is (tracked and untracked files, not
 *   ignored ones), installed from the lockfile, built, then `changeset version` and
 *   `changeset publish`. `changeset version` rewrites versions and consumes .changeset/*.md,
 *   so it only ever runs in that copy. The publish is pointed at Verdaccio three ways
 *   (npm_config_registry, the @datastation scope's registry, the only token in its npmrc):
 *   nothing can be published anywhere else.
 * - `npx ds image build --offline` from the published files must give the very image the
 *   global setup built from source (same bundle bytes, same Dockerfile): it is reused, not
 *   rebuilt, so the Docker tests running beside this one keep their image.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LABELS, runtimeImageId } from '@datastation/host';
import { cleanEnv, copyCheckout, tempDir, testDocker, type TempDir } from '@datastation/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pnpmCommand, publicPackages, run } from '../support/workspace.js';
import { startVerdaccio, type Verdaccio } from './verdaccio.js';

let work: TempDir;
let registry: Verdaccio;
let version = '';
const docker = testDocker();

/** What a user's machine would have: this registry only, a cache of its own, no audit calls. */
async function userEnv(dir: string): Promise<NodeJS.ProcessEnv> {
  const npmrc = join(dir, 'user.npmrc');
  await writeFile(npmrc, `registry=${registry.url}\n`);
  await writeFile(join(dir, 'global.npmrc'), '');
  return cleanEnv({
    npm_config_registry: registry.url,
    npm_config_userconfig: npmrc,
    npm_config_globalconfig: join(dir, 'global.npmrc'),
    npm_config_cache: join(dir, 'npm-cache'),
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  });
}

beforeAll(async () => {
  work = await tempDir('ds-registry');
  registry = await startVerdaccio(join(work.path, 'verdaccio'));
  const checkout = join(work.path, 'checkout');
  await copyCheckout(checkout);
  const pnpm = await pnpmCommand();
  const env = cleanEnv({ TURBO_TELEMETRY_DISABLED: '1', DO_NOT_TRACK: '1' });
  // Scripts skipped: the build needs tsc and esbuild only (better-sqlite3's addon is compiled where the gatekeeper is installed).
  await run([...pnpm, 'install', '--frozen-lockfile', '--prefer-offline', '--ignore-scripts'], { cwd: checkout, env, timeoutMs: 600_000 });
  await run([...pnpm, 'build:packages'], { cwd: checkout, env, timeoutMs: 600_000 });
  await run([...pnpm, 'exec', 'changeset', 'version'], { cwd: checkout, env });

  // changesets runs `pnpm publish` from PATH: this project's pinned pnpm.
  const bin = join(work.path, 'bin');
  await mkdir(bin);
  await writeFile(join(bin, 'pnpm'), `#!/bin/sh\nexec ${pnpm.join(' ')} "$@"\n`);
  await chmod(join(bin, 'pnpm'), 0o755);
  const host = registry.url.replace(/^http:/, '');
  const npmrc = `registry=${registry.url}\n@datastation:registry=${registry.url}\n${host}:_authToken=${registry.token}\n`;
  await writeFile(join(checkout, '.npmrc'), npmrc);
  await writeFile(join(work.path, 'publish.npmrc'), npmrc);
  const publishEnv = cleanEnv({
    PATH: `${bin}:${process.env.PATH ?? ''}`,
    npm_config_registry: registry.url,
    'npm_config_@datastation:registry': registry.url,
    npm_config_userconfig: join(work.path, 'publish.npmrc'),
  });
  for (const key of ['npm_config_registry', 'npm_config_@datastation:registry']) expect(publishEnv[key]).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
  await run([...pnpm, 'exec', 'changeset', 'publish', '--no-git-tag'], { cwd: checkout, env: publishEnv, timeoutMs: 600_000 }).catch((error: Error) => {
    throw new Error(`${error.message}\nverdaccio:\n${registry.log()}`, { cause: error });
  });

  // Every public package, at the one version of the fixed group, with `workspace:*` replaced.
  const names = (await publicPackages(checkout)).map((p) => p.name);
  for (const name of names) {
    const res = await fetch(`${registry.url}${name.replace('/', '%2f')}`);
    expect(res.status, name).toBe(200);
    const doc = (await res.json()) as { 'dist-tags': { latest: string }; versions: Record<string, { dependencies?: Record<string, string> }> };
    version ||= doc['dist-tags'].latest;
    expect(doc['dist-tags'].latest, name).toBe(version);
    expect(JSON.stringify(doc.versions[version]?.dependencies ?? {}), name).not.toContain('workspace:');
  }
  expect((await fetch(`${registry.url}@datastation%2ftest-support`)).status).toBe(404);
}, 900_000);

afterAll(async () => {
  await registry?.stop();
  await work?.remove();
});

describe('published packages from a local registry', () => {
  it("a function developer: the scaffold's README, as written, from `npx @datastation/cli init`", async () => {
    const dev = join(work.path, 'developer');
    await mkdir(dev);
    const env = await userEnv(dev);
    const before = await runtimeImageId(docker);
    expect(before, 'the global setup builds the runtime image').toBeTruthy();

    const init = 'npx @datastation/cli init word-tools';
    await run(['bash', '-c', init], { cwd: dev, env });
    const readme = await readFile(join(dev, 'word-tools', 'README.md'), 'utf8');
    const lines = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.split('\n').filter((l) => l.trim()));
    expect(lines[0]).toBe(init);
    // The commands of the issue, in this order, among the README's.
    const expected = [
      'cd word-tools',
      'npm install',
      'npm test',
      'npx ds image build --offline',
      `npx ds run . hello --data data --args '{"name":"Ada"}'`,
      'npx ds package . -o word-tools.dspkg',
      'npx ds verify word-tools.dspkg',
    ];
    expect(lines.filter((l) => expected.includes(l))).toEqual(expected);
    const manifest = JSON.parse(await readFile(join(dev, 'word-tools', 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    expect(manifest.devDependencies).toMatchObject({ '@datastation/cli': `^${version}`, '@datastation/dev-utils': `^${version}` });

    const { stdout, stderr } = await run(['bash', '-c', ['set -euo pipefail', ...lines.slice(1)].join('\n')], { cwd: dev, env, timeoutMs: 600_000 });
    expect(stdout).toMatch(/# pass 3\b/);
    expect(stdout).toMatch(/# fail 0\b/);
    expect(stdout).toContain('"greeting": "Hello, Ada!"');
    expect(stdout).toContain('"words": 14');
    expect(stdout, stderr).toContain('ok ');
    expect(existsSync(join(dev, 'word-tools', 'word-tools.dspkg'))).toBe(true);
    // Built from the published files: the very image built from source, reused.
    expect(await runtimeImageId(docker)).toBe(before);
    expect(await docker.containers.list([`${LABELS.package}=word-tools`])).toEqual([]);
  });

  it('an integrator: `npm install @datastation/host`, then dsDockerInit and dsDockerRun', async () => {
    const dir = join(work.path, 'integrator');
    await mkdir(join(dir, 'fn'), { recursive: true });
    await mkdir(join(dir, 'data'));
    const env = await userEnv(dir);
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'integrator', version: '0.0.0', private: true, type: 'module' }));
    await run(['npm', 'install', '@datastation/host'], { cwd: dir, env, timeoutMs: 300_000 });
    // The controller needs neither esbuild nor the runtime's sources: the runtime comes prebuilt.
    expect(existsSync(join(dir, 'node_modules', 'esbuild'))).toBe(false);
    expect(existsSync(join(dir, 'node_modules', '@datastation', 'runtime'))).toBe(false);

    await writeFile(join(dir, 'data', 'in.txt'), 'from the integrator');
    await writeFile(join(dir, 'fn', 'package.json'), JSON.stringify({ name: 'shout', version: '1.0.0', type: 'module', main: 'index.js' }));
    // dev-utils comes from the runtime image.
    await writeFile(
      join(dir, 'fn', 'index.js'),
      "import { readText } from '@datastation/dev-utils';\nexport const shout = async ({ file }) => (await readText(file)).toUpperCase();\n",
    );
    await writeFile(
      join(dir, 'main.js'),
      [
        "import { resolve } from 'node:path';",
        "import { dsDockerInit, dsDockerRun } from '@datastation/host';",
        "const session = await dsDockerInit({ dataDir: resolve('data'), functions: resolve('fn'), handOverDataDir: true, package: 'integrator-shout' });",
        'try {',
        "  console.log(JSON.stringify(await dsDockerRun('shout', { file: 'in.txt' }, session)));",
        '} finally {',
        '  await session.close();',
        '}',
        '',
      ].join('\n'),
    );
    const { stdout } = await run(['node', 'main.js'], { cwd: dir, env, timeoutMs: 120_000 });
    expect(stdout.trim()).toBe('"FROM THE INTEGRATOR"');
    expect(await docker.containers.list([`${LABELS.package}=integrator-shout`])).toEqual([]);
  });
});
