/**
 * Owner data under a policy. The owner (acme) keeps trips and payroll in station storage and grants
 * this package `owners/acme/trips/*.csv` only. The function streams each granted month, totals
 * the distance, and writes the result to the user's /data. Asking for payroll is refused by the
 * host (POLICY_DENIED), and the files are not in the container for plain `fs` to find.
 */
import { readStream, write, type FunctionContext } from '@datastation/dev-utils';

export interface DistanceArgs {
  /** Station paths of the months to total, e.g. ['/owners/acme/trips/2026-10.csv']. */
  months: string[];
}

export async function totalDistance(args: DistanceArgs, ctx: FunctionContext): Promise<{ trips: number; km: number; perMonth: Record<string, number> }> {
  let trips = 0;
  let km = 0;
  const perMonth: Record<string, number> = {};
  for (const path of args.months) {
    let monthKm = 0;
    let rest = '';
    let header: string[] | undefined;
    // Streamed: a month of any size arrives in chunks, never whole.
    for await (const chunk of readStream(path)) {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        const cells = line.split(',');
        if (!header) {
          header = cells;
          continue;
        }
        const value = Number(cells[header.indexOf('distance_km')]);
        if (Number.isFinite(value)) {
          monthKm += value;
          trips++;
        }
      }
    }
    if (rest.trim() && header) {
      const value = Number(rest.split(',')[header.indexOf('distance_km')]);
      if (Number.isFinite(value)) {
        monthKm += value;
        trips++;
      }
    }
    perMonth[path] = Math.round(monthKm * 100) / 100;
    km += monthKm;
    ctx.log(`${path}: ${perMonth[path]} km`);
  }
  const result = { trips, km: Math.round(km * 100) / 100, perMonth };
  await write('distance.json', `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

/** Tries to read payroll, which the owner did not grant: the host answers POLICY_DENIED. */
export async function peekPayroll(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of readStream('/owners/acme/payroll/2026-10.csv')) parts.push(chunk);
  return Buffer.concat(parts).toString('utf8');
}
