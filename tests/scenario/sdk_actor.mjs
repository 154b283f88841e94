// A Nitric service in the scenario tests: the official @nitric/sdk, unmodified, putting to and
// reading from a running `coffer serve` (SERVICE_ADDRESS) until it is killed.
//
// It loads the SDK at once (slow), prints "ready", and starts when a line arrives on stdin (the
// driver sends it once the server listens). Then SCENARIO_LANES independent lanes, each one
// call at a time: put a fresh canary, read latest, or read one of its own acknowledged versions
// by id. Every attempt, acknowledged put, read and error is appended to SCENARIO_LOG as one JSON
// line the moment it happens (fs.writeSync: on its way to the file before the next call), with
// process.hrtime.bigint() stamps (CLOCK_MONOTONIC; see lib.mjs): t0 before the call, t1 after.
//
// Environment: SERVICE_ADDRESS, COFFER_NODE_CACHE, SCENARIO_LOG, SCENARIO_SEED,
// SCENARIO_SECRETS (comma-separated), SCENARIO_MONO (those read by id), SCENARIO_LANES.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.env.COFFER_NODE_CACHE, 'package.json'));
const { secret } = require('@nitric/sdk');

const log = fs.openSync(process.env.SCENARIO_LOG, 'a');
const write = (o) => fs.writeSync(log, `${JSON.stringify(o)}\n`);
const names = process.env.SCENARIO_SECRETS.split(',');
const mono = new Set((process.env.SCENARIO_MONO || '').split(','));
const seed = Number(process.env.SCENARIO_SEED);
const lanes = Number(process.env.SCENARIO_LANES || 2);
const now = () => String(process.hrtime.bigint());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function rng(s) {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const errLine = (who, op, s, e) =>
  write({ k: 'err', who, op, s, cls: e.constructor.name, msg: String(e.message).split('\n')[0], t1: now() });

async function lane(i, refs) {
  const rand = rng(seed * 7919 + i + 1);
  const who = `sdk.${i}`;
  const mine = []; // [name, version, value] acknowledged to this lane, on secrets read by id
  for (let n = 0; ; n++) {
    const x = rand();
    const name = names[Math.floor(rand() * names.length)];
    if (x < 0.45) {
      let val = `c.${seed.toString(16)}.s${i}.${n}.`;
      for (let p = Math.floor(rand() * 200); p > 0; p--) val += String.fromCharCode(97 + Math.floor(rand() * 26));
      write({ k: 'try', who, s: name, val });
      const t0 = now();
      try {
        const v = await refs[name].put(val);
        write({ k: 'put', who, s: name, v: v.version, val, t0, t1: now() });
        if (mono.has(name)) mine.push([name, v.version, val]);
      } catch (e) {
        errLine(who, 'put', name, e);
      }
    } else if (x < 0.9 || mine.length === 0) {
      const t0 = now();
      try {
        const r = await refs[name].latest().access();
        write({ k: 'read', who, s: name, v: r.secretVersion.version, val: r.asString(), t0, t1: now() });
      } catch (e) {
        if (e.constructor.name === 'NotFoundError') write({ k: 'read', who, s: name, v: '0', val: '', t0, t1: now() });
        else errLine(who, 'access', name, e);
      }
    } else {
      const [s, v, val] = mine[Math.floor(rand() * mine.length)];
      const t0 = now();
      try {
        const r = await refs[s].version(v).access();
        write({ k: 'readid', who, s, v: r.secretVersion.version, want: v, val: r.asString(), expect: val, t0, t1: now() });
      } catch (e) {
        errLine(who, 'access-id', s, e);
      }
    }
    if (rand() < 0.25) await sleep(Math.floor(rand() * 3));
  }
}

process.stdout.write('ready\n');
process.stdin.once('data', () => {
  // The driver going away (stdin closed) ends us too: never a stray client.
  process.stdin.on('end', () => process.exit(0));
  const refs = Object.fromEntries(names.map((n) => [n, secret(n).allow('put', 'access')]));
  for (let i = 0; i < lanes; i++) lane(i, refs);
});
