/**
 * `pnpm check:packages`: each public package packed as a release would pack it (`pnpm pack`:
 * publishConfig applied, `workspace:*` replaced) and checked from its tarball alone:
 *  - publint (--strict: warnings fail too);
 *  - @arethetypeswrong/cli with the `esm-only` profile: the packages are ESM only ("type":
 *    "module", no `require` condition), so the node10 and node16-from-CJS resolutions are not
 *    checked; CommonJS callers use `import()`;
 *  - the imports of its JavaScript against its dependencies: every bare import declared, every
 *    dependency imported (the published code reaches nothing it does not declare);
 *  - its published `exports` are the workspace's minus the `source` condition (publishConfig
 *    repeats the map: the two must not drift apart), and it names the Node versions it runs on.
 * Needs the packages built first (the root script does it). Exit code 1 when anything fails.
 */
import { builtinModules } from 'node:module';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { pnpmCommand, publicPackages, REPO_ROOT, run } from '../support/workspace.js';

/**
 * Imports that only run from source in this repository or in a build step, never from the
 * published files, and so are devDependencies: host's runtime bundle and gatekeeper's bundle
 * are prebuilt in dist/ (see their scripts/), these are the fallbacks that make them from
 * source; `ds` loads tsx only when src/ is beside it (a checkout), never installed.
 */
const BUILD_TIME_ONLY: Record<string, string[]> = {
  '@datastation/cli': ['tsx'],
  '@datastation/host': ['@datastation/runtime'],
  '@datastation/gatekeeper': ['esbuild'],
  '@datastation/agent': ['esbuild'],
};
/** Self-contained bundles for the images (they carry their dependencies inside). */
const BUNDLES = /^dist\/(runtime-image|gatekeeper-image|agent-image)\//;

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

const bin = (name: string) => join(REPO_ROOT, 'node_modules', '.bin', name);

async function main(): Promise<number> {
  const pnpm = await pnpmCommand();
  const work = await mkdtemp(join(tmpdir(), 'ds-check-packages-'));
  let failures = 0;
  try {
    for (const pkg of await publicPackages()) {
      const out = join(work, pkg.name.replace(/[@/]/g, '_'));
      await run([...pnpm, 'pack', '--pack-destination', out], { cwd: pkg.dir });
      const tarball = join(out, (await readdir(out)).find((f) => f.endsWith('.tgz'))!);
      const problems: string[] = [];
      const check = async (what: string, command: string[]) => {
        await run(command, { cwd: work }).catch((error: Error) => problems.push(`${what}: ${error.message}`));
      };
      await check('publint', [bin('publint'), 'run', tarball, '--strict']);
      await check('attw', [bin('attw'), tarball, '--profile', 'esm-only', '--format', 'ascii']);
      await run(['tar', '-xzf', tarball, '-C', out], { cwd: out });
      problems.push(...(await checkImports(join(out, 'package'))));
      problems.push(...(await checkManifest(pkg.dir, join(out, 'package'))));
      process.stdout.write(`${problems.length ? 'FAIL' : 'ok  '} ${pkg.name} (${relative(REPO_ROOT, pkg.dir)})\n`);
      for (const problem of problems) process.stdout.write(`  ${problem.replace(/\n/g, '\n    ')}\n`);
      failures += problems.length ? 1 : 0;
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  process.stdout.write(failures ? `check:packages: ${failures} package(s) failed\n` : 'check:packages: every public package passed\n');
  return failures ? 1 : 0;
}

/** The packed manifest against the workspace's: same exports but `source`, and `engines.node`. */
async function checkManifest(sourceDir: string, packedDir: string): Promise<string[]> {
  type Exports = Record<string, Record<string, string>>;
  const source = JSON.parse(await readFile(join(sourceDir, 'package.json'), 'utf8')) as { exports: Exports };
  const packed = JSON.parse(await readFile(join(packedDir, 'package.json'), 'utf8')) as { exports: Exports; engines?: { node?: string } };
  const expected = Object.fromEntries(
    Object.entries(source.exports).map(([path, conditions]) => [path, Object.fromEntries(Object.entries(conditions).filter(([c]) => c !== 'source'))]),
  );
  const problems: string[] = [];
  if (JSON.stringify(packed.exports) !== JSON.stringify(expected)) {
    problems.push(
      `publishConfig.exports is not exports without "source":\n  published ${JSON.stringify(packed.exports)}\n  expected  ${JSON.stringify(expected)}`,
    );
  }
  if (!packed.engines?.node) problems.push('declares no engines.node');
  return problems;
}

/** Bare imports of the packed JavaScript (outside the image bundles) against the declared dependencies. */
async function checkImports(dir: string): Promise<string[]> {
  const manifest = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as Manifest;
  const declared = new Set([
    ...Object.keys(manifest.dependencies ?? {}),
    ...Object.keys(manifest.peerDependencies ?? {}),
    ...Object.keys(manifest.optionalDependencies ?? {}),
  ]);
  const allowed = new Set(BUILD_TIME_ONLY[manifest.name] ?? []);
  const used = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const file = relative(dir, join(entry.parentPath, entry.name));
    if (!entry.isFile() || !/\.(m?js)$/.test(file) || BUNDLES.test(file)) continue;
    for (const { fileName } of ts.preProcessFile(await readFile(join(dir, file), 'utf8'), true, true).importedFiles) {
      if (fileName.startsWith('.') || fileName.startsWith('node:') || builtinModules.includes(fileName)) continue;
      const name = fileName.startsWith('@') ? fileName.split('/').slice(0, 2).join('/') : fileName.split('/')[0]!;
      if (name !== manifest.name && !used.has(name)) used.set(name, file);
    }
  }
  const problems: string[] = [];
  for (const [name, file] of used) {
    if (!declared.has(name) && !allowed.has(name)) problems.push(`imports ${name} (${file}) but does not declare it in dependencies`);
  }
  for (const name of declared) if (!used.has(name)) problems.push(`declares ${name} but never imports it`);
  return problems;
}

process.exitCode = await main();
