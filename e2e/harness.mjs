// Shared harness of the e2e journeys (e2e/*.e2e.mjs): the real bot on a fresh SQLite database,
// Agents Playgrounds, one Chromium, a scenario runner with timed steps, screenshots and a report,
// and helpers to read the bot's cards. Facts behind it: e2e/NOTES.md.
//
//   import { runSuite } from './harness.mjs';
//   runSuite('buy', async (suite) => {
//     const plays = await suite.playgrounds({ en: PLACES.en, fr: PLACES.fr });
//     await suite.scenario('en', async (sc) => {
//       const run = await sc.chat(plays.en, { label: 'en', t: STRINGS.en });   // a page, chat open
//       await run.do('buy card', async () => { ... });
//     });
//   });
//
// Env: E2E_HEADED=1 (show the browser), E2E_TIMEOUT_MS (watchdog, default 240000), E2E_PYTHON, CHROMIUM_PATH.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as pg from './playground.mjs';

export const RESULTS = path.join(pg.REPO_DIR, 'test-results');
export const PYTHON = process.env.E2E_PYTHON ? path.resolve(process.env.E2E_PYTHON) : path.join(pg.REPO_DIR, '.venv', 'bin', 'python');
export const HEADED = !!process.env.E2E_HEADED;
// Where `app.py` is run from (default: this repository); e.g. a patched copy to try a fix.
export const BOT_DIR = process.env.E2E_BOT_DIR ? path.resolve(process.env.E2E_BOT_DIR) : pg.REPO_DIR;
const WATCHDOG_MS = Number(process.env.E2E_TIMEOUT_MS || 240000);

// Where the runs' users are (their Playground's and browser's zone and locale). French: Paris.
// English: a zone whose date, whenever a run starts, is not UTC's (east of the date line from
// 10:00 UTC, west of it before), so that an instant shown in a zone other than the reader's
// shows another date, whatever the hour of the run; Paris differs from UTC only near midnight.
export const PLACES = {
  en: { timezone: new Date().getUTCHours() >= 10 ? 'Pacific/Kiritimati' : 'Pacific/Pago_Pago' },
  fr: { locale: 'fr-FR', timezone: 'Europe/Paris' },
};

export const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
export const log = (...a) => console.log(...a);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ----------------------------------------------------------------------------- the bot

// `app.py serve --demo` on a free port with a fresh temp SQLite DB, sandbox payments, no app id
// (the Playground sends no token). Its log is copied to test-results/<name>-bot.log on stop().
export async function startBot(name = 'e2e') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'license-desk-e2e-'));
  const port = await pg.freePort();
  const logFile = path.join(dir, 'bot.log');
  const fd = fs.openSync(logFile, 'w');
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(PYTHON, ['app.py', 'serve', '--demo', '--host', '127.0.0.1'], {
    cwd: BOT_DIR, detached: true, stdio: ['ignore', fd, fd],
    env: {
      ...process.env, PYTHONUNBUFFERED: '1',
      DATABASE_URL: `sqlite:///${path.join(dir, 'e2e.db')}`, PORT: String(port), PUBLIC_BASE_URL: base,
      PAYMENTS: 'sandbox', ALLOWED_TENANTS: '',
      MicrosoftAppId: '', MicrosoftAppPassword: '', MicrosoftAppTenantId: '',
    },
  });
  fs.closeSync(fd);
  let exitCode;
  const exited = new Promise((resolve) => {
    child.on('exit', (code, sig) => { exitCode = code ?? sig; resolve(); });
    child.on('error', (e) => { exitCode = e.message; resolve(); }); // could not spawn
  });
  const copy = path.join(RESULTS, `${name}-bot.log`);
  const bot = {
    port, base, endpoint: `${base}/api/messages`, logFile, copy,
    log: () => { try { return fs.readFileSync(logFile, 'utf8'); } catch { return ''; } },
    async stop() {
      if (exitCode === undefined) {
        try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
        const t = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }, 5000);
        await exited; clearTimeout(t);
      }
      fs.mkdirSync(RESULTS, { recursive: true });
      fs.copyFileSync(logFile, copy);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 60000;
  for (;;) {
    if (exitCode !== undefined) {
      const out = bot.log(); await bot.stop();
      throw new Error(`the bot exited (${exitCode}) before answering /healthz:\n${out}`);
    }
    const res = await fetch(`${base}/healthz`).catch(() => null);
    if (res?.status === 200) return bot;
    if (Date.now() > deadline) {
      const out = bot.log(); await bot.stop();
      throw new Error(`the bot did not answer GET /healthz with 200 within 60 s:\n${out}`);
    }
    await sleep(100);
  }
}

