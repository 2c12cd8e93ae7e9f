// Browser tests: Debian's Chromium, headless, driven by playwright-core against a running
// `wangge serve` with the demo data. Started by tests/api/browser.rs (cargo test), which
// starts the server, makes the users and the draft files, and passes them here:
//   WANGGE_URL, CHROMIUM, SHOTS (directory for screenshots),
//   GRID_CODE, GRID_POINT (lon,lat inside that grid), SEARCH_CODE (another grid),
//   SEARCH_POINT (lon,lat inside it), SEARCH_MANY (a search with many results, among
//   them SEARCH_CODE),
//   PLAN_SCOPE, BROKEN, FIXED (GeoJSON drafts: one with an overlap and a gap, one clean
//   whose names are in a field wangge does not read by default, NAME_FIELD),
//   UNCHANGED (grids the clean draft leaves as they are), PLANNER, COUNTY_PLANNER,
//   DISPATCHER (name:password each).
// Prints one line per figure (`figure name value`); exits non-zero on the first failure,
// and any page error or console error fails its step (the only console errors allowed
// are a step's expected HTTP refusals, which Chromium logs as failed resource loads).

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const url = env('WANGGE_URL');
const shots = env('SHOTS');
mkdirSync(shots, { recursive: true });
const [lon, lat] = env('GRID_POINT').split(',').map(Number);
const gridCode = env('GRID_CODE');
const cred = (k) => { const [name, password] = env(k).split(':'); return { name, password }; };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--use-gl=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist'],
});

const figures = {};
const steps = [];
// Page errors and console errors of the current step.
let problems = [];
// HTTP statuses the current step provokes on purpose (Chromium logs each as a console
// error "Failed to load resource").
let expectedStatuses = [];
async function step(name, fn, { refusals = [] } = {}) {
  const t0 = Date.now();
  problems = [];
  expectedStatuses = refusals;
  try {
    await fn();
    assert.deepEqual(problems, [], 'no page error or console error');
    steps.push(`ok   ${name} (${Date.now() - t0} ms)`);
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    console.log(`FAIL ${name}: ${err.stack ?? err}`);
    if (lastPage) await lastPage.screenshot({ path: join(shots, 'FAILED.png') }).catch(() => {});
    await browser.close();
    process.exit(1);
  }
}

const DESKTOP = { viewport: { width: 1366, height: 768 } };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

let lastPage;
async function newPage(device = DESKTOP, extra = {}) {
  const context = await browser.newContext({ ...device, ...extra, locale: 'zh-CN' });
  const page = await context.newPage();
  lastPage = page;
  page.on('pageerror', (e) => {
    console.log(`page error: ${e.message}`);
    problems.push(`page error: ${e.message}`);
  });
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const status = /Failed to load resource: the server responded with a status of (\d+)/.exec(m.text());
    if (status && expectedStatuses.includes(Number(status[1]))) return;
    console.log(`console: ${m.text()}`);
    problems.push(`console: ${m.text()} (${m.location()?.url ?? ''})`);
  });
  return page;
}

async function waitIdle(page, name) {
  await page.waitForFunction((n) => window.wangge?.maps?.[n] && window.wangge.maps[n].loaded() && window.wangge.maps[n].areTilesLoaded(), name, { timeout: 30000 });
}

async function login(page, who) {
  await page.fill('input[name=name]', who.name);
  await page.fill('input[name=password]', who.password);
  await page.click('form.login button[type=submit]');
}

/** Clicks the map at a lon/lat. */
async function clickAt(page, mapName, lngLat) {
  const box = await page.locator(`.map canvas`).first().boundingBox();
  const p = await page.evaluate(([n, ll]) => window.wangge.maps[n].project(ll), [mapName, lngLat]);
  await page.mouse.click(box.x + p.x, box.y + p.y);
}

let caseId;
// The report filed from a searched card (accepted later, on a phone).
let searchedCaseId;

/** Distinct colours (sampled every 4th pixel) in a PNG screenshot: a blank map has one.
 * Decodes the 8-bit RGB/RGBA non-interlaced PNGs Chromium writes. */
