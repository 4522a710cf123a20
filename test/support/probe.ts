import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const SOURCE = new URL('./probe.c', import.meta.url);
let built: Promise<string> | undefined;

/**
 * The static attacker's binary (probe.c), compiled once per source version and shared by every
 * test file through a cache folder keyed by the source's digest. Needs gcc and a static libc
 * (Debian: gcc, libc6-dev); without them the tests that use it fail and say so.
 */
export function probeBinary(): Promise<string> {
  built ??= (async () => {
    const source = await readFile(SOURCE);
    const digest = createHash('sha256').update(source).digest('hex').slice(0, 16);
    const dir = join(tmpdir(), `ds-probe-${digest}`);
    const out = join(dir, 'probe');
    if (
      await stat(out).then(
        (s) => s.isFile(),
        () => false,
      )
    )
      return out;
    await mkdir(dir, { recursive: true });
    const partial = `${out}.${process.pid}`;
    try {
      await promisify(execFile)('gcc', ['-static', '-O1', '-pthread', '-o', partial, SOURCE.pathname]);
    } catch (cause) {
      await rm(partial, { force: true });
      throw new Error(
        `The security tests compile test/support/probe.c with \`gcc -static\`, which failed: ${(cause as Error).message}. Install gcc and libc6-dev.`,
        { cause },
      );
    }
    await rename(partial, out); // atomic: a parallel test file sees a whole binary or none
    return out;
  })();
  return built;
}
