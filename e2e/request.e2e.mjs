#!/usr/bin/env node
// End-to-end: a member asks for an upgrade and the administrators decide, each in their own
// Microsoft 365 Agents Playground (one per current user) on the same real bot (`app.py serve --demo`,
// fresh SQLite DB), in English then French.
//
//   node e2e/request.e2e.mjs     (`make e2e` runs it with the other journeys)
//   E2E_ONLY=en|fr  one language;  E2E_HEADED=1  show the browser;  E2E_BOT_DIR  run app.py from another checkout
//
// English (Playgrounds of Alex Wilber and Megan Bowen, admins, and Lee Gu, member with an Eco seat;
// all three chats are opened first, so that the bot knows where to reach each of them):
//   Lee: `mylicense` -> Request an upgrade -> Advanced + a reason -> "Request sent".
//   Alex and Megan: the request card arrives (proactive). Alex: Decline -> a reason -> declined;
//   Megan's card turns "Declined by Alex Wilber" in place; Lee gets "declined" with the reason.
//   Lee: My license -> Request an upgrade -> Pro -> sent; My license shows the pending request.
//   Megan: `requests` lists it. Alex: Approve on the new request card -> the upgrade quote in place
//   (Pay) ; Megan's card turns "Approved by Alex Wilber"; Lee gets "approved" (My license: approved,
//   waiting for the payment). Alex pays on the sandbox page -> "Upgrade paid" in place; Lee gets
//   "Your license was upgraded"; Lee's `mylicense` shows Pro; Alex's `requests` is empty.
// French (Playgrounds of Alex and Nestor Wilke through the fr-FR locale proxy): Nestor `ma licence`
//   -> API Pro (he holds Eco and API Advanced) -> Alex approves -> pays -> Nestor is told, in French.
// Screenshots: test-results/request-<who>-NN-<step>.png; the bot's log: test-results/request-bot.log.
import assert from 'node:assert/strict';
import * as pg from './playground.mjs';
import {
  cardText, cents, checkFigures, fact, figuresOf, payOnSandbox, percentOf, PLACES, readAmountLines, runSuite, secs, spaces,
} from './harness.mjs';

const ONLY = process.env.E2E_ONLY || '';
const UPDATE_MS = 10000; // a card the bot updates in place (PUT) or sends proactively
const DISCOUNT_PCT = 15;
// how a time ends on a card: the zone's abbreviation or offset ("UTC", "CET", "UTC+14", "SST")
const ZONE_ABBR = '(?:UTC|GMT)(?:[+-]\\d{1,2}(?::\\d\\d)?)?|[A-Z]{3,5}';

// French elides "de" before a vowel ("d'Eco", "d'API Advanced"), as the bot's cards do.
const de = (w) => (/^[aeiouyàâäéèêëîïôöùûüœæ]/i.test(w) ? `d'${w}` : `de ${w}`);

