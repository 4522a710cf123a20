/**
 * The console's Data page in Chromium (issue 19) against a real gatekeeper: an owner drops a file
 * on the page and picks another, sees sizes, sha256 digests and the grants that cover each file,
 * and deletes one after a confirmation; a user gives a package inputs, downloads one, deletes one,
 * sees a sealed folder say why, and empties it. The hostile cases: a file name that is markup is
 * refused before it is sent; names planted on disk (an operator's copy, a run's output) and file
 * contents never become elements; messages show as text. Nothing runs, nothing is fetched elsewhere.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '@datastation/test-support/browser';
import { screenshot, signIn, watchedPage, type Watched } from './browse.js';
import { type ConsoleStation, packFunctions, startConsoleStation } from './station.js';

const HOSTILE = `<img src=x onerror=alert('name')>`;

/** Drops files on the page's first drop zone, as a person dragging them from their desktop would. */
async function drop(page: Page, files: { name: string; content: string }[]): Promise<void> {
  const transfer = await page.evaluateHandle((list) => {
    const dt = new DataTransfer();
    for (const f of list) dt.items.add(new File([f.content], f.name, { type: 'text/csv' }));
    return dt;
  }, files);
  await page.getByTestId('drop-zone').first().dispatchEvent('drop', { dataTransfer: transfer });
}

