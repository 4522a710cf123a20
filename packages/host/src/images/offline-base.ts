import { execFile } from 'node:child_process';
import { realpath, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { DsError } from '@datastation/protocol';
import type { DockerClient } from '../docker/client.js';
import { LABELS } from '../docker/labels.js';
import { tarOf, type TarEntry } from '@datastation/protocol/tar';

const run = promisify(execFile);

export const OFFLINE_BASE_REPO = 'datastation/node-base';

/** The offline base's tag: one per Node version and machine architecture. */
export function offlineBaseRef(): string {
  return `${OFFLINE_BASE_REPO}:${process.version.slice(1)}-${process.arch}`;
}

const PASSWD = [
  'root:x:0:0:root:/root:/sbin/nologin',
  'node:x:1000:1000:node:/home/node:/sbin/nologin',
  'ds:x:10001:10001:datastation function:/tmp:/sbin/nologin',
  'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin',
  '',
].join('\n');
const GROUP = ['root:x:0:', 'node:x:1000:', 'ds:x:10001:', 'nogroup:x:65534:', ''].join('\n');

/**
 * Builds a minimal Node image with no registry: this machine's own `node` binary and the shared
 * libraries `ldd` says it needs, imported with `docker import`. It has no shell and no package
 * manager, which suits a sandbox: nothing there but Node. Reuses the image when it exists.
 */
export async function ensureOfflineBase(docker: DockerClient, onProgress?: (line: string) => void): Promise<string> {
  const ref = offlineBaseRef();
  if (await docker.images.inspect(ref)) return ref;
  onProgress?.(`building offline base ${ref} from ${process.execPath}`);
  const node = await realpath(process.execPath);
  const libs = await sharedLibraries(node);
  const entries: TarEntry[] = [];
  const dirs = new Set<string>(['usr', 'usr/local', 'usr/local/bin', 'etc', 'data', 'opt', 'opt/ds', 'home', 'home/node']);
  for (const lib of libs) {
    const parts = lib.path.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  for (const dir of [...dirs].sort()) entries.push({ type: 'directory', name: dir });
  entries.push({ type: 'directory', name: 'tmp', mode: 0o1777 });
  entries.push({ type: 'content', name: 'etc/passwd', content: PASSWD });
  entries.push({ type: 'content', name: 'etc/group', content: GROUP });
  entries.push({ type: 'content', name: 'etc/nsswitch.conf', content: 'passwd: files\ngroup: files\nhosts: files\n' });
  entries.push({ type: 'file', name: 'usr/local/bin/node', mode: 0o755, size: (await stat(node)).size, source: node });
  for (const lib of libs) entries.push({ type: 'file', name: lib.path.slice(1), mode: 0o755, size: lib.size, source: lib.source });
  await docker.images.import(tarOf(entries), {
    repo: OFFLINE_BASE_REPO,
    tag: ref.slice(OFFLINE_BASE_REPO.length + 1),
    changes: ['ENV PATH=/usr/local/bin:/usr/bin:/bin', `LABEL ${LABELS.image}=node-base`, 'CMD ["node"]'],
  });
  onProgress?.(`offline base ${ref} ready`);
  return ref;
}

/**
 * The libraries the dynamic linker loads for `binary`, at the paths it looks for them, with the
 * real file behind each (offline images of other host programs, such as PostgreSQL, use it too).
 */
export async function sharedLibraries(binary: string): Promise<{ path: string; source: string; size: number }[]> {
  let out: string;
  try {
    out = (await run('ldd', [binary])).stdout;
  } catch (cause) {
    // A static binary makes ldd fail with "not a dynamic executable": it needs no libraries.
    if (/not a dynamic executable/.test(String((cause as { stderr?: string }).stderr))) return [];
    throw new DsError('CONTAINER_START_FAILED', `Could not list the libraries of ${binary} with ldd; the offline base needs a glibc Linux host.`, { cause });
  }
  const libs = new Map<string, { path: string; source: string; size: number }>();
  for (const line of out.split('\n')) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (!m?.[1]) continue;
    const source = await realpath(m[1]);
    libs.set(m[1], { path: m[1], source, size: (await stat(source)).size });
  }
  // A module that needs nothing is "statically linked" to ldd.
  if (libs.size === 0 && out.trim() && !/statically linked/.test(out))
    throw new DsError('CONTAINER_START_FAILED', `ldd listed no libraries for ${binary}: ${out.slice(0, 200)}`);
  return [...libs.values()];
}