const L = {
  en: {
    mylicense: 'mylicense', requests: 'requests',
    mine: 'Your licenses', billing: 'Billing', since: 'Since', renews: 'Renews on', monthly: 'monthly',
    families: { standard: 'Standard', api: 'API' },
    pendingRow: 'Upgrade request',
    requested: (plan) => new RegExp(`^You asked for ${plan} on .+; waiting for an administrator$`),
    approvedRow: (plan, name) => `${plan} approved by ${name}; it applies as soon as the payment is made`,
    top: 'This is the highest plan of its family.',
    nothing: 'There is no upgrade to ask for: you hold the highest plans, or already asked.',
    requestBtn: 'Request an upgrade', refresh: 'Refresh', myLicenseBtn: 'My license',
    formTitle: 'Request an upgrade', formBody: 'Your administrators will be asked; one of them approves (and pays) or declines.',
    formPlan: 'The plan you would like', choice: (plan, family, cur) => `${plan} (${family}, instead of ${cur})`,
    formReason: 'Why? (optional, your administrators will see it)', send: 'Send the request', back: 'Back',
    sentTitle: 'Request sent',
    sentBody: (old, plan) => `Your administrators were asked to move you from ${old} to ${plan}. You will be told here as soon as one of them decides.`,
    reason: 'Reason',
    reqTitle: (name) => `Upgrade request from ${name}`, requestedBy: 'Requested by', change: 'Change', askedOn: 'Asked on',
    waiting: 'Waiting for a decision.', approve: 'Approve', decline: 'Decline', openQuote: 'Open the quote', all: 'All requests',
    approvedLine: (name) => new RegExp(`Approved by ${name} on .+\\. The upgrade quote was sent to ${name}\\.`),
    declinedLine: (name) => new RegExp(`Declined by ${name} on .+ (?:${ZONE_ABBR})\\.`),
    declinedReasonLine: (reason) => `Reason given: ${reason}`,
    declineTitle: (name) => `Decline the request of ${name}`, declineReason: (name) => `Reason (optional, ${name} will see it)`,
    listTitle: (n) => `Pending upgrade requests (${n})`, listEmpty: 'No upgrade request is waiting for a decision.',
    listItem: (name, from, to) => `${name}: ${from} → ${to}`,
    approvedTitle: 'Your upgrade request was approved',
    approvedBody: (name, plan) => `${name} approved your request for ${plan}. An administrator completes the payment; you will be told here as soon as ${plan} is active.`,
    declinedTitle: 'Your upgrade request was declined',
    declinedBody: (name, plan) => `${name} declined your request for ${plan}.`, declinedReason: (r) => `Reason: ${r}`,
    upgradedTitle: 'Your license was upgraded',
    upgradedBody: (plan, old) => `You now have ${plan} (was ${old}), effective now. No action is needed.`,
    quoteTitle: 'Upgrade quote', users: 'Users', changeValue: (from, to) => `${from} → ${to} (monthly)`,
    preparedBy: 'Prepared by', credit: (n, p) => `Credit for unused time on ${n} × ${p}`,
    charge: (n, p) => `Charge for remaining time on ${n} × ${p}`, discount: /^Discount \((\d+)%\): Partner discount$/,
    carried: 'Added to your next invoice (below the minimum card payment)', due: 'Due now', renewal: /^Then at the next billing cycle, /, pay: (a) => `Pay ${a}`, cancel: 'Cancel',
    paidTitle: 'Upgrade paid', paidBody: (n, plan) => `${n} ${n === 1 ? 'user now holds' : 'users now hold'} ${plan}, effective now.`,
    told: 'They have been told in Teams.', // (one user: the requester)
    amountPaid: 'Amount paid', paidOn: 'Paid on', paidBy: 'Paid by',
    reference: 'Payment reference', paidVia: (name) => `Through the payment link of the quote prepared by ${name}`,
    poolsButton: 'License pools',
  },
  fr: {
    mylicense: 'ma licence', requests: 'demandes',
    mine: 'Vos licences', billing: 'Facturation', since: 'Depuis le', renews: 'Renouvellement le', monthly: 'mensuel',
    families: { standard: 'Standard', api: 'API' },
    pendingRow: 'Demande de mise à niveau',
    requested: (plan) => new RegExp(`^Vous avez demandé ${plan} le .+ ; en attente d'un administrateur$`),
    approvedRow: (plan, name) => `${plan} approuvée par ${name} ; elle s'applique dès que le paiement est fait`,
    top: "C'est l'offre la plus haute de sa famille.",
    nothing: 'Aucune mise à niveau à demander : vous avez les offres les plus hautes, ou vous avez déjà demandé.',
    requestBtn: 'Demander une mise à niveau', refresh: 'Actualiser', myLicenseBtn: 'Ma licence',
    formTitle: 'Demander une mise à niveau',
    formBody: "Vos administrateurs seront sollicités ; l'un d'eux approuve (et paie) ou refuse.",
    formPlan: "L'offre souhaitée", choice: (plan, family, cur) => `${plan} (${family}, au lieu ${de(cur)})`,
    formReason: 'Pourquoi ? (facultatif, vos administrateurs le verront)', send: 'Envoyer la demande', back: 'Retour',
    sentTitle: 'Demande envoyée',
    sentBody: (old, plan) => `Vos administrateurs ont été sollicités pour vous faire passer ${de(old)} à ${plan}. Vous serez prévenu ici dès que l'un d'eux aura décidé.`,
    reason: 'Motif',
    reqTitle: (name) => `Demande de mise à niveau ${de(name)}`, requestedBy: 'Demandée par', change: 'Changement',
    askedOn: 'Demandée le', waiting: 'En attente de décision.', approve: 'Approuver', decline: 'Refuser',
    openQuote: 'Ouvrir le devis', all: 'Toutes les demandes',
    approvedLine: (name) => new RegExp(`Approuvée par ${name} le .+\\. Le devis de mise à niveau a été envoyé à ${name}\\.`),
    declinedLine: (name) => new RegExp(`Refusée par ${name} le .+ (?:${ZONE_ABBR})\\.`),
    declinedReasonLine: (reason) => `Motif donné : ${reason}`,
    declineTitle: (name) => `Refuser la demande ${de(name)}`, declineReason: (name) => `Motif (facultatif, ${name} le verra)`,
    listTitle: (n) => `Demandes de mise à niveau en attente (${n})`,
    listEmpty: "Aucune demande de mise à niveau n'attend de décision.",
    listItem: (name, from, to) => `${name} : ${from} → ${to}`,
    approvedTitle: 'Votre demande de mise à niveau a été approuvée',
    approvedBody: (name, plan) => `${name} a approuvé votre demande pour ${plan}. Un administrateur effectue le paiement ; vous serez prévenu ici dès que ${plan} sera active.`,
    declinedTitle: 'Votre demande de mise à niveau a été refusée',
    declinedBody: (name, plan) => `${name} a refusé votre demande pour ${plan}.`, declinedReason: (r) => `Motif : ${r}`,
    upgradedTitle: 'Votre licence a été mise à niveau',
    upgradedBody: (plan, old) => `Vous avez maintenant ${plan} (auparavant ${old}), dès maintenant. Vous n'avez rien à faire.`,
    quoteTitle: 'Devis de mise à niveau', users: 'Utilisateurs', changeValue: (from, to) => `${from} → ${to} (mensuel)`,
    preparedBy: 'Préparé par', credit: (n, p) => `Avoir pour le temps non utilisé sur ${n} × ${p}`,
    charge: (n, p) => `Montant pour le temps restant sur ${n} × ${p}`,
    discount: /^Remise \((\d+)\u00a0%\)\u00a0: Partner discount$/,
    carried: 'Ajouté à votre prochaine facture (sous le paiement par carte minimal)',
    due: 'À payer maintenant', renewal: /^Puis au prochain cycle de facturation, le /, pay: (a) => `Payer ${a}`,
    cancel: 'Annuler', paidTitle: 'Mise à niveau payée',
    paidBody: (n, plan) => `${n} ${n <= 1 ? 'utilisateur a' : 'utilisateurs ont'} maintenant ${plan}, dès maintenant.`,
    told: 'Cette personne a été prévenue dans Teams.', // (one user: the requester)
    amountPaid: 'Montant payé', paidOn: 'Payé le', paidBy: 'Payé par',
    reference: 'Référence du paiement', paidVia: (name) => `Par le lien de paiement du devis préparé par ${name}`,
    poolsButton: 'Lots de licences',
  },
};