describe("the console's Data page in Chromium", () => {
  let station: ConsoleStation;
  let browser: Browser;
  let digest: string;
  let storage: string;
  const watched: Watched[] = [];

  beforeAll(async () => {
    station = await startConsoleStation();
    storage = station.gatekeeper.context.storage;
    digest = await station.upload(
      await packFunctions({
        name: 'inputs',
        index: `import { read } from '@datastation/dev-utils';\nexport async function size(a) { return (await read(a.path)).length; }\n`,
      }),
    );
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

  async function open(who: 'acme' | 'ann') {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const w = await watchedPage(context, station.url);
    watched.push(w);
    await signIn(w.page, station.url, station.tokens[who]);
    await w.page.getByRole('link', { name: 'Data' }).click();
    await w.page.getByRole('heading', { level: 1, name: 'Data' }).waitFor();
    return { context, page: w.page };
  }

  const rowOf = (page: Page, path: string) => page.locator(`[data-testid="owner-file-row"][data-path="${path}"]`);
  const elementsFromData = (page: Page) => page.locator('main img, main iframe, main script, main svg').count();

  it('an owner drops a file and picks another; the list shows sizes, digests and the grants covering each', async () => {
    const { context, page } = await open('acme');
    // The files copied in on the host are listed, without a digest.
    await expect.poll(() => rowOf(page, 'owners/acme/trips/2026.csv').textContent()).toContain('not uploaded here');
    await drop(page, [{ name: 'dropped.csv', content: 'id,duration\n1,4\n' }]);
    await expect.poll(() => page.getByTestId('upload-item').first().getAttribute('data-state')).toBe('done');
    await expect.poll(() => rowOf(page, 'owners/acme/dropped.csv').textContent()).toContain('16 B');
    const put = (await station.api('acme', 'GET', '/v1/files/owners/acme/dropped.csv')).body as unknown as { sha256: string };
    expect(await rowOf(page, 'owners/acme/dropped.csv').locator('code.digest').getAttribute('title')).toBe(`sha256:${put.sha256}`);
    expect(await readFile(join(storage, 'owners/acme/dropped.csv'), 'utf8')).toBe('id,duration\n1,4\n');

    await page.getByLabel(/Into the folder/).fill('trips/2027');
    await page.locator('input[type=file]').setInputFiles({ name: 'picked.csv', mimeType: 'text/csv', buffer: Buffer.from('id,duration\n9,9\n') });
    await expect.poll(() => rowOf(page, 'owners/acme/trips/2027/picked.csv').count()).toBe(1);

    // A grant over the trips: the files it covers say so, at once.
    expect(
      (await station.api('acme', 'PUT', '/v1/grants/acme', [{ user: 'ann', package: digest, read: ['owners/acme/trips/**'], release: 'review' }])).status,
    ).toBe(200);
    await expect.poll(() => rowOf(page, 'owners/acme/trips/2027/picked.csv').textContent(), { timeout: 10_000 }).toMatch(/ann.*inputs 1\.0\.0.*review/);
    expect(await rowOf(page, 'owners/acme/dropped.csv').textContent()).toContain('no grant');
    await screenshot(page, 'data');

    // Delete, after a confirmation.
    await page.getByRole('button', { name: 'Delete dropped.csv' }).click();
    await expect.poll(() => rowOf(page, 'owners/acme/dropped.csv').textContent()).toContain('Delete dropped.csv?');
    await page.getByRole('button', { name: 'Confirm delete' }).click();
    await expect.poll(() => rowOf(page, 'owners/acme/dropped.csv').count()).toBe(0);
    expect(await page.getByTestId('data-status').textContent()).toBe('Deleted dropped.csv.');
    await context.close();
  });

  it('refuses a file name that is markup before sending it, and shows planted names and contents as text', async () => {
    // An operator copied in a file named as markup, with markup in it.
    await writeFile(join(storage, 'owners/acme', `${HOSTILE}.csv`), `<script>alert('content')</script>`);
    const { context, page } = await open('acme');
    await expect.poll(() => page.getByTestId('owner-files').textContent()).toContain(`${HOSTILE}.csv`);
    await drop(page, [{ name: `${HOSTILE}.csv`, content: '<script>alert(1)</script>' }]);
    const item = page.getByTestId('upload-item').first();
    await expect.poll(() => item.getAttribute('data-state')).toBe('refused');
    expect(await item.textContent()).toContain(`${HOSTILE}.csv`);
    expect(await item.textContent()).toMatch(/Refused: the name has "<" \(U\+003C\)/);
    // The folder field is checked too: its words show as text.
    await page.getByLabel(/Into the folder/).fill(`<svg onload=alert('folder')>`);
    await drop(page, [{ name: 'fine.csv', content: 'x' }]);
    await expect.poll(() => page.getByTestId('upload-item').first().textContent()).toContain(`<svg onload=alert('folder')>/fine.csv`);
    await page.mouse.move(300, 300);
    expect(await elementsFromData(page)).toBe(0);
    // Nothing of them reached the station.
    const listed = (await station.api('acme', 'GET', '/v1/files/owners/acme')).body as unknown as { files: { path: string }[] };
    expect(listed.files.map((f) => f.path).filter((p) => p.includes('fine.csv') || p.includes('svg'))).toEqual([]);
    await context.close();
  });

  it('a user gives a package an input, downloads and deletes one; a sealed folder says why, and emptying it ends that', async () => {
    const { context, page } = await open('ann');
    await drop(page, [
      { name: 'input.csv', content: 'id,duration\n1,10\n' },
      { name: 'other.csv', content: 'x\n' },
    ]);
    const folder = page.locator(`[data-testid="data-folder"][data-package="${digest}"]`);
    await expect.poll(() => folder.count(), { timeout: 10_000 }).toBe(1);
    await folder.getByRole('button', { name: 'Show files' }).click();
    const files = folder.getByTestId('folder-file-row');
    await expect.poll(() => files.count()).toBe(2);
    // A name a run wrote: text.
    await writeFile(join(storage, 'users/ann/packages', digest.slice(7), `${HOSTILE}.txt`), '<b>run output</b>');
    await folder.getByRole('button', { name: 'Hide files' }).click();
    await folder.getByRole('button', { name: 'Show files' }).click();
    await expect.poll(() => files.count()).toBe(3);
    expect(await folder.getByTestId('folder-file-table').textContent()).toContain(`${HOSTILE}.txt`);
    const href = await files.filter({ hasText: 'input.csv' }).getByRole('link', { name: 'Download' }).getAttribute('href');
    const got = await page.request.get(`${station.url}${href}`);
    expect(got.status()).toBe(200);
    expect(await got.text()).toBe('id,duration\n1,10\n');
    await files.filter({ hasText: 'other.csv' }).getByRole('button', { name: 'Delete other.csv' }).click();
    await folder.getByRole('button', { name: 'Confirm delete' }).click();
    await expect.poll(() => files.count()).toBe(2);
    await screenshot(page, 'user-data');

    // The folder comes to hold acme's data, and acme reviews: sealed.
    await station.store.taints.add('ann', digest, ['acme']);
    await page.reload();
    await expect.poll(() => folder.getByTestId('folder-withheld').textContent()).toMatch(/acme \(whose grant says review\)/);
    await folder.getByRole('button', { name: 'Show files' }).click();
    await expect.poll(() => folder.getByTestId('folder-files').textContent()).not.toContain('input.csv');
    expect(await folder.getByTestId('folder-file-table').count()).toBe(0);
    expect((await page.request.get(`${station.url}${href}`)).status()).toBe(403);
    await folder.getByRole('button', { name: /^Empty / }).click();
    await folder.getByRole('button', { name: 'Confirm empty' }).click();
    await expect.poll(() => page.getByTestId('data-status').textContent()).toMatch(/^Emptied .*; it no longer holds data of acme\.$/);
    await page.mouse.move(300, 300);
    expect(await elementsFromData(page)).toBe(0);
    await context.close();
  });
});
