import { DsError } from '@datastation/protocol';
import type { CommandContext } from '../context.js';
import type { StationClient } from '../station/client.js';
import { type GrantInput, type GrantView, json, type ReleaseMode, resolvePackage, shortDigest, stationClient, table } from '../station/api.js';
import type { StationFlags } from '../station/target.js';
import { formatDuration, parseDuration } from '../values.js';

export interface GrantsArgs extends StationFlags {
  revoked?: boolean | undefined;
}

export interface GrantArgs extends StationFlags {
  package: string;
  user: string;
  read: string[];
  release: ReleaseMode;
  owner?: string | undefined;
  /** Replace a working grant even with patterns that match none of the owner's files. */
  force?: boolean | undefined;
  /** The longest a run under the grant may last, e.g. `90s`, `10m`, or milliseconds. */
  maxRun?: string | undefined;
}

export interface RevokeArgs extends StationFlags {
  package: string;
  user: string;
  owner?: string | undefined;
}

/** `ds grants`: an owner's grants, the grants naming a user, or those of a developer's packages. */
export async function grantsCommand(argv: GrantsArgs, ctx: CommandContext): Promise<void> {
  const client = await stationClient(argv, ctx);
  const { grants } = await client.call('grants.list', { query: { revoked: argv.revoked === true } });
  if (ctx.json) return ctx.out(json({ grants }));
  if (grants.length === 0) return ctx.out('no grants\n');
  const names = await packageNames(client);
  ctx.out(
    table([
      ['OWNER', 'USER', 'PACKAGE', 'RELEASE', 'READ'],
      ...grants.map((g) => [
        g.owner,
        g.user,
        names.get(g.package) ?? shortDigest(g.package),
        g.revokedAt ? `revoked ${g.revokedAt}` : g.release,
        g.read.join(' '),
      ]),
    ]),
  );
}

/**
 * `ds grant`: adds one grant to the owner's set (GET the owner's grants, add, PUT them back). A
 * grant to the same user of the same package is replaced, so granting again changes the globs or
 * the release mode.
 */
export async function grantCommand(argv: GrantArgs, ctx: CommandContext): Promise<void> {
  const client = await stationClient(argv, ctx, 'owner');
  const pkg = await resolvePackage(client, argv.package);
  const current = await ownerGrants(client);
  const owner = ownerOf(argv, client, current);
  // A glob is a path under the storage root; a station path as functions read it (/owners/...) is taken too.
  const read = argv.read.map((glob) => glob.replace(/^\/+/, ''));
  const maxRunMs = argv.maxRun === undefined ? undefined : parseDuration(argv.maxRun, '--max-run');
  const wanted: GrantInput = { user: argv.user, package: pkg, read, release: argv.release, ...(maxRunMs !== undefined ? { maxRunMs } : {}) };
  await checkMatches(
    client,
    owner,
    read,
    current.filter((g) => g.user === argv.user && g.package === pkg && g.revokedAt === null),
    argv.force,
    ctx,
  );
  const others = current.filter((g) => !(g.user === argv.user && g.package === pkg)).map(input);
  const result = await client.call('grants.replace', { params: { owner }, body: [...others, wanted] });
  if (ctx.json) return ctx.out(json(result));
  const replaced = current.some((g) => g.user === argv.user && g.package === pkg);
  const changed = result.added.length > 0;
  ctx.out(
    `${changed ? (replaced ? 'changed' : 'granted') : 'already granted'}: ${argv.user} may run ${shortDigest(pkg)} reading ${read.join(' ')} ` +
      `(release: ${argv.release}${maxRunMs !== undefined ? `, runs end after ${formatDuration(maxRunMs)}` : ''})\n`,
  );
}

/** `ds revoke`: removes the owner's grants of a package to a user (GET, remove, PUT). */
export async function revokeCommand(argv: RevokeArgs, ctx: CommandContext): Promise<void> {
  const client = await stationClient(argv, ctx, 'owner');
  const pkg = await resolvePackage(client, argv.package);
  const current = await ownerGrants(client);
  const owner = ownerOf(argv, client, current);
  const gone = current.filter((g) => g.user === argv.user && g.package === pkg);
  if (gone.length === 0) throw new DsError('BAD_REQUEST', `${owner} has no grant of ${pkg} to ${argv.user} to revoke (ds grants lists them).`);
  const result = await client.call('grants.replace', { params: { owner }, body: current.filter((g) => !gone.includes(g)).map(input) });
  if (ctx.json) return ctx.out(json(result));
  const grants = `${result.revoked.length} grant${result.revoked.length === 1 ? '' : 's'}`;
  ctx.out(`revoked: ${argv.user} may no longer run ${shortDigest(pkg)} on ${owner}'s data (${grants})\n`);
}

/**
 * Patterns that match none of the owner's files grant nothing. Replacing a grant that reads files
 * with such patterns is refused (a typo would silently cut the user off) unless `force`; a new one
 * is granted with a warning (the files may come later).
 */
async function checkMatches(
  client: StationClient,
  owner: string,
  read: string[],
  replacing: GrantView[],
  force: boolean | undefined,
  ctx: CommandContext,
): Promise<void> {
  const preview = await client.call('grants.preview', { query: { read } });
  if (preview.matched > 0) return;
  const working = [];
  for (const grant of replacing) {
    const before = await client.call('grants.preview', { query: { read: grant.read } });
    if (before.matched > 0) working.push({ grant, matched: before.matched });
  }
  const none = `${read.join(' ')} match${read.length === 1 ? 'es' : ''} none of ${owner}'s ${preview.ownerFiles} file${preview.ownerFiles === 1 ? '' : 's'}`;
  if (working.length > 0 && !force) {
    const was = working[0] as { grant: GrantView; matched: number };
    throw new DsError(
      'BAD_REQUEST',
      `${none}: the grant would read nothing, and it would replace one that reads ${was.matched} file(s) (${was.grant.read.join(' ')}).`,
      {
        hint: 'Check the patterns (`ds grant --help`; the console previews them), or pass --force to replace the working grant all the same.',
        details: { read, matched: 0, replacing: was.grant.read },
      },
    );
  }
  ctx.err(`warning: ${none}; the grant reads nothing until such files exist.\n`);
}

async function ownerGrants(client: StationClient): Promise<GrantView[]> {
  return (await client.call('grants.list')).grants;
}

/**
 * The owner whose grants are set: `--owner`, else `--as`, else the owner named on their current
 * grants. (The gatekeeper has no "who am I" yet.)
 */
function ownerOf(argv: { owner?: string | undefined }, client: StationClient, current: GrantView[]): string {
  const owner = argv.owner ?? client.target.principal ?? current[0]?.owner;
  if (!owner)
    throw new DsError('BAD_REQUEST', `Which owner are you? Pass --owner <id> (or --as <owner>): the token from ${client.target.tokenSource} does not say.`);
  return owner;
}

/** A grant as a PUT must repeat it to keep it as it is (its run ceiling too). */
function input(g: GrantView): GrantInput {
  return { user: g.user, package: g.package, read: g.read, release: g.release, ...(g.maxRunMs !== undefined ? { maxRunMs: g.maxRunMs } : {}) };
}

/** digest → name@version for tables, from the packages this principal can see (best effort). */
async function packageNames(client: StationClient): Promise<Map<string, string>> {
  try {
    const { packages } = await client.call('packages.list');
    return new Map(packages.map((p) => [p.digest, `${p.name}@${p.version} ${shortDigest(p.digest)}`]));
  } catch {
    return new Map();
  }
}