const PRICES = { Eco: 800, Advanced: 1500, Pro: 2900, 'API Advanced': 4900, 'API Pro': 9900 }; // monthly, core/catalog.json
const lines = async (card) => (await cardText(card)).split('\n').map(spaces);
const has = async (card, s) => {
  const text = await lines(card);
  const ok = s instanceof RegExp ? text.some((l) => s.test(l)) : text.includes(spaces(s));
  assert.ok(ok, `card shows ${s instanceof RegExp ? s : JSON.stringify(s)}:\n${text.join('\n')}`);
};

// ----------------------------------------------------------------------------- steps

// The member's "my license" card (typed command, or `fromButton` clicked on the pinned card).
async function myLicense(run, { seats, pending, approved, canRequest, shot, fromButton }) {
  const { t } = run;
  let card;
  if (fromButton) {
    await pg.clickAction(run.card(), fromButton);
    card = await run.expectCard(t.mine);
  } else {
    const before = await run.cardCount();
    await pg.sendMessage(run.page, t.mylicense);
    card = await run.expectNewCard(t.mine, before);
    await run.pin(card);
  }
  const text = await lines(card);
  for (const [plan, family] of seats) {
    const i = text.indexOf(plan);
    assert.ok(i > 0 && text[i + 1] === t.families[family], `seat ${plan} (${t.families[family]}):\n${text.join('\n')}`);
  }
  assert.equal(fact(text.join('\n'), t.billing), t.monthly, 'billing');
  for (const f of [t.since, t.renews]) fact(text.join('\n'), f);
  if (pending) await has(card, t.requested(pending));
  if (approved) await has(card, t.approvedRow(...approved));
  const actions = await pg.actionTitles(card);
  if (canRequest !== undefined) { // undefined: not checked
    assert.deepEqual(actions, canRequest ? [t.requestBtn, t.refresh] : [t.refresh], 'my license buttons');
    if (!canRequest) await has(card, t.nothing);
  } else {
    assert.equal(actions.at(-1), t.refresh, 'my license: Refresh');
  }
  await run.shot(card, shot);
  return card;
}

