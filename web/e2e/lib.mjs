// What the e2e scripts share: the environment they are given, a browser
// (Debian's chromium, never a downloaded one), signing in, and failures that
// say what was expected and what the page showed.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const DESKTOP = { width: 1280, height: 800 };
export const NARROW = { width: 390, height: 844 };

export function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') throw new Error(`${name} is not set`);
  return value;
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.BERTH_UI_CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox'],
    headless: true,
  });
}

/** Signs in through the login page and waits for the dashboard. */
export async function signIn(page, { url, user, password }) {
  await page.goto(url);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('[data-testid="dashboard"][data-ready="true"]').waitFor({ timeout: 30_000 });
}

/** Saves `NAME.png` when BERTH_UI_SCREENSHOTS names a directory. */
export async function screenshot(page, name) {
  const dir = process.env.BERTH_UI_SCREENSHOTS;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: false });
}

/**
 * Runs one step; a failure names the step, what went wrong and the text the
 * page showed, which is usually the daemon's own explanation.
 */
export async function step(page, what, run) {
  try {
    return await run();
  } catch (e) {
    const text = await page
      .locator('body')
      .innerText({ timeout: 2000 })
      .catch(() => '(the page text could not be read)');
    const error = new Error(
      `${what}: ${e.message.split('\n')[0]}\n--- the page (${page.url()}) showed ---\n${text.trim()}\n---`,
    );
    error.stack = error.message;
    throw error;
  }
}

/**
 * Every form control and button on the page has an accessible name (a
 * <label>, aria-label or its text): the UI is used with screen readers too.
 */
export async function assertLabelled(page) {
  const unnamed = await page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea, button, a[href]')]
      .filter((el) => el.getClientRects().length > 0)
      .filter((el) => {
        const named = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || el.labels?.length;
        return !named && !(el.textContent ?? '').trim();
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  );
  if (unnamed.length) throw new Error(`controls without a name: ${unnamed.join(' | ')}`);
}
