/**
 * What every console test watches in the page: dialogs (an `alert` that ran), uncaught errors,
 * console errors (a CSP refusal is one), and every request the page makes that is not the
 * gatekeeper's own console or API. Screenshots go to docs/console/, where the README shows them.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { REPO_ROOT } from '@datastation/test-support';

export const SCREENSHOTS = join(REPO_ROOT, 'docs', 'console');

export interface Watched {
  page: Page;
  dialogs: string[];
  /** What the page logged as errors (`expectRefusals` takes out those a test provoked). */
  errors: string[];
  /** Requests to anything but `<station>/console/…` and `<station>/v1/…`. */
  strayRequests: string[];
}

/** A page of `context` that records what it should never do. */
export async function watchedPage(context: BrowserContext, station: string): Promise<Watched> {
  const page = await context.newPage();
  const watched: Watched = { page, dialogs: [], errors: [], strayRequests: [] };
  page.on('dialog', (dialog) => {
    watched.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    void dialog.dismiss().catch(() => undefined);
  });
  page.on('pageerror', (error) => watched.errors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    // Asking for the session before signing in is answered 401, which Chromium logs; nothing else may fail.
    if (/401 \(Unauthorized\)/.test(message.text()) && /\/v1\/session/.test(message.location().url || message.text())) return;
    watched.errors.push(`console: ${message.text()}`);
  });
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith(`${station}/console/`) && !url.startsWith(`${station}/v1/`) && url !== `${station}/console`) watched.strayRequests.push(url);
  });
  return watched;
}

/**
 * Takes out of `watched.errors` the console lines Chromium writes for `count` answers of `status`
 * that the test provoked on purpose (a refused request is logged as a failed load); any other stays.
 */
export function expectRefusals(watched: Watched, status: number, count: number): void {
  const line = new RegExp(`^console: Failed to load resource: the server responded with a status of ${status} `);
  const matching = watched.errors.filter((e) => line.test(e));
  if (matching.length !== count) throw new Error(`expected ${count} refused loads (${status}), got ${matching.length}: ${JSON.stringify(watched.errors)}`);
  watched.errors = watched.errors.filter((e) => !line.test(e));
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Signs in through the form, as a person would. */
export async function signIn(page: Page, station: string, token: string): Promise<void> {
  await page.goto(`${station}/console/`);
  await page.getByLabel('Token', { exact: true }).fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('whoami').waitFor();
}