function distinctColours(png) {
  let i = 8, w = 0, h = 0, bpp = 0;
  const idat = [];
  while (i < png.length) {
    const n = png.readUInt32BE(i);
    const type = png.toString('ascii', i + 4, i + 8);
    const data = png.subarray(i + 8, i + 8 + n);
    if (type === 'IHDR') { w = data.readUInt32BE(0); h = data.readUInt32BE(4); bpp = { 2: 3, 6: 4 }[data[9]]; }
    if (type === 'IDAT') idat.push(data);
    i += 12 + n;
  }
  assert.ok(bpp && png[24] === 8, 'an 8-bit RGB(A) screenshot');
  const raw = inflateSync(Buffer.concat(idat));
  const stride = w * bpp;
  let prev = Buffer.alloc(stride);
  const seen = new Set();
  for (let y = 0; y < h; y++) {
    const filter = raw[y * (stride + 1)];
    const line = Buffer.from(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? line[x - bpp] : 0, b = prev[x], c = x >= bpp ? prev[x - bpp] : 0;
      let add = 0;
      if (filter === 1) add = a;
      else if (filter === 2) add = b;
      else if (filter === 3) add = (a + b) >> 1;
      else if (filter === 4) { const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c); add = pa <= pb && pa <= pc ? a : pb <= pc ? b : c; }
      line[x] = (line[x] + add) & 255;
    }
    if (y % 4 === 0) for (let x = 0; x < w; x += 4) seen.add(line.readUIntBE(x * bpp, 3));
    prev = line;
  }
  return seen.size;
}

/** Asserts nothing on the page is wider than the phone (the document, or `main`, which
 * scrolls on its own). */
async function assertFitsPhone(page, what) {
  const wide = await page.evaluate(() => Math.max(document.documentElement.scrollWidth, document.querySelector('main').scrollWidth));
  assert.ok(wide <= PHONE.viewport.width + 1, `${what}: no sideways scrolling (${wide} px wide)`);
}

/** Asserts the part of the public map above the phone's sheet (below the legend) shows a
 * drawn map, not a blank: Chromium once left it empty under a scrolling sheet. */
async function assertMapDrawnAboveSheet(page, what) {
  const map = await page.locator('#public-map').boundingBox();
  const sheet = await page.locator('.side.sheet').boundingBox();
  const top = map.y + 150;
  const clip = { x: map.x + 10, y: top, width: map.width - 20, height: Math.max(20, sheet.y - top - 10) };
  const colours = distinctColours(await page.screenshot({ clip }));
  assert.ok(colours > 8, `${what}: the map above the sheet is drawn (${colours} colours in ${JSON.stringify(clip)})`);
}

/** Fills and sends the open report form; answers the filed report as the service
 * stores it (its public status). */
async function fileReport(page, text) {
  const options = await page.$$eval('#report-matter option', (os) => os.map((o) => o.value).filter(Boolean));
  assert.ok(options.length > 0, 'public matters offered');
  await page.selectOption('#report-matter', options[0]);
  await page.fill('#report-description', text);
  await page.fill('#report-form input[name=phone]', '13912345678');
  await page.click('#report-form button[type=submit]');
  await page.waitForSelector('#report-sent');
  const id = Number(await page.getAttribute('#report-sent', 'data-case'));
  assert.ok(id > 0);
  assert.match(await page.textContent('#report-key'), /^[0-9A-HJKMNP-TV-Z]{8}$/);
  return page.evaluate(async (n) => (await fetch(`/v1/public/reports/${n}`)).json(), id);
}

/** Drags the report form's pin to a lon/lat of the public map. */
async function dragPin(page, lngLat) {
  const pin = await page.locator('#report-pin').boundingBox();
  const box = await page.locator('#public-map canvas').boundingBox();
  const to = await page.evaluate(([ll]) => window.wangge.maps.public.project(ll), [lngLat]);
  // The marker's tip is at the bottom centre of its element.
  const from = { x: pin.x + pin.width / 2, y: pin.y + pin.height - 2 };
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  await page.mouse.move(box.x + to.x, box.y + to.y - 2, { steps: 8 });
  await page.mouse.up();
}

