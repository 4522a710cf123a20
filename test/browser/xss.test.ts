/**
 * Everything a developer controls, planted where the console shows it: a package whose name,
 * version and function name are HTML, code that closes a script tag, results that hold markup
 * and a failing run whose message does, a running run's progress message that does, and a read of
 * a path that does. Owners, the users and the developer then open every page that shows them.
 * Nothing may execute (no dialog, no request to the planted URLs or anywhere but the station) and
 * the text must show as written.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '@datastation/test-support/browser';
import { expectRefusals, signIn, watchedPage, type Watched } from './browse.js';
import { type ConsoleStation, packFunctions, startConsoleStation } from './station.js';

describe('hostile names, code, results and messages in the console', () => {
  let station: ConsoleStation;
  let browser: Browser;
  let bait: Server;
  let baitHits: string[];
  let digest: string;
  let planted: (what: string) => string;
  const hostile: Record<string, string> = {};
  const watched: Watched[] = [];

  beforeAll(async () => {
    // The planted URLs point here: a request to it means markup from the data was acted on.
    baitHits = [];
    bait = createServer((req, res) => {
      baitHits.push(req.url ?? '');
      res.end('');
    });
    await new Promise<void>((resolve) => bait.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(bait.address() as AddressInfo).port}`;
    planted = (what) => `${base}/planted-${what}`;
    hostile.name = `<img src=x onerror=alert('name')>`;
    hostile.version = `"><svg onload=alert('version')>`;
    hostile.fn = `<b onmouseover=alert('fn')>hover</b>`;
    hostile.comment = `</script><script>alert('code')</script><img src="${planted('code')}">`;
    // Shown as JSON string literals: no double quotes, so the text on the page is the text planted.
    hostile.key = `<img src=${planted('key')} onerror=alert('key')>`;
    hostile.value = `<script>fetch('${planted('value')}')</script><iframe src=${planted('iframe')}></iframe>`;
    hostile.message = `<img src="${planted('message')}" onerror="alert('message')">`;
    hostile.progress = `<img src="${planted('progress')}" onerror="alert('progress')">`;
    // A station path is normalised (// becomes /) before it is recorded: this one points at the station itself.
    hostile.path = `/owners/acme/<img src=/planted-path onerror=alert('path')>.csv`;

    station = await startConsoleStation();
    const index = `
import { progress, read } from '@datastation/dev-utils';
const banner = ${JSON.stringify(hostile.comment)};
export async function version() { return banner; }
// Each reads acme's trips first: a run that touched no owner's data would be released at once, and
// these are to be staged for review.
const touch = () => read('/owners/acme/trips/2026.csv');
export async function markup() {
  await touch();
  return { ${JSON.stringify(hostile.key)}: ${JSON.stringify(hostile.value)}, list: [${JSON.stringify(hostile.value)}] };
}
export async function boom() { await touch(); throw new Error(${JSON.stringify(hostile.message)}); }
export async function peek() { return (await read(${JSON.stringify(hostile.path)})).length; }
export async function slow(_args, ctx) {
  progress(0.5, ${JSON.stringify(hostile.progress)});
  await new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
}
async function hover() { return 'hover'; }
export { hover as ${JSON.stringify(hostile.fn)} };
`;
    const bytes = await packFunctions({ index, name: 'hostile' }, (m) => ({ ...m, name: hostile.name, version: hostile.version }));
    digest = await station.upload(bytes);
    const grant = { user: 'ann', package: digest, read: ['owners/acme/trips/*.csv'], release: 'review' };
    expect((await station.api('acme', 'PUT', '/v1/grants/acme', [grant])).status).toBe(200);
    for (const fn of ['markup', 'boom', 'peek', 'markup']) await station.api('ann', 'POST', '/v1/runs', { package: digest, function: fn });
    const pending = ((await station.api('acme', 'GET', '/v1/runs?status=pending')).body.runs ?? []).filter((r) => r.target.name === 'markup');
    expect(pending).toHaveLength(2);
    // One released (the user's page shows its value), one left pending (the review page shows it staged).
    expect((await station.api('acme', 'POST', `/v1/runs/${pending[0]!.id}/release`)).status).toBe(200);
    // The failure is staged too (its message is data): released, the user's page shows the message.
    const failed = ((await station.api('acme', 'GET', '/v1/runs?status=pending')).body.runs ?? []).filter((r) => r.target.name === 'boom');
    expect(failed).toHaveLength(1);
    expect((await station.api('acme', 'POST', `/v1/runs/${failed[0]!.id}/release`)).status).toBe(200);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await station?.close();
    await new Promise((resolve) => bait?.close(resolve));
  });

  async function visit(who: 'acme' | 'ann' | 'bob' | 'dev' | 'admin', paths: string[], look: (page: Page, path: string) => Promise<void>) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const w = await watchedPage(context, station.url);
    watched.push(w);
    await signIn(w.page, station.url, station.tokens[who]);
    for (const path of paths) {
      await w.page.goto(`${station.url}/console/${path}`);
      await w.page.waitForLoadState('networkidle');
      await look(w.page, path);
      // Whatever expanded or hovered, nothing the data holds became an element.
      await openAll(w.page);
      await w.page.mouse.move(400, 300);
      expect(await w.page.locator('main img, main iframe, main svg[onload], main script, main b[onmouseover]').count()).toBe(0);
    }
    await context.close();
    return w;
  }

  const text = (page: Page) => page.locator('main').textContent();
  // Every collapsed part shown (an entry's data, a run's reads), as a reader would open them.
  const openAll = (page: Page) =>
    page.evaluate(() => {
      for (const details of document.querySelectorAll('main details')) details.setAttribute('open', '');
    });

  it('shows the owner the package, its functions and its code as characters', async () => {
    await visit(
      'acme',
      ['packages', `packages/${encodeURIComponent(digest)}`, `packages/${encodeURIComponent(digest)}/files/code/index.js`],
      async (page, path) => {
        await expect.poll(() => text(page)).toContain(hostile.name);
        if (path.includes('sha256')) {
          expect(await text(page)).toContain(hostile.version);
          expect(await text(page)).toContain(hostile.fn);
        }
        // The bundled code holds the planted text as a string literal (esbuild picks its quotes).
        if (path.endsWith('index.js'))
          await expect.poll(() => page.getByTestId('source-view').textContent()).toContain(`</script><script>alert('code')</script>`);
      },
    );
  });

  it('shows the staged result, the failed run and the refused read as characters in review and audit', async () => {
    await visit('acme', ['review', 'audit', 'grants'], async (page, path) => {
      if (path === 'review') {
        const staged = page.getByTestId('staged-value').first();
        await expect.poll(() => staged.textContent()).toContain(hostile.key);
        expect(await staged.textContent()).toContain(hostile.value);
      }
      if (path === 'audit') {
        await openAll(page);
        await expect.poll(() => text(page)).toContain(hostile.path);
        expect(await text(page)).toContain(hostile.name);
      }
      if (path === 'grants') await expect.poll(() => text(page)).toContain(hostile.name);
    });
  });

  it("shows the user their released value and the failure's message as characters", async () => {
    await visit('ann', ['runs'], async (page) => {
      await expect.poll(() => text(page)).toContain(hostile.message);
      const released = page.locator('[data-testid="user-run"][data-status="released"]').first();
      await expect.poll(() => released.textContent()).toContain(hostile.value);
      expect(await released.textContent()).toContain(hostile.key);
    });
  });

  it('shows the developer their package as characters', async () => {
    await visit('dev', ['packages'], async (page) => {
      await expect.poll(() => text(page)).toContain(hostile.name);
    });
  });

  it("shows the admin's hostile ids, expiries and the errors they get as characters, and creates nothing", async () => {
    // At most 64 characters: a longer expiry is refused without being quoted back.
    const expiry = `<svg onload=alert('expiry')><img src=x onerror=alert(2)>`;
    const w = await visit('admin', ['principals'], async (page) => {
      const form = page.getByTestId('principal-form');
      // An id that is markup cannot be made (ids are restricted); the refusal quotes it as text.
      await form.getByLabel('Id').fill(hostile.name!);
      await form.getByRole('button', { name: 'Add' }).click();
      await expect.poll(() => form.getByRole('alert').textContent()).toContain(hostile.name!);
      await form.getByLabel('Id').fill('fine-id');
      await form.getByLabel('Token expires').fill(expiry);
      await form.getByRole('button', { name: 'Add' }).click();
      await expect.poll(() => form.getByRole('alert').textContent()).toContain(expiry);
      const acme = page.locator('[data-testid="principal-row"][data-principal-id="acme"]');
      await acme.getByRole('button', { name: 'Rotate' }).click();
      await acme.getByLabel('New token expires').fill(expiry);
      await acme.getByRole('button', { name: 'Confirm rotate' }).click();
      await expect.poll(() => acme.getByRole('alert').textContent()).toContain(expiry);
    });
    expect(w.dialogs).toEqual([]);
    // The three refusals (the id, the expiry, the rotation's expiry) are the only failed loads.
    expectRefusals(w, 400, 3);
    // Nothing was made or changed by any of it.
    expect((await station.store.principals.list()).map((p) => p.id)).toEqual(['acme', 'admin', 'ann', 'bob', 'dev']);
    expect((await station.api('acme', 'GET', '/v1/grants')).status).toBe(200);
  });

  it("shows the user a running run's progress as characters, and its Cancel button stops the run", async () => {
    // bob's folder of the package is untouched (ann's holds acme's data: her runs' progress is withheld).
    const grants = [
      { user: 'ann', package: digest, read: ['owners/acme/trips/*.csv'], release: 'review' },
      { user: 'bob', package: digest, read: ['owners/acme/trips/*.csv'], release: 'review' },
    ];
    expect((await station.api('acme', 'PUT', '/v1/grants/acme', grants)).status).toBe(200);
    const started = await station.api('bob', 'POST', '/v1/runs', { package: digest, function: 'slow', wait: false });
    expect(started.status).toBe(202);
    await visit('bob', ['runs'], async (page) => {
      const card = page.locator(`[data-testid="user-run"][data-run-id="${started.body.id}"]`);
      await expect.poll(() => card.getByTestId('run-progress').textContent(), { timeout: 20_000 }).toContain(hostile.progress);
      expect(await card.getByTestId('run-progress').getAttribute('data-fraction')).toBe('0.5');
      await card.getByRole('button', { name: /^Cancel the run of function slow/ }).click();
      await expect.poll(() => card.getAttribute('data-status'), { timeout: 20_000 }).toBe('failed');
      expect(await card.getByTestId('run-error').textContent()).toContain('CANCELLED');
      expect(await card.getByTestId('run-progress').count()).toBe(0);
    });
  });

  it('ran nothing: no dialog, no error, no request to a planted URL or anywhere but the station', () => {
    expect(watched.length).toBe(6);
    for (const w of watched) {
      expect(w.dialogs).toEqual([]);
      expect(w.errors).toEqual([]);
      expect(w.strayRequests).toEqual([]);
    }
    expect(baitHits).toEqual([]);
  });
});
