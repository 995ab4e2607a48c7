#!/usr/bin/env node
// Runs every e2e journey (e2e/*.e2e.mjs: upgrade, buy, request), each in its own process with its
// own bot and Playgrounds, and sums up. `make e2e` runs this.
//
//   node e2e/all.mjs
//   E2E_JOURNEYS=buy,request   only these;   E2E_JOBS=1   one after the other, output streamed
//   (default 2: two journeys at a time, each one's output printed when it ends; ~2 min instead of ~2.5
//   on 2 cores).
//   Every other E2E_* variable (E2E_ONLY, E2E_HEADED, E2E_BOT_DIR, ...) is passed to the journeys.
// Exit code: 0 when every journey passed.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const DIR = path.dirname(fileURLToPath(import.meta.url));
const ORDER = ['upgrade', 'buy', 'request']; // the rest (new files) after these, by name
const t0 = Date.now();
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

const found = fs.readdirSync(DIR).filter((f) => f.endsWith('.e2e.mjs')).map((f) => f.replace(/\.e2e\.mjs$/, ''))
  .sort((a, b) => ((ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99)) || a.localeCompare(b));
const wanted = (process.env.E2E_JOURNEYS || '').split(',').map((s) => s.trim()).filter(Boolean);
const unknown = wanted.filter((w) => !found.includes(w));
if (unknown.length) {
  console.error(`e2e: no journey ${unknown.join(', ')} (there are: ${found.join(', ')})`);
  process.exit(2);
}
const journeys = wanted.length ? found.filter((j) => wanted.includes(j)) : found;
const jobs = Math.max(1, Number(process.env.E2E_JOBS || 2));
const children = new Set();

function run(name) {
  return new Promise((resolve) => {
    const s = Date.now();
    const stream = jobs === 1;
    const child = spawn(process.execPath, [path.join(DIR, `${name}.e2e.mjs`)], {
      stdio: ['ignore', stream ? 'inherit' : 'pipe', stream ? 'inherit' : 'pipe'],
    });
    children.add(child);
    let out = '';
    if (!stream) { child.stdout.on('data', (d) => { out += d; }); child.stderr.on('data', (d) => { out += d; }); }
    child.on('exit', (code, signal) => {
      children.delete(child);
      if (!stream) process.stdout.write(`\n======== ${name} ========\n${out}`);
      resolve({ name, code: code ?? signal, ms: Date.now() - s });
    });
  });
}

// Ctrl-C: the journeys get it too (same process group) and stop their bot and Playgrounds.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => { for (const c of children) c.kill(sig); setTimeout(() => process.exit(130), 8000).unref(); });
}

const queue = [...journeys];
const results = [];
console.log(`e2e: ${journeys.join(', ')} (${jobs === 1 ? 'one after the other' : `${jobs} at a time`})`);
await Promise.all(Array.from({ length: Math.min(jobs, queue.length) }, async () => {
  while (queue.length) results.push(await run(queue.shift()));
}));
results.sort((a, b) => journeys.indexOf(a.name) - journeys.indexOf(b.name));
const failed = results.filter((r) => r.code !== 0);
console.log(`\ne2e summary: ${results.map((r) => `${r.name} ${r.code === 0 ? 'ok' : `FAILED (${r.code})`} ${secs(r.ms)}`).join(', ')}; `
  + `total ${secs(Date.now() - t0)}; screenshots and bot logs in test-results/`);
console.log(`e2e: ${results.length - failed.length} of ${results.length} journeys passed`);
process.exit(failed.length ? 1 : 0);