await step('the public map draws the regions and, zoomed in, the grids; a click shows the grid card', async () => {
  const page = await newPage();
  await page.goto(`${url}/#/public`);
  await page.waitForFunction(() => window.wangge?.timings?.publicIdle, null, { timeout: 30000 });
  figures.public_map_first_render_ms = await page.evaluate(() => window.wangge.timings.publicIdle);
  // A resident's header shows the public pages and a staff login, no staff pages.
  assert.deepEqual(await page.$$eval('header nav a', (as) => as.map((a) => a.dataset.page)), ['public', 'report']);
  assert.ok(await page.isVisible('#staff-login'));
  const regions = await page.evaluate(() => window.wangge.maps.public.queryRenderedFeatures({ layers: ['counties-fill'] }).length);
  assert.ok(regions > 0, 'counties drawn');
  // Labels, drawn with the browser's own fonts (no glyph server, no CDN).
  const countyLabels = await page.evaluate(() => window.wangge.maps.public.queryRenderedFeatures({ layers: ['counties-label'] }).map((f) => f.properties.name));
  assert.ok(countyLabels.length > 0, 'county names drawn');
  await page.screenshot({ path: join(shots, '1-public-map.png') });
  await page.evaluate(([ll]) => window.wangge.maps.public.jumpTo({ center: ll, zoom: 14 }), [[lon, lat]]);
  await waitIdle(page, 'public');
  const grids = await page.evaluate(() => window.wangge.maps.public.queryRenderedFeatures({ layers: ['grids-fill'] }).map((f) => f.properties.code));
  assert.ok(grids.includes(gridCode), `grid ${gridCode} drawn among ${grids.length}`);
  // Labels are placed in a frame of their own after the tiles are drawn (later still on a
  // loaded machine): wait for them rather than read the first idle frame.
  const labelled = await page.waitForFunction(() => window.wangge.maps.public.queryRenderedFeatures({ layers: ['grids-label'] }).length > 0, null, { timeout: 15000 })
    .then(() => true, () => false);
  assert.ok(labelled, 'grid names drawn at zoom 14');
  await clickAt(page, 'public', [lon, lat]);
  await page.waitForSelector(`#card h2[data-code="${gridCode}"]`, { timeout: 10000 });
  const text = await page.textContent('#card');
  assert.match(text, /监督电话/);
  assert.doesNotMatch(text, /role\./, 'every member role has a name');
  await page.screenshot({ path: join(shots, '2-public-card.png') });

  // Search by code finds another grid (not the card already shown); its community is
  // named in the results.
  const searched = env('SEARCH_CODE');
  assert.notEqual(searched, gridCode);
  await page.fill('#search', searched);
  await page.click('form.search button');
  await page.waitForSelector(`#card h2[data-code="${searched}"]`);

  // Reporting from a grid opened by search, after a tap elsewhere: the pin starts inside
  // the searched grid (not at the earlier tap, not at a box centre) and the case is
  // filed there.
  await page.click('#report-here');
  await page.waitForSelector(`#report-where[data-grid="${searched}"]`);
  assert.ok(await page.isVisible('#report-pin'), 'the form shows its pin');
  const filed = await fileReport(page, '浏览器测试：井盖缺失');
  assert.equal(filed.grid_code, searched, 'filed in the grid the form showed');
  searchedCaseId = filed.id;
  await page.screenshot({ path: join(shots, '4-public-report-sent.png') });

  // Its receipt links to the status page, which shows the report and its first step.
  await page.click('#report-follow');
  await page.waitForSelector(`#follow-result article[data-case="${filed.id}"]`);
  assert.equal(await page.$$eval('#follow-steps li', (ls) => ls.map((l) => l.dataset.step).join()), 'reported');
  await page.screenshot({ path: join(shots, '4-public-follow.png') });
  // The number with a wrong key shows nothing of it.
  await page.fill('#follow-key', 'ZZZZZZZZ');
  await page.click('#follow-form button[type=submit]');
  await page.waitForSelector('#follow-none');

  // Back to the tapped grid: the pin starts at the tap; dragged into the searched grid,
  // the form follows it; dragged back, the case is filed in the tapped grid.
  await page.goto(`${url}/#/public`);
  await page.waitForFunction(() => window.wangge?.maps?.public?.loaded());
  await page.evaluate(([ll]) => window.wangge.maps.public.jumpTo({ center: ll, zoom: 15 }), [[lon, lat]]);
  await waitIdle(page, 'public');
  await clickAt(page, 'public', [lon, lat]);
  await page.waitForSelector(`#card h2[data-code="${gridCode}"]`);
  await page.click('#report-here');
  await page.waitForSelector(`#report-where[data-grid="${gridCode}"]`);
  const [slon, slat] = env('SEARCH_POINT').split(',').map(Number);
  // Both grids on screen to drag between.
  await page.evaluate(([b]) => window.wangge.maps.public.fitBounds(b, { padding: 120, maxZoom: 16, duration: 0 }),
    [[[Math.min(lon, slon), Math.min(lat, slat)], [Math.max(lon, slon), Math.max(lat, slat)]]]);
  await waitIdle(page, 'public');
  const where = await page.$eval('#report-where', (w) => [Number(w.dataset.lon), Number(w.dataset.lat)]);
  // The tap is a whole pixel: within a few metres of the point aimed at.
  assert.ok(Math.abs(where[0] - lon) < 1e-4 && Math.abs(where[1] - lat) < 1e-4, `pin at the tap, saw ${where}`);
  await dragPin(page, [slon, slat]);
  await page.waitForSelector(`#report-where[data-grid="${searched}"]`);
  await dragPin(page, [lon, lat]);
  await page.waitForSelector(`#report-where[data-grid="${gridCode}"]`);
  await page.screenshot({ path: join(shots, '3-public-report-form.png') });
  const tappedCase = await fileReport(page, '浏览器测试：路灯不亮');
  assert.equal(tappedCase.grid_code, gridCode);
  caseId = tappedCase.id;
  await page.context().close();
}, { refusals: [404] });

