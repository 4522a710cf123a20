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
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  memoryMb: 512,
  cpus: 1,
  pids: 128,
  timeoutMs: 30_000,
  resultBytes: 32 * 1024 * 1024,
  logBytes: 1024 * 1024,
  tmpMb: 64,
});

export function resolveLimits(given: Partial<Limits> | undefined): Limits {
  const limits = { ...DEFAULT_LIMITS, ...given };
  const check = (name: keyof Limits, min: number, max: number) => {
    const v = limits[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      throw new DsError('BAD_REQUEST', `limits.${name} must be a number from ${min} to ${max}; got ${String(v)}.`);
    }
  };
  check('memoryMb', 32, 64 * 1024);
  check('cpus', 0.05, 64);
  check('pids', 16, 32_768);
  check('timeoutMs', 1, 24 * 3600 * 1000);
  check('resultBytes', 1, 1024 * 1024 * 1024);
  check('logBytes', 0, 256 * 1024 * 1024);
  check('tmpMb', 1, 16 * 1024);
  return limits;
}
