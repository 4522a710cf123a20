/**
 * `ds init` outside the repository, as a reader of the README's quick start does it: this
 * checkout's `ds` (bin/ds.js, what the README's alias runs) in an empty folder outside the
 * checkout, then every next step it prints, as printed. @datastation/* are on no registry (the
 * npm registry, the only one configured, answers 404 for them), so the install only works from
 * the tarballs `ds init` packed into vendor/; third-party packages come from the npm registry.
 * The last steps build the runtime image (test/registry checks that the packed host gives the very
 * image the sources give) and run a function in a container, from the installed `ds`.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LABELS } from '@datastation/host';
import { blocksRunBy, cleanEnv, REPO_ROOT, tempDir, testDocker } from '@datastation/test-support';
import { expect, it } from 'vitest';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../bin/ds.js', import.meta.url));
const docker = testDocker();
const commandsOf = (text: string) =>
  text
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter(Boolean);

it('ds init from a checkout writes a package that installs without it, and every next step it prints works as printed', async () => {
  const [block] = blocksRunBy('packages/cli/test/init-vendor.docker.test.ts');
  expect(block?.file).toBe('README.md');
  await using box = await tempDir('ds-init-vendor');
  expect(box.path.startsWith(REPO_ROOT)).toBe(false);
  const env = cleanEnv({ npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' });

  const init = await run(process.execPath, [BIN, 'init', 'word-tools'], { cwd: box.path, env, timeout: 240_000 });
  const steps = commandsOf(init.stdout.split('Next (see its README.md):\n')[1] ?? '');
  expect(steps).toEqual(commandsOf(block?.code ?? ''));
  const dir = join(box.path, 'word-tools');
  const manifest = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  const vendored = Object.entries(manifest.devDependencies).filter(([name]) => name.startsWith('@datastation/'));
  expect(vendored.map(([name]) => name)).toEqual([
    '@datastation/agent',
    '@datastation/cli',
    '@datastation/dev-utils',
    '@datastation/host',
    '@datastation/package',
    '@datastation/protocol',
  ]);
  for (const [, spec] of vendored) expect(spec).toMatch(/^file:vendor\/datastation-[a-z-]+-\d+\.\d+\.\d+\.tgz$/);
  // Nothing points back at the checkout: the package survives it moving or going.
  const pnpmSettings = await readFile(join(dir, 'pnpm-workspace.yaml'), 'utf8');
  for (const text of [JSON.stringify(manifest), pnpmSettings]) expect(text).not.toContain(REPO_ROOT.replace(/\/$/, ''));
  // The scaffold's README starts from the command that made it and has the same steps.
  const readme = await readFile(join(dir, 'README.md'), 'utf8');
  const readmeLines = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => commandsOf(m[1] ?? ''));
  expect(readmeLines[0]).toBe('ds init word-tools');
  expect(readmeLines.filter((line) => steps.includes(line))).toEqual(steps);

  // pnpm resolves it too (its overrides in pnpm-workspace.yaml): the lockfile alone, no second install.
  await run('npx', ['-y', 'pnpm@10.34.9', 'install', '--lockfile-only'], { cwd: dir, env, timeout: 120_000 });
  const pnpmLock = await readFile(join(dir, 'pnpm-lock.yaml'), 'utf8');
  const resolved = [...pnpmLock.matchAll(/^ {2}'(@datastation\/[a-z-]+)@([^'(]+)/gm)].map((m) => `${m[1]} ${m[2]}`);
  expect(new Set(resolved)).toEqual(new Set(vendored.map(([name, spec]) => `${name} ${spec}`)));

  const { stdout, stderr } = await run('bash', ['-c', ['set -euo pipefail', ...steps].join('\n')], { cwd: box.path, env, timeout: 240_000 });
  expect(stdout, stderr).toMatch(/# pass 3\b/);
  expect(stdout).toMatch(/# fail 0\b/);
  expect(stdout).toContain('"greeting": "Hello, Ada!"');
  const npmLock = JSON.parse(await readFile(join(dir, 'package-lock.json'), 'utf8')) as { packages: Record<string, { resolved?: string }> };
  for (const [name, spec] of vendored) expect(npmLock.packages[`node_modules/${name}`]?.resolved, name).toBe(spec);
  expect(await docker.containers.list([`${LABELS.package}=word-tools`])).toEqual([]);
}, 600_000);