// A read-only query on a bot's database (the temp SQLite file next to its log), through Python's
// sqlite3 -> the rows, as arrays. For what the chat cannot show (how many quotes exist, whether the
// notifier handled an outbox message).
export function botQuery(bot, sql) {
  const db = path.join(path.dirname(bot.logFile), 'e2e.db');
  const code = 'import json, sqlite3, sys\n'
    + 'c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)\n'
    + 'print(json.dumps(c.execute(sys.argv[2]).fetchall(), default=str))';
  return JSON.parse(execFileSync(PYTHON, ['-c', code, db, sql], { encoding: 'utf8' }));
}

// Wait until `fn()` (sync or async) is truthy -> its value; throws `what` after `timeout` ms.
export async function waitUntil(fn, what, { timeout = 15000, every = 200 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`gave up after ${secs(timeout)} waiting for ${what}`);
    await sleep(every);
  }
}

// ----------------------------------------------------------------------------- reading cards

// "$1,234.50", "-$11.20", "24,99 $US", "−4,41 $US", "1 234,50 $US" -> integer cents (all amounts have 2 decimals)
export function cents(text) {
  const s = String(text).trim();
  const digits = s.replace(/[^\d]/g, '');
  assert.ok(digits.length >= 3 && /\d[.,]\d\d(?!\d)/.test(s), `not an amount: ${JSON.stringify(s)}`);
  return (/^[-−]|[-−]\s*[$\d]/.test(s) ? -1 : 1) * Number(digits);
}

export const fold = (s) => s.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
// Non-breaking and narrow spaces (French number and punctuation spacing) as plain spaces.
export const spaces = (s) => String(s).replace(/[\u00a0\u202f\u2009]/g, ' ');

// The row of `rows` whose first cell's first line is `label` (exactly) or matches it (RegExp).
export function rowNamed(rows, label, what = 'row') {
  const ok = (c) => (label instanceof RegExp ? label.test(c) : c.split('\n')[0] === label);
  const row = rows.find((r) => r.cells.length && ok(r.cells[0]));
  assert.ok(row, `no ${what} ${label} on the card; rows: ${JSON.stringify(rows.map((r) => r.cells))}`);
  return row;
}

// Pools card -> {header, pools: [{plan, sub, cells, row}]} ; a pool row has a button in its Assigned column.
export async function readPools(card) {
  const rows = await pg.cardRows(card);
  const header = rows[0].cells;
  const pools = rows.slice(1).filter((r) => r.cells.length === header.length).map((r) => {
    const [plan, sub = ''] = r.cells[0].split('\n');
    return { plan, sub, cells: r.cells, row: r };
  });
  return { header, pools };
}

// Amount lines (label -> {label, text, cents}) from ColumnSets of 2 columns whose 2nd is one amount.
export async function readAmountLines(card) {
  return amountLinesOf(await pg.cardRows(card));
}

// The same from rows already read (NB: each pg.cardRows call re-tags the rows: the locators of an
// earlier call no longer match).
export function amountLinesOf(rows) {
  const lines = [];
  for (const r of rows) {
    if (r.cells.length === 2 && /\d[.,]\d\d/.test(r.cells[1]) && !r.cells[1].includes('\n')) {
      lines.push({ label: r.cells[0], text: r.cells[1], cents: cents(r.cells[1]) });
    }
  }
  return lines;
}

