// Driver for the Microsoft 365 Agents Playground (Teams emulator) from Playwright.
// Only depends on node: built-ins and playwright-core. Facts behind the selectors: e2e/NOTES.md.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const E2E_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO_DIR = path.dirname(E2E_DIR);
export const DEFAULT_CONFIG = path.join(E2E_DIR, '.m365agentsplayground.yml');
const BIN = path.join(REPO_DIR, 'node_modules', '.bin', 'agentsplayground');

// Root element of every rendered Adaptive Card (nested ShowCard cards are not matched).
export const CARD = '.ac-preview-panel > .ac-adaptiveCard';
const BOT_MESSAGE = '.fai-OutputCard'; // every bot message bubble, cards included
const EDITOR = '[data-lexical-editor="true"][role="textbox"]';
const q = (s) => JSON.stringify(String(s)); // quote a string inside a selector
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A free loopback TCP port (bind to 0, close).
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

// Copy of the config file where `who` (name, aadObjectId, e-mail or user id of one of its 5 users)
// becomes currentUser and the current user takes that slot; the personal chat id gets a per-user
// suffix, as each Teams user has their own 1:1 chat. Only for files laid out like e2e/.m365agentsplayground.yml.
export function configForUser(configFile, who) {
  const lines = fs.readFileSync(configFile, 'utf8').split('\n');
  const cur = lines.findIndex((l) => l.startsWith('currentUser:'));
  const usr = lines.findIndex((l) => l.startsWith('users:'));
  const endOf = (i) => { let j = i + 1; while (j < lines.length && /^\s/.test(lines[j])) j++; return j; };
  const curFields = lines.slice(cur + 1, endOf(cur)).map((l) => l.trim()).filter(Boolean);
  const users = []; // each: array of "key: value"
  for (const l of lines.slice(usr + 1, endOf(usr))) {
    if (l.trim().startsWith('- ')) users.push([l.trim().slice(2)]);
    else if (l.trim()) users[users.length - 1].push(l.trim());
  }
  const idx = users.findIndex((u) => u.some((f) => f.split(': ')[1]?.replace(/^"|"$/g, '') === who));
  if (idx < 0) throw new Error(`configForUser: no user ${who} in ${configFile}`);
  const target = users[idx];
  users[idx] = curFields;
  const userId = target.find((f) => f.startsWith('id: ')).slice(4);
  const out = [
    ...lines.slice(0, cur), 'currentUser:', ...target.map((f) => `  ${f}`),
    'users:', ...users.flatMap((u) => u.map((f, i) => (i ? `    ${f}` : `  - ${f}`))),
    ...lines.slice(endOf(usr)),
  ].join('\n').replace(/^(personalChat:\n\s+id: )(.*)$/m, `$1$2-${userId}`);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pg-cfg-')), '.m365agentsplayground.yml');
  fs.writeFileSync(file, out);
  return file;
}