await step('on a phone the map fills the screen, the card and the form sit in a sheet, and a report is filed where the phone is', async () => {
  const page = await newPage(PHONE, { geolocation: { longitude: lon, latitude: lat }, permissions: ['geolocation'] });
  await page.goto(`${url}/#/public`);
  await page.waitForFunction(() => window.wangge?.timings?.publicIdle, null, { timeout: 30000 });
  figures.public_map_first_render_phone_ms = await page.evaluate(() => window.wangge.timings.publicIdle);
  const map = await page.locator('#public-map').boundingBox();
  assert.ok(map.width >= PHONE.viewport.width - 1 && map.height >= 600, `the map fills the screen: ${JSON.stringify(map)}`);
  const header = await page.locator('header#top').boundingBox();
  assert.ok(header.height <= 48, `a one-line header, ${header.height} px`);
  await page.screenshot({ path: join(shots, 'phone-1-public-map.png') });
  // A search with many results, then one opened: its card is on screen.
  await page.fill('#search', env('SEARCH_MANY'));
  await page.click('form.search button');
  await page.waitForSelector('.hits li button');
  assert.ok((await page.$$('.hits li')).length > 3, 'many results');
  await page.screenshot({ path: join(shots, 'phone-2-search.png') });
  const searched = env('SEARCH_CODE');
  await page.click(`.hits li:has(small:has-text("${searched}")) button`);
  await page.waitForSelector(`#card h2[data-code="${searched}"]`);
  const title = await page.locator('#card h2').boundingBox();
  assert.ok(title.y >= 0 && title.y + title.height <= PHONE.viewport.height, `the card is on screen at ${title.y}`);
  await waitIdle(page, 'public');
  await assertMapDrawnAboveSheet(page, 'a searched card');
  await page.screenshot({ path: join(shots, 'phone-3-card.png') });
  await page.click('#report-here');
  await page.waitForSelector(`#report-where[data-grid="${searched}"]`);
  // "Use my location" moves the pin to the phone's position, in the other grid.
  await page.click('#report-locate-me');
  await page.waitForSelector(`#report-where[data-grid="${gridCode}"]`);
  const pin = await page.locator('#report-pin').boundingBox();
  assert.ok(pin && pin.y > header.height && pin.y < PHONE.viewport.height, 'the pin is on screen');
  await waitIdle(page, 'public');
  await assertMapDrawnAboveSheet(page, 'the report form');
  await page.screenshot({ path: join(shots, 'phone-4-report-form.png') });
  const filed = await fileReport(page, '手机测试：垃圾未清运');
  assert.equal(filed.grid_code, gridCode);
  await page.screenshot({ path: join(shots, 'phone-5-report-sent.png') });
  await page.click('#report-follow');
  await page.waitForSelector(`#follow-result article[data-case="${filed.id}"]`);
  await page.screenshot({ path: join(shots, 'phone-6-follow.png') });
  await page.context().close();
}, { refusals: [] });

