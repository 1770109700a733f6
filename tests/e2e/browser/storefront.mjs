// The storefront in a real browser: Debian's Chromium driven by
// playwright-core, against the platform the Rust test (tests/it/browser.rs)
// started. The storefront's name, www.shop.example, is mapped to one POP
// per browser launch (Chromium's host resolver rules), as DNS would answer
// the nearest POP: the origin stays the same, so a shopper's storage
// carries over to a second POP.
//
// The harness (harness.mjs) asks the Rust test to kill a region or make
// the bank decline, and reports each page's first-contentful-paint and
// bytes as METRIC lines.
//
// Environment: MERIDIAN_POPS (JSON {name: "ip:port"}), MERIDIAN_ARTIFACTS
// (a directory), MERIDIAN_SCENARIOS (comma-separated, optional),
// MERIDIAN_STOREFRONT_OOS (a SKU with one unit in stock),
// MERIDIAN_CHROMIUM (default /usr/bin/chromium).

import { WAIT_MS, accessible, expectText, focus, log, metric, newPage, press, run, step, tabTo, text, withBrowser } from './harness.mjs';

const HOST = 'www.shop.example';
const SITE = `http://${HOST}`;
const POPS = JSON.parse(process.env.MERIDIAN_POPS || '{}');
const OOS = process.env.MERIDIAN_STOREFRONT_OOS;
// A phone's viewport: the storefront must work on one.
const PHONE = { width: 390, height: 844 };

// Runs `fn(browser)` in a Chromium whose www.shop.example is the POP `pop`.
function atPop(pop, fn) {
  const addr = POPS[pop];
  if (!addr) throw new Error(`no POP ${pop} in ${JSON.stringify(POPS)}`);
  return withBrowser([`--host-resolver-rules=MAP ${HOST} ${addr}`], fn);
}

const shopper = (browser, storageState) => newPage(browser, { viewport: PHONE, storageState });

// --- Pages ------------------------------------------------------------

// Runs `action` and waits until the storefront has rendered another page:
// one more render in this document, or a first one in a new document (a
// reload or a new URL).
async function next(page, action) {
  const before = await page.evaluate(() => {
    window.mrdSeen = true;
    return Number(document.getElementById('main')?.dataset.renders || 0);
  });
  await action();
  await page.waitForFunction((n) => {
    const main = document.getElementById('main');
    if (!main || main.hasAttribute('aria-busy')) return false;
    const renders = Number(main.dataset.renders || 0);
    return window.mrdSeen ? renders > n : renders > 0;
  }, before, { timeout: WAIT_MS });
}

async function open(page, hash = '') {
  await next(page, () => page.goto(`${SITE}/${hash}`));
}

// The footer names this POP and some region.
async function servedBy(page, pop) {
  await expectText(page, '#served-pop', new RegExp(`^${pop}$`), 'the POP that served the page');
  await expectText(page, '#served-region', /^[a-z]+-[a-z]+$/, 'the region that served the page');
}

// A message meant for a person: words, not a JSON document.
function prose(message, what) {
  const t = message.trim();
  if (!t || t.startsWith('{') || t.startsWith('[') || /urn:meridian|"type"|problem\+json/.test(t)) {
    throw new Error(`${what} is not prose: ${JSON.stringify(message)}`);
  }
}

// --- Journeys ---------------------------------------------------------