// Loopback HTTP proxy to the bot that rewrites `locale` (and clientInfo locale/country) of every
// activity: the Playground hard-codes en-US. -> {port, url, stop()}
export async function startLocaleProxy({ target, locale, port = 0 }) {
  const country = locale.split('-')[1];
  const server = http.createServer(async (req, res) => {
    try {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      let body = Buffer.concat(chunks);
      if (body.length && String(req.headers['content-type']).includes('json')) {
        const act = JSON.parse(body);
        if (act && act.type) {
          if ('locale' in act) act.locale = locale; // conversationUpdate has none, as in Teams
          for (const e of act.entities || []) {
            if (e.type === 'clientInfo') { e.locale = locale; if (country && e.country) e.country = country; }
          }
          body = Buffer.from(JSON.stringify(act));
        }
      }
      const headers = { ...req.headers };
      for (const h of ['host', 'connection', 'keep-alive', 'transfer-encoding', 'content-length']) delete headers[h];
      const r = await fetch(target, { method: req.method, headers, body: ['GET', 'HEAD'].includes(req.method) ? undefined : body });
      const out = Buffer.from(await r.arrayBuffer());
      res.writeHead(r.status, { 'content-type': r.headers.get('content-type') || 'application/json' });
      res.end(out);
    } catch (err) {
      res.writeHead(502); res.end(String(err));
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const p = server.address().port;
  return { port: p, url: `http://127.0.0.1:${p}/api/messages`, stop: () => new Promise((r) => { server.close(r); server.closeAllConnections(); }) };
}

// Spawn the local Playground offline (own process group). Resolves when it listens.
// port: wanted port (default: a free one; a busy explicit port is an error, not silently replaced).
// configFile: YAML config (default e2e/.m365agentsplayground.yml), passed via M365_AGENTS_PLAYGROUND_CONFIG_PATH.
// currentUser: act as another user of the config (see configForUser).
// locale: e.g. 'fr-FR' -> a locale-rewriting proxy sits between the Playground and the bot.
// timezone: IANA zone for localTimezone/clientInfo.timezone (TZ of the Playground process).
// -> {port, url, serviceUrl, configFile, proxy, logs(), stop()}
export async function startPlayground({
  port, botEndpoint = 'http://127.0.0.1:3978/api/messages', configFile = DEFAULT_CONFIG, cwd,
  currentUser, locale, timezone, timeoutMs = 30000,
} = {}) {
  configFile = path.resolve(configFile);
  if (!fs.existsSync(configFile)) throw new Error(`Playground config not found: ${configFile}`); // it would silently use its default
  const derived = currentUser ? configForUser(configFile, currentUser) : null;
  if (derived) configFile = derived;
  const proxy = locale ? await startLocaleProxy({ target: botEndpoint, locale }) : null;
  const endpoint = proxy ? proxy.url : botEndpoint;
  const explicit = port != null;
  for (let attempt = 1; ; attempt++) {
    const want = explicit ? port : await freePort();
    const workDir = cwd || fs.mkdtempSync(path.join(os.tmpdir(), 'pg-run-')); // it writes devTools/ logs there
    let out = '';
    const child = spawn(BIN, ['start', '-p', String(want), '-e', endpoint,
      '--service-url', `http://127.0.0.1:${want}/_connector`, '--disable-telemetry'], {
      cwd: workDir, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env, TEAMSAPPTESTER_BROWSER: 'none', APPLICATION_INSIGHTS_NO_STATSBEAT: 'true',
        M365_AGENTS_PLAYGROUND_CONFIG_PATH: configFile,
        M365_AGENTS_PLAYGROUND_LOGFILE: path.join(workDir, 'playground-internal.log'),
        ...(timezone ? { TZ: timezone } : {}),
      },
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    const stop = async () => {
      try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ }
      const t = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }, 3000);
      await exited; clearTimeout(t);
      child.stdout.destroy(); child.stderr.destroy();
      if (!cwd) fs.rmSync(workDir, { recursive: true, force: true });
    };
    const got = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      const onData = (d) => {
        out += d;
        const m = /Listening on (\d+)/.exec(out);
        if (m) { clearTimeout(timer); resolve(Number(m[1])); }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      exited.then(() => { clearTimeout(timer); resolve(null); });
    });
    // A bad config file is only reported ~0.3 s after "Listening on" (then it exits 1): give it 1.5 s.
    const internalLog = () => { try { return fs.readFileSync(path.join(workDir, 'playground-internal.log'), 'utf8'); } catch { return ''; } };
    if (got === want && await Promise.race([exited.then(() => false), sleep(1500).then(() => true)])) {
      const url = `http://127.0.0.1:${got}/`;
      const res = await fetch(url).catch(() => null);
      if (res?.ok) {
        return {
          port: got, url, serviceUrl: `http://127.0.0.1:${got}/_connector`, configFile, proxy,
          // what its activities say (localTimezone, clientInfo): a browser context of the same run uses it too
          locale: locale || 'en-US', timezone: timezone || Intl.DateTimeFormat().resolvedOptions().timeZone,
          logs: () => out,
          stop: async () => {
            await stop(); await proxy?.stop();
            if (derived) fs.rmSync(path.dirname(derived), { recursive: true, force: true });
          },
        };
      }
    }
    const why = `${out}\n${internalLog().split('\n').filter((l) => l.startsWith('error')).join('\n')}`;
    await stop();
    const fatal = got == null || got === want ? `Playground did not start:\n${why}`
      : explicit || attempt >= 3 ? `Playground port ${want} busy (it chose ${got})` : null;
    if (fatal) { await proxy?.stop(); throw new Error(fatal); }
  }
}

