/**
 * The package the gatekeeper's end-to-end tests upload: `total` sums a station CSV's second
 * column, the `summary` connector calls it; `extra` adds functions a test needs. Packed with the
 * package format's packer against the local runtime image, as `ds package` would.
 */
import { packFunctionPackage, readFunctionPackage } from '@datastation/package/pack';
import { createDockerClient, RUNTIME_IMAGE, runtimeImageId } from '@datastation/host';
import { functionPackage } from '@datastation/test-support';

const FUNCTIONS = `
import { read } from '@datastation/dev-utils';
export async function total(args) {
  const text = (await read(args.path)).toString('utf8');
  return text.trim().split('\\n').slice(1).reduce((sum, line) => sum + Number(line.split(',')[1]), 0);
}
`;
const CONNECTORS = `
export async function summary(args, { run }) {
  const total = await run('total', args);
  return { total, doubled: total * 2 };
}
`;

export async function packTripStats(extra = ''): Promise<{ bytes: Buffer; digest: string }> {
  const imageId = await runtimeImageId(createDockerClient());
  if (!imageId) throw new Error(`${RUNTIME_IMAGE} is not on this engine: the Docker projects' global setup builds it.`);
  await using fn = await functionPackage({
    'package.json': JSON.stringify({ name: 'trip-stats', version: '1.0.0', type: 'module', main: 'index.js' }),
    'index.js': FUNCTIONS + extra,
    'connectors.js': CONNECTORS,
  });
  const packed = await packFunctionPackage(await readFunctionPackage(fn.path), { ref: RUNTIME_IMAGE, id: imageId });
  return { bytes: Buffer.from(packed.bytes), digest: `sha256:${packed.sha256}` };
}
