import { DsError } from '@datastation/protocol/errors';
import { boundProgress, PROGRESS_MESSAGE_CHARS } from '@datastation/protocol/progress';
import { getHostChannel } from './station.js';

/**
 * Reports how far the running call has got: `fraction` from 0 to 1 (values outside are clamped),
 * and an optional short `message` (one line; cut at PROGRESS_MESSAGE_CHARS characters, control
 * characters replaced by spaces). In a station session it travels to the host, which shows the
 * run's user the latest one (at most a few a second; reports in between are dropped) while
 * everything the run has read so far may be released to them. Outside a session (a unit test, a
 * script) it does nothing, unless a host channel with `progress` is installed (`setHostChannel`).
 * Never waits, and never fails the call for a report the host drops.
 */
export function progress(fraction: number, message?: string): void {
  if (typeof fraction !== 'number' || !Number.isFinite(fraction)) {
    throw new DsError('BAD_REQUEST', `progress(fraction) takes a number from 0 to 1 (how much of the work is done); got ${describe(fraction)}.`);
  }
  if (message !== undefined && typeof message !== 'string') {
    throw new DsError(
      'BAD_REQUEST',
      `progress(fraction, message) takes a short string as its message (at most ${PROGRESS_MESSAGE_CHARS} characters); got ${describe(message)}.`,
    );
  }
  const bounded = boundProgress(fraction, message);
  const channel = getHostChannel();
  if (!bounded || typeof channel?.progress !== 'function') return;
  channel.progress(bounded.fraction, bounded.message);
}

function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  return value === null ? 'null' : typeof value;
}