await step('a planner uploads a draft with an overlap and a gap, sees both listed and drawn, fixes it and submits', async () => {
  const page = await newPage();
  await page.goto(`${url}/#/planner`);
  await login(page, cred('PLANNER'));
  await page.waitForSelector('#upload-form');
  await page.fill('#plan-scope', env('PLAN_SCOPE'));
  await page.fill('#plan-title', '浏览器测试方案');
  await page.setInputFiles('#plan-file', env('BROKEN'));
  const t0 = Date.now();
  await page.click('#plan-upload');
  await page.waitForSelector('#validation-summary');
  figures.planner_small_draft_first_results_ms = Date.now() - t0;
  const kinds = await page.$$eval('#validation-summary .chip', (cs) => cs.map((c) => c.dataset.kind));
  assert.ok(kinds.includes('overlap') && kinds.includes('gap'), `chips ${kinds}`);
  const listed = await page.$$eval('#problems li', (ls) => ls.map((l) => l.dataset.kind));
  assert.ok(listed.includes('overlap') && listed.includes('gap'), `list ${listed}`);
  await waitIdle(page, 'planner');
  // Each problem is drawn: step to the overlap and to the gap and find it on the map.
  for (const kind of ['overlap', 'gap']) {
    for (let i = 0; i < listed.length; i++) {
      if (await page.$eval('#problems li.current', (l) => l.dataset.kind).catch(() => '') === kind) break;
      await page.click('#next-problem');
    }
    await waitIdle(page, 'planner');
    const drawn = await page.evaluate(() => window.wangge.maps.planner.queryRenderedFeatures({ layers: ['problems-fill', 'problems-point', 'problems-line'] }).map((f) => f.properties.kind));
    assert.ok(drawn.includes(kind), `${kind} drawn, saw ${drawn}`);
    await page.screenshot({ path: join(shots, `5-planner-${kind}.png`) });
  }
  await page.click('#compare');
  await page.waitForSelector('#compare-map canvas');
  await waitIdle(page, 'planner');
  await page.screenshot({ path: join(shots, '6-planner-compare.png') });
  await page.click('#compare');
  // Submitting is not offered while errors remain, and the page says why.
  assert.ok(await page.isDisabled('#step-submit'), 'submit disabled while errors remain');
  assert.ok(await page.isVisible('#submit-blocked'));
  // Repair proposals: listed, drawn before/after, and applied as a new revision: the
  // overlap is gone, the 40 m gap (wider than the 1 m limit) stays for the planner.
  await page.click('#repair-preview');
  await page.waitForSelector('#repair-list li', { timeout: 60000 });
  const proposed = await page.$$eval('#repair-list li', (ls) => ls.map((l) => l.dataset.grid));
  assert.ok(proposed.length >= 1, 'proposals listed');
  await page.click('#repair-list li:first-child button');
  await waitIdle(page, 'planner');
  const drawnRepair = await page.evaluate(() => window.wangge.maps.planner.queryRenderedFeatures({ layers: ['repair-after-fill', 'repair-before-line'] }).length);
  assert.ok(drawnRepair > 0, 'proposals drawn on the map');
  await page.screenshot({ path: join(shots, '6-planner-repair.png') });
  await page.click('#repair-apply');
  await page.waitForFunction(() => document.querySelector('#validation-summary') && !document.querySelector('#validation-summary .chip[data-kind=overlap]') && !document.querySelector('#repair-list'), null, { timeout: 60000 });
  const left = await page.$$eval('#validation-summary .chip', (cs) => cs.map((c) => c.dataset.kind));
  assert.ok(left.includes('gap'), `the wide gap stays: ${left}`);
  // The history names the repair in the user's language.
  await page.waitForFunction(() => /应用修复建议/.test(document.querySelector('.history')?.textContent ?? ''), null, { timeout: 10000 });
  await page.screenshot({ path: join(shots, '6-planner-repaired.png') });
  // Fix: upload the corrected file over the draft. Its names are in a field wangge
  // does not read by default: the view offers it, and choosing it validates again
  // without a new upload.
  await page.setInputFiles('#plan-file', env('FIXED'));
  await page.click('#plan-upload');
  await page.waitForSelector('#validation-summary[data-valid="true"]');
  assert.equal(await page.$$eval('#validation-summary .chip', (cs) => cs.filter((c) => !['small_grid', 'disconnected'].includes(c.dataset.kind)).length), 0);
  await page.waitForSelector('#mapping-form #mapping-name');
  assert.equal(await page.$eval('#mapping-name', (s) => s.value), env('NAME_FIELD'), 'the name field is proposed first');
  await page.screenshot({ path: join(shots, '7-planner-mapping.png') });
  await page.click('#mapping-apply');
  await page.waitForSelector('#mapping-form', { state: 'detached' });
  await page.waitForSelector('#validation-summary[data-valid="true"]');
  await page.click('#step-submit');
  await page.waitForFunction(() => document.querySelector('#plan-status')?.textContent === '待审批', null, { timeout: 10000 });
  await page.screenshot({ path: join(shots, '7-planner-submitted.png') });
  await page.context().close();
}, { refusals: [401, 409, 422] });

