// The web UI driven in a real browser against a real daemon and engine.
// BERTH_UI_PHASE picks what to check: `main` (everything a user does),
// `degraded` (run while the engine is stopped: the banner says so) and
// `recovered` (run after it is back: the banner goes away).
//
//   BERTH_UI_URL, BERTH_UI_USER, BERTH_UI_PASSWORD     always
//   BERTH_UI_APP, BERTH_UI_APP_ARCHIVE, BERTH_UI_APP_V2_ARCHIVE,
//   BERTH_UI_SRA_IMAGE, BERTH_UI_RESOURCE_TYPE, BERTH_UI_LOCATION,
//   BERTH_UI_RESOURCE_NAME                               main
//   BERTH_UI_SCREENSHOTS=DIR                             optional: a PNG of each page
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { assertLabelled, DESKTOP, env, launch, NARROW, screenshot, signIn, step } from './lib.mjs';

const phase = env('BERTH_UI_PHASE', 'main');
const url = env('BERTH_UI_URL');
const user = env('BERTH_UI_USER');
const password = env('BERTH_UI_PASSWORD');

// Operations on a real engine: an install loads an image and waits out the
// start check, an upgrade also its probation (10 s by default).
const OPERATION_MS = 180_000;
const TRANSITION_MS = 180_000;
const BANNER_MS = 45_000;

let browser;
let page;
let downloads;

before(async () => {
  browser = await launch();
  const context = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(30_000);
  downloads = mkdtempSync(join(tmpdir(), 'berth-ui-e2e-'));
});

after(async () => {
  await browser?.close();
  if (downloads) rmSync(downloads, { recursive: true, force: true });
});

const banner = () => page.getByTestId('degraded-banner');
const go = (hash) => page.goto(new URL(hash, url).href);

/** Steps in order; once one fails the rest would only fail for that reason. */
function steps(list) {
  let failed = false;
  for (const [name, run] of list) {
    test(name, async (t) => {
      if (failed) return t.skip('an earlier step failed');
      try {
        await step(page, name, run);
      } catch (e) {
        failed = true;
        throw e;
      }
    });
  }
}

