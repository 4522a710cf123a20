import { mkdtemp, readdir, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { setHostChannel } from '../src/index.js';

export interface Sandbox {
  /** The data root (DS_DATA_DIR), realpath'd. */
  data: string;
  /** A folder outside the data root, for link targets that must stay untouched. */
  outside: string;
  /** A folder for DS_STATION_DIR (not set by default). */
  station: string;
}

const ENV_KEYS = ['DS_DATA_DIR', 'DS_STATION_DIR'] as const;

/** Fresh temp folders per test, DS_DATA_DIR pointed at one, env and host channel restored after. */
export function useSandbox(): Sandbox {
  const box = {} as Sandbox;
  let top = '';
  let savedEnv: Partial<Record<(typeof ENV_KEYS)[number], string>> = {};

  beforeEach(async () => {
    savedEnv = {};
    for (const k of ENV_KEYS) if (process.env[k] !== undefined) savedEnv[k] = process.env[k];
    top = await realpath(await mkdtemp(join(tmpdir(), 'ds-dev-utils-')));
    box.data = await mkdtemp(join(top, 'data-'));
    box.outside = await mkdtemp(join(top, 'outside-'));
    box.station = await mkdtemp(join(top, 'station-'));
    process.env.DS_DATA_DIR = box.data;
    delete process.env.DS_STATION_DIR;
    setHostChannel(undefined);
  });

  afterEach(async () => {
    for (const k of ENV_KEYS) {
      const v = savedEnv[k];
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    setHostChannel(undefined);
    await rm(top, { recursive: true, force: true });
  });

  return box;
}

/** Names in a folder that look like write()'s temp files. */
export async function tempFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.endsWith('.tmp'));
}
