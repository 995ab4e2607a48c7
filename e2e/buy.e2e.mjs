#!/usr/bin/env node
// End-to-end: the buy journey, as an administrator (Alex Wilber) does it, in the Microsoft 365
// Agents Playground against the real bot (`app.py serve --demo`, fresh SQLite DB), in English then French.
//
//   node e2e/buy.e2e.mjs        (`make e2e` runs it with the other journeys)
//   E2E_ONLY=en|fr  one language;  E2E_HEADED=1  show the browser;  E2E_BOT_DIR  run app.py from another checkout
//
// English: `licenses` (counts before) -> `buy` -> catalog and empty cart -> add 3 × API Pro yearly,
// 2 × Eco monthly, 1 × Pro monthly -> remove the Pro line -> Checkout -> purchase quote (in place; its
// lines = the cart's) -> the sandbox pay page (due = the card's) -> Pay -> the quote becomes the paid
// summary in place (else Refresh) + the "Licenses added" notice -> License pools: bought +3 / +2.
// French: `licences` -> "Acheter des licences" on the pools card -> 2 × API Advanced monthly and
// 1 × Advanced yearly (a pool the account does not have yet) -> remove API Advanced -> Commander ->
// pay -> Payé -> "Licences ajoutées" -> Lots de licences: a new Advanced yearly pool of 1.
// Screenshots: test-results/buy-<lang>-NN-<step>.png; the bot's log: test-results/buy-bot.log.
import assert from 'node:assert/strict';
import * as pg from './playground.mjs';
import {
  amountLinesOf, botQuery, cardText, cents, checkFigures, fact, figuresOf, payOnSandbox, percentOf, PLACES, readAmountLines,
  readPools, runSuite, secs, sleep, spaces, waitUntil,
} from './harness.mjs';

const ONLY = process.env.E2E_ONLY || '';
const PAID_UPDATE_MS = 10000; // the bot's notifier PUTs the paid card; after this, click Refresh
const STAY_MS = 3000; // after the notifier handled a card update: a card its reader moved on from stays as it is
const DISCOUNT_PCT = 15; // the demo account's partner discount