// Request an upgrade from the pinned "my license" card -> "Request sent".
async function requestUpgrade(run, { options, plan, from, reason, shot }) {
  const { t } = run;
  await pg.clickAction(run.card(), t.requestBtn);
  let card = await run.expectCard(t.formPlan);
  await has(card, t.formTitle);
  await has(card, t.formBody);
  await has(card, t.formReason);
  const offered = await pg.dropdownOptions(card, { input: 'plan' });
  assert.deepEqual([...offered].sort(), options.map(([p, f, cur]) => t.choice(p, t.families[f], cur)).sort(), 'plans one may ask for');
  const choice = offered.find((o) => o.startsWith(`${plan} (`));
  await pg.selectDropdown(card, choice, { input: 'plan' });
  await pg.fillInput(card, 'reason', reason);
  assert.deepEqual(await pg.actionTitles(card), [t.send, t.back], 'request form buttons');
  await run.shot(card, `${shot}-form`);
  await pg.clickAction(card, t.send);
  card = await run.expectCard(t.sentTitle);
  await has(card, t.sentBody(from, plan));
  assert.equal(fact(await cardText(card), t.reason), reason, 'the reason is repeated');
  assert.deepEqual(await pg.actionTitles(card), [t.myLicenseBtn], '"Request sent" buttons');
  await run.shot(card, shot);
}

// An admin's request card, arrived proactively after `before` cards; pinned. -> card
async function requestCard(run, { before, name, email, from, to, reason, shot }) {
  const { t } = run;
  const card = await run.expectNewCard(t.reqTitle(name), before, { timeout: UPDATE_MS }).catch(async (e) => {
    if (run.lang === 'en' || !(await run.expectNewCard(L.en.reqTitle(name), before, { timeout: 100 }).catch(() => null))) throw e;
    throw new Error(`${run.label}: the request card arrived in English ("${L.en.reqTitle(name)}"), not in ${run.lang}: `
      + `the bot's stored address for this admin says en-US (the chat was opened with ${run.lang} activities; the `
      + 'conversationUpdate that follows installationUpdate has no locale)', { cause: e });
  });
  await run.pin(card);
  const text = await cardText(card);
  assert.equal(spaces(fact(text, t.requestedBy)), `${name} (${email})`, 'requested by');
  assert.equal(fact(text, t.change), `${from} → ${to}`, 'change');
  fact(text, t.askedOn);
  assert.equal(fact(text, t.reason), reason, 'reason');
  assert.equal(await card.locator('a[href*="evil.example"], strong, b').count(), 0, 'the reason is text: no link, no bold');
  await has(card, t.waiting);
  assert.deepEqual(await pg.actionTitles(card), [t.approve, t.decline], 'request card buttons');
  await run.shot(card, shot);
  return card;
}

