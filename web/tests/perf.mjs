// Browser-side figures, measured in Debian's Chromium against a running release server
// (scripts/web-perf starts it): the public map's first render and the planner's time
// from "upload" to the first validation results for a large draft. Prints medians.
//   WANGGE_URL, CHROMIUM, ADMIN (name:password), DRAFT (GeoJSON), SCOPE, RUNS (default 5)

import { chromium } from 'playwright-core';

const env = (k, d) => process.env[k] ?? d ?? (() => { throw new Error(`${k} is not set`); })();
const url = env('WANGGE_URL');
const runs = Number(env('RUNS', '5'));
const [name, password] = env('ADMIN').split(':');
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

const browser = await chromium.launch({
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--use-gl=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist'],
});
const DESKTOP = { viewport: { width: 1400, height: 900 } };
// A 390×844 phone at 3 device pixels per CSS pixel, touch, mobile viewport.
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true };
const fresh = async (device = DESKTOP) => (await browser.newContext(device)).newPage();

// Public map: a cold browser each time (no cache), from navigation to the first idle map,
// on a desktop and on a phone.
for (const [what, device] of [['desktop', DESKTOP], ['phone', PHONE]]) {
  const firstRender = [];
  for (let i = 0; i < runs; i++) {
    const page = await fresh(device);
    await page.goto(`${url}/#/public`);
    await page.waitForFunction(() => window.wangge?.timings?.publicIdle, null, { timeout: 60000 });
    firstRender.push(await page.evaluate(() => window.wangge.timings.publicIdle));
    await page.context().close();
  }
  console.log(`public map first render ms (${what}): median ${median(firstRender)} (runs ${firstRender.join(', ')})`);
}

// Planner: upload the draft, time until the validation summary shows, then until the
// problems are listed and the draft is drawn.
const page = await fresh();
await page.goto(`${url}/#/planner`);
await page.fill('input[name=name]', name);
await page.fill('input[name=password]', password);
await page.click('form.login button[type=submit]');
await page.waitForSelector('#upload-form');
const first = [], drawn = [];
for (let i = 0; i < Math.min(runs, 3); i++) {
  await page.goto(`${url}/#/planner`);
  await page.reload();
  await page.waitForSelector('#upload-form');
  await page.fill('#plan-scope', env('SCOPE'));
  await page.fill('#plan-title', `perf ${i}`);
  await page.setInputFiles('#plan-file', env('DRAFT'));
  const t0 = Date.now();
  await page.click('#plan-upload');
  await page.waitForSelector('#validation-summary', { timeout: 120000 });
  first.push(Date.now() - t0);
  await page.waitForFunction(() => window.wangge.maps.planner?.getSource('draft') && window.wangge.maps.planner.loaded(), null, { timeout: 120000 });
  drawn.push(Date.now() - t0);
  const summary = await page.textContent('#validation-summary');
  console.log(`  draft ${i}: first results ${first.at(-1)} ms, drawn ${drawn.at(-1)} ms; ${summary.trim() || 'valid'}`);
}
console.log(`planner first results ms: median ${median(first)}; draft drawn ms: median ${median(drawn)}`);
await browser.close();
