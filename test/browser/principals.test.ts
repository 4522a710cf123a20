/**
 * The admin's Principals page in a real browser (Debian's Chromium through playwright-core)
 * against a real gatekeeper: the admin signs in and lands there, adds a user with an expiry (the
 * token shown once, copied to the clipboard), rotates, disables and enables it, removes it (refused
 * while it holds a grant, then with the cascade), rotates its own token and stays signed in; an
 * owner's grant form offers the users they can grant to; a user's console session ends when the
 * admin disables them.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '@datastation/test-support/browser';
import { expectRefusals, screenshot, signIn, watchedPage, type Watched } from './browse.js';
import { type ConsoleStation, packExample, startConsoleStation, type Who } from './station.js';

describe("the admin's Principals page in Chromium", () => {
  let station: ConsoleStation;
  let browser: Browser;
  let digest: string;
  const watched: Watched[] = [];

  beforeAll(async () => {
    station = await startConsoleStation();
    digest = await station.upload(await packExample('station-demo'));
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await station?.close();
    for (const w of watched) {
      expect(w.dialogs).toEqual([]);
      expect(w.errors).toEqual([]);
      expect(w.strayRequests).toEqual([]);
    }
  });

  /**
   * A signed-in page of `who`, watched (see browse.ts) unless `watch` is false: a page whose
   * principal is disabled under it sees its event stream refused, as it should.
   */
  async function open(who: Who, options: { clipboard?: boolean; watch?: boolean } = {}) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    if (options.clipboard) await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: station.url });
    const w = await watchedPage(context, station.url);
    if (options.watch !== false) watched.push(w);
    await signIn(w.page, station.url, station.tokens[who]);
    return { context, page: w.page, watched: w };
  }

  /** A bearer request's status, as `ds` would make it with that token. */
  const statusWith = async (token: string, path = '/v1/grants') =>
    (await fetch(`${station.url}${path}`, { headers: { authorization: `Bearer ${token}` } })).status;
  const row = (page: Page, id: string) => page.locator(`[data-testid="principal-row"][data-principal-id="${id}"]`);
  const shownToken = async (page: Page) => (await page.getByTestId('token-value').textContent())?.trim() ?? '';

  it('adds a user with an expiry, shows its token once with a copy button, rotates, disables and enables it', async () => {
    const { context, page } = await open('admin', { clipboard: true });
    await expect.poll(() => page.getByTestId('whoami').textContent()).toMatch(/admin\s*admin/);
    // The admin's console is the Principals page, and nothing of the data.
    await expect.poll(() => page.locator('main').getAttribute('data-page')).toBe('principals');
    expect(await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents()).toEqual(['Principals']);
    await expect.poll(() => row(page, 'acme').textContent()).toContain('owner');

    const form = page.getByTestId('principal-form');
    await form.getByLabel('Id').fill('carol');
    await form.getByLabel('Role').selectOption('user');
    await form.getByLabel('Token expires').fill('30d');
    await form.getByRole('button', { name: 'Add' }).click();
    await page.getByTestId('issued-token').waitFor();
    const first = await shownToken(page);
    expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await statusWith(first)).toBe(200);
    await expect.poll(() => page.getByTestId('principals-status').textContent()).toBe('Added carol (user).');
    await page.getByRole('button', { name: 'Copy token' }).click();
    await expect.poll(() => page.getByTestId('copy-status').textContent()).toBe('Copied to the clipboard.');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(first);
    await page.getByRole('button', { name: 'Done' }).click();
    expect(await page.getByTestId('issued-token').count()).toBe(0);
    // Shown once: nothing on the page holds it any more.
    expect(await page.locator('main').textContent()).not.toContain(first);
    await expect.poll(() => row(page, 'carol').getAttribute('data-state')).toBe('active');
    expect(await row(page, 'carol').textContent()).toMatch(/carol\s*user\s*active/);
    expect(await row(page, 'carol').locator('time').count()).toBe(2); // created, and the expiry

    await page.getByRole('button', { name: 'Rotate the token of carol' }).click();
    await row(page, 'carol').getByRole('button', { name: 'Confirm rotate' }).click();
    await page.getByTestId('issued-token').waitFor();
    const second = await shownToken(page);
    expect(second).not.toBe(first);
    expect([await statusWith(first), await statusWith(second)]).toEqual([401, 200]);
    // Rotated without an expiry: the new token does not expire.
    await expect.poll(() => row(page, 'carol').textContent()).toContain('never');
    await page.getByRole('button', { name: 'Done' }).click();

    await page.getByRole('button', { name: 'Disable carol' }).click();
    await expect.poll(() => row(page, 'carol').getAttribute('data-state')).toBe('disabled');
    expect(await statusWith(second)).toBe(401);
    await page.getByRole('button', { name: 'Enable carol' }).click();
    await expect.poll(() => row(page, 'carol').getAttribute('data-state')).toBe('active');
    expect(await statusWith(second)).toBe(200);
    await screenshot(page, 'principals');
    await context.close();
  });

  it('removes a principal after a confirmation: refused while it holds a grant, then with the cascade', async () => {
    const granted = await station.api('acme', 'PUT', '/v1/grants/acme', [
      { user: 'bob', package: digest, read: ['owners/acme/trips/*.csv'], release: 'review' },
    ]);
    expect(granted.status).toBe(200);
    const { context, page, watched: w } = await open('admin');
    await page.getByRole('button', { name: 'Remove bob' }).click();
    await row(page, 'bob').getByRole('button', { name: 'Cancel' }).click();
    expect(await row(page, 'bob').getByRole('button', { name: 'Confirm remove' }).count()).toBe(0);
    await page.getByRole('button', { name: 'Remove bob' }).click();
    await row(page, 'bob').getByRole('button', { name: 'Confirm remove' }).click();
    await expect.poll(() => row(page, 'bob').getByRole('alert').textContent()).toContain('cascade');
    expectRefusals(w, 400, 1);
    expect(await statusWith(station.tokens.bob)).toBe(200);
    await row(page, 'bob').getByLabel('Also revoke its grants (cascade)').check();
    await row(page, 'bob').getByRole('button', { name: 'Confirm remove' }).click();
    await expect.poll(() => page.getByTestId('principals-status').textContent()).toBe('Removed bob and revoked 1 grant.');
    await expect.poll(() => row(page, 'bob').count()).toBe(0);
    expect(await statusWith(station.tokens.bob)).toBe(401);
    expect((await station.api('acme', 'GET', '/v1/grants')).body.grants).toEqual([]);
    await page.getByLabel('Show removed principals').check();
    await expect.poll(() => row(page, 'bob').getAttribute('data-state')).toBe('removed');
    // A tombstone offers nothing to do.
    expect(await row(page, 'bob').getByRole('button').count()).toBe(0);
    await context.close();
  });

  it('offers an owner the users they can grant to in the grant form', async () => {
    const { context, page } = await open('acme');
    await page.getByRole('link', { name: 'Grants' }).click();
    const users = page.getByTestId('grant-users').locator('option');
    await expect.poll(async () => users.evaluateAll((options) => options.map((o) => (o as HTMLOptionElement).value))).toEqual(['ann', 'carol']);
    await context.close();
  });

  it("ends a user's console session when the admin disables them", async () => {
    const user = await open('ann', { watch: false });
    await user.page.getByRole('link', { name: 'Runs' }).click();
    const { context, page } = await open('admin');
    await page.getByRole('button', { name: 'Disable ann' }).click();
    await expect.poll(() => row(page, 'ann').getAttribute('data-state')).toBe('disabled');
    await user.page.reload();
    await user.page.getByLabel('Token', { exact: true }).waitFor();
    // Signing in again with the disabled token says why.
    await user.page.getByLabel('Token', { exact: true }).fill(station.tokens.ann);
    await user.page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => user.page.getByRole('alert').first().textContent()).toContain('ann is disabled');
    await page.getByRole('button', { name: 'Enable ann' }).click();
    await expect.poll(() => row(page, 'ann').getAttribute('data-state')).toBe('active');
    await user.context.close();
    await context.close();
  });

  it('lets the admin rotate its own token and stay signed in, with the new token shown once', async () => {
    const { context, page } = await open('admin');
    const old = station.tokens.admin;
    await page.getByRole('button', { name: 'Rotate the token of admin' }).click();
    // The admin's token does not expire: no expiry is asked.
    expect(await row(page, 'admin').getByLabel('New token expires').count()).toBe(0);
    await row(page, 'admin').getByRole('button', { name: 'Confirm rotate' }).click();
    await page.getByTestId('issued-token').waitFor();
    const fresh = await shownToken(page);
    expect([await statusWith(old), await statusWith(fresh)]).toEqual([401, 200]);
    station.tokens.admin = fresh;
    await page.getByRole('button', { name: 'Done' }).click();
    // Still signed in: the page goes on working with the new session.
    await page.getByRole('button', { name: 'Disable dev' }).click();
    await expect.poll(() => row(page, 'dev').getAttribute('data-state')).toBe('disabled');
    expect(await page.getByTestId('whoami').count()).toBe(1);
    await page.getByRole('button', { name: 'Enable dev' }).click();
    await expect.poll(() => row(page, 'dev').getAttribute('data-state')).toBe('active');
    await context.close();
  });
});