const L = {
  en: {
    pools: 'licenses', buy: 'buy',
    poolsTitle: 'License pools of Contoso', header: ['Plan', 'Bought', 'Assigned', 'Free', 'Renews'],
    interval: { month: 'monthly', year: 'yearly' },
    title: 'Buy licenses', catalog: 'Plans and prices per seat', catalogHeader: ['Plan', 'Monthly', 'Yearly'],
    family: (f) => `${f} family`, families: { standard: 'Standard', api: 'API' },
    perMonth: (p) => `${p} / month`, perYear: (p) => `${p} / year`,
    addTitle: 'Add to the cart', planLabel: 'Plan', billingLabel: 'Billing', qtyLabel: 'Number of seats (1 to 10,000)',
    planChoice: (plan, family) => `${plan} (${family})`, billing: { month: 'Monthly', year: 'Yearly' },
    cart: 'Your cart', cartEmpty: 'Your cart is empty: choose a plan, the billing and the number of seats, then Add.',
    add: 'Add', remove: 'Remove', checkout: 'Checkout', poolsButton: 'License pools', cancel: 'Cancel',
    line: (n, plan, iv) => `${n} × ${plan} (${iv})`,
    prorated: /^For the rest of the current period, until (.+); then (.+) per (month|year)$/,
    unit: { month: 'month', year: 'year' },
    discount: /^Discount \((\d+)%\): Partner discount$/, due: 'Due now',
    carried: 'Added to your next invoice (below the minimum card payment)', renewal: /^Then at the next billing cycle, /,
    hint: 'Amounts are prorated to the current billing period and include your discount. Nothing is charged until you pay the quote.',
    quoteTitle: 'Purchase quote', preparedBy: 'Prepared by', period: /^(.+) → (.+)$/,
    payHint: 'Pay through the secure link; the licenses are added as soon as the payment is received.',
    pay: (amount) => `Pay ${amount}`, refresh: 'Refresh', back: 'Back',
    paidTitle: 'Paid', paidBody: 'The licenses are added to your pools.',
    amountPaid: 'Amount paid', paidOn: 'Paid on', paidBy: 'Paid by', reference: 'Payment reference',
    paidVia: (name) => `Through the payment link of the quote prepared by ${name}`,
    noticeTitle: 'Licenses added',
    noticeBody: (amount) => `Your payment of ${amount} was received. These licenses are in your pools now:`,
  },
  fr: {
    pools: 'licences',
    poolsTitle: 'Lots de licences de Contoso', header: ['Offre', 'Achetées', 'Attribuées', 'Libres', 'Renouvellement'],
    buyButton: 'Acheter des licences',
    interval: { month: 'mensuel', year: 'annuel' },
    title: 'Acheter des licences', catalog: 'Offres et prix par licence', catalogHeader: ['Offre', 'Mensuel', 'Annuel'],
    family: (f) => `Famille ${f}`, families: { standard: 'Standard', api: 'API' },
    perMonth: (p) => `${p} / mois`, perYear: (p) => `${p} / an`,
    addTitle: 'Ajouter au panier', planLabel: 'Offre', billingLabel: 'Facturation', qtyLabel: 'Nombre de licences (1 à 10 000)',
    planChoice: (plan, family) => `${plan} (${family})`, billing: { month: 'Mensuelle', year: 'Annuelle' },
    cart: 'Votre panier',
    cartEmpty: 'Votre panier est vide : choisissez une offre, la facturation et le nombre de licences, puis Ajouter.',
    add: 'Ajouter', remove: 'Retirer', checkout: 'Commander', poolsButton: 'Lots de licences', cancel: 'Annuler',
    line: (n, plan, iv) => `${n} × ${plan} (${iv})`,
    prorated: /^Pour le reste de la période en cours, jusqu'au (.+) ; ensuite (.+) par (mois|an)$/,
    unit: { month: 'mois', year: 'an' },
    discount: /^Remise \((\d+)\u00a0%\)\u00a0: Partner discount$/, due: 'À payer maintenant',
    carried: 'Ajouté à votre prochaine facture (sous le paiement par carte minimal)',
    renewal: /^Puis au prochain cycle de facturation, le /,
    hint: 'Les montants sont calculés au prorata de la période de facturation en cours et tiennent compte de votre remise. Rien n\'est facturé avant le paiement du devis.',
    quoteTitle: "Devis d'achat", preparedBy: 'Préparé par', period: /^(.+) → (.+)$/,
    payHint: 'Payez par le lien sécurisé ; les licences sont ajoutées dès réception du paiement.',
    pay: (amount) => `Payer ${amount}`, refresh: 'Actualiser', back: 'Retour',
    paidTitle: 'Payé', paidBody: 'Les licences sont ajoutées à vos lots.',
    amountPaid: 'Montant payé', paidOn: 'Payé le', paidBy: 'Payé par', reference: 'Référence du paiement',
    paidVia: (name) => `Par le lien de paiement du devis préparé par ${name}`,
    noticeTitle: 'Licences ajoutées',
    noticeBody: (amount) => `Votre paiement de ${amount} a été reçu. Ces licences sont maintenant dans vos lots :`,
  },
};

// ----------------------------------------------------------------------------- reading the buy card

// Catalog rows (3 cells: plan, "$x / month", "$y / year") -> {name: {month, year}} in cents.
async function readCatalog(card, t) {
  const rows = await pg.cardRows(card);
  const i = rows.findIndex((r) => r.cells.join('|') === t.catalogHeader.join('|'));
  assert.ok(i >= 0, `catalog header ${t.catalogHeader}: ${JSON.stringify(rows.map((r) => r.cells))}`);
  const prices = {};
  for (const r of rows.slice(i + 1)) {
    if (r.cells.length !== 3 || r.cells[2] === t.remove) break;
    const [name, m, y] = r.cells;
    assert.equal(spaces(m), spaces(t.perMonth(m.replace(/ \/ .*$/, ''))), `monthly price cell of ${name}`);
    assert.equal(spaces(y), spaces(t.perYear(y.replace(/ \/ .*$/, ''))), `yearly price cell of ${name}`);
    prices[name] = { month: cents(m), year: cents(y) };
  }
  return prices;
}