// The amount line whose label is `label` (or matches it).
export function amountLine(lines, label) {
  const l = lines.find((x) => (label instanceof RegExp ? label.test(x.label) : x.label === label));
  assert.ok(l, `no amount line ${label}; lines: ${JSON.stringify(lines.map((x) => [x.label, x.text]))}`);
  return l;
}

// round_half_up(|amount| × pct / 100) in whole cents, exactly (pct like 15 or "12.5"), as core/pricing.py rounds.
export function percentOf(amount, pct) {
  const [whole, frac = ''] = String(pct).split(/[.,]/);
  const scale = 10 ** frac.length;
  const p = Number(whole) * scale + Number(frac || 0); // pct × scale, an integer
  return Math.floor((2 * Math.abs(amount) * p + 100 * scale) / (200 * scale));
}

// A quote's figures, as its card, the cart and the pay page show them (cards/i18n.py quote_amounts):
// each line with its own discount right under it, then any carried amount, then Due now, then one
// row per renewal date. `amounts`: the amount lines in order (amountLinesOf); `t`: the run's words
// ({discount: RegExp with the percent as group 1, carried, due, renewal: RegExp}).
// -> {lines: [{label, text, cents, discount: {label, text, cents, pct} | null}], carried, due, renewals}
export function figuresOf(amounts, t, what = 'figures') {
  const fig = { lines: [], carried: null, due: null, renewals: [] };
  const seen = () => JSON.stringify(amounts.map((x) => [x.label, x.text]));
  for (const a of amounts) {
    if (t.renewal.test(a.label)) {
      assert.ok(fig.due, `${what}: a renewal row before Due now: ${seen()}`);
      fig.renewals.push(a);
      continue;
    }
    assert.ok(!fig.due, `${what}: "${a.label}" after Due now: ${seen()}`);
    const m = t.discount.exec(a.label);
    if (m) {
      const line = fig.lines.at(-1);
      assert.ok(line && !line.discount && !fig.carried, `${what}: a discount not right under a line: ${seen()}`);
      line.discount = { ...a, pct: m[1] };
    } else if (a.label === t.carried) {
      fig.carried = a;
    } else if (a.label === t.due) {
      fig.due = a;
    } else {
      assert.ok(!fig.carried, `${what}: line "${a.label}" after the carried amount: ${seen()}`);
      fig.lines.push({ ...a, discount: null });
    }
  }
  assert.ok(fig.lines.length && fig.due && fig.renewals.length, `${what}: lines, Due now and a renewal row: ${seen()}`);
  return fig;
}

// The figures' arithmetic, to the cent: each line's discount is `pct` % of the gross above it
// (half-up; a deduction from a charge, an addition to a credit; none only where it rounds to 0),
// and every amount above Due now adds up to it. -> fig
export function checkFigures(fig, pct, what = 'figures') {
  let sum = 0;
  for (const l of fig.lines) {
    const off = percentOf(l.cents, pct);
    if (l.discount) {
      assert.equal(Number(String(l.discount.pct).replace(',', '.')), Number(pct), `${what}: ${l.label}: discount percent`);
      assert.equal(l.discount.cents, -Math.sign(l.cents) * off,
        `${what}: ${l.label} ${l.text}: its discount ${l.discount.text} = ${pct} % of it (half-up)`);
    } else {
      assert.equal(off, 0, `${what}: ${l.label} ${l.text} has no discount row`);
    }
    sum += l.cents + (l.discount?.cents ?? 0);
  }
  sum += fig.carried?.cents ?? 0;
  assert.equal(sum, fig.due.cents, `${what}: the amounts above Due now add up to it (${fig.due.text})`);
  return fig;
}

// The figures' rows in order, as [label, cents] (what the pay page lists, Due now and renewals included).
export const figureRows = (fig) => [
  ...fig.lines.flatMap((l) => [l, ...(l.discount ? [l.discount] : [])]),
  ...(fig.carried ? [fig.carried] : []), fig.due, ...fig.renewals,
].map((a) => [a.label, a.cents]);