// The pinned request card of another admin, updated in place once decided.
async function decidedInPlace(run, { line, reasonLine, buttons, shot }) {
  const { t } = run;
  let card;
  try {
    card = await run.expectCard(line, { timeout: UPDATE_MS });
  } catch (e) {
    throw new Error(`${run.label}'s request card was not updated in place within ${secs(UPDATE_MS)}: ${e.message}`);
  }
  await has(card, line);
  if (reasonLine) await has(card, reasonLine);
  assert.deepEqual(await pg.actionTitles(card), buttons, 'decided request card buttons');
  assert.ok(!(await lines(card)).includes(t.waiting), 'no longer waiting');
  await run.shot(card, shot);
}

// Approve on the pinned request card -> the upgrade quote in place; checks it; -> {due, fig (its figures), url, activityId}
async function approveToQuote(run, { name, from, to }) {
  const { t } = run;
  const activityId = (await pg.cardInfo(run.card())).activityId;
  await pg.clickAction(run.card(), t.approve);
  const card = await run.expectCard(t.quoteTitle);
  const text = await cardText(card);
  assert.equal(fact(text, t.users), name, 'quote users');
  assert.equal(fact(text, t.change), t.changeValue(from, to), 'quote change');
  assert.equal(fact(text, t.preparedBy), 'Alex Wilber', 'prepared by the approver');
  // each line with its own discount (15 % of its gross, to the cent) under it; they add up to Due now
  const fig = checkFigures(figuresOf(await readAmountLines(card), t, 'quote'), DISCOUNT_PCT, 'quote');
  assert.deepEqual(fig.lines.map((l) => l.label), [t.credit(1, from), t.charge(1, to)], 'quote lines');
  const [credit, charge] = fig.lines;
  const { due } = fig;
  assert.ok(credit.cents < 0 && charge.cents > 0, 'credit negative, charge positive');
  assert.ok(credit.discount && charge.discount, 'the credit and the charge each have their discount');
  assert.equal(fig.carried, null, 'nothing carried to the next invoice');
  assert.equal(fig.renewals.length, 1, 'one renewal date');
  const [renewal] = fig.renewals;
  assert.equal(renewal.cents, PRICES[to] - percentOf(PRICES[to], DISCOUNT_PCT), `renewal = 1 × ${to} less ${DISCOUNT_PCT} %`);
  assert.deepEqual(await pg.actionTitles(card), [t.pay(due.text), t.refresh, t.back, t.cancel], 'quote buttons');
  assert.equal((await pg.cardInfo(card)).activityId, activityId, 'the quote replaced the request card in place');
  await run.shot(card, 'quote');
  const url = await pg.openUrlOf(card, t.pay(due.text));
  assert.ok(url?.startsWith(`${run.bot.base}/pay/`), `Pay opens the sandbox page: ${url}`);
  return { due, fig, url, activityId };
}

