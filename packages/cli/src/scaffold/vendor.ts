/**
 * `ds init` outside a registry: the new package's @datastation/* dependencies packed from a
 * checkout of Data Station, or taken from a folder of tarballs made by `pnpm pack`, and copied
 * into the package's vendor/. package.json names them as `file:vendor/…`, relative to the package
 * itself, so it installs wherever it is moved or cloned, without the checkout, and only its
 * third-party dependencies come from the npm registry.
 */
import { execFile } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGunzip } from 'node:zlib';
import { DsError } from '@datastation/protocol';
import { extract as tarExtract } from 'tar-stream';
import type { Progress } from '../progress.js';

/** What a function package depends on: ds, and dev-utils for its test and editor. What they depend on follows. */
export const SCAFFOLD_PACKAGES = ['@datastation/cli', '@datastation/dev-utils'] as const;

export interface VendoredPackage {
  name: string;
  version: string;
  /** The tarball's file name, in vendor/. */
  file: string;
}

interface PackedManifest {
  name: string;
  version: string;
  dependencies: Record<string, string>;
}

/** The checkout this `ds` runs from (it runs from source: src/ beside bin/), or undefined when it is installed. */
export async function checkoutOfThisCli(): Promise<string | undefined> {
  // src/scaffold/ and dist/scaffold/ are both two levels below the package's folder.
  const cli = fileURLToPath(new URL('../../', import.meta.url));
  if (!existsSync(join(cli, 'src'))) return undefined;
  const root = resolve(cli, '..', '..');
  return (await isCheckout(root)) ? root : undefined;
}

/** The root of a checkout of the Data Station repository. */
export async function isCheckout(root: string): Promise<boolean> {
  if (!(await stat(join(root, 'pnpm-workspace.yaml')).catch(() => undefined))) return false;
  const devUtils = await readFile(join(root, 'packages', 'dev-utils', 'package.json'), 'utf8').catch(() => '');
  return devUtils.includes('"@datastation/dev-utils"');
}

/**
 * Copies the tarballs of SCAFFOLD_PACKAGES and their @datastation dependencies into `vendor`:
 * packed from `from` when it is a checkout (built first), or taken from `from` when it is a
 * folder of tarballs. Checks everything before it writes anything into `vendor`.
 */
export async function vendorPackages(from: string, vendor: string, progress: Progress): Promise<VendoredPackage[]> {
  const kind = await stat(from).catch(() => undefined);
  if (!kind?.isDirectory())
    throw new DsError('BAD_REQUEST', `--from ${from} is not a folder: give a checkout of Data Station or a folder of .tgz files made by pnpm pack.`);
  const checkout = await isCheckout(from);
  const packed = checkout ? await mkdtemp(join(tmpdir(), 'ds-init-pack-')) : from;
  try {
    if (checkout) await packCheckout(from, packed, progress);
    const chosen = chooseTarballs(await tarballsIn(packed), from);
    await mkdir(vendor, { recursive: true });
    for (const pkg of chosen) await copyFile(join(packed, pkg.file), join(vendor, pkg.file));
    return chosen;
  } finally {
    if (checkout) await rm(packed, { recursive: true, force: true });
  }
}

/**
 * Builds and packs the closure of SCAFFOLD_PACKAGES in a checkout, as a release packs them
 * (`pnpm pack`: publishConfig applied, `workspace:*` replaced by the version). The build goes
 * through turbo, whose cache makes it a restore when nothing changed since the last one.
 */
