import type { ColumnStats } from './index.js';

/** What a connector gets: `run` calls a function of this package, in the same container. */
export interface ConnectorContext {
  run(fn: string, args?: unknown): Promise<unknown>;
}

/** The owner's trips: how many, how long in all, and on average (minutes). */
export async function tripReport(_args: unknown, { run }: ConnectorContext) {
  const stats = (await run('columnStats', { path: '/owners/acme/trips/2026.csv', column: 'duration' })) as ColumnStats;
  return { trips: stats.rows, minutes: stats.total, meanMinutes: stats.mean };
}

/** The owner's payroll: a reviewed folder, so the result waits for the owner's release. */
export async function payrollReport(_args: unknown, { run }: ConnectorContext) {
  const stats = (await run('columnStats', { path: '/owners/acme/reviewed/salaries.csv', column: 'salary' })) as ColumnStats;
  return { people: stats.rows, payroll: stats.total, meanSalary: stats.mean };
}
