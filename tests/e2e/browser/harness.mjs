// What the browser scripts share: the protocol with the Rust test that
// started the platform (`STEP` lines answered `ok` on stdin, `METRIC`
// lines, `PASS`/`FAIL` per scenario), Chromium launched as the tests
// launch it, waits on text, accessibility checks with axe-core, and a
// screenshot and the HTML of the page a scenario failed on.

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import readline from 'node:readline';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const ARTIFACTS = process.env.MERIDIAN_ARTIFACTS || 'browser-artifacts';
const CHROMIUM = process.env.MERIDIAN_CHROMIUM || '/usr/bin/chromium';
// Bounds on waits (the machine may be loaded; these end a stuck test,
// they assert nothing about speed).
export const WAIT_MS = 60_000;

export const log = (...a) => console.error('[browser]', ...a);

const replies = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

// Asks the harness to act on the platform; resolves once it has.
export async function step(...words) {
  process.stdout.write(`STEP ${words.join(' ')}\n`);
  const { value, done } = await replies.next();
  if (done || value !== 'ok') throw new Error(`harness step "${words.join(' ')}": ${done ? 'no answer' : value}`);
}

export function metric(m) {
  process.stdout.write(`METRIC ${JSON.stringify(m)}\n`);
}

// Chromium as the tests launch it, with `extra` arguments.
export function launch(extra = []) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic',
      ...extra,
    ],
  });
}

// A new context and page (`options` go to the context).
export async function newPage(browser, options = {}) {
  const context = await browser.newContext(options);
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  // Anything the page's own Content-Security-Policy refuses is a bug.
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) page.errors.push(m.text()); });
  focus(page);
  return { context, page };
}

// Waits until `selector`'s text matches `pattern`.
export async function expectText(page, selector, pattern, what) {
  try {
    await page.waitForFunction(({ selector, source, flags }) => {
      const el = document.querySelector(selector);
      return el && new RegExp(source, flags).test(el.textContent);
    }, { selector, source: pattern.source, flags: pattern.flags }, { timeout: WAIT_MS });
  } catch {
    const got = await page.locator(selector).first().textContent({ timeout: 1000 }).catch(() => '(absent)');
    throw new Error(`${what}: ${selector} should match ${pattern}, is ${JSON.stringify(got)}`);
  }
}

// Waits for the keyboard focus to be on the element labelled `label`.
export async function expectFocus(page, label, what) {
  try {
    await page.waitForFunction((label) => document.activeElement?.getAttribute('aria-label') === label, label, { timeout: WAIT_MS });
  } catch {
    const got = await page.evaluate(() => { const el = document.activeElement; return el ? `<${el.tagName.toLowerCase()}> ${el.getAttribute('aria-label') ?? el.textContent.trim().slice(0, 40)}` : '(none)'; }).catch(() => '(unknown)');
    throw new Error(`${what}: the focus should be on ${JSON.stringify(label)}, is on ${got}`);
  }
}

export const text = async (page, selector) => (await page.locator(selector).first().innerText({ timeout: WAIT_MS })).trim();

// No serious or critical accessibility violation on the page as it is.
export async function accessible(page, what) {
  // Evaluated through the DevTools protocol, which the page's
  // Content-Security-Policy does not govern (a <script> tag would be
  // refused, as it should be).
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(`${AXE}\n;0`);
  noViolations(page);
  const { violations } = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (bad.length) {
    throw new Error(`accessibility (${what}): ` + bad.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`).join('; '));
  }
}

// No script error and nothing refused by the page's policy so far.
export function noViolations(page) {
  if (page.errors.length) throw new Error(`page errors: ${page.errors.join('; ')}`);
}

// Moves the keyboard focus with Tab until `locator`'s element has it. The
// locator is resolved again after every key: a live page may rebuild the
// element meanwhile (the dashboard's table on each routing change).
export async function tabTo(page, locator) {
  await locator.waitFor({ timeout: WAIT_MS });
  for (let i = 0; i < 100; i++) {
    await page.keyboard.press('Tab');
    if (await locator.evaluate((el) => el === document.activeElement, null, { timeout: WAIT_MS })) return;
  }
  throw new Error(`Tab never reached ${locator}`);
}

// Keyboard only: Tab to the element, then Enter.
export async function press(page, locator) {
  await tabTo(page, locator);
  await page.keyboard.press('Enter');
}

// The page a scenario is on (the newest one opened): on failure its
// screenshot and HTML are kept, before its browser closes.
let current = null;
let running = '';
let kept = false;
export function focus(page) { current = page; }

async function keep() {
  if (kept || !current || current.isClosed()) return;
  kept = true;
  try {
    await current.screenshot({ path: join(ARTIFACTS, `${running}.png`), fullPage: true });
    writeFileSync(join(ARTIFACTS, `${running}.html`), await current.content());
    log(`kept ${running}.png and ${running}.html in ${ARTIFACTS}`);
  } catch (s) {
    log(`no screenshot: ${s}`);
  }
}

// Runs `fn(browser)` on a browser from `launch(extra)`, keeping the
// failing page's screenshot before the browser closes.
export async function withBrowser(extra, fn) {
  const browser = await launch(extra);
  try {
    return await fn(browser);
  } catch (e) {
    await keep();
    throw e;
  } finally {
    await browser.close();
  }
}

// Runs the scenarios MERIDIAN_SCENARIOS names (all, in order, by default)
// and exits: 0 when every one passed. The first failure ends the run
// (later scenarios rely on the platform's state).
export async function run(scenarios) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const wanted = (process.env.MERIDIAN_SCENARIOS || Object.keys(scenarios).join(',')).split(',').filter(Boolean);
  let failed = 0;
  for (const name of wanted) {
    current = null;
    running = name;
    kept = false;
    log(`scenario ${name}`);
    try {
      if (!scenarios[name]) throw new Error(`no scenario ${name}`);
      await scenarios[name]();
      process.stdout.write(`PASS ${name}\n`);
    } catch (e) {
      failed++;
      process.stdout.write(`FAIL ${name}\n`);
      log(`FAIL ${name}: ${e.stack || e}`);
      break;
    }
  }
  process.exit(failed ? 1 : 0);
}
