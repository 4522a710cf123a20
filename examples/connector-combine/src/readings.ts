import { readText } from '@datastation/dev-utils';

export interface Reading {
  sensor: string;
  value: number;
}

/** Reads a JSON-lines file of `{ sensor, value }` under /data; blank lines are skipped. */
export async function readReadings(file: unknown): Promise<Reading[]> {
  if (typeof file !== 'string') throw new Error('Pass { "file": "<a .jsonl file under /data>" }.');
  const readings: Reading[] = [];
  (await readText(file)).split('\n').forEach((line, index) => {
    if (!line.trim()) return;
    const row = JSON.parse(line) as Partial<Reading>;
    if (typeof row.sensor !== 'string' || typeof row.value !== 'number')
      throw new Error(`${file}:${index + 1}: expected { "sensor": string, "value": number }`);
    readings.push({ sensor: row.sensor, value: row.value });
  });
  return readings;
}