// FactSet title -> value (the renderer shows title and value as consecutive lines).
export function fact(cardText, title) {
  const lines = cardText.split('\n').map((l) => l.trim()).filter(Boolean);
  const i = lines.indexOf(title);
  assert.ok(i >= 0 && i + 1 < lines.length, `no fact "${title}" on the card:\n${cardText}`);
  return lines[i + 1];
}

// A card's visible text, one trimmed line per line. People's text is Markdown-escaped in the cards
// ("Ann\\_Lee"); the Playground renders Markdown, so no escape may show: the reader sees the plain text.
export async function cardText(card) {
  const text = (await card.innerText()).split('\n').map((l) => l.trim()).filter(Boolean).join('\n');
  assert.ok(!/\\[\\`*_{}[\]()#+\-.!>|~<]/.test(text), `a Markdown escape shows on the card:\n${text}`);
  return text;
}

// The sandbox payment page's words: it follows the browser's Accept-Language (the French runs'
// browser contexts are fr-FR), so a run's page is in the run's language.
export const SANDBOX = {
  en: { title: 'Review and pay', pay: /^Pay\s*/, paid: /Payment received/ },
  fr: { title: 'Vérifier et payer', pay: /^Payer\s*/, paid: /Paiement reçu/ },
};

// The sandbox payment page of `url`, in a new page of the run's browser context (the run's
// language and time zone): checks it is in the run's language, it lists the quote card's `figures`
// (figuresOf) row for row, same words and amounts (each line, its discount, any carried amount, Due
// now, each renewal date with its amount), its style and script ran under its
// Content-Security-Policy, its instants are in the browser's zone and read as the card's (the
// renewal dates: the page's script and the card put an instant in the same zone); pays, waits for
// "paid". -> {rows, due, times}
export async function payOnSandbox(run, url, { figures, shot = 'pay-page' }) {
  const w = SANDBOX[run.lang] || SANDBOX.en;
  const dueCents = figures.due.cents;
  const pay = await run.page.context().newPage();
  const problems = []; // blocked by the page's policy, or a script error
  pay.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) problems.push(m.text()); });
  pay.on('pageerror', (e) => problems.push(e.message));
  try {
    const res = await pay.goto(url);
    assert.equal(res.status(), 200, 'pay page status');
    assert.match(res.headers()['content-security-policy'] || '', /script-src 'nonce-/, 'pay page policy');
    assert.equal(await pay.locator('html').getAttribute('lang'), run.lang, 'pay page language');
    assert.equal((await pay.locator('h1').innerText()).trim(), w.title);
    const due = (await pay.locator('#due').innerText()).trim();
    assert.equal(cents(due), dueCents, `pay page due ${due} = the quote card's due now`);
    const rows = await pay.locator('table#lines tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.innerText.trim())));
    assert.deepEqual(rows.map(([label, amount]) => [spaces(label), cents(amount)]),
      figureRows(figures).map(([label, c]) => [spaces(label), c]), 'pay page rows = the quote card\'s figures');
    assert.equal(cents((await pay.locator('#pay').innerText()).replace(w.pay, '')), dueCents, 'Pay button amount');
    assert.equal(await pay.locator('#pay').evaluate((b) => getComputedStyle(b).backgroundColor), 'rgb(91, 95, 199)',
      'the page\'s style applies (its nonce)');
    const times = await readTimes(pay);
    const zone = await pay.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
    if (run.timezone) { // (as ICU names it: "Etc/UTC" is "UTC")
      assert.equal(zone, new Intl.DateTimeFormat('en', { timeZone: run.timezone }).resolvedOptions().timeZone,
        'the pay page\'s browser is in the run\'s zone');
    }
    assert.deepEqual(times.map((x) => x.format), [...figures.renewals.map(() => 'date'), 'datetime'],
      `pay page instants (each renewal, expiry): ${JSON.stringify(times)}`);
    const dates = times.slice(0, -1);
    const expiry = times.at(-1);
    // the script wrote the expiry in the browser's zone ("… UTC+1", "… GMT+1"); "… UTC" (the server's) only in UTC
    assert.equal(/\sUTC$/.test(expiry.text), /^(Etc\/)?UTC$/.test(zone), `link expiry "${expiry.text}" in ${zone}`);
    const renewalRows = rows.slice(-figures.renewals.length);
    for (const [i, date] of dates.entries()) {
      const card = figures.renewals[i];
      assert.ok(spaces(renewalRows[i][0]).endsWith(spaces(date.text)), `renewal date ${date.text} in its row: ${JSON.stringify(rows)}`);
      assert.ok(spaces(card.label).endsWith(spaces(date.text)),
        `pay page renewal date "${date.text}" (${date.iso} in ${zone}) = the quote card's: "${card.label}"`);
    }
    assert.ok(dates.every((d, i) => i === 0 || dates[i - 1].iso < d.iso), `renewal dates earliest first: ${JSON.stringify(dates)}`);
    await run.shot(pay, shot);
    await pay.locator('#pay').click(); // a form POST; the answer is the page in its new state
    const state = pay.locator('#state[data-state="paid"]');
    await state.waitFor();
    assert.match(await state.innerText(), w.paid);
    assert.equal(await pay.locator('#pay').count(), 0, 'no Pay button once paid');
    assert.deepEqual((await readTimes(pay)).map((x) => x.text), dates.map((d) => d.text), 'paid page: the same renewal dates, no expiry');
    assert.deepEqual(problems, [], 'the pay page ran without a blocked resource or a script error');
    await run.shot(pay, `${shot}-paid`);
    return { rows, due, times };
  } finally {
    await pay.close();
  }
}

// The <time> elements of a page: {iso, format, text} (text as shown, after the page's script).
const readTimes = (page) => page.locator('time').evaluateAll((els) => els.map((e) => ({
  iso: e.getAttribute('datetime'), format: e.dataset.format, text: e.textContent.trim() })));

// ----------------------------------------------------------------------------- one chat of a scenario

// A person's chat in one Playground (a browser context and page of its own): timed steps,
// numbered screenshots (test-results/<suite>-<label>-NN-<step>.png), and the journey's card.
export class Run {
  constructor(scenario, { label, page, play, t = {}, lang = 'en', timezone }) {
    this.scenario = scenario; this.suite = scenario.suite; this.bot = scenario.suite.bot;
    this.label = label; this.lang = lang; this.t = t; this.page = page; this.play = play; this.timezone = timezone;
    this.n = 0; this.warnings = this.suite.warnings;
    this.pageErrors = []; // uncaught errors of the Playground page (its card renderer...)
    page.on('pageerror', (e) => this.pageErrors.push(e.message));
  }

  get step() { return this.scenario.step; }

  async do(name, fn) {
    this.scenario.step = `${this.label}: ${name}`;
    const s = Date.now();
    const out = await fn();
    log(`  ✓ ${this.label} ${name} (${secs(Date.now() - s)})`);
    return out;
  }

  async shot(target, name) {
    this.n += 1;
    return pg.screenshot(target, `${this.suite.name}-${this.label}-${String(this.n).padStart(2, '0')}-${name}`);
  }

  // The journey's card: every Action.Execute answer replaces it in place, so once a card is
  // pinned the journey follows that message whatever else the bot posts (welcome, notices).
  card() { return this.index == null ? pg.lastCard(this.page) : this.page.locator(pg.CARD).nth(this.index); }

  async pin(card) {
    this.index = await this.page.locator(pg.CARD).evaluateAll((els, el) => els.indexOf(el), await card.elementHandle());
    assert.ok(this.index >= 0, 'pinned card is in the chat');
  }

  unpin() { this.index = null; }

  // Wait for the pinned card (or, when none is pinned, the newest card) to show `text`.
  async expectCard(text, { timeout = 15000 } = {}) {
    try {
      if (this.index == null) return await pg.waitForCardText(this.page, text, { timeout });
      const card = this.card().filter({ hasText: text });
      await card.waitFor({ timeout });
      return card;
    } catch (e) {
      const now = await this.card().innerText({ timeout: 1000 }).catch(() => '(no card)');
      throw new Error(`${this.label}: expected a card with ${text instanceof RegExp ? text : JSON.stringify(text)}; `
        + `the ${this.index == null ? 'newest' : 'pinned'} card says:\n${now.replace(/\n+/g, ' | ').slice(0, 1500)}`, { cause: e });
    }
  }

  // Wait for a card with `text` that arrives as a new message (a proactive one), after the
  // `before` cards already in the chat. -> its locator
  async expectNewCard(text, before, { timeout = 15000 } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const cards = this.page.locator(pg.CARD);
      const n = await cards.count();
      for (let i = n - 1; i >= before; i--) {
        const t = await cards.nth(i).innerText().catch(() => '');
        if (text instanceof RegExp ? text.test(t) : t.includes(text)) return cards.nth(i);
      }
      if (Date.now() > deadline) {
        const texts = [];
        for (let i = before; i < n; i++) texts.push((await cards.nth(i).innerText().catch(() => '')).replace(/\n+/g, ' | ').slice(0, 300));
        throw new Error(`${this.label}: no new card with ${text instanceof RegExp ? text : JSON.stringify(text)} within `
          + `${secs(timeout)}; new cards: ${texts.length ? texts.join(' || ') : '(none)'}`);
      }
      await sleep(200);
    }
  }

  cardCount() { return this.page.locator(pg.CARD).count(); }
}

// ----------------------------------------------------------------------------- the suite

const cleanups = [];
async function cleanup() {
  while (cleanups.length) {
    const fn = cleanups.pop();
    await Promise.resolve().then(fn).catch((e) => console.error(`cleanup: ${e.message}`));
  }
}
let finishing = false;
async function abort(why, code = 1) {
  if (finishing) return;
  finishing = true;
  console.error(`\ne2e: ${why}`);
  await cleanup();
  process.exit(code);
}

// Run everything whatever fails; throw the first failure once all settled (what started is stopped).
async function settle(promises) {
  const out = await Promise.allSettled(promises);
  const bad = out.find((o) => o.status === 'rejected');
  if (bad) throw bad.reason;
  return out.map((o) => o.value);
}

// Starts the bot and Chromium, runs `body(suite)`, stops everything, reports, and exits
// (0: every scenario passed). suite: {name, bot, browser, warnings, playgrounds(map), scenario(label, fn)}.
export function runSuite(name, body) {
  const t0 = Date.now();
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => abort(`interrupted (${sig})`, 130));
  const watchdog = setTimeout(() => abort(`${name}: timed out after ${secs(WATCHDOG_MS)} (E2E_TIMEOUT_MS)`), WATCHDOG_MS);
  watchdog.unref();

  async function main() {
    fs.mkdirSync(RESULTS, { recursive: true });
    const mine = new RegExp(`^${name}-.*\\.(png|log)$`);
    for (const f of fs.readdirSync(RESULTS)) if (mine.test(f)) fs.rmSync(path.join(RESULTS, f));
    if (!fs.existsSync(PYTHON)) throw new Error(`${PYTHON} not found: run \`make setup\` first (or set E2E_PYTHON)`);

    const [bot, browser] = await settle([
      startBot(name).then((b) => { cleanups.push(() => b.stop()); return b; }),
      pg.launchBrowser({ headless: !HEADED }).then((b) => { cleanups.push(() => b.close()); return b; }),
    ]);
    log(`${name}: bot ready on ${bot.base}${BOT_DIR === pg.REPO_DIR ? '' : ` (run from ${BOT_DIR})`} (${secs(Date.now() - t0)})`);
    const results = [];
    const suite = {
      name, bot, browser, warnings: [], results,
      // {key: startPlayground options} -> {key: playground}, started in parallel
      async playgrounds(map) {
        const plays = {};
        const s = Date.now();
        await settle(Object.entries(map).map(async ([key, opts]) => {
          plays[key] = await pg.startPlayground({ botEndpoint: bot.endpoint, ...opts });
          cleanups.push(() => plays[key].stop());
        }));
        log(`${name}: Playground(s) ready: ${Object.keys(plays).map((k) => `${k} ${plays[k].url}`).join(', ')} `
          + `(${secs(Date.now() - s)})`);
        return plays;
      },
      // A scenario: its chats (sc.chat) are closed at its end; a failure is recorded, not thrown.
      async scenario(label, fn) {
        const s = Date.now();
        const runs = [];
        const pageErrors = [];
        const sc = {
          suite, step: '(start)', runs,
          // Open the Playground's chat in a new browser context -> Run. The context has the
          // Playground's time zone (the one its activities tell the bot): the person's browser and
          // Teams agree, as they do for a real user, so pages opened from a card (the sandbox
          // payment page) show times in the zone the cards use.
          async chat(play, { label: who, t, lang = 'en', open = true } = {}) {
            const context = await pg.newChatContext(browser, { locale: lang === 'fr' ? 'fr-FR' : 'en-US', timezoneId: play.timezone });
            const page = await context.newPage();
            page.on('pageerror', (e) => pageErrors.push(`${who}: ${e.message}`));
            const run = new Run(sc, { label: who, page, play, t, lang, timezone: play.timezone });
            runs.push(run);
            if (open) await run.do(`open the chat (${play.url})`, () => pg.gotoChat(page, play.url));
            return run;
          },
        };
        log(`\n${name} / ${label}`);
        try {
          await fn(sc);
          results.push({ label, ok: true, ms: Date.now() - s });
        } catch (error) {
          const shots = [];
          const cards = [];
          for (const run of runs) {
            shots.push(await pg.screenshot(run.page, `${name}-${run.label}-FAILED`).catch(() => null));
            const info = await pg.cardInfo(run.card()).catch(() => ({}));
            cards.push(`${run.label}: newest card activity ${info.activityId ?? '?'}`);
          }
          results.push({ label, ok: false, ms: Date.now() - s, step: sc.step, error, shots: shots.filter(Boolean), cards, pageErrors });
          log(`  ✗ ${sc.step}`);
        } finally {
          for (const run of runs) await run.page.context().close().catch(() => {});
        }
      },
    };

    await body(suite);

    await cleanup(); // stops the bot: its log is complete now
    const botLog = fs.readFileSync(bot.copy, 'utf8');
    const errors = botLog.split('\n').filter((l) => /\b(ERROR|CRITICAL)\b/.test(l));
    const failed = results.filter((x) => !x.ok);
    for (const f of failed) {
      log(`\nFAILED: ${name} / ${f.label}, step "${f.step}" (${f.cards.join('; ')})`);
      log(`  ${String(f.error?.stack || f.error).replace(/\n/g, '\n  ')}`);
      if (f.pageErrors.length) log(`  errors in the Playground page: ${f.pageErrors.join(' | ')}`);
      for (const shot of f.shots) log(`  screenshot: ${path.relative(pg.REPO_DIR, shot)}`);
    }
    if (failed.length) {
      const tail = botLog.split('\n').filter((l) => !l.includes('alembic.runtime.plugins')).slice(-150).join('\n');
      log(`\n---- bot log (last 150 lines; whole: ${path.relative(pg.REPO_DIR, bot.copy)}) ----\n${tail}\n---- end of bot log ----`);
    } else if (errors.length) {
      suite.warnings.push(`the bot logged ${errors.length} ERROR line(s) (${path.relative(pg.REPO_DIR, bot.copy)}):\n    `
        + errors.join('\n    '));
    }
    for (const w of suite.warnings) log(`warning: ${w}`);
    const shots = fs.readdirSync(RESULTS).filter((f) => f.startsWith(`${name}-`) && f.endsWith('.png')).length;
    log(`\n${name}: ${results.map((x) => `${x.label} ${x.ok ? 'ok' : 'FAILED'} ${secs(x.ms)}`).join(', ')}; `
      + `${shots} screenshots in test-results/${name}-*; total ${secs(Date.now() - t0)}`);
    log(`e2e ${name}: ${results.length - failed.length} passed, ${failed.length} failed`);
    return failed.length || !results.length ? 1 : 0;
  }

  main().then((code) => { finishing = true; process.exit(code); }, async (e) => {
    await abort(`${name}: could not run the journeys: ${e?.stack || e}`);
  });
}
