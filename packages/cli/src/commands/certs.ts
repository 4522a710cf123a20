import { constants } from 'node:fs';
import { lstat, mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { checkSans, makeStationCertificates } from '@datastation/agent/certificates';
import { DsError } from '@datastation/protocol';
import type { CommandContext } from '../context.js';

export interface CertsArgs {
  dir: string;
  caKey: string;
  agentDns?: string[] | undefined;
  name?: string | undefined;
  force?: boolean | undefined;
}

/**
 * The files `ds certs` writes into its folder, under the names deploy/kubernetes's
 * kustomization.yaml makes its Secrets from (gatekeeper.crt -> tls.crt, ...).
 */
export const CERT_FILES = ['ca.crt', 'gatekeeper.crt', 'gatekeeper.key', 'agent.crt', 'agent.key'] as const;

/**
 * `ds certs <dir> --ca-key <file>`: a station's mutual-TLS set from the one certificate module
 * (what `ds swarm init` makes as swarm secrets), as files: a new CA, the gatekeepers' client pair
 * and the agents' pair, keys 0600. The CA's key goes to its own path, outside the folder the
 * Secrets are made from: no pod needs it. Nothing is overwritten without --force, and nothing is
 * left half-written: every file is written beside its target first, then all are renamed in place.
 */
export async function certsCommand(argv: CertsArgs, ctx: CommandContext): Promise<void> {
  const dir = resolve(argv.dir);
  const caKey = resolve(argv.caKey);
  const agentDns = argv.agentDns ?? [];
  checkSans(agentDns, '--agent-dns');
  const inside = relative(dir, caKey);
  if (!inside.startsWith('..') && !inside.startsWith('/'))
    throw new DsError('BAD_REQUEST', `--ca-key ${argv.caKey} is inside ${argv.dir}, the folder the Secrets are made from.`, {
      hint: "Give --ca-key a path outside that folder (for example ~/datastation-ca/ca.key): no pod needs the CA's key.",
    });
  const targets: Array<{ file: string; mode: number; content: (set: Awaited<ReturnType<typeof makeStationCertificates>>) => string }> = [
    { file: join(dir, 'ca.crt'), mode: 0o644, content: (s) => s.ca.cert },
    { file: join(dir, 'gatekeeper.crt'), mode: 0o644, content: (s) => s.gatekeeper.cert },
    { file: join(dir, 'gatekeeper.key'), mode: 0o600, content: (s) => s.gatekeeper.key },
    { file: join(dir, 'agent.crt'), mode: 0o644, content: (s) => s.agent.cert },
    { file: join(dir, 'agent.key'), mode: 0o600, content: (s) => s.agent.key },
    { file: caKey, mode: 0o600, content: (s) => s.ca.key },
  ];
  if (!argv.force) {
    const present = (await Promise.all(targets.map(async (t) => ((await exists(t.file)) ? t.file : undefined)))).filter((f) => f !== undefined);
    if (present.length)
      throw new DsError(
        'BAD_REQUEST',
        `${present.map((f) => relative(process.cwd(), f) || f).join(', ')} exist${present.length === 1 ? 's' : ''}: ds certs does not replace a station's certificates by itself.`,
        { hint: 'Pass --force to make a new set (a new CA: every pod must get the new files before they trust each other again), or choose another folder.' },
      );
  }
  ctx.progress.step("making the CA, the gatekeepers' and the agents' certificates");
  const set = await makeStationCertificates({ name: argv.name ?? 'datastation', agentSans: agentDns });
  const temps: string[] = [];
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await mkdir(dirname(caKey), { recursive: true, mode: 0o700 });
    for (const t of targets) {
      const temp = `${t.file}.${process.pid}.tmp`;
      temps.push(temp);
      await writeNew(temp, t.content(set), t.mode);
    }
  } catch (cause) {
    await Promise.all(temps.map((temp) => rm(temp, { force: true })));
    throw new DsError('BAD_REQUEST', `ds certs could not write its files (${(cause as NodeJS.ErrnoException).code ?? 'error'}); nothing was replaced.`, {
      cause,
    });
  }
  for (const [i, t] of targets.entries()) await rename(temps[i] as string, t.file);
  const written = { dir, files: [...CERT_FILES], caKey, agentDns };
  ctx.progress.done(`wrote ${CERT_FILES.length} files in ${argv.dir} and the CA's key at ${argv.caKey}`);
  if (ctx.json) return void ctx.out(`${JSON.stringify(written)}\n`);
  ctx.out(`${CERT_FILES.map((f) => join(argv.dir, f)).join('\n')}\n${argv.caKey} (the CA's key: keep it off the cluster)\n`);
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** A new file (never through a link, never an existing one), with its mode whatever the umask. */
async function writeNew(file: string, content: string, mode: number): Promise<void> {
  await rm(file, { force: true });
  const handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    await handle.chmod(mode);
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
