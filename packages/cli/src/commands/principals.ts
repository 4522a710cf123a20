import type { GrantableRole, IssuedToken, PrincipalInfo } from '@datastation/protocol/station';
import type { CommandContext } from '../context.js';
import { json, stationClient, table } from '../station/api.js';
import type { StationClient } from '../station/client.js';
import { checkPrincipalName, forgetToken, localStateFor, saveToken } from '../station/state.js';
import type { StationFlags } from '../station/target.js';

export interface PrincipalArgs extends StationFlags {
  id: string;
}

export interface AddPrincipalArgs extends PrincipalArgs {
  role: GrantableRole;
  expires?: string | undefined;
}

export interface RotateArgs extends PrincipalArgs {
  expires?: string | undefined;
}

export interface RemoveArgs extends PrincipalArgs {
  cascade?: boolean | undefined;
}

export interface ListPrincipalsArgs extends StationFlags {
  removed?: boolean | undefined;
}

/** The commands act as the admin unless `--as` / `--token` say otherwise (an owner may list the users). */
const client = (argv: StationFlags, ctx: CommandContext) => stationClient(argv, ctx, 'admin');

/** The principal a command names, checked before anything is sent. */
const principal = (id: string) => ({ id: checkPrincipalName(id, 'The principal') });

/** `ds principals add <id> --role <role> [--expires 30d]`: prints the new token once, and saves it when the station is the local one. */
export async function addPrincipalCommand(argv: AddPrincipalArgs, ctx: CommandContext): Promise<void> {
  const station = await client(argv, ctx);
  checkPrincipalName(argv.id, 'The principal');
  const issued = await station.call('principals.add', {
    body: { id: argv.id, role: argv.role, ...(argv.expires !== undefined ? { expires: argv.expires } : {}) },
  });
  await showToken(station, issued, 'added', ctx);
}

/** `ds principals rotate <id> [--expires 30d]`: the old token stops working at once; the new one is shown once. */
export async function rotatePrincipalCommand(argv: RotateArgs, ctx: CommandContext): Promise<void> {
  const station = await client(argv, ctx);
  const issued = await station.call('principals.rotate', { params: principal(argv.id), body: argv.expires !== undefined ? { expires: argv.expires } : {} });
  await showToken(station, issued, 'rotated', ctx);
}

/** `ds principals disable|enable <id>`. */
export function standingCommand(action: 'disable' | 'enable') {
  return async (argv: PrincipalArgs, ctx: CommandContext): Promise<void> => {
    const station = await client(argv, ctx);
    const changed = await station.call(`principals.${action}`, { params: principal(argv.id) });
    if (ctx.json) return ctx.out(json(changed));
    ctx.out(
      action === 'disable'
        ? `disabled: ${changed.id} (${changed.role}); its token is refused, and its console sessions and event streams have ended\n`
        : `enabled: ${changed.id} (${changed.role}); its token works again\n`,
    );
  };
}

/** `ds principals rm <id> [--cascade]`: the principal becomes a tombstone; its local token file goes too. */
export async function removePrincipalCommand(argv: RemoveArgs, ctx: CommandContext): Promise<void> {
  const station = await client(argv, ctx);
  const removed = await station.call('principals.remove', { params: principal(argv.id), query: { cascade: argv.cascade === true } });
  const local = await localStateFor(station.target.url);
  const forgot = local ? await forgetToken(local, removed.principal.id) : false;
  if (ctx.json) return ctx.out(json(removed));
  const grants = removed.revoked.length;
  ctx.out(
    `removed: ${removed.principal.id} (${removed.principal.role}); the id stays taken` +
      `${grants ? `; ${grants} grant${grants === 1 ? '' : 's'} revoked` : ''}${forgot ? '; its token file here was deleted' : ''}\n`,
  );
}

/** `ds principals ls [--removed]`: every principal (the admin), or the users an owner can grant to. */
export async function listPrincipalsCommand(argv: ListPrincipalsArgs, ctx: CommandContext): Promise<void> {
  const station = await client(argv, ctx);
  const { principals } = await station.call('principals.list', { query: { removed: argv.removed === true } });
  if (ctx.json) return ctx.out(json({ principals }));
  if (principals.length === 0) return ctx.out('no principals\n');
  const full = principals.filter((p): p is PrincipalInfo => 'state' in p);
  if (full.length !== principals.length) {
    // An owner's answer: the users they can grant to, ids only.
    return ctx.out(table([['USER'], ...principals.map((p) => [p.id])]));
  }
  const now = Date.now();
  ctx.out(
    table([
      ['ID', 'ROLE', 'STATE', 'CREATED', 'TOKEN EXPIRES'],
      ...full.map((p) => [
        p.id,
        p.role,
        p.state,
        p.createdAt,
        p.expiresAt === null ? (p.state === 'removed' ? '-' : 'never') : `${p.expiresAt}${Date.parse(p.expiresAt) <= now ? ' (expired)' : ''}`,
      ]),
    ]),
  );
}

/**
 * The token, shown this once on stdout, and saved as `tokens/<id>` when the station is the one
 * whose state folder this is (so `--as <id>` works). The admin's own rotation replaces the file
 * the next command reads.
 */
async function showToken(station: StationClient, issued: IssuedToken, what: 'added' | 'rotated', ctx: CommandContext): Promise<void> {
  const { principal, token } = issued;
  const local = await localStateFor(station.target.url);
  const savedTo = local ? await saveToken(local, principal, token) : undefined;
  if (ctx.json) return ctx.out(json({ principal, token, savedTo: savedTo ?? null }));
  const expiry = principal.expiresAt ? `, expires ${principal.expiresAt}` : '';
  ctx.out(
    [
      `${what}: ${principal.id} (${principal.role}${expiry})`,
      `token (shown once; the station keeps only its hash): ${token}`,
      savedTo
        ? `saved to ${savedTo} (mode 0600): ds ... --as ${principal.id}`
        : 'not saved: this is not the station of the local state folder; hand the token over safely',
      '',
    ].join('\n'),
  );
}