async function paidInPlace(run, q, { name, from, to }) {
  const { t } = run;
  let card;
  try {
    card = await run.expectCard(t.paidTitle, { timeout: UPDATE_MS });
  } catch {
    run.warnings.push(`request ${run.label}: the quote card was not updated to "${t.paidTitle}" within ${secs(UPDATE_MS)} `
      + `after the payment (activity ${q.activityId}); clicked "${t.refresh}"`);
    await pg.clickAction(run.card(), t.refresh);
    card = await run.expectCard(t.paidTitle);
  }
  await has(card, t.paidBody(1, to));
  // the member has a chat: the notice is delivered, and the card comes to say so (it said "will be told" until then)
  card = await run.expectCard(t.told, { timeout: UPDATE_MS });
  const text = await cardText(card);
  assert.equal(fact(text, t.users), name, 'paid users');
  assert.equal(fact(text, t.change), t.changeValue(from, to), 'paid change');
  // a receipt: what was paid, when, by whom, its reference, the renewal
  assert.ok(!text.split('\n').includes(t.due), `no "${t.due}" on a paid card:\n${text}`);
  assert.equal(cents(fact(text, t.amountPaid)), q.due.cents, 'amount paid = the quote\'s due now');
  assert.ok(fact(text, t.paidOn).length > 0, 'paid on');
  assert.equal(fact(text, t.paidBy), t.paidVia('Alex Wilber'), 'paid by (the sandbox tells no payer e-mail)');
  assert.match(fact(text, t.reference), /\S{6,}/, 'payment reference');
  assert.equal(fact(text, q.fig.renewals[0].label), q.fig.renewals[0].text, 'paid card: the renewal date and amount');
  assert.equal((await pg.cardInfo(card)).activityId, q.activityId, 'same message, updated in place');
  assert.deepEqual(await pg.actionTitles(card), [t.poolsButton], 'paid card button');
  await run.shot(card, 'paid');
}

// A notice to the member, arrived proactively after `before` cards; pinned. -> card
async function notice(run, { before, title, body, extra = [], buttons, shot }) {
  const card = await run.expectNewCard(title, before, { timeout: UPDATE_MS });
  await run.pin(card);
  await has(card, body);
  for (const x of extra) await has(card, x);
  assert.deepEqual(await pg.actionTitles(card), buttons, `"${title}" buttons`);
  await run.shot(card, shot);
  return card;
}

async function requestsList(run, { items, shot }) {
  const { t } = run;
  const before = await run.cardCount();
  await pg.sendMessage(run.page, t.requests);
  const card = await run.expectNewCard(t.listTitle(items.length), before);
  if (!items.length) await has(card, t.listEmpty);
  for (const it of items) await has(card, it);
  const buttons = await pg.actionTitles(card);
  assert.deepEqual(buttons.filter((b) => b === t.approve).length, items.length, 'one Approve per pending request');
  await run.shot(card, shot);
  return card;
}

// ----------------------------------------------------------------------------- journeys

