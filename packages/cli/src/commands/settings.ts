import type { CommandContext } from '../context.js';
import { json, stationClient } from '../station/api.js';
import type { StationFlags } from '../station/target.js';
import { formatDuration, parseDuration } from '../values.js';

export interface SettingsArgs extends StationFlags {
  /** Set the longest a run may last (the admin), e.g. `30m`. */
  maxRun?: string | undefined;
}

/** `ds settings`: the station's settings; `--max-run <duration>` sets the run ceiling (the admin). */
export async function settingsCommand(argv: SettingsArgs, ctx: CommandContext): Promise<void> {
  const client = await stationClient(argv, ctx);
  const settings =
    argv.maxRun === undefined
      ? await client.call('settings.get')
      : await client.call('settings.put', { body: { maxRunMs: parseDuration(argv.maxRun, '--max-run') } });
  if (ctx.json) return ctx.out(json(settings));
  const by = settings.updatedBy ? ` (set by ${settings.updatedBy} at ${settings.updatedAt})` : ' (the default)';
  ctx.out(`runs last at most ${formatDuration(settings.maxRunMs)}${by}; the station's ceiling is ${formatDuration(settings.ceilingMs)}\n`);
}
