// The SRE dashboard in a real browser: Debian's Chromium driven by
// playwright-core against the routing API of the platform the Rust test
// (tests/it/browser.rs) started. The harness (harness.mjs) runs a drill
// when asked.
//
// Environment: MERIDIAN_ROUTING (the routing API, http://ip:port),
// MERIDIAN_ADMIN_TOKEN, MERIDIAN_ARTIFACTS, MERIDIAN_SCENARIOS (optional),
// MERIDIAN_CHROMIUM (default /usr/bin/chromium).

import { accessible, expectFocus, expectText, log, newPage, press, run, step, tabTo, text, withBrowser } from './harness.mjs';

const ROUTING = process.env.MERIDIAN_ROUTING;
const TOKEN = process.env.MERIDIAN_ADMIN_TOKEN;
const REGIONS = ['us-east', 'eu-west', 'ap-southeast'];

const health = (region) => `#regions tr[data-region="${region}"] .health`;

async function dashboard(browser) {
  const { page } = await newPage(browser, { viewport: { width: 1280, height: 900 } });
  await page.goto(`${ROUTING}/`);
  await expectText(page, '#link', /^Live · table version \d+$/, 'the table long poll');
  for (const region of REGIONS) await expectText(page, health(region), /^healthy$/, `${region} at rest`);
  return page;
}

// Types the admin token into the operator form (keyboard only).
async function useToken(page, token) {
  await tabTo(page, page.locator('#token'));
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
  await expectText(page, '#admin-status', /Token set/, 'the token form');
}

const scenarios = {
  // Drain and undrain behind the admin token: a wrong token is refused in
  // words; the right one drains a region (its shard fails over) and
  // undrains it.
  async drain() {
    await withBrowser([], async (browser) => {
      const page = await dashboard(browser);
      await accessible(page, 'dashboard');
      await useToken(page, 'not-the-token');
      await press(page, page.getByRole('button', { name: 'Drain ap-southeast' }));
      await expectText(page, '#admin-status', /Could not drain ap-southeast: Unauthorized/, 'a wrong token');
      await expectText(page, health('ap-southeast'), /^healthy$/, 'a refused drain changes nothing');
      await press(page, page.getByRole('button', { name: 'Forget token' }));
      await useToken(page, TOKEN);
      await press(page, page.getByRole('button', { name: 'Drain ap-southeast' }));
      await expectText(page, health('ap-southeast'), /^drained$/, 'the drain');
      await expectText(page, '#shards tr[data-shard="ap"] td:nth-of-type(2)', /failed over/, 'the shard of a drained region');
      await expectText(page, '#events', /region ap-southeast: healthy → drained/, 'the event timeline');
      // The table was rebuilt under the keyboard: the focus moved to the
      // button that took the pressed one's place, so Enter undrains.
      await expectFocus(page, 'Undrain ap-southeast', 'the table rebuilt by the drain');
      await page.keyboard.press('Enter');
      await expectText(page, health('ap-southeast'), /^healthy$/, 'the undrain');
      await expectText(page, '#shards tr[data-shard="ap"] td:nth-of-type(2)', /^ap-southeast$/, 'the shard back home');
      await expectFocus(page, 'Drain ap-southeast', 'the table rebuilt by the undrain');
      log('drain: refused with a wrong token, drained and undrained with the right one');
    });
  },

  // A region outage drill, followed live: the drill appears as running,
  // the region goes down and comes back while it runs, its timeline and
  // charts fill, it passes, and its report is one click away.
  async drill() {
    await withBrowser([], async (browser) => {
      const page = await dashboard(browser);
      await step('drill', 'eu-west');
      await expectText(page, '#drill-state', /^running$/, 'the drill live view');
      await expectText(page, health('eu-west'), /^down$/, 'the region during the fault');
      if ((await text(page, '#drill-state')) !== 'running') throw new Error('the region went down after the drill ended');
      await expectText(page, '#drill-timeline', /fault injected/, 'the drill timeline');
      await expectText(page, health('eu-west'), /^healthy$/, 'the region back after the fault');
      await expectText(page, '#drill-state', /^passed$/, 'the drill result');
      await expectText(page, '#drill-timeline', /fault removed/, 'the drill timeline');
      await expectText(page, '#events', /region eu-west: healthy → down/, 'the event timeline');
      const points = await page.locator('#drill svg.chart polyline').evaluateAll((lines) => lines.map((l) => l.points.numberOfItems));
      if (points.length !== 4 || points.some((n) => n < 3)) throw new Error(`drill charts: points per series ${points}`);
      await accessible(page, 'dashboard after a drill');
      const report = page.locator('#drills tbody tr').first().getByRole('link', { name: 'HTML' });
      await press(page, report);
      await page.waitForURL(/\/v1\/drills\/[^/]+\/report\.html$/);
      await expectText(page, 'body', /PASSED/, 'the drill report');
      log('drill: eu-west went down and came back during the drill; the report says PASSED');
    });
  },
};

if (!ROUTING || !TOKEN) throw new Error('MERIDIAN_ROUTING and MERIDIAN_ADMIN_TOKEN must be set');
await run(scenarios);
