/**
 * A real browser for the console's tests: Debian's Chromium (`apt-get install chromium`; no
 * browser download is possible here) driven by playwright-core. A missing browser fails the test
 * with what to install, never skips it.
 */
import { accessSync, constants } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];

/** The browser binary: $DS_CHROMIUM, or the first of Debian's and Google's usual paths. */
export function chromiumPath(): string {
  const wanted = process.env.DS_CHROMIUM ? [process.env.DS_CHROMIUM] : CANDIDATES;
  for (const path of wanted) {
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // next
    }
  }
  throw new Error(
    `The browser tests need Chromium and found none at ${wanted.join(', ')}. ` +
      'Install it (Debian: apt-get install chromium; .ci/run does) or point DS_CHROMIUM at a Chromium or Chrome binary.',
  );
}

/** A headless Chromium that closes itself with `await using`. */
export async function launchBrowser(): Promise<Browser & AsyncDisposable> {
  const browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    // Chromium's own sandbox needs user namespaces that a root CI user in a container lacks.
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
  return Object.assign(browser, { [Symbol.asyncDispose]: () => browser.close() });
}
