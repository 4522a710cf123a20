/**
 * The main job end to end: builds the runtime image (offline when no registry answers), bundles
 * this example, starts a hardened session over a copy of the sample data, runs `summarize`, prints
 * its value, and shows the report the function wrote. Run from the repository root: `pnpm example`.
 */
import { cp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { buildRuntimeImage, createDockerClient, dsDockerInit, dsDockerRun } from '@datastation/host';
import { buildExample, exampleDir } from './build.js';

const docker = createDockerClient();
const step = (message: string) => process.stderr.write(`» ${message}\n`);

step('building the runtime image (offline base when no registry answers)');
const image = await buildRuntimeImage(docker, { offline: 'auto', pullTimeoutMs: 15_000, onProgress: (l) => step(`  ${l}`) });
step(`image ${image.tags[0]} (${image.id.slice(7, 19)}) on ${image.base}`);

const functions = await buildExample();
const dataDir = join(exampleDir, '.demo-data');
await rm(dataDir, { recursive: true, force: true });
await cp(join(exampleDir, 'sample-data'), dataDir, { recursive: true });

step(`starting a session: functions ${functions}, /data = ${dataDir}`);
const started = Date.now();
// This folder was made here for the function to write in: hand it (the folder alone) to the function's uid.
await using session = await dsDockerInit({ dataDir, functions, package: 'csv-stats', handOverDataDir: true });
step(`session ${session.sessionId} ready in ${Date.now() - started} ms; functions: ${session.functions.join(', ')}`);

const summary = (await dsDockerRun('summarize', { file: 'trips.csv' }, session, { onLog: (_s, data) => process.stderr.write(`  [function] ${data}`) })) as {
  reports: string[];
};
console.log(JSON.stringify(summary, null, 2));
const meanDuration = await dsDockerRun('mean', { column: 'duration' }, session);
step(`mean duration: ${String(meanDuration)}`);

const report = summary.reports.find((r) => r.endsWith('.md'));
if (report) {
  step(`the report the function wrote to /data/${report}:`);
  process.stderr.write(await readFile(join(dataDir, report), 'utf8'));
}