async function english(sc, plays) {
  const t = L.en;
  const [alex, megan, lee] = await Promise.all([
    sc.chat(plays.alex, { label: 'alex', t }), sc.chat(plays.megan, { label: 'megan', t }),
    sc.chat(plays.lee, { label: 'lee', t })]);
  const lee1 = { name: 'Lee Gu', email: 'lee.gu@contoso.com', from: 'Eco' };
  // people's text with Markdown in it: the cards show it as text (no bold, no link), escapes unseen
  const why1 = '**URGENT** I need the reporting_features of [Advanced](https://evil.example/login)';
  const why2 = 'I now build the API integrations';
  const no = 'Not this quarter, *sorry*';

  let a0; let m0;
  await lee.do('mylicense: Eco, can ask', () => myLicense(lee, { seats: [['Eco', 'standard']], canRequest: true, shot: 'mylicense' }));
  await lee.do('request Advanced', async () => {
    [a0, m0] = [await alex.cardCount(), await megan.cardCount()];
    await requestUpgrade(lee, {
      options: [['Advanced', 'standard', 'Eco'], ['Pro', 'standard', 'Eco']], plan: 'Advanced', from: 'Eco', reason: why1, shot: 'sent-advanced',
    });
  });
  const req1 = { ...lee1, to: 'Advanced', reason: why1 };
  await alex.do('request card arrives (proactive)', () => requestCard(alex, { before: a0, ...req1, shot: 'request-advanced' }));
  await megan.do('request card arrives (proactive)', () => requestCard(megan, { before: m0, ...req1, shot: 'request-advanced' }));

  let l0;
  await alex.do('Decline with a reason', async () => {
    await pg.clickAction(alex.card(), t.decline);
    let card = await alex.expectCard(t.declineTitle('Lee Gu'));
    assert.equal(fact(await cardText(card), t.change), 'Eco → Advanced', 'decline form: change');
    await has(card, t.declineReason('Lee Gu'));
    await pg.fillInput(card, 'reason', no);
    assert.deepEqual(await pg.actionTitles(card), [t.decline, t.back], 'decline form buttons');
    await alex.shot(card, 'decline-form');
    l0 = await lee.cardCount();
    await pg.clickAction(card, t.decline);
    card = await alex.expectCard(t.declinedLine('Alex Wilber'));
    await has(card, t.declinedReasonLine(no));
    assert.deepEqual(await pg.actionTitles(card), [t.all], 'declined request card buttons');
    await alex.shot(card, 'declined');
  });
  await megan.do('her card shows the decline (in place)', () => decidedInPlace(megan, {
    line: t.declinedLine('Alex Wilber'), reasonLine: t.declinedReasonLine(no), buttons: [t.all], shot: 'declined' }));
  await lee.do('"declined" notice with the reason', () => notice(lee, {
    before: l0, title: t.declinedTitle, body: t.declinedBody('Alex Wilber', 'Advanced'), extra: [t.declinedReason(no)],
    buttons: [t.myLicenseBtn], shot: 'declined' }));

  await lee.do('My license (from the notice) -> request Pro', async () => {
    await myLicense(lee, { seats: [['Eco', 'standard']], canRequest: true, fromButton: t.myLicenseBtn, shot: 'mylicense-again' });
    [a0, m0] = [await alex.cardCount(), await megan.cardCount()];
    await requestUpgrade(lee, {
      options: [['Advanced', 'standard', 'Eco'], ['Pro', 'standard', 'Eco']], plan: 'Pro', from: 'Eco', reason: why2, shot: 'sent-pro',
    });
  });
  await lee.do('My license shows the pending request', () => myLicense(lee, {
    seats: [['Eco', 'standard']], pending: 'Pro', canRequest: false, fromButton: t.myLicenseBtn, shot: 'mylicense-pending' }));
  const req2 = { ...lee1, to: 'Pro', reason: why2 };
  await alex.do('second request card arrives', () => requestCard(alex, { before: a0, ...req2, shot: 'request-pro' }));
  await megan.do('second request card arrives', () => requestCard(megan, { before: m0, ...req2, shot: 'request-pro' }));
  await megan.do('`requests` lists it', () => requestsList(megan, { items: [t.listItem('Lee Gu', 'Eco', 'Pro')], shot: 'requests-list' }));

  let q;
  await alex.do('Approve -> upgrade quote in place', async () => {
    l0 = await lee.cardCount();
    q = await approveToQuote(alex, { name: 'Lee Gu', from: 'Eco', to: 'Pro' });
  });
  await megan.do('her card shows the approval (in place)', () => decidedInPlace(megan, {
    line: t.approvedLine('Alex Wilber'), buttons: [t.openQuote, t.all], shot: 'approved' }));
  await lee.do('"approved" notice', () => notice(lee, {
    before: l0, title: t.approvedTitle, body: t.approvedBody('Alex Wilber', 'Pro'), buttons: [t.myLicenseBtn], shot: 'approved' }));
  await lee.do('My license: approved, waiting for the payment', () => myLicense(lee, {
    // NB: the bot still offers "Request an upgrade" here (and accepts Pro again): not checked
    seats: [['Eco', 'standard']], approved: ['Pro', 'Alex Wilber'], canRequest: undefined, fromButton: t.myLicenseBtn, shot: 'mylicense-approved' }));

  await alex.do('pay on the sandbox page', async () => {
    l0 = await lee.cardCount();
    await payOnSandbox(alex, q.url, { figures: q.fig });
  });
  await alex.do('"Upgrade paid" in place', () => paidInPlace(alex, q, { name: 'Lee Gu', from: 'Eco', to: 'Pro' }));
  await lee.do('"Your license was upgraded" (proactive)', () => notice(lee, {
    before: l0, title: t.upgradedTitle, body: t.upgradedBody('Pro', 'Eco'), buttons: [], shot: 'upgraded' }));
  await lee.do('mylicense: Pro', () => myLicense(lee, { seats: [['Pro', 'standard']], canRequest: false, shot: 'mylicense-pro' })
    .then(async (card) => has(card, t.top)));
  await alex.do('`requests`: none pending', () => requestsList(alex, { items: [], shot: 'requests-empty' }));
}

