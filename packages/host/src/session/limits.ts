import { DsError } from '@datastation/protocol';

/** Resource limits of one session. Each default can be tightened by the caller. */
export interface Limits {
  memoryMb: number;
  cpus: number;
  pids: number;
  /** Deadline of one call. */
  timeoutMs: number;
  /** Largest value a call may return, serialised. */
  resultBytes: number;
  /** Console output kept per call; the rest is dropped with a marker. */
  logBytes: number;
  /** Size of the container's /tmp (tmpfs). */
  tmpMb: number;
  /** Quota of the data folder (/data): disk bytes its files may fill; past it the session ends with QUOTA_EXCEEDED. */
  dataBytes: number;
  /** Quota of the data folder: how many files and folders it may hold. */
  dataFiles: number;
  /** Station reads open at once in the session (each holds a file descriptor and bytes in flight on the host). */
  openReads: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  memoryMb: 512,
  cpus: 1,
  pids: 128,
  timeoutMs: 30_000,
  resultBytes: 32 * 1024 * 1024,
  logBytes: 1024 * 1024,
  tmpMb: 64,
  dataBytes: 1024 * 1024 * 1024,
  dataFiles: 100_000,
  openReads: 16,
});

/**
 * The most any session may be given: what a caller asks for is checked against these, so a
 * request for 64 GiB or a day-long call is refused rather than granted. A station sets its own
 * (`Station({ ceilings })`, `dsDockerInit({ ceilings })`); they can only be lower than the hard range below.
 */
export const DEFAULT_CEILINGS: Readonly<Limits> = Object.freeze({
  memoryMb: 8 * 1024,
  cpus: 8,
  pids: 4096,
  timeoutMs: 60 * 60 * 1000,
  resultBytes: 256 * 1024 * 1024,
  logBytes: 64 * 1024 * 1024,
  tmpMb: 1024,
  dataBytes: 64 * 1024 * 1024 * 1024,
  dataFiles: 10_000_000,
  openReads: 256,
});

/** The range a limit must be in at all, whatever the ceilings. */
const RANGE: Record<keyof Limits, [number, number]> = {
  memoryMb: [32, 64 * 1024],
  cpus: [0.05, 64],
  pids: [16, 32_768],
  timeoutMs: [1, 24 * 3600 * 1000],
  resultBytes: [1, 1024 * 1024 * 1024],
  logBytes: [0, 256 * 1024 * 1024],
  tmpMb: [1, 16 * 1024],
  dataBytes: [1024 * 1024, 1024 ** 4],
  dataFiles: [16, 100_000_000],
  openReads: [1, 4096],
};

export function resolveCeilings(given: Partial<Limits> | undefined): Limits {
  return check({ ...DEFAULT_CEILINGS, ...given }, 'ceilings');
}

export function resolveLimits(given: Partial<Limits> | undefined, ceilings: Limits = DEFAULT_CEILINGS): Limits {
  const limits = check({ ...DEFAULT_LIMITS, ...given }, 'limits');
  for (const name of Object.keys(RANGE) as (keyof Limits)[]) {
    if (limits[name] > ceilings[name]) {
      // A default above a lowered ceiling follows the ceiling; only what the caller asked for is refused.
      if (given?.[name] === undefined) limits[name] = ceilings[name];
      else
        throw new DsError(
          'BAD_REQUEST',
          `limits.${name} = ${limits[name]} is over this station's ceiling of ${ceilings[name]}. Ask for less, or have the station operator raise the ceiling.`,
          { details: { limit: name, ceiling: ceilings[name] } },
        );
    }
  }
  return limits;
}

function check(limits: Limits, what: string): Limits {
  for (const [name, [min, max]] of Object.entries(RANGE) as [keyof Limits, [number, number]][]) {
    const v = limits[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      throw new DsError('BAD_REQUEST', `${what}.${name} must be a number from ${min} to ${max}; got ${String(v)}.`);
    }
  }
  return limits;
}