// Home → search (header form) → product → add `qty` → cart, keyboard only,
// checking accessibility on each page. Returns the product's title.
async function toCart(page, pop, { qty = 1, sku } = {}) {
  await open(page, sku ? `#/product/${sku}` : '');
  await servedBy(page, pop);
  if (!sku) {
    await accessible(page, 'home');
    const first = page.locator('main ul.grid').nth(1).locator('a').first();
    const title = (await first.innerText()).trim();
    await tabTo(page, page.locator('#find-q'));
    await page.keyboard.type(title);
    await next(page, () => page.keyboard.press('Enter'));
    await expectText(page, 'main h1', /Results for/, 'the search page');
    await accessible(page, 'search');
    await next(page, () => press(page, page.getByRole('link', { name: title, exact: true }).first()));
  }
  await expectText(page, '#stock', /In stock: \d+ available/, 'the product page');
  await accessible(page, 'product');
  const title = await text(page, 'main h1');
  await tabTo(page, page.locator('#qty'));
  await page.keyboard.press('Control+A');
  await page.keyboard.type(String(qty));
  await press(page, page.getByRole('button', { name: 'Add to cart' }));
  await expectText(page, '#added', /Added to your cart/, 'adding to the cart');
  await expectText(page, '#cart-count', new RegExp(`^[1-9]\\d*$`), 'the cart count');
  await next(page, () => press(page, page.getByRole('link', { name: 'View cart' })));
  await expectText(page, 'main h1', /Your cart/, 'the cart page');
  await page.getByRole('link', { name: title, exact: true }).waitFor();
  await accessible(page, 'cart');
  return title;
}

// Cart → checkout → Place order. Returns once the order page or a
// failure shows; the caller checks which.
async function placeOrder(page) {
  await next(page, () => press(page, page.locator('#to-checkout')));
  await expectText(page, 'main h1', /Checkout/, 'the checkout page');
  await accessible(page, 'checkout');
  await press(page, page.getByRole('button', { name: 'Place order' }));
  await page.waitForSelector('#order-status, #checkout-failure, .alert', { timeout: WAIT_MS });
}

async function confirmed(page, what) {
  if (await page.locator('#checkout-failure, .alert').count()) {
    throw new Error(`${what}: checkout failed: ${await page.locator('#checkout-failure, .alert').first().innerText()}`);
  }
  await expectText(page, '#order-status', /^Confirmed$/, what);
  return await text(page, '#order-id');
}

// --- Scenarios --------------------------------------------------------

async function purchaseAt(pop) {
  await atPop(pop, async (browser) => {
    const { page } = await shopper(browser);
    await toCart(page, pop, { qty: 2 });
    await placeOrder(page);
    const id = await confirmed(page, `the purchase at ${pop}`);
    await servedBy(page, pop);
    await accessible(page, 'order confirmation');
    await next(page, () => press(page, page.getByRole('link', { name: 'All your orders' })));
    await expectText(page, 'main h1', /Your orders/, 'the order history');
    await page.locator(`a[href="#/order/${id}"]`).waitFor();
    await expectText(page, 'main tbody', /Confirmed/, 'the order history');
    await accessible(page, 'order history');
    log(`purchase at ${pop}: order`, id);
  });
}