if (phase === 'main') {
  const app = env('BERTH_UI_APP');
  const archive = env('BERTH_UI_APP_ARCHIVE');
  const archiveV2 = env('BERTH_UI_APP_V2_ARCHIVE');
  const sraImage = env('BERTH_UI_SRA_IMAGE');
  const resourceType = env('BERTH_UI_RESOURCE_TYPE');
  const location = env('BERTH_UI_LOCATION');
  const resourceName = env('BERTH_UI_RESOURCE_NAME');
  const appState = () => page.getByTestId('app-page').getByTestId('app-state');
  const version = () => page.getByTestId('app-version');
  const notice = () => page.getByTestId('app-notice');
  let v1 = '';

  /**
   * Records every phase the progress line shows, from the page itself: a
   * small archive on loopback can be done before a poll from here sees it.
   */
  const recordPhases = () =>
    page.evaluate(() => {
      const seen = (window.__phases = []);
      new MutationObserver(() => {
        const text = document.querySelector('[data-testid="progress-phase"]')?.textContent;
        if (text && seen[seen.length - 1] !== text) seen.push(text);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
  const phasesSeen = () => page.evaluate(() => window.__phases);

  steps([
    [
      'a wrong password is refused with a message',
      async () => {
        await page.goto(url);
        await page.getByLabel('User name').fill(user);
        await page.getByLabel('Password').fill(`${password}-wrong`);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.getByTestId('login-message').getByText('Wrong user name or password').waitFor();
        await screenshot(page, 'login');
        await assertLabelled(page);
      },
    ],
    [
      'signing in shows the dashboard',
      async () => {
        await page.getByLabel('Password').fill(password);
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.locator('[data-testid="dashboard"][data-ready="true"]').waitFor();
        await screenshot(page, 'dashboard-empty');
        await assertLabelled(page);
      },
    ],
    [
      'installing by file upload shows progress, then the app page with the app running',
      async () => {
        await page.getByTestId('install-link').click();
        await page.getByLabel('Name', { exact: true }).fill(app);
        await page.getByLabel('Archive file').check();
        await page.getByTestId('install-source-file').setInputFiles(archive);
        await recordPhases();
        await page.getByRole('button', { name: 'Install', exact: true }).click();
        await page.getByTestId('progress').waitFor({ timeout: 10_000 }).catch(() => {});
        await screenshot(page, 'install-progress');
        await assertLabelled(page);
        await page.waitForURL((u) => u.hash === `#/apps/${encodeURIComponent(app)}`, { timeout: OPERATION_MS });
        const phases = await phasesSeen();
        assert.ok(phases.length > 0, 'the progress line was never shown');
        await appState().getByText('running', { exact: true }).waitFor({ timeout: OPERATION_MS });
        v1 = (await version().innerText()).trim();
        assert.ok(v1, 'the app page shows no version');
        await page.getByTestId('app-events').getByTestId('event').first().waitFor();
        await screenshot(page, 'app');
        await assertLabelled(page);
        await page.setViewportSize(NARROW);
        await screenshot(page, 'app-narrow');
        await go('#/');
        await page.getByTestId(`app-row-${app}`).waitFor();
        await screenshot(page, 'dashboard-narrow');
        await page.setViewportSize(DESKTOP);
        await page.getByTestId(`app-row-${app}`).waitFor();
        await screenshot(page, 'dashboard');
      },
    ],
    [
      'upgrading by file upload runs the new version',
      async () => {
        await page.getByTestId(`app-row-${app}`).getByRole('link', { name: app }).click();
        await appState().getByText('running', { exact: true }).waitFor();
        await page.getByRole('button', { name: 'Upgrade…' }).click();
        const form = page.getByTestId('upgrade-form');
        await form.getByLabel('Archive file').check();
        await form.getByTestId('upgrade-source-file').setInputFiles(archiveV2);
        await recordPhases();
        await form.getByRole('button', { name: 'Upgrade', exact: true }).click();
        await notice().getByText('Upgraded').waitFor({ timeout: OPERATION_MS });
        assert.ok((await phasesSeen()).length > 0, 'the upgrade showed no progress');
        await appState().getByText('running', { exact: true }).waitFor({ timeout: OPERATION_MS });
        const v2 = (await version().innerText()).trim();
        assert.notEqual(v2, v1, `the version is still ${v1} after the upgrade`);
      },
    ],
    [
      'rolling back returns to the first version',
      async () => {
        await page.getByRole('button', { name: 'Roll back…' }).click();
        await page.getByTestId('rollback-dialog').getByRole('button', { name: 'Roll back', exact: true }).click();
        await notice().getByText('Rolled back').waitFor({ timeout: OPERATION_MS });
        await appState().getByText('running', { exact: true }).waitFor({ timeout: OPERATION_MS });
        await page.getByTestId('app-version').getByText(v1, { exact: true }).waitFor();
      },
    ],
    [
      'the events page shows the events of the app',
      async () => {
        await go('#/events');
        await page.getByLabel('About (app or subject name)').fill(app);
        await page.getByRole('button', { name: 'Apply filters' }).click();
        const events = page.getByTestId('event-list').getByTestId('event');
        await events.first().waitFor();
        const kinds = await events.evaluateAll((items) => items.map((i) => i.dataset.kind));
        assert.ok(kinds.some((k) => k.startsWith('app.')), `no app.* event among ${kinds.join(', ')}`);
        await page.getByLabel('About (app or subject name)').fill('');
        await page.getByRole('button', { name: 'Apply filters' }).click();
        await events.first().waitFor();
        await screenshot(page, 'events');
        await assertLabelled(page);
      },
    ],
    [
      'uninstalling after confirming removes the app from the dashboard',
      async () => {
        await go(`#/apps/${encodeURIComponent(app)}`);
        await appState().waitFor();
        // By keyboard: the dialog opens from the focused button, Escape closes
        // it, and focus goes back to that button.
        const opener = page.getByRole('button', { name: 'Uninstall…' });
        await opener.focus();
        await page.keyboard.press('Enter');
        const dialog = page.getByTestId('uninstall-dialog');
        await dialog.getByLabel(/Type .* to confirm/).waitFor();
        await page.keyboard.press('Escape');
        await dialog.waitFor({ state: 'hidden' });
        assert.equal(
          await opener.evaluate((el) => el === document.activeElement),
          true,
          'focus did not return to the Uninstall button',
        );
        await opener.click();
        const confirm = dialog.getByRole('button', { name: 'Uninstall', exact: true });
        assert.equal(await confirm.isDisabled(), true, 'the uninstall was possible without confirming');
        await dialog.getByLabel(/Type .* to confirm/).fill(app);
        await confirm.click();
        await page.getByTestId('dashboard-flash').getByText(`${app} was uninstalled`).waitFor({ timeout: OPERATION_MS });
        await page.locator('[data-testid="dashboard"][data-ready="true"]').waitFor();
        assert.equal(await page.getByTestId(`app-row-${app}`).count(), 0, `${app} is still listed`);
      },
    ],
    [
      'the SRA configuration downloads as a gzip and uploads back',
      async () => {
        await go('#/sra');
        const card = page.locator(`[data-testid="sra-image"][data-refs~="${sraImage}"]`);
        await card.waitFor();
        const [download] = await Promise.all([
          page.waitForEvent('download'),
          card.getByRole('button', { name: 'Download configuration' }).click(),
        ]);
        const saved = join(downloads, download.suggestedFilename());
        await download.saveAs(saved);
        const bytes = readFileSync(saved);
        assert.ok(bytes[0] === 0x1f && bytes[1] === 0x8b, `${saved} is not gzip (${bytes.length} bytes)`);
        await card.getByTestId('sra-upload-file').setInputFiles(saved);
        await card.getByRole('button', { name: 'Upload', exact: true }).click();
        await card.getByTestId('sra-notice').getByText('Configuration uploaded').waitFor();
        await screenshot(page, 'sra');
        await assertLabelled(page);
      },
    ],
    [
      'an Install transition completes and the instance shows with its request history',
      async () => {
        await go('#/resources');
        const form = page.getByTestId('transition-form');
        await form.waitFor();
        await form.getByLabel('Transition or operation').fill('Install');
        await form.getByLabel('Resource type').selectOption(resourceType);
        await form.getByLabel('Deployment location').selectOption(location);
        await form.getByLabel('New instance name').fill(resourceName);
        await form.getByRole('button', { name: 'Run Install' }).click();
        const state = form.getByTestId('transition-status').getByTestId('request-state');
        await state.getByText(/COMPLETED|FAILED/).waitFor({ timeout: TRANSITION_MS });
        assert.equal((await state.innerText()).trim(), 'COMPLETED', await form.getByTestId('transition-status').innerText());
        const instance = page.getByTestId(`instance-${resourceName}`);
        await instance.waitFor();
        await instance.getByRole('button', { name: /^Details/ }).click();
        const history = instance.getByTestId('request-history');
        await history.getByRole('row', { name: /Install/ }).getByTestId('request-state').getByText('COMPLETED', { exact: true }).waitFor();
        await screenshot(page, 'resources');
        await assertLabelled(page);
      },
    ],
    [
      'the health page shows the checks and the daemon',
      async () => {
        await go('#/health');
        await page.getByTestId('doctor-checks').locator('li').first().waitFor({ timeout: 60_000 });
        await page.getByTestId('daemon-info').waitFor();
        await screenshot(page, 'health');
        await assertLabelled(page);
      },
    ],
  ]);
} else if (phase === 'degraded') {
  steps([
    [
      'while the engine is stopped the banner says so on every page',
      async () => {
        await signIn(page, { url, user, password });
        await banner().getByText('The container engine is not answering').waitFor({ timeout: BANNER_MS });
        await go('#/health');
        await banner().waitFor();
        await screenshot(page, 'degraded-banner');
      },
    ],
  ]);
} else if (phase === 'recovered') {
  steps([
    [
      'once the engine is back the banner goes away',
      async () => {
        await signIn(page, { url, user, password });
        await banner().waitFor({ state: 'detached', timeout: BANNER_MS });
      },
    ],
  ]);
} else {
  throw new Error(`BERTH_UI_PHASE is ${phase}: main, degraded or recovered`);
}
