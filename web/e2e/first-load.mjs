// How heavy and how quick the UI's first visit is: signs in once, then loads
// the dashboard 5 times, each in a fresh browser context (an empty cache, as
// for a new visitor), and prints one JSON line with the medians:
//   {"bytes": total transferred (headers included) until the dashboard is ready,
//    "requests": requests made by then,
//    "time_to_interactive_ms": navigation start → the app table rendered}
// The last is the page's own `berth:dashboard-ready` mark, set once the app
// list has been fetched and rendered (its links work from then on).
import { DESKTOP, env, launch } from './lib.mjs';

const RUNS = 5;
const url = env('BERTH_UI_URL');
const user = env('BERTH_UI_USER');
const password = env('BERTH_UI_PASSWORD');

const browser = await launch();
try {
  const login = await browser.newContext();
  const answer = await login.request.post(new URL('/ui/login', url).href, { data: { user, password } });
  if (!answer.ok()) throw new Error(`signing in failed: ${answer.status()} ${await answer.text()}`);
  const storageState = await login.storageState();
  await login.close();

  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await measure(storageState));
  const median = (key) => runs.map((r) => r[key]).sort((a, b) => a - b)[Math.floor(RUNS / 2)];
  console.log(
    JSON.stringify({
      bytes: median('bytes'),
      requests: median('requests'),
      time_to_interactive_ms: median('time_to_interactive_ms'),
    }),
  );
} finally {
  await browser.close();
}

async function measure(storageState) {
  const context = await browser.newContext({ storageState, viewport: DESKTOP });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  const transferred = new Map();
  let ready = false;
  cdp.on('Network.requestWillBeSent', (e) => {
    if (!ready) transferred.set(e.requestId, 0);
  });
  cdp.on('Network.loadingFinished', (e) => {
    if (transferred.has(e.requestId)) transferred.set(e.requestId, e.encodedDataLength);
  });
  await page.goto(url);
  await page.locator('[data-testid="dashboard"][data-ready="true"]').waitFor({ timeout: 30_000 });
  ready = true;
  const tti = await page.evaluate(() => performance.getEntriesByName('berth:dashboard-ready')[0]?.startTime);
  // Let the responses already under way finish counting.
  await page.waitForLoadState('networkidle', { timeout: 5_000 }).catch(() => {});
  await context.close();
  if (tti === undefined) throw new Error('the dashboard never set its ready mark');
  return {
    bytes: [...transferred.values()].reduce((a, b) => a + b, 0),
    requests: transferred.size,
    time_to_interactive_ms: Math.round(tti),
  };
}