await step('the county planner reads the impact of the submitted plan and approves it', async () => {
  const page = await newPage();
  await page.goto(`${url}/#/planner`);
  await login(page, cred('COUNTY_PLANNER'));
  await page.waitForSelector('#plans');
  await page.click('#plans li:first-child button');
  await page.waitForSelector('#step-approve');
  await page.waitForSelector('#impact table');
  // The clean draft redraws nothing: every grid unchanged, none added, removed or changed.
  const impact = await page.$$eval('#impact table tr', (rs) => rs.map((r) => Number(r.querySelector('td')?.textContent)));
  assert.deepEqual(impact.slice(0, 4), [0, 0, 0, Number(env('UNCHANGED'))], `impact ${impact}`);
  await page.screenshot({ path: join(shots, '8-county-review.png') });
  // The grids that change are listed (none here: the clean draft redraws nothing).
  assert.equal(await page.$$eval('#changes li', (ls) => ls.length), 0);
  await page.click('#step-approve');
  await page.waitForFunction(() => document.querySelector('#plan-status')?.textContent === '已批准', null, { timeout: 10000 });
  await page.screenshot({ path: join(shots, '8-county-approved.png') });
  // Activating asks first, with the date and the impact; cancelling changes nothing.
  await page.click('#step-activate');
  await page.waitForSelector('#confirm-dialog[open]');
  assert.match(await page.textContent('#confirm-dialog'), /生效日期/);
  await page.screenshot({ path: join(shots, '8-county-activate-confirm.png') });
  await page.click('#confirm-cancel');
  await page.waitForSelector('#confirm-dialog', { state: 'detached' });
  assert.equal(await page.textContent('#plan-status'), '已批准');
  await page.click('#step-activate');
  await page.click('#confirm-ok');
  await page.waitForFunction(() => document.querySelector('#plan-status')?.textContent === '现行', null, { timeout: 10000 });
  await page.context().close();
}, { refusals: [401] });