const scenarios = {
  // A full purchase through one POP, keyboard only, on a phone's viewport;
  // then the order history lists it.
  purchase: () => purchaseAt('dub'),

  // The same purchase through the Cloudflare Worker under `wrangler dev`
  // (the POP named wrk).
  worker_purchase: () => purchaseAt('wrk'),

  // The shopper fills a cart at one POP; their storage (session and cart
  // id) goes with them to a second POP, which shows the same cart.
  async second_pop() {
    let state, title;
    await atPop('dub', async (first) => {
      const { context, page } = await shopper(first);
      title = await toCart(page, 'dub');
      state = await context.storageState();
    });
    await atPop('iad', async (second) => {
      const { page } = await shopper(second, state);
      await open(page, '#/cart');
      await servedBy(page, 'iad');
      await page.getByRole('link', { name: title, exact: true }).waitFor();
      await expectText(page, '#cart-count', /^1$/, 'the cart count at the second POP');
      log('second_pop: the cart with', title, 'seen through iad');
    });
  },

  // Two shoppers want the last unit; the second to check out is told, in
  // words, that it is out of stock, and nothing was charged.
  async out_of_stock() {
    if (!OOS) throw new Error('MERIDIAN_STOREFRONT_OOS is not set');
    await atPop('dub', async (browser) => {
      const late = await shopper(browser);
      const early = await shopper(browser);
      focus(late.page);
      await toCart(late.page, 'dub', { sku: OOS });
      focus(early.page);
      await toCart(early.page, 'dub', { sku: OOS });
      await placeOrder(early.page);
      await confirmed(early.page, 'the first shopper buys the last unit');
      focus(late.page);
      await placeOrder(late.page);
      await expectText(late.page, '#checkout-failure', /stock/i, 'the out-of-stock message');
      const message = await text(late.page, '#checkout-failure');
      prose(message, 'the out-of-stock message');
      if (!/Nothing was charged/.test(message)) throw new Error(`out of stock: ${message}`);
      await accessible(late.page, 'checkout failure');
      log('out_of_stock:', message);
    });
  },

  // The payment provider declines: the shopper reads why, in words.
  async declined() {
    await atPop('dub', async (browser) => {
      const { page } = await shopper(browser);
      await toCart(page, 'dub');
      await step('decline', '1');
      await placeOrder(page);
      await expectText(page, '#checkout-failure', /declin/i, 'the declined-payment message');
      const message = await text(page, '#checkout-failure');
      prose(message, 'the declined-payment message');
      log('declined:', message);
    });
  },

  // The recommendations, computed in batch (the harness runs `meridian
  // recommend` over the seeded order history), on the storefront: the
  // home page lists what sells near the shopper, and a product page what
  // is bought with it; both are links to the products, reached by
  // keyboard.
  async recommendations() {
    await step('recommend');
    await atPop('sfo', async (browser) => {
      const { page } = await shopper(browser);
      await open(page);
      await servedBy(page, 'sfo');
      await expectText(page, '#popular-title', /^Popular near you$/, 'the popular products');
      const popular = page.locator('#popular ul.grid > li');
      if ((await popular.count()) !== 8) throw new Error(`${await popular.count()} popular products, not 8`);
      await accessible(page, 'home with popular products');
      const first = page.locator('#popular a').first();
      const title = (await first.innerText()).trim();
      await next(page, () => press(page, first));
      await expectText(page, 'main h1', /./, 'the popular product’s page');
      if ((await text(page, 'main h1')) !== title) throw new Error(`opened ${await text(page, 'main h1')}, not ${title}`);
      await expectText(page, '#together-title', /^Customers also bought$/, 'the products bought with it');
      const together = page.locator('#together a');
      if ((await together.count()) < 1) throw new Error('no product bought with a best-seller');
      await accessible(page, 'product with recommendations');
      const other = (await together.first().innerText()).trim();
      await next(page, () => press(page, together.first()));
      await expectText(page, 'main h1', /./, 'the recommended product’s page');
      if ((await text(page, 'main h1')) !== other) throw new Error(`opened ${await text(page, 'main h1')}, not ${other}`);
      log('recommendations: popular near sfo, then', title, '→', other);
    });
  },

  // A shopper buys a product and reviews it, keyboard only: their home
  // region saves it at once, as a verified purchase. Once every region
  // holds it (the harness waits on the platform), a shopper at another
  // POP reads it on the product page, sorts, and finds it helpful.
  async reviews() {
    let href, title;
    await atPop('dub', async (browser) => {
      const { page } = await shopper(browser);
      title = await toCart(page, 'dub');
      href = await page.getByRole('link', { name: title, exact: true }).first().getAttribute('href');
      await placeOrder(page);
      await confirmed(page, 'the purchase before a review');
      await open(page, href);
      await expectText(page, '#review-form-title', /Write a review/, 'the review form');
      await tabTo(page, page.locator('#review-rating'));
      await page.keyboard.press('ArrowDown');
      await tabTo(page, page.locator('#review-title'));
      await page.keyboard.type('Does what it says');
      await tabTo(page, page.locator('#review-body'));
      await page.keyboard.type('Arrived quickly, works well.');
      await tabTo(page, page.locator('#review-name'));
      await page.keyboard.type('Ada');
      await press(page, page.getByRole('button', { name: 'Post your review' }));
      await expectText(page, '#review-status', /saved as a verified purchase\. Other shoppers will see it in a moment/, 'the saved review');
      prose(await text(page, '#review-status'), 'the saved review');
      await accessible(page, 'product with the review form');
      // Reloaded, the form is the shopper's own review.
      await next(page, () => page.reload());
      await expectText(page, '#review-form-title', /Your review/, 'the shopper’s own review');
    });
    const sku = decodeURIComponent(href.replace('#/product/', ''));
    await step('reviews', sku, '1');
    await atPop('iad', async (browser) => {
      const { page } = await shopper(browser);
      await open(page, href);
      await servedBy(page, 'iad');
      await expectText(page, '#review-summary', /^4\.0 out of 5 stars from 1 review$/, 'the review summary at another POP');
      await expectText(page, '#review-list', /Does what it says/, 'the review at another POP');
      await expectText(page, '#review-list', /Ada · .* · Verified purchase/, 'the reviewer and the verified mark');
      await tabTo(page, page.locator('#review-sort'));
      await page.keyboard.press('ArrowDown');
      await expectText(page, '#review-list', /Does what it says/, 'the review sorted by helpfulness');
      await press(page, page.getByRole('button', { name: /^Helpful \(0\)$/ }));
      await expectText(page, '#review-list', /your vote is counted/, 'the helpful vote');
      await accessible(page, 'product with reviews');
      log('reviews: a review of', sku, 'written at dub, read and voted on at iad');
    });
  },

  // The shopper's home region (eu-west, for Dublin's shoppers) dies
  // between cart and checkout: the order still completes, served by a
  // standby region, and the page says the region is failing over.
  async home_region_down() {
    await atPop('dub', async (browser) => {
      const { page } = await shopper(browser);
      await toCart(page, 'dub');
      const home = await text(page, '#served-region');
      await step('kill', home);
      await placeOrder(page);
      const id = await confirmed(page, 'a purchase while the home region is down');
      await expectText(page, '#notice', /failing over; your order is safe/, 'the failover notice');
      const region = await text(page, '#served-region');
      if (region === home) throw new Error(`the order page was served by ${home}, which is down`);
      log('home_region_down: order', id, 'served by', region, 'while', home, 'was down');
    });
  },

  // First contentful paint and bytes transferred for each page through
  // one POP whose cache is warm: loaded once to warm the edge, then in a
  // new browser context (nothing cached in the browser), then reloaded in
  // that context (the hashed assets come from the browser's cache). The
  // figures are reported, not asserted (speed targets live in the docs'
  // measurements); the page's weight is asserted: ≤ 50 KB.
  async measure() {
    const page_metrics = () => {
      const paint = performance.getEntriesByName('first-contentful-paint')[0];
      const content = performance.getEntriesByName('meridian-content')[0];
      const nav = performance.getEntriesByType('navigation')[0];
      const resources = performance.getEntriesByType('resource');
      return {
        fcp_ms: Math.round(paint.startTime),
        content_ms: content ? Math.round(content.startTime) : null,
        transfer_bytes: nav.transferSize + resources.reduce((n, r) => n + r.transferSize, 0),
        requests: 1 + resources.length,
      };
    };
    const painted = (page, name) => page.waitForFunction(() => performance.getEntriesByName('first-contentful-paint').length > 0, null, { timeout: WAIT_MS })
      .catch(() => { throw new Error(`${name}: no first-contentful-paint entry`); });
    await atPop('dub', async (browser) => {
      for (const [name, hash] of [['home', ''], ['search', '#/search?q=the'], ['product', OOS ? `#/product/${OOS}` : ''], ['cart', '#/cart'], ['orders', '#/orders']]) {
        const warm = await shopper(browser);
        await open(warm.page, hash);
        await warm.context.close();
        const { context, page } = await shopper(browser);
        await open(page, hash);
        await painted(page, name);
        const cold = await page.evaluate(page_metrics);
        await next(page, () => page.reload());
        await painted(page, name);
        const again = await page.evaluate(page_metrics);
        metric({ page: name, ...cold, reload_fcp_ms: again.fcp_ms, reload_transfer_bytes: again.transfer_bytes });
        if (cold.transfer_bytes > 50_000) throw new Error(`${name} weighs ${cold.transfer_bytes} bytes, over 50 KB`);
        await context.close();
      }
    });
  },
};

await run(scenarios);
