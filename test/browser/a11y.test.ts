/**
 * Accessibility of every page, as axe-core (the engine behind Lighthouse's and Deque's audits)
 * judges it against WCAG 2.1 A and AA: labels, names, landmarks, headings, contrast. At 1280 px
 * and at a phone's 390 px, for an owner, a user and a developer, with data on every page.
 */
import { createRequire } from 'node:module';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '@datastation/test-support/browser';
import { signIn } from './browse.js';
import { type ConsoleStation, packExample, startConsoleStation, type Who } from './station.js';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

interface Violation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: unknown[] }[];
}

describe('the console, page by page, under axe-core (WCAG 2.1 AA)', () => {
  let station: ConsoleStation;
  let browser: Browser;
  let digest: string;

  beforeAll(async () => {
    station = await startConsoleStation();
    digest = await station.upload(await packExample('station-demo'));
    const grant = { user: 'ann', package: digest, read: ['owners/acme/trips/*.csv'], release: 'review' };
    expect((await station.api('acme', 'PUT', '/v1/grants/acme', [grant])).status).toBe(200);
    const run = await station.api('ann', 'POST', '/v1/runs', { package: digest, connector: 'tripReport' });
    await station.api('acme', 'POST', `/v1/runs/${run.body.id}/release`);
    await station.api('ann', 'POST', '/v1/runs', {
      package: digest,
      function: 'columnStats',
      args: { path: '/owners/acme/trips/2026.csv', column: 'duration' },
    });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await station?.close();
  });

  /** axe's violations on the page as it is now (axe is injected by the test, not served by the station). */
  async function violations(page: Page): Promise<Violation[]> {
    await page.addScriptTag({ path: AXE });
    return page.evaluate(async () => {
      const axe = (window as unknown as { axe: { run(context: Document, options: object): Promise<{ violations: Violation[] }> } }).axe;
      const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
      return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) }));
    });
  }

  const PAGES: Partial<Record<Who, string[]>> = {
    acme: ['packages', 'PACKAGE', 'PACKAGE/files/code/index.js', 'data', 'grants', 'review', 'audit', 'sessions'],
    ann: ['runs', 'data', 'sessions'],
    dev: ['packages', 'PACKAGE'],
    admin: ['principals'],
  };

  for (const width of [1280, 390]) {
    it(`has no WCAG 2.1 A/AA violation on any page at ${width} px, signed out or in`, async () => {
      // The CSP is bypassed only to inject axe itself; the pages are the ones the station serves.
      const context = await browser.newContext({ viewport: { width, height: 900 }, bypassCSP: true });
      const page = await context.newPage();
      const found: string[] = [];
      await page.goto(`${station.url}/console/`);
      await page.getByLabel('Token', { exact: true }).waitFor();
      for (const v of await violations(page)) found.push(`sign-in: ${v.id} (${v.impact}) ${v.help} at ${JSON.stringify(v.nodes.map((n) => n.target))}`);
      for (const [who, paths] of Object.entries(PAGES) as [Who, string[]][]) {
        await signIn(page, station.url, station.tokens[who]);
        for (const path of paths) {
          await page.goto(`${station.url}/console/${path.replace('PACKAGE', `packages/${encodeURIComponent(digest)}`)}`);
          await page.waitForLoadState('networkidle');
          await page.locator('main h1').first().waitFor();
          for (const v of await violations(page))
            found.push(`${who} ${path}: ${v.id} (${v.impact}) ${v.help} at ${JSON.stringify(v.nodes.map((n) => n.target))}`);
        }
        await page.getByRole('button', { name: 'Sign out' }).click();
        await page.getByLabel('Token', { exact: true }).waitFor();
      }
      expect(found).toEqual([]);
      await context.close();
    });
  }
});