// Cart lines (rows of 3 cells whose 3rd is the Remove button: the line, its own discount under it,
// its detail | its gross, the discount under it) and the totals below them (carried, Due now, renewals).
async function readCart(card, t) {
  const rows = await pg.cardRows(card);
  const lines = rows.filter((r) => r.cells.length === 3 && r.cells[2] === t.remove).map((r) => {
    const left = r.cells[0].split('\n');
    const right = r.cells[1].split('\n');
    const label = left[0];
    const detail = left.at(-1);
    let discount = null;
    if (left.length === 3) {
      const m = t.discount.exec(left[1]);
      assert.ok(m && right.length === 2, `cart line ${label}: its discount under it: ${JSON.stringify(r.cells)}`);
      discount = { label: left[1], text: right[1], cents: cents(right[1]), pct: m[1] };
    } else {
      assert.ok(left.length === 2 && right.length === 1, `cart line ${label}: ${JSON.stringify(r.cells)}`);
    }
    return { label, detail, text: right[0], cents: cents(right[0]), discount, row: r };
  });
  return { lines, totals: amountLinesOf(rows) };
}

const near = (a, b, tol, what) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (±${tol} cents)`);

// ----------------------------------------------------------------------------- the journey

// `lines`: [{plan, family, interval, qty}] added in that order; `removeIndex`: the line then removed.
async function buyJourney(run, { lines, removeIndex, viaButton }) {
  const { page, t } = run;
  const r = {};
  const iv = (l) => t.interval[l.interval];

  await run.do('pools card (before)', async () => {
    await pg.sendMessage(page, t.pools);
    const card = await run.expectCard(t.poolsTitle);
    const { header, pools } = await readPools(card);
    assert.deepEqual(header, t.header, 'pools card header');
    r.before = {}; // "Eco|monthly" -> the row's cells (a plan bought for the first time has no pool yet)
    for (const p of pools) r.before[`${p.plan}|${p.sub.split(' · ')[0]}`] = p.cells;
    if (viaButton) await run.pin(card);
    await run.shot(card, 'pools-before');
    r.cards = await run.cardCount();
  });

  await run.do('buy card: catalog, form, empty cart', async () => {
    let card;
    if (viaButton) {
      await pg.clickAction(run.card(), t.buyButton);
      card = await run.expectCard(t.cart);
    } else {
      await pg.sendMessage(page, t.buy);
      card = await run.expectNewCard(t.cart, r.cards);
      await run.pin(card);
    }
    const text = await cardText(card);
    assert.equal(text.split('\n')[0], t.title, 'buy card title');
    for (const s of [t.catalog, t.family(t.families.standard), t.family(t.families.api), t.addTitle, t.cart]) {
      assert.ok(text.includes(s), `buy card shows "${s}":\n${text}`);
    }
    assert.ok(spaces(text).includes(spaces(t.cartEmpty)), `empty cart text:\n${text}`);
    r.prices = await readCatalog(card, t);
    assert.deepEqual(Object.keys(r.prices), ['Eco', 'Advanced', 'Pro', 'API Advanced', 'API Pro'], 'catalog plans');
    assert.equal(r.prices.Eco.month, 800, 'Eco monthly price');
    assert.equal(r.prices['API Pro'].year, 99000, 'API Pro yearly price');
    const plans = await pg.dropdownOptions(card, { input: 'plan' });
    assert.deepEqual(plans, [['Eco', 'standard'], ['Advanced', 'standard'], ['Pro', 'standard'], ['API Advanced', 'api'],
      ['API Pro', 'api']].map(([p, f]) => t.planChoice(p, t.families[f])), 'plan choices');
    assert.deepEqual(await pg.dropdownOptions(card, { input: 'interval' }), [t.billing.month, t.billing.year], 'billing choices');
    assert.equal(await card.locator('input[role=spinbutton]').inputValue(), '1', 'quantity defaults to 1');
    assert.ok(text.includes(t.qtyLabel), `quantity label "${t.qtyLabel}"`);
    assert.deepEqual(await pg.actionTitles(card), [t.add, t.poolsButton, t.cancel], 'buy card buttons (empty cart)');
    await run.shot(card, 'buy');
    r.activityId = (await pg.cardInfo(card)).activityId;
  });

  const added = []; // the cart's lines as the card shows them, in order
  for (const l of lines) {
    await run.do(`add ${l.qty} × ${l.plan} ${l.interval}ly`, async () => {
      let card = run.card();
      const planChoice = t.planChoice(l.plan, t.families[l.family]);
      await pg.selectDropdown(card, planChoice, { input: 'plan' });
      await pg.selectDropdown(card, t.billing[l.interval], { input: 'interval' });
      await pg.fillInput(card, 'qty', l.qty);
      await pg.clickAction(card, t.add);
      const label = t.line(l.qty, l.plan, iv(l));
      card = await run.expectCard(label);
      const { lines: got, totals } = await readCart(card, t);
      assert.deepEqual(got.map((x) => x.label), [...added.map((x) => x.label), label], 'cart lines after Add');
      const line = got.at(-1);
      // "For the rest of the current period, until <date>; then <n × price less the discount> per <unit>"
      const m = t.prorated.exec(spaces(line.detail));
      assert.ok(m, `line detail: ${JSON.stringify(line.detail)}`);
      const full = l.qty * r.prices[l.plan][l.interval];
      assert.equal(cents(m[2]), full - percentOf(full, DISCOUNT_PCT), `renewal of ${label} = n × price less ${DISCOUNT_PCT} %`);
      assert.equal(m[3], t.unit[l.interval], 'renewal unit');
      assert.ok(line.cents > 0 && line.cents <= full, `prorated ${label}: 0 < ${line.cents} <= ${full}`);
      assert.ok(line.discount, `${label} has its discount`);
      for (const [i, prev] of added.entries()) near(got[i].cents, prev.cents, 1, `${prev.label} unchanged by the Add`);
      checkTotals(t, got, totals);
      // the form keeps the plan and billing just added; the quantity is back to 1
      const combos = card.locator('.fui-Combobox input[role=combobox]');
      assert.equal(await combos.nth(0).inputValue(), planChoice, 'plan kept after Add');
      assert.equal(await combos.nth(1).inputValue(), t.billing[l.interval], 'billing kept after Add');
      assert.deepEqual(await pg.actionTitles(card),
        [t.add, ...got.map(() => t.remove), t.checkout, t.poolsButton, t.cancel], 'buy card buttons');
      added.splice(0, added.length, ...got.map(({ label: lb, cents: c, text }) => ({ label: lb, cents: c, text })));
      await run.shot(card, `cart-${added.length}`);
    });
  }

  await run.do(`remove line ${removeIndex + 1} (${added[removeIndex].label})`, async () => {
    let card = run.card();
    const { lines: got } = await readCart(card, t);
    await pg.clickAction(got[removeIndex].row.row, t.remove);
    const keep = added.filter((_, i) => i !== removeIndex);
    const gone = added[removeIndex].label;
    card = run.card();
    await card.filter({ hasNotText: gone }).waitFor({ timeout: 15000 });
    const after = await readCart(card, t);
    assert.deepEqual(after.lines.map((x) => x.label), keep.map((x) => x.label), 'cart lines after Remove');
    for (const [i, k] of keep.entries()) near(after.lines[i].cents, k.cents, 1, `${k.label} after Remove`);
    r.cart = after;
    r.cartFig = checkTotals(t, after.lines, after.totals);
    await run.shot(card, 'cart-removed');
  });

  await run.do('checkout, then Back: the cart with its lines, still shown once the notifier ran', async () => {
    const labels = r.cart.lines.map((x) => x.label);
    const before = botQuery(run.bot, "SELECT id FROM quotes WHERE kind = 'purchase'").map(([id]) => id);
    await pg.clickAction(run.card(), t.checkout);
    await run.expectCard(t.quoteTitle);
    const [quoteId] = botQuery(run.bot, "SELECT id FROM quotes WHERE kind = 'purchase'").map(([id]) => id)
      .filter((id) => !before.includes(id));
    await pg.clickAction(run.card(), t.back);
    const isCart = async (when) => {
      const card = run.card();
      await card.filter({ hasNotText: t.quoteTitle }).waitFor({ timeout: 15000 });
      const text = await cardText(card);
      assert.equal(text.split('\n')[0], t.title, `${when}: the buy card:\n${text}`);
      assert.deepEqual((await readCart(card, t)).lines.map((x) => x.label), labels, `${when}: the cart's lines`);
      return card;
    };
    await isCart('after Back');
    await waitUntil(() => botQuery(run.bot, "SELECT status FROM outbox WHERE kind = 'quote_card' "
      + `AND payload LIKE '%${quoteId}%'`).some(([status]) => status === 'sent'),
    "the notifier to handle the cancelled quote's card update", { timeout: PAID_UPDATE_MS }).catch((e) => {
      const outbox = botQuery(run.bot, 'SELECT id, kind, status, attempts, payload FROM outbox ORDER BY id');
      const posted = botQuery(run.bot, 'SELECT id, subject, subject_id, message_ref FROM posted_cards ORDER BY id');
      throw new Error(`${e.message}\noutbox: ${JSON.stringify(outbox)}\nposted cards: ${JSON.stringify(posted)}`);
    });
    await sleep(STAY_MS);
    await run.shot(await isCart(`${secs(STAY_MS)} after the notifier ran`), 'back-cart');
    assert.equal(botQuery(run.bot, `SELECT status FROM quotes WHERE id = '${quoteId}'`)[0]?.[0], 'cancelled',
      'Back cancelled the quote');
  });

  await run.do('checkout: purchase quote', async () => {
    const errors = run.pageErrors.length;
    const keyError = () => run.pageErrors.slice(errors).find((m) => /read only property 'key'/.test(m));
    let clicked = false;
    const failFast = (async () => { // that renderer error means no request will come: do not wait 15 s
      while (!clicked && !keyError()) await new Promise((r) => setTimeout(r, 100));
      if (!clicked) throw new Error('renderer error');
    })();
    await Promise.race([pg.clickAction(run.card(), t.checkout).finally(() => { clicked = true; }), failFast]).catch((e) => {
      clicked = true;
      const why = keyError();
      if (!why) throw e;
      throw new Error(`clicking "${t.checkout}" sent nothing to the bot: the Playground's card renderer threw `
        + `"${why}" (it cannot execute an Action.Execute whose data has a top-level "key" field; the cart card's `
        + 'Checkout data is {cart, key})', { cause: e });
    });
    const card = await run.expectCard(t.quoteTitle);
    const text = await cardText(card);
    assert.equal(text.split('\n')[0], t.quoteTitle, 'quote title');
    const kept = lines.filter((_, i) => i !== removeIndex);
    for (const l of kept) assert.match(fact(text, `${l.plan} (${iv(l)})`), t.period, `period of ${l.plan}`);
    assert.equal(fact(text, t.preparedBy), 'Alex Wilber', 'prepared by');
    // each line, its discount (15 % of its gross, to the cent) under it, adding up to Due now
    const q = checkFigures(figuresOf(await readAmountLines(card), t, 'quote'), DISCOUNT_PCT, 'quote');
    // the cart's lines and amounts, priced again at Checkout (prorated to the microsecond: ±1 cent a line)
    assert.deepEqual(q.lines.map((l) => l.label), r.cart.lines.map((c) => c.label), 'quote lines = the cart\'s');
    for (const [i, c] of r.cart.lines.entries()) {
      near(q.lines[i].cents, c.cents, 1, `quote line ${c.label} = the cart's`);
      assert.ok(q.lines[i].discount, `quote line ${c.label} has its discount`);
    }
    assert.equal(q.carried, null, 'nothing carried to the next invoice');
    near(q.due.cents, r.cartFig.due.cents, kept.length, 'quote due now = the cart\'s');
    assert.deepEqual(q.renewals.map((x) => [x.label, x.cents]), r.cartFig.renewals.map((x) => [x.label, x.cents]),
      'quote renewal rows (one per date) = the cart\'s');
    assert.ok(spaces(text).includes(spaces(t.payHint)), 'pay hint');
    assert.deepEqual(await pg.actionTitles(card), [t.pay(q.due.text), t.refresh, t.back, t.cancel], 'quote card buttons');
    assert.equal((await pg.cardInfo(card)).activityId, r.activityId, 'the quote replaced the buy card in place');
    await run.shot(card, 'quote');
    r.quote = q;
    r.cardsBeforePay = await run.cardCount();
    r.payUrl = await pg.openUrlOf(card, t.pay(q.due.text));
    assert.ok(r.payUrl?.startsWith(`${run.bot.base}/pay/`), `Pay opens the sandbox page: ${r.payUrl}`);
  });

  await run.do('sandbox payment page', async () => {
    const { rows } = await payOnSandbox(run, r.payUrl, { figures: r.quote });
    r.payRows = rows;
  });

  await run.do('paid summary (updated in place by the bot)', async () => {
    let card;
    try {
      card = await run.expectCard(t.paidBody, { timeout: PAID_UPDATE_MS });
    } catch {
      run.warnings.push(`buy ${run.lang}: the quote card was not updated to "${t.paidTitle}" within ${secs(PAID_UPDATE_MS)} `
        + `after the payment (activity ${r.activityId}); clicked "${t.refresh}"`);
      await pg.clickAction(run.card(), t.refresh);
      card = await run.expectCard(t.paidBody);
    }
    const text = await cardText(card);
    assert.equal(text.split('\n')[0], t.paidTitle, 'paid card title');
    // a receipt: each line after its discount, what was paid, when, by whom, its reference, the renewals
    assert.ok(!text.split('\n').includes(t.due), `no "${t.due}" on a paid card:\n${text}`);
    let net = 0;
    for (const l of r.quote.lines) {
      const amount = cents(fact(text, l.label));
      assert.equal(amount, l.cents + l.discount.cents, `paid line ${l.label}: its gross less its discount`);
      net += amount;
    }
    assert.equal(cents(fact(text, t.amountPaid)), r.quote.due.cents, 'amount paid = the quote\'s due now');
    assert.equal(net, r.quote.due.cents, 'paid lines add up to the amount paid');
    assert.ok(fact(text, t.paidOn).length > 0, 'paid on');
    assert.equal(fact(text, t.paidBy), t.paidVia('Alex Wilber'), 'paid by (the sandbox tells no payer e-mail)');
    assert.match(fact(text, t.reference), /\S{6,}/, 'payment reference');
    for (const x of r.quote.renewals) assert.equal(cents(fact(text, x.label)), x.cents, `paid card: ${x.label}`);
    assert.equal((await pg.cardInfo(card)).activityId, r.activityId, 'same message, updated in place');
    assert.deepEqual(await pg.actionTitles(card), [t.poolsButton], 'paid card button');
    await run.shot(card, 'paid');
  });

  await run.do(`"${t.noticeTitle}" notice`, async () => {
    const card = await run.expectNewCard(t.noticeTitle, r.cardsBeforePay);
    const text = await cardText(card);
    assert.ok(spaces(text).includes(spaces(t.noticeBody(r.quote.due.text))), `notice body:\n${text}`);
    for (const l of r.quote.lines) assert.ok(text.includes(l.label), `notice lists ${l.label}`);
    await run.shot(card, 'notice');
  });

  await run.do('pools card after the purchase', async () => {
    await pg.clickAction(run.card(), t.poolsButton);
    const card = await run.expectCard(t.poolsTitle);
    const { header, pools } = await readPools(card);
    const [iBought, iAssigned, iFree] = [1, 2, 3].map((i) => header.indexOf(t.header[i]));
    for (const l of lines.filter((_, i) => i !== removeIndex)) {
      const p = pools.find((x) => x.plan === l.plan && x.sub.startsWith(iv(l)));
      assert.ok(p, `a ${l.plan} ${iv(l)} pool after the purchase`);
      const was = r.before[`${l.plan}|${iv(l)}`] || ['', '0', '0', '0'];
      assert.equal(Number(p.cells[iBought]), Number(was[iBought]) + l.qty, `${l.plan} ${iv(l)} bought +${l.qty}`);
      assert.equal(Number(p.cells[iAssigned]), Number(was[iAssigned]), `${l.plan} ${iv(l)} assigned unchanged`);
      assert.equal(Number(p.cells[iFree]), Number(was[iFree]) + l.qty, `${l.plan} ${iv(l)} free +${l.qty}`);
    }
    const removed = lines[removeIndex];
    const p = pools.find((x) => x.plan === removed.plan && x.sub.startsWith(iv(removed)));
    const was = r.before[`${removed.plan}|${iv(removed)}`];
    if (was) assert.equal(p.cells[iBought], was[iBought], `${removed.plan} ${iv(removed)} (removed from the cart) unchanged`);
    await run.shot(card, 'pools-after');
  });
  return r;
}

