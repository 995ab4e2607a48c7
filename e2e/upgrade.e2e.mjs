#!/usr/bin/env node
// End-to-end: the upgrade journey, as a person does it, in the Microsoft 365 Agents Playground
// against the real bot (`app.py serve --demo` on a fresh SQLite database), in English then French.
//
//   node e2e/upgrade.e2e.mjs              (or `make e2e`)
//   E2E_ONLY=en|fr  run one journey;  E2E_HEADED=1  show the browser;  CHROMIUM_PATH  other Chromium
//
// Screenshots: test-results/upgrade-<lang>-NN-<step>.png; the bot's log: test-results/upgrade-bot.log.
// Exits non-zero on any failure, printing the step, the card shown and the bot's log.
import assert from 'node:assert/strict';
import * as pg from './playground.mjs';
import {
  botQuery, cardText, cents, checkFigures, fact, figuresOf, fold, payOnSandbox, percentOf, PLACES, readAmountLines, readPools,
  runSuite, secs, sleep, waitUntil,
} from './harness.mjs';

const ONLY = process.env.E2E_ONLY || '';
const PAID_UPDATE_MS = 10000; // the bot's notifier PUTs the paid card; after this, click Refresh
const STAY_MS = 3000; // after the notifier handled a card update: a card its reader moved on from stays as it is
const DISCOUNT_PCT = 15; // the demo account's partner discount
// the cards' plural forms (CLDR: English singular for 1 only, French for 0 and 1)
const en1 = (n, one, other) => (n === 1 ? one : other);
const fr1 = (n, one, other) => (n <= 1 ? one : other);

// ----------------------------------------------------------------------------- strings per language