await step("a dispatcher finds the resident's report on the board, accepts and assigns it, and it moves columns", async () => {
  const page = await newPage();
  await page.goto(`${url}/#/dispatcher`);
  await login(page, cred('DISPATCHER'));
  const card = `article[data-case="${caseId}"]`;
  await page.waitForSelector(`section[data-column=new] ${card}`, { timeout: 15000 });
  // The dispatcher's pages only; the queue counts the reports waiting to be accepted,
  // and narrows the board to them.
  assert.deepEqual(await page.$$eval('header nav a', (as) => as.map((a) => a.dataset.page)), ['public', 'report', 'dispatcher', 'assessment']);
  assert.ok(Number(await page.getAttribute('#queue-new', 'data-count')) >= 3, 'three residents\' reports to accept');
  await page.click('#queue-new');
  await page.waitForSelector('#queue-new.on');
  assert.equal(await page.$$eval('section[data-column=accepted] article', (as) => as.length), 0);
  await page.click('#queue-new');
  await page.waitForSelector('#queue-new:not(.on)');
  // Live: a report filed now appears on the board from the event stream, well before
  // the 15 s poll (which stands down while the stream is open).
  await page.waitForSelector('body[data-stream=open]', { timeout: 15000 });
  const live = await page.evaluate(async ([lo, la]) => {
    const list = await (await fetch('/v1/public/matters')).json();
    const matter = list.categories.flatMap((c) => c.matters).find((m) => m.public).code;
    const r = await fetch('/v1/public/reports', { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ lon: lo, lat: la, coord_sys: 'cgcs2000', matter, description: '实时测试：路面塌陷' }) });
    return (await r.json()).id;
  }, [lon, lat]);
  assert.ok(live > 0, 'the live report was filed');
  const t0 = Date.now();
  await page.waitForSelector(`section[data-column=new] article[data-case="${live}"]`, { timeout: 12000 });
  figures.dispatcher_live_update_ms = Date.now() - t0;
  await page.screenshot({ path: join(shots, '9-dispatcher-board.png') });
  // The open case's panel follows its events: accepted elsewhere (here through the API,
  // as a colleague's screen would), it shows the new state without a click.
  await page.click(`article[data-case="${live}"]`);
  await page.waitForSelector('#case-actions button[data-action=accept]');
  const elsewhere = await page.evaluate(async (id) => (await fetch(`/v1/cases/${id}/actions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${localStorage.getItem('wangge.token')}` },
    body: JSON.stringify({ action: 'accept' }),
  })).status, live);
  assert.equal(elsewhere, 200, 'accepted through the API');
  await page.waitForFunction(() => document.querySelector('#case-state')?.textContent === '已受理', null, { timeout: 12000 });
  await page.click(card);
  await page.waitForSelector('#case-actions button[data-action=accept]');
  await waitIdle(page, 'case');
  await page.screenshot({ path: join(shots, '10-dispatcher-case.png') });
  await page.click('#case-actions button[data-action=accept]');
  await page.waitForSelector(`section[data-column=accepted] ${card}`);
  await page.waitForSelector('#case-actions button[data-action=assign]');
  await page.click('#case-actions button[data-action=assign]');
  await page.waitForSelector(`section[data-column=assigned] ${card}`);
  // The board moves first, then the case panel reloads: wait for its timeline.
  await page.waitForFunction(() => /受理[\s\S]*派遣/.test(document.querySelector('#timeline')?.textContent ?? ''), null, { timeout: 10000 });
  await page.screenshot({ path: join(shots, '11-dispatcher-assigned.png') });

  // A page that is not a dispatcher's says so before asking the service anything.
  await page.goto(`${url}/#/planner`);
  await page.waitForSelector('#not-yours');
  await page.goto(`${url}/#/dispatcher`);
  await page.waitForSelector(`section[data-column=assigned] ${card}`);

  // English switch.
  await page.click('#lang');
  await page.waitForSelector('section[data-column=assigned] h3:has-text("Assigned")');
  await page.click('#lang');

  await page.goto(`${url}/#/assessment`);
  await page.waitForSelector('#assessment table#grids');
  await waitIdle(page, 'density');
  const gridRows = await page.$$eval('#grids tbody tr', (rs) => rs.map((r) => r.dataset.key));
  assert.ok(gridRows.includes(gridCode), `assessment lists ${gridCode}`);
  await page.screenshot({ path: join(shots, '12-assessment.png') });
  await page.context().close();
}, { refusals: [401] });

