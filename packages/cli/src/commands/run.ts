import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import type { ConnectorCallEvent, DsConnection } from '@datastation/host';
import { DsError, printable } from '@datastation/protocol';
import { bundleFunctionPackage } from '@datastation/package/pack';
import type { CommandContext } from '../context.js';
import { dockerClient } from '../docker.js';
import { Interrupted } from '../exit.js';
import { isTypeScript, readFunctionPackage } from '@datastation/package/pack';
import { checkImage, openPackage } from '@datastation/package';
import { StopSignals } from '../signals.js';
import { formatValue, parseArgs } from '../values.js';

export interface RunArgs {
  target: string;
  name: string;
  data: string;
  args?: string | undefined;
  timeout?: number | undefined;
  /** The container's memory limit in MiB (the host's limits.memoryMb). */
  memory?: number | undefined;
  image?: string | undefined;
  /** runc (default, or DS_RUNTIME) or runsc (gVisor). */
  runtime?: 'runc' | 'runsc' | undefined;
  connector?: boolean | undefined;
  /** Station storage for policy-checked reads, and the globs under it that are granted. */
  readRoot?: string | undefined;
  allow?: string[] | undefined;
  /** The caller hands a root-owned --data folder over to the function's uid. */
  handOverData?: boolean | undefined;
}

/** What a run needs: a function folder for the container, and what to clean up afterwards. */
interface Prepared {
  functions: string;
  packageName: string;
  image: string | undefined;
  remove(): Promise<void>;
}

/**
 * `ds run`: one call in a fresh container. The value goes to stdout as JSON, the function's logs
 * to stderr as they come. The container is removed on every path: success, failure, SIGINT/SIGTERM.
 */
export async function runCommand(argv: RunArgs, ctx: CommandContext): Promise<void> {
  const args = parseArgs(argv.args);
  if (argv.timeout !== undefined && (!Number.isInteger(argv.timeout) || argv.timeout <= 0)) {
    throw new DsError('BAD_REQUEST', `--timeout must be a whole number of milliseconds above 0; got ${argv.timeout}.`);
  }
  using stop = new StopSignals();
  let prepared: Prepared | undefined;
  let connection: DsConnection | undefined;
  try {
    prepared = await prepare(argv, ctx);
    stop.throwIfStopped();
    ctx.progress.step('starting the container');
    const started = Date.now();
    const { dsDockerInit, dsDockerRun } = await import('@datastation/host');
    // A connector is developer code too: it runs in the container, beside the functions, never here.
    connection = await dsDockerInit({
      functions: prepared.functions,
      dataDir: argv.data,
      ...(argv.handOverData ? { handOverDataDir: true } : {}),
      package: prepared.packageName,
      ...(prepared.image ? { image: prepared.image } : {}),
      ...(argv.runtime ? { runtime: argv.runtime } : {}),
      ...(argv.timeout || argv.memory
        ? { limits: { ...(argv.timeout ? { timeoutMs: argv.timeout } : {}), ...(argv.memory ? { memoryMb: argv.memory } : {}) } }
        : {}),
      ...(argv.readRoot ? { readPolicy: { root: resolve(argv.readRoot), allow: argv.allow ?? [] } } : {}),
    });
    const open = connection;
    stop.onStop(() => open.close());
    ctx.progress.done(`container ${open.containerId.slice(0, 12)} started (${Date.now() - started} ms)`);
    stop.throwIfStopped();

    // A function's output is untrusted text: escape control characters so it cannot drive the terminal.
    const options = { onLog: (_stream: 'stdout' | 'stderr', data: string) => ctx.err(printable(data)) };
    // Each function the connector calls, as the runtime reports it (progress lines: on a terminal or with --progress).
    const onCall = (e: ConnectorCallEvent) =>
      ctx.progress.done(`${argv.name} → ${printable(e.fn)}: ${e.ok ? 'ok' : (e.code ?? 'failed')} (${Math.round(e.ms)} ms)`);
    const value = await dsDockerRun(argv.name, args, open, argv.connector ? { ...options, connector: true, onCall } : options);
    stop.throwIfStopped();
    ctx.out(formatValue(value, ctx.json));
  } catch (error) {
    if (stop.signal) throw new Interrupted(stop.signal);
    throw forThisCommand(error, argv);
  } finally {
    ctx.progress.stop();
    await connection?.close();
    await prepared?.remove();
  }
}

/** Errors whose general hint names a library option: here it names the flag that does it. */
function forThisCommand(error: unknown, argv: RunArgs): unknown {
  if (!(error instanceof DsError)) return error;
  const again = (hint: string) => new DsError(error.code, error.message, { cause: error, hint, ...(error.details ? { details: error.details } : {}) });
  if (error.code === 'OUT_OF_MEMORY')
    return again(`Give it more memory with --memory <MiB> (it had ${argv.memory ?? 'the default'}${argv.memory ? ' MiB' : ''}), or process less at once.`);
  if (error.code === 'TIMEOUT') return again(`Give it longer with --timeout <ms>${argv.timeout ? ` (it had ${argv.timeout})` : ''}, or make it faster.`);
  return error;
}

async function prepare(argv: RunArgs, ctx: CommandContext): Promise<Prepared> {
  const target = resolve(argv.target);
  const info = await stat(target).catch(() => undefined);
  if (!info) throw new DsError('BAD_REQUEST', `${argv.target} does not exist. Give a function package folder or a .dspkg file.`);
  if (info.isFile()) return preparePackage(target, argv, ctx);
  return prepareFolder(target, argv, ctx);
}

/** A .dspkg: verified, unpacked to a temp folder, and run on the image id it records (unless --image). */
async function preparePackage(file: string, argv: RunArgs, ctx: CommandContext): Promise<Prepared> {
  ctx.progress.step(`verifying ${relative(process.cwd(), file) || file}`);
  const opened = await openPackage(file);
  try {
    const { manifest } = opened;
    if (!argv.image) await checkImage(manifest, await dockerClient());
    ctx.progress.done(`verified ${manifest.name}@${manifest.version} (sha256 ${opened.sha256.slice(0, 12)})`);
    return {
      functions: opened.codeDir,
      packageName: manifest.name,
      image: argv.image ?? manifest.image.id,
      remove: opened.remove,
    };
  } catch (error) {
    await opened.remove();
    throw error;
  }
}

/**
 * A folder: TypeScript (or any entry other than a JS `main`) is bundled into a temp folder, as
 * `ds package` would; a folder whose package.json `main` is the JavaScript entry, and which has no
 * connectors, runs as it is. A package with connectors is always bundled: the bundle's
 * package.json is what names the connectors module to the runtime.
 */
async function prepareFolder(dir: string, argv: RunArgs, ctx: CommandContext): Promise<Prepared> {
  const pkg = await readFunctionPackage(dir);
  if (!argv.connector && !pkg.connectors && !isTypeScript(pkg.entry) && pkg.entry === pkg.main) {
    return { functions: dir, packageName: pkg.name, image: argv.image, remove: async () => undefined };
  }
  ctx.progress.step(`bundling ${relative(dir, pkg.entry)}`);
  const work = await mkdtemp(join(tmpdir(), 'ds-run-'));
  const remove = () => rm(work, { recursive: true, force: true });
  try {
    const bundle = await bundleFunctionPackage(pkg, join(work, 'code'));
    ctx.progress.done(`bundled ${pkg.name}: ${bundle.functions.join(', ') || 'no exports'}`);
    return {
      functions: bundle.dir,
      packageName: pkg.name,
      image: argv.image,
      remove,
    };
  } catch (error) {
    await remove();
    throw error;
  }
}