// Debian's Chromium (or CHROMIUM_PATH), headless by default.
export async function launchBrowser({ headless = true } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium', headless,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-dev-shm-usage'],
  });
}

// A browser context set up for the Playground: every non-loopback request aborted (the UI asks a
// CDN for fonts) and window.open recorded instead of opening popups (see openUrlOf). One context
// per Playground/scenario lets a single browser serve several runs. `timezoneId` (IANA): the
// browser's zone (pages opened from the chat, like the sandbox payment page, show times in it);
// default: this machine's.
export async function newChatContext(browser, { locale = 'en-US', timezoneId, viewport = { width: 1400, height: 1000 } } = {}) {
  const context = await browser.newContext({ viewport, locale, ...(timezoneId ? { timezoneId } : {}) });
  await context.route('**/*', (route) => {
    const { protocol, hostname } = new URL(route.request().url());
    const local = ['127.0.0.1', 'localhost', '[::1]'].includes(hostname) || ['data:', 'blob:'].includes(protocol);
    return local ? route.continue() : route.abort();
  });
  await context.addInitScript(() => { // see openUrlOf
    window.__e2eOpened = [];
    window.open = (url) => { window.__e2eOpened.push(String(url)); return null; };
  });
  return context;
}

// Chromium with one chat context and page (launchBrowser + newChatContext). -> {browser, context, page}
export async function openBrowser({ headless = true, locale = 'en-US', viewport = { width: 1400, height: 1000 } } = {}) {
  const browser = await launchBrowser({ headless });
  const context = await newChatContext(browser, { locale, viewport });
  const page = await context.newPage();
  return { browser, context, page };
}

// Open the Playground UI and wait until the personal chat is ready (installationUpdate and
// conversationUpdate delivered to the bot, compose box visible). NB: every load re-sends both.
export async function gotoChat(page, url, { timeout = 30000 } = {}) {
  const installed = page.waitForResponse((r) => /\/installation$/.test(r.url()), { timeout });
  await page.goto(url, { timeout });
  await installed;
  await page.locator(EDITOR).waitFor({ timeout });
}

// Type `text` in the compose box and send it; resolves once the Playground accepted it.
export async function sendMessage(page, text, { timeout = 15000 } = {}) {
  const editor = page.locator(EDITOR);
  await editor.click({ timeout });
  await page.keyboard.insertText(text);
  const sent = page.waitForResponse((r) => /\/messages$/.test(r.url()) && r.request().method() === 'POST', { timeout });
  await page.keyboard.press('Enter');
  const res = await sent;
  if (!res.ok()) throw new Error(`sendMessage: Playground answered ${res.status()}`);
}

// Wait for the newest card whose rendered text contains `text` (string or RegExp); returns its locator.
export async function waitForCardText(page, text, { timeout = 15000 } = {}) {
  const card = page.locator(CARD).filter({ hasText: text }).last();
  await card.waitFor({ timeout });
  return card;
}

// Locator of the newest card in the chat.
export function lastCard(page) {
  return page.locator(CARD).last();
}

// Wait for the newest bot message (text bubble or card) containing `text`; returns its locator.
// (page.getByText also matches the chat list preview and the log panel.)
export async function waitForBotMessage(page, text, { timeout = 15000 } = {}) {
  const msg = page.locator(BOT_MESSAGE).filter({ hasText: text }).last();
  await msg.waitFor({ timeout });
  return msg;
}

// Click the card action (Action.Execute/Submit/ShowCard/...) whose title is `title`.
// For Execute/Submit it resolves once the Playground answered the invoke/submit request.
export async function clickAction(card, title, { timeout = 15000 } = {}) {
  const page = card.page();
  const btn = card.locator(`.ac-actionSet button[aria-label=${q(title)}]`).last();
  await btn.waitFor({ timeout });
  // OpenUrl buttons have role=link, ShowCard ones aria-expanded: no request to wait for.
  const local = (await btn.getAttribute('role')) === 'link' || (await btn.getAttribute('aria-expanded')) !== null;
  const done = local ? null
    : page.waitForResponse((r) => /\/_conversation\/v1\/(invoke|submit)$/.test(r.url()), { timeout });
  await btn.click({ timeout });
  const res = done && await done;
  if (res && !res.ok()) throw new Error(`clickAction(${title}): Playground answered ${res.status()}`);
}