await step('on a phone the staff pages stack and work: a dispatcher accepts a new report, a planner reads a plan, the assessment shows its tables', async () => {
  const page = await newPage(PHONE);
  await page.goto(`${url}/#/dispatcher`);
  await login(page, cred('DISPATCHER'));
  await page.waitForSelector(`section[data-column=assigned] article[data-case="${caseId}"]`, { timeout: 15000 });
  await assertFitsPhone(page, 'the board');
  const here = await page.locator('header nav a.active').boundingBox();
  assert.ok(here.x >= 0 && here.x + here.width <= PHONE.viewport.width, `the current page's tab is in sight: ${JSON.stringify(here)}`);
  await page.screenshot({ path: join(shots, 'phone-7-dispatcher-board.png') });
  // A report still waiting: its card and its panel name the deadline for accepting it.
  const waiting = searchedCaseId;
  await page.waitForSelector(`section[data-column=new] article[data-case="${waiting}"]`);
  assert.match(await page.textContent(`article[data-case="${waiting}"]`), /受理期限/);
  await page.click(`article[data-case="${waiting}"]`);
  await page.waitForSelector('#case-actions button[data-action=accept]');
  await waitIdle(page, 'case');
  assert.match(await page.textContent('#case-detail dl'), /受理期限/);
  // Opening a case on a phone brings its panel (under the board) into view.
  const panel = await page.locator('#case-title').boundingBox();
  assert.ok(panel.y >= 0 && panel.y < PHONE.viewport.height, `the case panel is on screen at ${panel.y}`);
  await assertFitsPhone(page, 'the case panel');
  await page.screenshot({ path: join(shots, 'phone-8-dispatcher-case.png') });
  await page.click('#case-actions button[data-action=accept]');
  await page.waitForSelector(`section[data-column=accepted] article[data-case="${waiting}"]`);
  await page.waitForFunction(() => /受理/.test(document.querySelector('#timeline')?.textContent ?? ''), null, { timeout: 10000 });
  // The header's pages scroll sideways on a phone; the assessment is reachable there.
  await page.click('header nav a[data-page=assessment]');
  await page.waitForSelector('#assessment table#grids');
  await waitIdle(page, 'density');
  await assertFitsPhone(page, 'the assessment');
  await page.screenshot({ path: join(shots, 'phone-9-assessment.png'), fullPage: true });
  await page.context().close();

  const planner = await newPage(PHONE);
  await planner.goto(`${url}/#/planner`);
  await login(planner, cred('COUNTY_PLANNER'));
  await planner.waitForSelector('#plans li button');
  await planner.click('#plans li:first-child button');
  await planner.waitForFunction(() => document.querySelector('#plan-status')?.textContent === '现行', null, { timeout: 10000 });
  await waitIdle(planner, 'planner');
  const map = await planner.locator('.maps .map').first().boundingBox();
  assert.ok(map.width >= PHONE.viewport.width - 40 && map.height >= 300, `the planner's map is usable: ${JSON.stringify(map)}`);
  await assertFitsPhone(planner, "the planner's page");
  await planner.screenshot({ path: join(shots, 'phone-10-planner-plan.png'), fullPage: true });
  await planner.context().close();
}, { refusals: [401] });

await browser.close();
for (const [k, v] of Object.entries(figures)) console.log(`figure ${k} ${v}`);