// The cart's figures: each line's discount is 15 % of its gross (to the cent), the amounts above Due
// now add up to it, and each renewal date has its row: the sum of the renewals of the lines renewing
// then (each line's "then <n × price less 15 %>"). -> the figures (figuresOf)
function checkTotals(t, lines, totals) {
  const amounts = lines.flatMap((l) => [l, ...(l.discount ? [l.discount] : [])]);
  const fig = checkFigures(figuresOf([...amounts, ...totals], t, 'cart'), DISCOUNT_PCT, 'cart');
  const byDate = new Map(); // "until <date>" -> Σ renewals of its lines
  for (const l of lines) {
    const [, date, then] = t.prorated.exec(spaces(l.detail));
    byDate.set(date, (byDate.get(date) || 0) + cents(then));
  }
  assert.equal(fig.renewals.length, byDate.size, `one renewal row per date: ${JSON.stringify([...byDate.keys()])}`);
  for (const [date, sum] of byDate) {
    const row = fig.renewals.find((x) => spaces(x.label).endsWith(` ${date}`));
    assert.ok(row, `a renewal row for ${date}: ${JSON.stringify(fig.renewals.map((x) => x.label))}`);
    assert.equal(row.cents, sum, `renewal on ${date} = the lines renewing then`);
  }
  return fig;
}

runSuite('buy', async (suite) => {
  const langs = ['en', 'fr'].filter((l) => !ONLY || ONLY.split(',').includes(l));
  const plays = await suite.playgrounds(Object.fromEntries(langs.map((l) => [l, PLACES[l]])));
  for (const lang of langs) {
    await suite.scenario(lang === 'en' ? 'English' : 'French', async (sc) => {
      const run = await sc.chat(plays[lang], { label: lang, lang, t: L[lang] });
      if (lang === 'en') {
        await buyJourney(run, {
          lines: [{ plan: 'API Pro', family: 'api', interval: 'year', qty: 3 },
            { plan: 'Eco', family: 'standard', interval: 'month', qty: 2 },
            { plan: 'Pro', family: 'standard', interval: 'month', qty: 1 }],
          removeIndex: 2,
        });
      } else {
        await buyJourney(run, {
          lines: [{ plan: 'API Advanced', family: 'api', interval: 'month', qty: 2 },
            { plan: 'Advanced', family: 'standard', interval: 'year', qty: 1 }], // a new pool: no Advanced yearly yet
          removeIndex: 0, viaButton: true,
        });
      }
    });
  }
});