async function packCheckout(root: string, out: string, progress: Progress): Promise<void> {
  const names = closure(await workspaceDependencies(root));
  const pnpm = await pnpmOf(root);
  if (!existsSync(join(root, 'node_modules', '.bin', 'turbo'))) {
    throw new DsError('BAD_REQUEST', `The checkout ${root} is not installed: run \`${pnpm.join(' ')} install\` there, then ds init again.`);
  }
  const filters = names.map((name) => `--filter=${name}`);
  // Two ds init in one checkout must not build over each other's packing: dist/ is rewritten.
  await withLock(join(root, 'node_modules', '.cache', 'datastation', 'pack.lock'), progress, async () => {
    progress.step(`Building ${names.join(', ')} in ${root}`);
    await runIn(root, [...pnpm, 'exec', 'turbo', 'run', 'build', '--only', '--ui=stream', '--output-logs=errors-only', ...filters], 'build');
    progress.step(`Packing ${names.join(', ')}`);
    await runIn(root, [...pnpm, '--recursive', ...filters, 'pack', '--pack-destination', out], 'pack');
  });
  progress.done(`Packed ${names.length} packages from ${root}`);
}

/** `npx -y pnpm@<version>`, the version the checkout's packageManager pins (the one it was installed with). */
async function pnpmOf(root: string): Promise<[string, ...string[]]> {
  const { packageManager } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { packageManager?: string };
  const pinned = /^pnpm@[^+\s]+/.exec(packageManager ?? '')?.[0];
  return ['npx', '-y', pinned ?? 'pnpm'];
}

/** Each workspace package's @datastation dependencies (what a published package requires, not its devDependencies). */
async function workspaceDependencies(root: string): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const entry of await readdir(join(root, 'packages'), { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const text = await readFile(join(root, 'packages', entry.name, 'package.json'), 'utf8').catch(() => undefined);
    if (!text) continue;
    const manifest = JSON.parse(text) as { name: string; dependencies?: Record<string, string> };
    graph.set(manifest.name, Object.keys(manifest.dependencies ?? {}).filter(isDatastation));
  }
  return graph;
}

function closure(graph: Map<string, string[]>): string[] {
  const names = new Set<string>(SCAFFOLD_PACKAGES);
  for (const name of names) for (const dep of graph.get(name) ?? []) names.add(dep);
  return [...names].sort();
}

const isDatastation = (name: string) => name.startsWith('@datastation/');

/** The @datastation tarballs in a folder, by package name (a folder may hold several versions). */
async function tarballsIn(folder: string): Promise<Map<string, (PackedManifest & { file: string })[]>> {
  const found = new Map<string, (PackedManifest & { file: string })[]>();
  for (const file of (await readdir(folder)).filter((f) => f.endsWith('.tgz')).sort()) {
    const manifest = await readPackedManifest(join(folder, file));
    if (!isDatastation(manifest.name)) continue;
    found.set(manifest.name, [...(found.get(manifest.name) ?? []), { ...manifest, file }]);
  }
  return found;
}

/** SCAFFOLD_PACKAGES and, following their dependencies, every @datastation package they need: one tarball each. */
function chooseTarballs(found: Map<string, (PackedManifest & { file: string })[]>, from: string): VendoredPackage[] {
  const chosen = new Map<string, PackedManifest & { file: string }>();
  const want = (name: string, range: string | undefined, neededBy: string | undefined) => {
    if (chosen.has(name)) return;
    const all = found.get(name) ?? [];
    // A packed manifest names its workspace dependencies by exact version (pnpm pack replaces workspace:*).
    const fits = range && /^\d+\.\d+\.\d+(?:-[\w.-]+)?$/.test(range) ? all.filter((p) => p.version === range) : all;
    const what = `${name}${range ? `@${range}` : ''}${neededBy ? ` (${neededBy} depends on it)` : ''}`;
    const [pkg, ...others] = fits;
    if (!pkg) {
      throw new DsError(
        'BAD_REQUEST',
        `--from ${from} has no tarball of ${what}. Give a checkout of Data Station, or a folder holding the tarballs of ${SCAFFOLD_PACKAGES.join(' and ')} and of the @datastation packages they depend on, made by pnpm pack.`,
      );
    }
    if (others.length > 0) {
      throw new DsError('BAD_REQUEST', `--from ${from} has ${fits.length} tarballs of ${what}: ${fits.map((p) => p.file).join(', ')}. Keep one.`);
    }
    chosen.set(name, pkg);
    for (const [dep, depRange] of Object.entries(pkg.dependencies)) if (isDatastation(dep)) want(dep, depRange, `${name}@${pkg.version}`);
  };
  for (const name of SCAFFOLD_PACKAGES) want(name, undefined, undefined);
  return [...chosen.values()].map(({ name, version, file }) => ({ name, version, file })).sort((a, b) => a.name.localeCompare(b.name));
}