const L = {
  en: {
    command: 'licenses',
    poolsTitle: 'License pools of Contoso',
    header: ['Plan', 'Bought', 'Assigned', 'Free', 'Renews'],
    monthly: 'monthly',
    usersTitle: (n) => `Eco (monthly): ${n} ${en1(n, 'user', 'users')}`,
    page: (p, n) => `Page ${p} of ${n}`,
    selected: (n) => `${n} ${en1(n, 'user', 'users')} selected`,
    matching: (n, qs) => `Eco (monthly): ${n} ${en1(n, 'user', 'users')} matching “${qs}”`,
    search: 'Search', searchPlaceholder: 'Search by name or e-mail', next: 'Next', previous: 'Previous',
    chooseTier: 'Choose tier',
    tiersTitle: (n) => `Upgrade ${n} ${en1(n, 'user', 'users')} from Eco`,
    newTier: 'New tier',
    tierOption: (plan) => new RegExp(`^${plan}: \\$\\d+\\.\\d\\d per seat per month$`),
    upgrade: 'Upgrade',
    quoteTitle: 'Upgrade quote',
    users: 'Users', change: 'Change', changeValue: (to) => `Eco → ${to} (monthly)`,
    credit: (n) => `Credit for unused time on ${n} × Eco`,
    charge: (n, to) => `Charge for remaining time on ${n} × ${to}`,
    discount: /^Discount \((\d+)%\): Partner discount$/, due: 'Due now',
    carried: 'Added to your next invoice (below the minimum card payment)',
    renewal: /^Then at the next billing cycle, /,
    pay: (amount) => `Pay ${amount}`, refresh: 'Refresh', back: 'Back', cancel: 'Cancel',
    paidTitle: 'Upgrade paid',
    paidBody: (n, to) => `${n} ${en1(n, 'user now holds', 'users now hold')} ${to}, effective now.`,
    told: 'Each of them has been told in Teams.', telling: /^Each of them will be told in Teams \((\d+) of (\d+) told so far\)\.$/,
    amountPaid: 'Amount paid', paidOn: 'Paid on', paidBy: 'Paid by', reference: 'Payment reference',
    paidVia: (name) => `Through the payment link of the quote prepared by ${name}`,
    poolsButton: 'License pools',
  },
  fr: {
    command: 'licences',
    poolsTitle: 'Lots de licences de Contoso',
    header: ['Offre', 'Achetées', 'Attribuées', 'Libres', 'Renouvellement'],
    monthly: 'mensuel',
    usersTitle: (n) => `Eco (mensuel) : ${n} ${fr1(n, 'utilisateur', 'utilisateurs')}`,
    page: (p, n) => `Page ${p} sur ${n}`,
    selected: (n) => `${n} ${fr1(n, 'utilisateur sélectionné', 'utilisateurs sélectionnés')}`,
    matching: (n, qs) => `Eco (mensuel) : ${n} ${fr1(n, 'utilisateur', 'utilisateurs')} pour « ${qs} »`,
    search: 'Rechercher', searchPlaceholder: 'Rechercher par nom ou e-mail', next: 'Suivant', previous: 'Précédent',
    chooseTier: "Choisir l'offre",
    tiersTitle: (n) => `Mettre à niveau ${n} ${fr1(n, 'utilisateur', 'utilisateurs')} depuis Eco`,
    newTier: 'Nouvelle offre',
    tierOption: (plan) => new RegExp(`^${plan}\\u00a0: \\d+,\\d\\d\\s\\$US par licence et par mois$`),
    upgrade: 'Mettre à niveau',
    quoteTitle: 'Devis de mise à niveau',
    users: 'Utilisateurs', change: 'Changement', changeValue: (to) => `Eco → ${to} (mensuel)`,
    credit: (n) => `Avoir pour le temps non utilisé sur ${n} × Eco`,
    charge: (n, to) => `Montant pour le temps restant sur ${n} × ${to}`,
    discount: /^Remise \((\d+)\u00a0%\)\u00a0: Partner discount$/, due: 'À payer maintenant',
    carried: 'Ajouté à votre prochaine facture (sous le paiement par carte minimal)',
    renewal: /^Puis au prochain cycle de facturation, le /,
    pay: (amount) => `Payer ${amount}`, refresh: 'Actualiser', back: 'Retour', cancel: 'Annuler',
    paidTitle: 'Mise à niveau payée',
    paidBody: (n, to) => `${n} ${fr1(n, 'utilisateur a', 'utilisateurs ont')} maintenant ${to}, dès maintenant.`,
    told: 'Chacun a été prévenu dans Teams.', telling: /^Chacun sera prévenu dans Teams \((\d+) sur (\d+) pour l'instant\)\.$/,
    amountPaid: 'Montant payé', paidOn: 'Payé le', paidBy: 'Payé par', reference: 'Référence du paiement',
    paidVia: (name) => `Par le lien de paiement du devis préparé par ${name}`,
    poolsButton: 'Lots de licences',
  },
};


async function journey(run, { ticks = 2, searchOne = false, paging = false, toPlan, afterCheck = false, expectAssigned,
  doubleAndBack = false }) {
  const { page, t } = run;
  const r = {};

  await run.do('pools card', async () => {
    await pg.sendMessage(page, t.command);
    const card = await run.expectCard(t.poolsTitle);
    await run.pin(card);
    const { header, pools } = await readPools(card);
    assert.deepEqual(header, t.header, 'pools card header');
    assert.ok(pools.length >= 2, 'pools card lists the pools');
    const eco = pools.find((p) => p.plan === 'Eco' && p.sub.startsWith(t.monthly));
    assert.ok(eco, `no Eco ${t.monthly} row; rows: ${JSON.stringify(pools.map((p) => p.cells))}`);
    const iAssigned = header.indexOf(t.header[2]);
    r.ecoAssigned = Number(eco.cells[iAssigned]);
    if (expectAssigned != null) assert.equal(r.ecoAssigned, expectAssigned, 'Eco monthly assigned count');
    const pro = pools.find((p) => p.plan === toPlan && p.sub.startsWith(t.monthly));
    assert.ok(pro, `no ${toPlan} ${t.monthly} row`);
    r.toAssigned = Number(pro.cells[iAssigned]);
    r.toPrice = pro.sub.split('·')[1]?.trim(); // "monthly · $29.00"
    for (const p of pools) { // every pool's assigned count is a button showing that count
      assert.equal(await p.row.cell(iAssigned).locator('button').getAttribute('aria-label'), p.cells[iAssigned],
        `assigned button of ${p.cells[0]}`);
    }
    await run.shot(card, 'pools');
    r.activityId = (await pg.cardInfo(card)).activityId;
    r.cards = await page.locator(pg.CARD).count();
    await eco.row.cell(iAssigned).locator('button').click();
  });

  let picked = [];
  await run.do('users card', async () => {
    const card = await run.expectCard(t.usersTitle(r.ecoAssigned));
    const text = await cardText(card);
    const pages = Math.ceil(r.ecoAssigned / 20);
    assert.ok(text.includes(`${t.page(1, pages)} · ${t.selected(0)}`), `users card paging/selection line:\n${text}`);
    const choices = await pg.choiceTitles(card);
    assert.equal(choices.length, Math.min(20, r.ecoAssigned), 'users listed on page 1');
    for (const c of choices) assert.match(c.title, /^.+ — [^@\s]+@contoso\.com$/, 'user choice "Name — email"');
    const actions = await pg.actionTitles(card);
    for (const a of [t.chooseTier, t.back, t.cancel]) assert.ok(actions.includes(a), `users card has "${a}": ${actions}`);
    if (pages > 1) assert.ok(actions.includes(t.next), `users card has "${t.next}": ${actions}`);
    if (t.searchPlaceholder) assert.equal(await card.locator(`input[placeholder="${t.searchPlaceholder}"]`).count(), 1, 'search box');
    await run.shot(card, 'users');
    r.page1 = choices.map((c) => c.title);
  });

  let target; // a user of page 2 to find with the search box
  if (paging) {
    await run.do('users card, page 2 and back', async () => {
      await pg.clickAction(run.card(), t.next);
      let card = await run.expectCard(t.page(2, Math.ceil(r.ecoAssigned / 20)));
      const choices = await pg.choiceTitles(card);
      assert.equal(choices.length, r.ecoAssigned - 20, 'users listed on page 2');
      assert.ok(!choices.some((c) => r.page1.includes(c.title)), 'page 2 repeats no user of page 1');
      assert.ok((await pg.actionTitles(card)).includes(t.previous), '"Previous" on page 2');
      await run.shot(card, 'users-page2');
      target = choices.at(-1).title;
      await pg.clickAction(card, t.previous);
      card = await run.expectCard(t.page(1, Math.ceil(r.ecoAssigned / 20)));
      assert.deepEqual((await pg.choiceTitles(card)).map((c) => c.title), r.page1, 'page 1 again');
    });
  }

  await run.do(`tick ${ticks} users`, async () => {
    const card = run.card();
    picked = r.page1.slice(0, ticks);
    for (const title of picked) await pg.toggleChoice(card, title, true);
    const states = await pg.choiceTitles(card);
    assert.deepEqual(states.filter((c) => c.checked).map((c) => c.title), picked, 'ticked users');
  });

  if (searchOne) {
    await run.do('search a name part, tick the result', async () => {
      target ??= r.page1.at(-1);
      const name = target.split(' — ')[0];
      const term = fold(name.split(' ').at(-1)).slice(0, 4); // a part of the surname
      await pg.fillInput(run.card(), t.searchPlaceholder, term);
      await pg.clickAction(run.card(), t.search);
      const card = await run.expectCard(new RegExp(`[“«]\\s?${term}\\s?[”»]`)); // the title quotes the search
      const title = await card.locator('[role=heading]').first().innerText();
      const found = await pg.choiceTitles(card);
      assert.equal(title.trim().replace(/\s/g, ' '), t.matching(found.length, term), 'search result title');
      assert.ok(found.some((c) => c.title === target), `search "${term}" finds ${target}: ${JSON.stringify(found)}`);
      for (const c of found) assert.ok(fold(c.title).includes(term), `search "${term}" result ${c.title}`);
      assert.ok((await cardText(card)).includes(t.selected(picked.length)), `the ${picked.length} ticks are kept`);
      await pg.toggleChoice(card, target, true);
      picked.push(target);
      await run.shot(card, 'search');
    });
  }

  const names = picked.map((p) => p.split(' — ')[0]);
  const n = picked.length;
  const selectTier = async (card, options) => { // -> the option chosen (toPlan's)
    const option = options.find((o) => t.tierOption(toPlan).test(o));
    await pg.selectDropdown(card, option, { input: t.newTier });
    assert.equal(await card.locator('.fui-Combobox input[role=combobox]').inputValue(), option, 'chosen tier shown');
    return option;
  };
  await run.do('choose tier', async () => {
    await pg.clickAction(run.card(), t.chooseTier);
    const card = await run.expectCard(t.tiersTitle(n));
    const text = await cardText(card);
    for (const nm of names) assert.ok(text.includes(nm), `tier card names ${nm}:\n${text}`);
    assert.ok(text.includes(t.newTier), `tier card has the "${t.newTier}" dropdown`);
    const options = await pg.dropdownOptions(card, { input: t.newTier });
    assert.equal(options.length, 2, `only two tiers above Eco: ${JSON.stringify(options)}`);
    assert.match(options[0], t.tierOption('Advanced'));
    assert.match(options[1], t.tierOption('Pro'));
    const option = await selectTier(card, options);
    if (r.toPrice) assert.ok(option.includes(r.toPrice), `tier price ${option} = pools card price ${r.toPrice}`);
    await run.shot(card, 'tier');
    r.unitPrice = cents(option.split(/:\s/)[1]);
  });

  if (doubleAndBack) {
    const upgradeQuotes = () => botQuery(run.bot, "SELECT id, status FROM quotes WHERE kind = 'upgrade'");
    await run.do('double-click Upgrade: one quote, both answers show it', async () => {
      const before = upgradeQuotes().map(([id]) => id);
      const answers = [];
      const onResponse = (res) => { if (/\/_conversation\/v1\/invoke$/.test(res.url())) answers.push(res); };
      page.on('response', onResponse);
      try {
        await run.card().locator(`.ac-actionSet button[aria-label="${t.upgrade}"]`).last().dblclick();
        await waitUntil(() => answers.length >= 2, 'the Playground to send both clicks to the bot');
      } finally {
        page.off('response', onResponse);
      }
      const card = await run.expectCard(t.quoteTitle);
      const created = upgradeQuotes().filter(([id]) => !before.includes(id));
      assert.equal(created.length, 1, `one quote for two clicks: ${JSON.stringify(created)}`);
      r.firstQuote = created[0][0];
      const shown = (await pg.cardInfo(card)).payload?.refresh?.action?.data?.quote;
      assert.equal(shown, r.firstQuote, 'the card shows that quote');
      for (const [i, a] of answers.entries()) {
        assert.ok(a.ok(), `answer ${i + 1}: HTTP ${a.status()}`);
        const ids = [...new Set([...(await a.text()).matchAll(/quote\\?":\s*\\?"([0-9a-f]{32})/g)].map((m) => m[1]))];
        assert.deepEqual(ids, [r.firstQuote], `answer ${i + 1} shows the one quote`);
      }
      await run.shot(card, 'double-click-quote');
    });

    await run.do('Back on the quote: the tiers card, still shown once the notifier ran', async () => {
      await pg.clickAction(run.card(), t.back);
      let card = await run.expectCard(t.tiersTitle(n));
      await waitUntil(() => botQuery(run.bot, "SELECT status FROM outbox WHERE kind = 'quote_card' "
        + `AND payload LIKE '%${r.firstQuote}%'`).some(([status]) => status === 'sent'),
      "the notifier to handle the cancelled quote's card update", { timeout: PAID_UPDATE_MS }).catch((e) => {
      const outbox = botQuery(run.bot, 'SELECT id, kind, status, attempts, payload FROM outbox ORDER BY id');
      const posted = botQuery(run.bot, 'SELECT id, subject, subject_id, message_ref FROM posted_cards ORDER BY id');
      throw new Error(`${e.message}\noutbox: ${JSON.stringify(outbox)}\nposted cards: ${JSON.stringify(posted)}`);
    });
      await sleep(STAY_MS);
      card = run.card();
      const text = await cardText(card);
      assert.equal(text.split('\n')[0], t.tiersTitle(n), `still the tiers card ${secs(STAY_MS)} later:\n${text}`);
      assert.ok(!text.includes(t.quoteTitle), `not the cancelled quote:\n${text}`);
      assert.equal(upgradeQuotes().find(([id]) => id === r.firstQuote)?.[1], 'cancelled', 'Back cancelled the quote');
      await run.shot(card, 'back-tiers');
      await selectTier(card, await pg.dropdownOptions(card, { input: t.newTier }));
    });
  }

  await run.do('quote card', async () => {
    await pg.clickAction(run.card(), t.upgrade);
    const card = await run.expectCard(t.quoteTitle);
    const text = await cardText(card);
    assert.deepEqual(fact(text, t.users).split(', ').sort(), [...names].sort(), 'quote users');
    assert.equal(fact(text, t.change), t.changeValue(toPlan), 'quote change');
    // each line with its own discount (15 % of its gross, to the cent) under it; they add up to Due now
    const fig = checkFigures(figuresOf(await readAmountLines(card), t, 'quote'), DISCOUNT_PCT, 'quote');
    assert.deepEqual(fig.lines.map((l) => l.label), [t.credit(n), t.charge(n, toPlan)], 'quote lines');
    const [credit, charge] = fig.lines;
    const { due } = fig;
    assert.ok(credit.cents < 0 && charge.cents > 0, 'credit negative, charge positive');
    assert.ok(credit.discount && charge.discount, 'the credit and the charge each have their discount');
    assert.equal(fig.carried, null, 'nothing carried to the next invoice');
    assert.ok(due.cents > 0, 'something is due now');
    assert.equal(fig.renewals.length, 1, 'one renewal date');
    const [renewal] = fig.renewals;
    const full = n * r.unitPrice; // renewal: n seats at the new tier's price, less its discount (half-up)
    assert.equal(renewal.cents, full - percentOf(full, DISCOUNT_PCT), `renewal = ${n} × ${toPlan} less ${DISCOUNT_PCT} %`);
    const actions = await pg.actionTitles(card);
    assert.deepEqual(actions, [t.pay(due.text), t.refresh, t.back, t.cancel], 'quote card buttons');
    const info = await pg.cardInfo(card);
    assert.equal(info.activityId, r.activityId, 'the quote replaced the pools card in place');
    await run.shot(card, 'quote');
    Object.assign(r, { fig, due });
    r.payUrl = await pg.openUrlOf(card, t.pay(due.text));
    assert.ok(r.payUrl?.startsWith(`${run.bot.base}/pay/`), `Pay opens the sandbox page: ${r.payUrl}`);
  });

  await run.do('sandbox payment page', async () => {
    // in the run's language and zone (fr: Europe/Paris, as the cards): the renewal row reads as the card's
    await payOnSandbox(run, r.payUrl, { figures: r.fig });
  });

  await run.do('paid card (updated in place by the bot)', async () => {
    let card;
    try {
      card = await run.expectCard(t.paidTitle, { timeout: PAID_UPDATE_MS });
    } catch {
      run.warnings.push(`${run.lang}: the quote card was not updated to "${t.paidTitle}" within ${secs(PAID_UPDATE_MS)} `
        + `after the payment (activity ${r.activityId}); clicked "${t.refresh}"`);
      await pg.clickAction(run.card(), t.refresh);
      card = await run.expectCard(t.paidTitle);
    }
    const text = await cardText(card);
    assert.ok(text.includes(t.paidBody(n, toPlan)), `paid summary body:\n${text}`);
    assert.deepEqual(fact(text, t.users).split(', ').sort(), [...names].sort(), 'paid users');
    assert.equal(fact(text, t.change), t.changeValue(toPlan), 'paid change');
    // a receipt: what was paid, when, by whom, its reference; the users told (or being told)
    assert.ok(!text.split('\n').includes(t.due), `no "${t.due}" on a paid card:\n${text}`);
    assert.equal(cents(fact(text, t.amountPaid)), r.due.cents, 'amount paid = quote due now');
    assert.ok(fact(text, t.paidOn).length > 0, 'paid on');
    assert.equal(fact(text, t.paidBy), t.paidVia('Alex Wilber'), 'paid by (the sandbox tells no payer e-mail)');
    assert.match(fact(text, t.reference), /\S{6,}/, 'payment reference');
    assert.equal(fact(text, r.fig.renewals[0].label), r.fig.renewals[0].text, 'paid card: the renewal date and amount');
    const told = text.split('\n').find((l) => l === t.told || t.telling.test(l));
    assert.ok(told, `paid card says whether the users were told:\n${text}`);
    const telling = t.telling.exec(told);
    if (telling) assert.ok(Number(telling[1]) < n && Number(telling[2]) === n, `"${told}": of the ${n} users`);
    assert.equal((await pg.cardInfo(card)).activityId, r.activityId, 'same message, updated in place');
    assert.equal(await page.locator(pg.CARD).count(), r.cards, 'no new card message in the chat');
    assert.ok((await pg.actionTitles(card)).includes(t.poolsButton), `"${t.poolsButton}" on the paid card`);
    await run.shot(card, 'paid');
  });

  if (afterCheck) {
    await run.do('pools card after the upgrade', async () => {
      await pg.clickAction(run.card(), t.poolsButton);
      const card = await run.expectCard(t.poolsTitle);
      const { header, pools } = await readPools(card);
      const i = header.indexOf(t.header[2]);
      const eco = pools.find((p) => p.plan === 'Eco' && p.sub.startsWith(t.monthly));
      const to = pools.find((p) => p.plan === toPlan && p.sub.startsWith(t.monthly));
      assert.equal(Number(eco.cells[i]), r.ecoAssigned - n, `Eco ${t.monthly} assigned after the upgrade`);
      assert.equal(Number(to.cells[i]), r.toAssigned + n, `${toPlan} ${t.monthly} assigned after the upgrade`);
      await run.shot(card, 'pools-after');
    });
  }
  return r;
}


// ----------------------------------------------------------------------------- main

// The harness (e2e/harness.mjs) starts the bot and Chromium, and reports; each language has its own
// Playground (fr through the locale proxy) and browser context. French runs after English, on the
// pools English left (Eco monthly: 3 fewer).
runSuite('upgrade', async (suite) => {
  const langs = ['en', 'fr'].filter((l) => !ONLY || ONLY.split(',').includes(l));
  const plays = await suite.playgrounds(Object.fromEntries(langs.map((l) => [l, PLACES[l]])));
  let ecoAfterEn;
  for (const lang of langs) {
    await suite.scenario(lang === 'en' ? 'English' : 'French', async (sc) => {
      const run = await sc.chat(plays[lang], { label: lang, lang, t: L[lang] });
      if (lang === 'en') {
        const r = await journey(run, { ticks: 2, paging: true, searchOne: true, toPlan: 'Pro', afterCheck: true, expectAssigned: 24,
          doubleAndBack: true });
        ecoAfterEn = r.ecoAssigned - 3;
      } else {
        await journey(run, { ticks: 2, searchOne: true, toPlan: 'Advanced', expectAssigned: ecoAfterEn, doubleAndBack: true });
      }
    });
  }
});