async function french(sc, plays) {
  const t = L.fr;
  const [alex, nestor] = await Promise.all([
    sc.chat(plays.alexFr, { label: 'alex-fr', t, lang: 'fr' }), sc.chat(plays.nestorFr, { label: 'nestor-fr', t, lang: 'fr' })]);
  const why = "J'écris maintenant les connecteurs de l'API";
  const seats = [['Eco', 'standard'], ['API Advanced', 'api']];
  let a0; let n0;
  await nestor.do('ma licence: Eco et API Advanced', () => myLicense(nestor, { seats, canRequest: true, shot: 'mylicense' }));
  await nestor.do('demander API Pro', async () => {
    a0 = await alex.cardCount();
    await requestUpgrade(nestor, {
      options: [['Advanced', 'standard', 'Eco'], ['Pro', 'standard', 'Eco'], ['API Pro', 'api', 'API Advanced']],
      plan: 'API Pro', from: 'API Advanced', reason: why, shot: 'sent',
    });
  });
  await alex.do('la demande arrive', () => requestCard(alex, {
    before: a0, name: 'Nestor Wilke', email: 'nestor.wilke@contoso.com', from: 'API Advanced', to: 'API Pro', reason: why, shot: 'request' }));
  let q;
  await alex.do('Approuver -> devis', async () => {
    n0 = await nestor.cardCount();
    q = await approveToQuote(alex, { name: 'Nestor Wilke', from: 'API Advanced', to: 'API Pro' });
  });
  await nestor.do('avis « approuvée »', () => notice(nestor, {
    before: n0, title: t.approvedTitle, body: t.approvedBody('Alex Wilber', 'API Pro'), buttons: [t.myLicenseBtn], shot: 'approved' }));
  await alex.do('payer sur la page de paiement', async () => {
    n0 = await nestor.cardCount();
    await payOnSandbox(alex, q.url, { figures: q.fig });
  });
  await alex.do('« Mise à niveau payée » en place', () => paidInPlace(alex, q, { name: 'Nestor Wilke', from: 'API Advanced', to: 'API Pro' }));
  await nestor.do('« Votre licence a été mise à niveau »', () => notice(nestor, {
    before: n0, title: t.upgradedTitle, body: t.upgradedBody('API Pro', 'API Advanced'), buttons: [], shot: 'upgraded' }));
  await nestor.do('ma licence: API Pro', () => myLicense(nestor, {
    seats: [['Eco', 'standard'], ['API Pro', 'api']], canRequest: true, shot: 'mylicense-api-pro' }));
}

runSuite('request', async (suite) => {
  const langs = ['en', 'fr'].filter((l) => !ONLY || ONLY.split(',').includes(l));
  const { en, fr } = PLACES;
  const plays = await suite.playgrounds({
    ...(langs.includes('en') ? { alex: en, megan: { ...en, currentUser: 'Megan Bowen' }, lee: { ...en, currentUser: 'Lee Gu' } } : {}),
    ...(langs.includes('fr') ? { alexFr: fr, nestorFr: { ...fr, currentUser: 'Nestor Wilke' } } : {}),
  });
  if (langs.includes('en')) await suite.scenario('English: Lee asks, Alex declines then approves and pays, Megan sees', (sc) => english(sc, plays));
  if (langs.includes('fr')) await suite.scenario('French: Nestor asks, Alex approves and pays', (sc) => french(sc, plays));
});