/** package.json of an npm tarball (`package/package.json`, or whatever its one top folder is called). */
async function readPackedManifest(file: string): Promise<PackedManifest> {
  const bad = (why: string, cause?: unknown) =>
    new DsError('BAD_REQUEST', `${file} is not a package tarball (${why}). Remove it from the folder, or make it again with pnpm pack.`, { cause });
  let text: string | undefined;
  try {
    const entries = tarExtract();
    const source = createReadStream(file);
    const gunzip = createGunzip();
    source.on('error', (error) => entries.destroy(error));
    gunzip.on('error', (error) => entries.destroy(error));
    source.pipe(gunzip).pipe(entries as unknown as NodeJS.WritableStream);
    for await (const entry of entries) {
      const { name, type, size = 0 } = entry.header;
      if (type === 'file' && /^[^/]+\/package\.json$/.test(name) && size <= 1024 * 1024) {
        const chunks: Buffer[] = [];
        for await (const chunk of entry as AsyncIterable<Buffer>) chunks.push(chunk);
        text = Buffer.concat(chunks).toString('utf8');
        source.destroy();
        gunzip.destroy();
        break;
      }
      entry.resume();
    }
  } catch (error) {
    throw bad('not a gzipped tar', error);
  }
  if (text === undefined) throw bad('no package.json in it');
  let manifest: Partial<PackedManifest>;
  try {
    manifest = JSON.parse(text) as Partial<PackedManifest>;
  } catch (error) {
    throw bad('its package.json is not JSON', error);
  }
  if (typeof manifest.name !== 'string' || typeof manifest.version !== 'string') throw bad('its package.json has no name or version');
  return { name: manifest.name, version: manifest.version, dependencies: manifest.dependencies ?? {} };
}

/** Runs a command of the checkout's build; a failure carries the command's last lines. */
function runIn(cwd: string, command: [string, ...string[]], what: string): Promise<void> {
  const [file, ...args] = command;
  const env = { ...process.env, TURBO_TELEMETRY_DISABLED: '1', DO_NOT_TRACK: '1' };
  return new Promise((done, fail) => {
    execFile(file, args, { cwd, env, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) return done();
      const tail = `${stdout}\n${stderr}`.trim().split('\n').slice(-30).join('\n');
      fail(
        new DsError(
          'BAD_REQUEST',
          `The ${what} of the @datastation packages in ${cwd} failed (\`${command.join(' ')}\`):\n${tail}\nFix it there, or give --from a folder of tarballs made by pnpm pack.`,
          { cause: error },
        ),
      );
    });
  });
}

/**
 * Holds a lock file while `fn` runs. Another process holding it is waited for; a lock whose
 * process is gone (or that stayed empty, its writer killed at once) is taken over.
 */
async function withLock<T>(lock: string, progress: Progress, fn: () => Promise<T>): Promise<T> {
  await mkdir(join(lock, '..'), { recursive: true });
  for (let waited = false; ; ) {
    try {
      await writeFile(lock, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number.parseInt(await readFile(lock, 'utf8').catch(() => ''), 10);
    const age = Date.now() - ((await stat(lock).catch(() => undefined))?.mtimeMs ?? 0);
    if (Number.isInteger(holder) ? !isAlive(holder) : age > 10_000) {
      await rm(lock, { force: true });
      continue;
    }
    if (!waited) progress.step(`Waiting for another ds init packing in this checkout (pid ${holder})`);
    waited = true;
    await new Promise((r) => setTimeout(r, 250));
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
