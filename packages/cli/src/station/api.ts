import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { DsError, didYouMean, printable } from '@datastation/protocol';
import type { CommandContext } from '../context.js';
import { StationClient } from './client.js';
import type { Role } from './state.js';
import { resolveStation, type StationFlags } from './target.js';

// What the gatekeeper answers: the API's own types, shared with the gatekeeper and the console.
export {
  type AuditEntry,
  type AuditVerification,
  type Grant as GrantView,
  type GrantInput,
  type PackageView,
  RELEASE_MODES,
  type ReleaseMode,
  type RunView,
} from '@datastation/protocol/station';

/** A station client for a command: URL and token from the flags, the environment or the state folder. */
export async function stationClient(flags: StationFlags, ctx: CommandContext, role?: Role): Promise<StationClient> {
  const target = await resolveStation(flags, { ...(role ? { role } : {}), warn: ctx.err });
  return new StationClient(target);
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * A package as the person names it: its digest (`sha256:…`), a unique prefix of it (8 hex digits
 * or more), `name@version` or a name. A package is its digest, so a name that two uploads share is
 * refused with their digests listed.
 */
export async function resolvePackage(client: StationClient, ref: string, options: { toRun?: boolean } = {}): Promise<string> {
  if (DIGEST.test(ref)) return ref;
  // A .dspkg file names the package it is: its digest is the sha256 of its bytes.
  if (ref.endsWith('.dspkg')) {
    const bytes = await readFile(ref).catch((cause: unknown) => {
      throw new DsError(
        'BAD_REQUEST',
        `Cannot read the package file ${ref}: ${(cause as Error).message}. Name the package by digest, name@version or name instead.`,
        { cause },
      );
    });
    return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  }
  const { packages } = await client.call('packages.list');
  const hex = ref.startsWith('sha256:') ? ref.slice(7) : ref;
  const matches = /^[0-9a-f]{8,64}$/.test(hex) ? packages.filter((p) => p.digest.startsWith(`sha256:${hex}`)) : [];
  const named = matches.length > 0 ? matches : packages.filter((p) => p.name === ref || `${p.name}@${p.version}` === ref);
  if (named.length === 1 && named[0]) return named[0].digest;
  if (named.length === 0) {
    const who = client.target.principal ?? 'this token';
    const close = didYouMean(
      ref,
      packages.flatMap((p) => [p.name, `${p.name}@${p.version}`]),
    );
    // A user sees only the packages granted to them: one they cannot see is one they may not run,
    // however they named it (a digest would be NOT_APPROVED at the station too).
    if (options.toRun)
      throw new DsError('NOT_APPROVED', `No package ${JSON.stringify(ref)} is granted to ${who} on ${client.target.url}.${close}`, {
        hint: 'Ask the owner whose data you need to grant it to you; `ds grants` lists what is granted to you.',
        details: { package: ref },
      });
    throw new DsError('NOT_FOUND', `No package ${JSON.stringify(ref)} that ${who} can see on ${client.target.url}.${close}`, {
      hint: 'Name it by digest (sha256:…), a unique prefix, name@version, name or its .dspkg file; `ds upload` prints the digest.',
      details: { package: ref },
    });
  }
  throw new DsError(
    'BAD_REQUEST',
    `${JSON.stringify(ref)} names ${named.length} packages (a package is its digest): ` +
      `${named.map((p) => `${p.digest} (${p.name}@${p.version}, ${p.uploadedAt})`).join(', ')}. Name one by digest.`,
  );
}

/** `sha256:0123456789ab` for tables; JSON output always has the whole digest. */
export function shortDigest(digest: string): string {
  return digest.startsWith('sha256:') ? digest.slice(0, 19) : digest;
}

/** Lines padded into columns (the last column is left as it is); text from the station is never a terminal control sequence. */
export function table(rows: string[][]): string {
  const widths = rows.reduce<number[]>((w, row) => row.map((cell, i) => Math.max(w[i] ?? 0, cell.length)), []);
  return (
    printable(rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')).join('\n')) +
    (rows.length ? '\n' : '')
  );
}

export function json(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}
