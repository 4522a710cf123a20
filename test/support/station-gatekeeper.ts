/**
 * A gatekeeper in a process of its own, for tests of the station client commands (`ds upload`,
 * `ds call`, …) in packages/cli: the CLI may not depend on @datastation/gatekeeper (the
 * gatekeeper depends on the CLI), so its tests start one through this script instead.
 *
 *     DS_TEST_STATION_ROOT=<dir> DS_STATION_STATE=<dir> node --conditions=source --import tsx station-gatekeeper.ts
 *
 * Under the root: `storage/` (the owner acme's trips and a private file), `state/station.db`
 * (SQLite) and `state/audit/checkpoints.jsonl` (the audit checkpoint file, apart from the
 * database as a real station keeps it). In DS_STATION_STATE it writes what `ds up` writes:
 * `station.json` ({ url, principals }) and `tokens/<principal>` (0600) for the admin, acme
 * (owner), dev (developer), ann and bob (users): made through the store here, where a new station
 * has the admin alone and the admin adds the others (`ds principals add`). Started again on the same folders it keeps the database and
 * the tokens. It listens on DS_TEST_STATION_PORT (default: any free port; give the same one to
 * start again at the same URL). Prints `ready <url>` on stdout; SIGTERM closes it (sessions, then
 * the store) and exits 0.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createDockerClient } from '@datastation/host';
import { createGatekeeper, createGatekeeperLogger, openStore } from '@datastation/gatekeeper';

const root = process.env.DS_TEST_STATION_ROOT;
const state = process.env.DS_STATION_STATE;
if (!root || !state) throw new Error('Set DS_TEST_STATION_ROOT and DS_STATION_STATE.');

const PRINCIPALS = { admin: 'admin', acme: 'owner', dev: 'developer', ann: 'user', bob: 'user' } as const;

const storage = join(root, 'storage');
await mkdir(join(storage, 'owners/acme/trips'), { recursive: true });
await mkdir(join(storage, 'owners/acme/private'), { recursive: true });
await writeFile(join(storage, 'owners/acme/trips/2026.csv'), 'id,duration\n1,10\n2,20\n3,12\n');
await writeFile(join(storage, 'owners/acme/private/secret.txt'), 'not for ann\n');

const store = await openStore({ url: `sqlite:${join(root, 'state', 'station.db')}` });
await mkdir(join(state, 'tokens'), { recursive: true, mode: 0o700 });
for (const [id, role] of Object.entries(PRINCIPALS)) {
  const file = join(state, 'tokens', id);
  if (existsSync(file)) continue;
  const { token } = await store.principals.issue({ id, role });
  await writeFile(file, `${token}\n`, { mode: 0o600 });
}

const gatekeeper = await createGatekeeper({
  // Warnings and internal errors only (on stderr): no line per request.
  logger: createGatekeeperLogger({ level: 'warn' }),
  store,
  storage,
  stationOptions: { docker: createDockerClient(), pauseAfterMs: 60_000, limits: { timeoutMs: 20_000 } },
  auditCheckpoints: join(root, 'state', 'audit', 'checkpoints.jsonl'),
});
const { url } = await gatekeeper.listen({ host: '127.0.0.1', port: Number(process.env.DS_TEST_STATION_PORT ?? 0) });
// What `ds principals add` recorded in an earlier start stays (as `ds up` keeps it).
const recorded = await readFile(join(state, 'station.json'), 'utf8').then(
  (text) => (JSON.parse(text) as { principals?: Record<string, string> }).principals ?? {},
  () => ({}),
);
await writeFile(join(state, 'station.json'), `${JSON.stringify({ url, principals: { ...recorded, ...PRINCIPALS } }, null, 2)}\n`);
process.stdout.write(`ready ${url}\n`);

process.once('SIGTERM', () => {
  void (async () => {
    await gatekeeper.close();
    await store.close();
    process.exit(0);
  })();
});