// Mark each input container of the card with data-input-id = the Adaptive Card input id
// (read from the renderer's React props; the DOM ids are random).
async function tagInputIds(card) {
  await card.evaluate((root) => {
    for (const el of root.querySelectorAll('.ac-input-container')) {
      const key = Object.keys(el).find((k) => k.startsWith('__reactFiber'));
      for (let f = key && el[key], i = 0; f && i < 8; f = f.return, i++) {
        const id = f.memoizedProps?.cardObject?.id;
        if (typeof id === 'string') { el.setAttribute('data-input-id', id); break; }
      }
    }
  });
}

// The input container for an input id, a label or a placeholder (in that order of preference).
async function inputContainer(card, key) {
  await tagInputIds(card);
  const byId = card.locator(`.ac-input-container[data-input-id=${q(key)}]`);
  if (await byId.count()) return byId.first();
  const label = card.locator('label.ac-richTextBlock').filter({ hasText: new RegExp(`^\\s*${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*\\*?\\s*$`) });
  if (await label.count()) return label.first().locator('xpath=following-sibling::div[contains(@class,"ac-input-container")]').first();
  const byPh = card.locator('.ac-input-container').filter({ has: card.page().locator(`[placeholder=${q(key)}]`) });
  if (await byPh.count()) return byPh.first();
  throw new Error(`No input ${key} in card`);
}

// Fill an Input.Text/Number/Date/Time (textarea too) found by input id, label or placeholder.
// Dates as the UI types them: YYYY-MM-DD.
export async function fillInput(card, key, value) {
  const box = await inputContainer(card, key);
  const input = box.locator('input, textarea').first();
  await input.fill(String(value));
  await input.press('Tab'); // commit (spin buttons and date pickers take the value on blur)
}

// Tick/untick a checkbox of an expanded multi-select ChoiceSet or an Input.Toggle, or pick a radio
// of an expanded single-select ChoiceSet, by its visible title. `on` undefined = toggle.
export async function toggleChoice(card, choiceTitle, on) {
  const input = card.locator(`.fui-Checkbox:has(> label:text-is(${q(choiceTitle)})) > input, .fui-Radio:has(> label:text-is(${q(choiceTitle)})) > input`).first();
  await input.waitFor();
  if ((await input.getAttribute('type')) === 'radio' || on === true) return input.check();
  if (on === false) return input.uncheck();
  return input.click();
}

// Choose `choiceTitle` in a compact ChoiceSet (Fluent combobox; the options list is rendered
// outside the card). `input`: id/label of the ChoiceSet; else the one offering that choice.
// For multi-select compact sets, call once per choice.
export async function selectDropdown(card, choiceTitle, { input } = {}) {
  const page = card.page();
  const boxes = input ? [(await inputContainer(card, input)).locator('input[role=combobox]')]
    : await card.locator('.fui-Combobox input[role=combobox]').all();
  for (const box of boxes) {
    await box.click();
    await page.waitForFunction((el) => el.getAttribute('aria-controls'), await box.elementHandle());
    // single-select: role=listbox/option; multi-select: role=menu/menuitemcheckbox
    const list = page.locator(`#${await box.getAttribute('aria-controls')}`);
    await list.waitFor();
    const option = list.locator(`.fui-Option:text-is(${q(choiceTitle)})`);
    if (await option.count()) {
      await option.click();
      if (await list.isVisible()) await page.keyboard.press('Escape'); // multi-select stays open
      await list.waitFor({ state: 'hidden' });
      return;
    }
    await page.keyboard.press('Escape');
    await list.waitFor({ state: 'hidden' });
  }
  throw new Error(`No dropdown offers ${choiceTitle}`);
}

// URL an Action.OpenUrl would open. openBrowser() replaces window.open by a recorder, so no popup
// opens (a real popup leaves the chat page throttled: every later click takes ~2 s more).
export async function openUrlOf(card, title, { timeout = 5000 } = {}) {
  const page = card.page();
  const btn = card.locator(`.ac-actionSet button[aria-label=${q(title)}]`).last();
  const before = await page.evaluate(() => (window.__e2eOpened || []).length);
  await btn.click();
  try {
    const h = await page.waitForFunction((n) => (window.__e2eOpened || []).length > n && window.__e2eOpened.at(-1),
      before, { timeout });
    return await h.jsonValue();
  } catch {
    return btn.getAttribute('title'); // the renderer also puts the url in the button's title
  }
}

// Titles of the card's action buttons (card actions and ActionSets), in DOM order.
export async function actionTitles(card) {
  return card.locator('.ac-actionSet button').evaluateAll((bs) => bs.map((b) => b.getAttribute('aria-label')));
}

// Titles of the checkboxes/radios of the card's expanded ChoiceSets and Toggles, in DOM order,
// with their state: [{title, checked}].
export async function choiceTitles(card) {
  return card.locator('.fui-Checkbox > input, .fui-Radio > input').evaluateAll((ins) => ins.map((i) => ({
    title: i.getAttribute('aria-label') || i.parentElement.querySelector('label')?.innerText.trim() || '',
    checked: i.checked,
  })));
}

// The option titles a compact ChoiceSet offers (opens it, reads, closes it). `input`: id/label of
// the ChoiceSet; default: the card's first dropdown.
export async function dropdownOptions(card, { input } = {}) {
  const page = card.page();
  const box = input ? (await inputContainer(card, input)).locator('input[role=combobox]')
    : card.locator('.fui-Combobox input[role=combobox]').first();
  await box.click();
  await page.waitForFunction((el) => el.getAttribute('aria-controls'), await box.elementHandle());
  const list = page.locator(`#${await box.getAttribute('aria-controls')}`);
  await list.waitFor();
  const titles = (await list.locator('.fui-Option').allInnerTexts()).map((t) => t.trim());
  await page.keyboard.press('Escape');
  await list.waitFor({ state: 'hidden' });
  return titles;
}

// The card's ColumnSets as rows: [{cells: [text of each column], row: Locator, cell(i): Locator}],
// in DOM order (nested ColumnSets are listed too). A cell's text is its lines, trimmed, joined by \n.
// E.g. the row whose first column says "Eco" then "monthly ...", and the button in its third column.
export async function cardRows(card) {
  const rows = await card.evaluate((root) => {
    const isColumn = (el) => el.classList?.contains('ac-container') && el.hasAttribute('dir');
    const sets = [...root.querySelectorAll('.ac-container')].filter((el) => !el.hasAttribute('dir')
      && el.firstElementChild && [...el.firstElementChild.children].some(isColumn)
      && [...el.firstElementChild.children].every((c) => isColumn(c) || c.classList.contains('ac-vertical-separator')));
    const tag = `${Date.now()}${Math.random().toString(36).slice(2, 8)}`;
    return sets.map((set, i) => {
      set.setAttribute('data-e2e-row', `${tag}-${i}`);
      const cols = [...set.firstElementChild.children].filter(isColumn);
      cols.forEach((c, j) => c.setAttribute('data-e2e-cell', String(j)));
      const text = (el) => el.innerText.split('\n').map((l) => l.trim()).filter(Boolean).join('\n');
      return { id: `${tag}-${i}`, cells: cols.map(text) };
    });
  });
  return rows.map(({ id, cells }) => {
    const row = card.locator(`[data-e2e-row=${q(id)}]`);
    return { cells, row, cell: (i) => row.locator(`:scope > div > [data-e2e-cell="${i}"]`) };
  });
}

// The card's Adaptive Card JSON and the Playground's activity id of its message (used as
// replyToId by invokes/submits), read from the renderer's React props.
export async function cardInfo(card) {
  return card.evaluate((root) => {
    const key = Object.keys(root).find((k) => k.startsWith('__reactFiber'));
    let payload; let activityId;
    for (let f = root[key], i = 0; f && i < 15; f = f.return, i++) {
      const p = f.memoizedProps || {};
      if (payload === undefined && p.payload) payload = p.payload;
      if (p.message?.id) { activityId = p.message.id; break; }
    }
    return { payload, activityId };
  });
}

// Save a PNG of the page (or of a locator) as <repo>/test-results/<name>.png; returns the path.
export async function screenshot(pageOrLocator, name) {
  const file = path.join(REPO_DIR, 'test-results', `${name}.png`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await pageOrLocator.screenshot({ path: file });
  return file;
}
