// The scenario suite (issue 7, acceptance 1): the parts of coffer run together on one store the
// way people combine them, with randomized interleavings, every process killed at the end of each
// round, and everything that was acknowledged checked afterwards.
//
//   node test_scenario.mjs sqlite|pg [PART PARTS]
//
// SCENARIO_ROUNDS rounds in all (default 50), split over PARTS processes (CTest runs two on
// SQLite, three on PostgreSQL, so that each stays under a minute): part PART runs rounds PART,
// PART+PARTS, PART+2*PARTS, ...
//
// One round (seed = SCENARIO_BASE_SEED + round number, printed) on a fresh store:
//   - `coffer serve` (two workers + committer: three handles in one process);
//   - a Nitric service: the official @nitric/sdk in its own Node process (sdk_actor.mjs), two
//     lanes putting canaries, reading latest, reading its own versions by id;
//   - two CLI lanes: sequences of `coffer` processes (put, access, versions, list, destroy,
//     rotate-key) started one after another, so two run at any moment;
//   - the embedder (scenario_embed.c): one process, two coffer_open() handles, puts and reads
//     on both, interleaved, now and then reopening one handle while the other stays open.
// The seed picks each actor's operations, secrets and values, whether the CLI and the embedder
// start while the server is still opening the store, how long the round runs, and for every
// process whether it ends with SIGKILL or SIGTERM. All are signalled together; the checks start
// when every process has gone. (Operating-system scheduling adds variation a seed cannot fix:
// a failing seed is rerun with SCENARIO_SEED, usually failing again the same way.)
//
// Secrets: m.0, m.1 are never destroyed and are checked for freshness and monotonic reads; d.0
// is also destroyed by the CLI (by id), which legitimately moves its latest back, so its reads
// are checked for their values only.
//
// Checks after each round (through the CLI; in some rounds also through a freshly started
// server, before or after the CLI by the seed):
//   1. every acknowledged put is in the store with its id and exact bytes (unless a destroy of
//      that id was attempted), and no id was acknowledged twice;
//   2. the ids of each secret are exactly 1..N (destroyed versions keep their id), every value
//      in the store was attempted by some actor, none twice;
//   3. a destroy that was acknowledged left its version destroyed;
//   4. every read returned the value stored under the version it reports; a CLI read (which
//      prints only the value) is matched to its version by its unique value;
//   5. freshness: no read of latest (nor a `versions` or `list` listing) returned less than a
//      version acknowledged before the read began (see lib.mjs for the clock); on PostgreSQL, a
//      cached reader (a server, the embedder) is held to this only for the puts acknowledged
//      through its own process, as docs/postgres.md bounds the staleness across processes by one
//      NOTIFY delivery (tests/scenario/test_stale.mjs checks that bound);
//   6. no reader (an SDK lane, a CLI lane, the embedder) saw latest of a secret go backwards;
//   7. latest read through the CLI is the newest enabled version; no error happened before the
//      kill; a server stopped with SIGTERM exited 0;
//   8. SQLite: `PRAGMA integrity_check` (sqlite3) says ok.
//
// Environment: SCENARIO_ROUNDS (rounds to run), SCENARIO_SEED (run only this seed),
// SCENARIO_BASE_SEED, COFFER_KEEP_TMP=1 (keep the stores), SCENARIO_TIMING=1 (print phase times); set by CMake: COFFER_BIN,
// COFFER_NODE_CACHE, SCENARIO_EMBED, and for pg COFFER_PG_STATE, COFFER_PG_SCRIPT.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  EMBED,
  HERE,
  backend,
  baseEnv,
  checkClock,
  cli,
  envSeed,
  firstLine,
  freePort,
  grpcClient,
  hex,
  now,
  readLog,
  rng,
  serve,
  sleep,
} from './lib.mjs';

const KIND = process.argv[2];
const PART = Number(process.argv[3] || 0); // this process runs rounds PART, PART+PARTS, ...
const PARTS = Number(process.argv[4] || 1);
const TOTAL = Number(process.env.SCENARIO_ROUNDS || 50); // rounds over all parts
const BASE = envSeed('SCENARIO_BASE_SEED') ?? 0x5ce70000;
const ONLY = envSeed('SCENARIO_SEED');
const SECRETS = ['m.0', 'm.1', 'd.0'];
const MONO = new Set(['m.0', 'm.1']);
const DESTROYABLE = 'd.0';
const SHOWN_PER_CATEGORY = 5;
// The report's order: lost data first, then broken ids, stale or backward reads, the rest.
const PROBLEM_ORDER = ['lost', 'duplicate', 'ids', 'stale', 'backwards', 'value', 'destroy', 'latest', 'server', 'integrity', 'error'];

const short = (v) => (typeof v === 'string' && v.length > 28 ? `${v.slice(0, 28)}...` : v);

class Round {
  constructor(n, seed, st) {
    this.n = n;
    this.seed = seed;
    this.st = st;
    this.t00 = now();
    this.events = []; // the driver's own log: what its CLI lanes saw
    this.problems = [];
    this.running = new Set(); // CLI processes alive now
    this.stopping = false;
    this.tKill = null;
    this.rotations = 0;
    this.knownMax = Object.fromEntries(SECRETS.map((s) => [s, 0]));
    this.sdkLog = path.join(st.dir, 'sdk.log');
    this.embedLog = path.join(st.dir, 'embed.log');
  }
  at(t) {
    return `+${(Number(BigInt(t) - this.t00) / 1e6).toFixed(1)}ms`;
  }
  // A problem found, in a category (PROBLEM_ORDER) so the report shows the worst first.
  problem(cat, msg) {
    this.problems.push({ cat, msg });
  }
}

// ---- the actors ---------------------------------------------------------------------------------

function startSdk(R, port) {
  const proc = spawn(process.execPath, [path.join(HERE, 'sdk_actor.mjs')], {
    env: baseEnv({
      SERVICE_ADDRESS: `127.0.0.1:${port}`,
      SCENARIO_LOG: R.sdkLog,
      SCENARIO_SEED: String(R.seed),
      SCENARIO_SECRETS: SECRETS.join(','),
      SCENARIO_MONO: [...MONO].join(','),
      SCENARIO_LANES: '2',
    }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const a = { name: 'sdk', proc, stderr: '' };
  proc.stderr.on('data', (d) => {
    a.stderr += d;
  });
  proc.stdin.on('error', () => {});
  a.exited = new Promise((resolve) => proc.on('close', (code, sig) => resolve({ code, sig })));
  a.ready = new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      if (String(d).includes('ready')) resolve();
    });
    a.exited.then(() => reject(new Error(`the SDK actor exited before it was ready: ${a.stderr}`)));
  });
  a.ready.catch(() => {});
  return a;
}

// The server on a port chosen beforehand, so that the SDK actor can load while it starts.
async function startServerAndSdk(R) {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const sdk = startSdk(R, port);
    try {
      const srv = await serve(R.st, port);
      srv.name = 'server';
      return { srv, sdk };
    } catch (e) {
      sdk.proc.kill('SIGKILL');
      await sdk.exited;
      if (attempt >= 3 || !/already in use/.test(e.message)) throw e;
    }
  }
}

function startEmbed(R) {
  const proc = spawn(EMBED, ['actor', R.st.location, String(R.seed), R.embedLog, ...SECRETS], {
    env: R.st.env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const a = { name: 'embed', proc, stderr: '' };
  proc.stderr.on('data', (d) => {
    a.stderr += d;
  });
  a.exited = new Promise((resolve) => proc.on('close', (code, sig) => resolve({ code, sig })));
  return a;
}

function canary(R, who, n, rand) {
  let v = `c.${R.seed.toString(16)}.${who}.${n}.`;
  for (let p = Math.floor(rand() * 200); p > 0; p--) v += String.fromCharCode(97 + Math.floor(rand() * 26));
  return v;
}

// One CLI command; its process is listed as running (to be killed) until it closes.
async function runCli(R, args, input) {
  const c = cli(R.st, args, input);
  R.running.add(c.proc);
  const r = await c.done;
  R.running.delete(c.proc);
  return r;
}

function cliError(R, who, op, s, r) {
  if (r.sig) return; // killed at the end of the round: no outcome, no error
  R.events.push({ k: 'err', who, op, s, code: r.code, msg: firstLine(r.stderr), t1: r.t1 });
}

// A CLI lane: one coffer process after another until the round stops.
async function cliLane(R, lane) {
  const rand = rng(R.seed * 31 + lane + 101);
  const who = `cli.${lane}`;
  for (let n = 0; !R.stopping; n++) {
    const x = rand();
    const s = SECRETS[Math.floor(rand() * SECRETS.length)];
    if (x < 0.35 || (x >= 0.83 && x < 0.93 && R.knownMax[DESTROYABLE] === 0)) {
      const val = canary(R, `c${lane}`, n, rand);
      R.events.push({ k: 'try', who, s, val });
      const r = await runCli(R, ['put', s, '-'], val);
      const m = /^(\d+)\n$/.exec(r.stdout.toString());
      if (r.code === 0 && m) {
        R.events.push({ k: 'put', who, s, v: m[1], val, t0: r.t0, t1: r.t1 });
        R.knownMax[s] = Math.max(R.knownMax[s], Number(m[1]));
      } else cliError(R, who, 'put', s, r);
    } else if (x < 0.65) {
      const r = await runCli(R, ['access', s]);
      if (r.code === 0) R.events.push({ k: 'read', who, s, v: null, val: r.stdout.toString(), t0: r.t0, t1: r.t1 });
      else if (r.code === 3) R.events.push({ k: 'read', who, s, v: '0', val: '', t0: r.t0, t1: r.t1 });
      else cliError(R, who, 'access', s, r);
    } else if (x < 0.75) {
      const r = await runCli(R, ['versions', s, '--json']);
      if (r.code === 0 || r.code === 3) {
        let list = [];
        try {
          list = r.code === 0 ? JSON.parse(r.stdout.toString()) : [];
        } catch {
          R.problem('error', `${who}: 'coffer versions ${s} --json' printed no JSON: ${short(r.stdout.toString())}`);
        }
        R.events.push({ k: 'ids', who, s, ids: list.map((e) => Number(e.version)), t0: r.t0, t1: r.t1 });
        R.knownMax[s] = Math.max(R.knownMax[s], list.length);
      } else cliError(R, who, 'versions', s, r);
    } else if (x < 0.83) {
      const r = await runCli(R, ['list', '--json']);
      if (r.code === 0) {
        try {
          const counts = Object.fromEntries(JSON.parse(r.stdout.toString()).map((e) => [e.name, e.versions]));
          R.events.push({ k: 'list', who, counts, t0: r.t0, t1: r.t1 });
          for (const x of SECRETS) R.knownMax[x] = Math.max(R.knownMax[x], counts[x] || 0);
        } catch {
          R.problem('error', `${who}: 'coffer list --json' printed no JSON: ${short(r.stdout.toString())}`);
        }
      } else cliError(R, who, 'list', '', r);
    } else if (x < 0.93) {
      const v = String(1 + Math.floor(rand() * R.knownMax[DESTROYABLE]));
      R.events.push({ k: 'dtry', who, s: DESTROYABLE, v });
      const r = await runCli(R, ['destroy', `${DESTROYABLE}@${v}`]);
      if (r.code === 0) R.events.push({ k: 'destroy', who, s: DESTROYABLE, v, t0: r.t0, t1: r.t1 });
      else if (r.code !== 3) cliError(R, who, 'destroy', DESTROYABLE, r);
    } else if (R.rotations < 2) {
      R.rotations++;
      const r = await runCli(R, ['rotate-key']);
      if (r.code === 0) R.events.push({ k: 'rotate', who, t0: r.t0, t1: r.t1 });
      else cliError(R, who, 'rotate-key', '', r);
    }
  }
}

// ---- one round ----------------------------------------------------------------------------------

function planRound(seed) {
  const rand = rng(seed);
  const sig = () => (rand() < 0.5 ? 'SIGKILL' : 'SIGTERM');
  return {
    early: rand() < 0.3, // CLI and embedder start while the server opens the store
    runMs: 300 + Math.floor(rand() * 500),
    kill: { server: sig(), sdk: sig(), embed: sig(), cli: sig() },
    order: ['server', 'sdk', 'embed', 'cli'].sort(() => rand() - 0.5),
    fresh: rand() < 0.35, // also check through a freshly started server
    freshFirst: rand() < 0.5,
  };
}

async function killAll(R, plan, actors) {
  R.stopping = true;
  R.tKill = now();
  for (const role of plan.order) {
    const sig = plan.kill[role];
    if (role === 'cli') for (const p of R.running) p.kill(sig);
    else if (actors[role]) actors[role].proc.kill(sig);
  }
  // A process told SIGTERM gets 20 s (the server drains for at most 10 s), then SIGKILL.
  const waits = Object.values(actors).map(async (a) => {
    const t = setTimeout(() => {
      R.problem('error', `${a.name} had not exited 20 s after ${plan.kill[a.name]}`);
      a.proc.kill('SIGKILL');
    }, 20000);
    const r = await a.exited;
    clearTimeout(t);
    return [a, r];
  });
  const results = await Promise.all(waits);
  for (const [a, r] of results) {
    if (a.name === 'server' && plan.kill.server === 'SIGTERM' && r.code !== 0)
      R.problem('error', `the server stopped with SIGTERM exited with ${r.code ?? r.sig}: ${firstLine(a.stderr)}`);
  }
}

// Until every actor has finished an operation, or failed one (15 s at most): on a loaded
// machine, or on PostgreSQL where each connection authenticates, the slow starters would
// otherwise do nothing before the kill. This paces the round; it decides nothing.
async function waitActive(R) {
  const did = (file) => fs.existsSync(file) && /"k":"(put|read|err)"/.test(fs.readFileSync(file, 'utf8'));
  for (let i = 0; i < 750; i++) {
    if (did(R.sdkLog) && did(R.embedLog) && R.events.some((e) => e.k !== 'try')) return;
    await sleep(20);
  }
}

async function runRound(R, plan) {
  const actors = {};
  const lanes = [];
  const startOthers = () => {
    actors.embed = startEmbed(R);
    for (let i = 0; i < 2; i++) lanes.push(cliLane(R, i));
  };
  if (plan.early) startOthers();
  try {
    const { srv, sdk } = await startServerAndSdk(R);
    actors.server = srv;
    actors.sdk = sdk;
    await sdk.ready;
  } catch (e) {
    R.stopping = true;
    if (actors.embed) actors.embed.proc.kill('SIGKILL');
    for (const p of R.running) p.kill('SIGKILL');
    await Promise.all(lanes);
    throw e;
  }
  if (!plan.early) startOthers();
  actors.sdk.proc.stdin.write('go\n');
  R.tGo = now();
  await waitActive(R);
  await sleep(plan.runMs);
  await killAll(R, plan, actors);
  await Promise.all(lanes);
}

// ---- reading the store afterwards ---------------------------------------------------------------

// Through the CLI: every secret's versions (ids, states) and the exact bytes of every enabled
// version (`coffer run` reads up to 60 per process; a failing batch is retried one by one).
async function storeViaCli(R) {
  const store = {};
  // Independent reads, so they run side by side (a CLI process on PostgreSQL mostly waits).
  const listed = await Promise.all(SECRETS.map((s) => cli(R.st, ['versions', s, '--json']).done));
  for (const [i, s] of SECRETS.entries()) {
    const r = listed[i];
    const e = { ids: [], state: new Map(), val: new Map() };
    store[s] = e;
    if (r.code === 3) continue;
    if (r.code !== 0) {
      R.problem('error', `after the round: coffer versions ${s} failed (${r.code}): ${firstLine(r.stderr)}`);
      continue;
    }
    for (const v of JSON.parse(r.stdout.toString())) {
      e.ids.push(Number(v.version));
      e.state.set(Number(v.version), v.state);
    }
  }
  const want = [];
  for (const s of SECRETS)
    for (const [id, state] of store[s].state) if (state === 'enabled') want.push([s, id]);
  for (let i = 0; i < want.length; i += 60) {
    const batch = want.slice(i, i + 60);
    const args = ['run'];
    batch.forEach(([s, id], j) => args.push('--env', `V${j}=${s}@${id}`));
    const r = await cli(R.st, [...args, '--', 'env', '-0']).done;
    if (r.code === 0) {
      const got = new Map();
      for (const kv of r.stdout.toString().split('\0')) {
        const m = /^V(\d+)=([\s\S]*)$/.exec(kv);
        if (m) got.set(Number(m[1]), m[2]);
      }
      batch.forEach(([s, id], j) => store[s].val.set(id, got.get(j)));
    } else {
      for (const [s, id] of batch) {
        const a = await cli(R.st, ['access', `${s}@${id}`]).done;
        if (a.code === 0) store[s].val.set(id, a.stdout.toString());
        else R.problem('lost', `after the round: coffer access ${s}@${id} (listed enabled) failed (${a.code}): ${firstLine(a.stderr)}`);
      }
    }
  }
  // latest through the CLI: the newest enabled version.
  const latest = await Promise.all(SECRETS.map((s) => cli(R.st, ['access', s]).done));
  for (const [i, s] of SECRETS.entries()) {
    const newest = [...store[s].state].filter(([, st]) => st === 'enabled').map(([id]) => id).pop();
    const r = latest[i];
    if (newest === undefined) {
      if (r.code !== 3) R.problem('latest', `after the round: ${s} has no enabled version, but coffer access ${s} answered ${r.code}`);
    } else if (r.code !== 0 || r.stdout.toString() !== store[s].val.get(newest))
      R.problem('latest', `after the round: coffer access ${s} (latest) should give version ${newest}; got exit ${r.code}, ` +
        `value ${short(r.stdout.toString())} ${firstLine(r.stderr)}`);
  }
  return store;
}

// Through a freshly started server, on its own: latest, then every id from 1 to one past the
// newest known (enabled: its exact bytes; destroyed or absent: NOT_FOUND). compareViews() then
// holds this view against the CLI's.
async function viewViaServer(R, events) {
  const srv = await serve(R.st, 0);
  const c = grpcClient(srv.addr());
  const view = {};
  try {
    for (const s of SECRETS) {
      const latest = await c.accessP(s, 'latest');
      if (latest.code !== undefined && latest.code !== 5)
        R.problem('server', `fresh server: ${s}@latest answered status ${latest.code} (${latest.details})`);
      let top = latest.code === undefined ? Number(latest.version) : 0;
      for (const e of events) if (e.s === s && e.k === 'put') top = Math.max(top, Number(e.v));
      const ids = new Map();
      const answers = await Promise.all([...Array(top + 1)].map((_, i) => c.accessP(s, String(i + 1))));
      answers.forEach((r, i) => {
        if (r.code === undefined) ids.set(i + 1, r.value.toString());
        else if (r.code === 5) ids.set(i + 1, null);
        else R.problem('server', `fresh server: ${s}@${i + 1} answered status ${r.code} (${r.details})`);
      });
      view[s] = { latest: latest.code === undefined ? Number(latest.version) : 0, ids };
    }
  } finally {
    c.close();
    const x = await srv.stop();
    if (x.code !== 0) R.problem('server', `fresh server exited with ${x.code ?? x.sig}: ${firstLine(srv.stderr)}`);
  }
  return view;
}

function compareViews(R, view, store) {
  for (const s of SECRETS) {
    const enabled = [...store[s].state].filter(([, st]) => st === 'enabled').map(([id]) => id);
    const newest = enabled.length ? enabled[enabled.length - 1] : 0;
    if (view[s].latest !== newest)
      R.problem('server', `fresh server: ${s}@latest is ${view[s].latest || 'NOT_FOUND'}; through the CLI the newest enabled version is ${newest || 'none'}`);
    for (const [id, v] of view[s].ids) {
      const cliVal = store[s].state.get(id) === 'enabled' ? store[s].val.get(id) : null;
      if (v !== cliVal)
        R.problem('server', `fresh server: ${s}@${id} is ${v === null ? 'NOT_FOUND' : short(v)}; through the CLI ${cliVal === null ? (store[s].state.get(id) ?? 'absent') : short(cliVal)}`);
    }
    for (const id of enabled)
      if (!view[s].ids.has(id)) R.problem('server', `fresh server: ${s}@${id} (enabled through the CLI) was not found`);
  }
}

async function integrityCheck(R) {
  if (R.st.kind !== 'sqlite') return;
  const db = path.join(R.st.location, 'coffer.db');
  let out;
  try {
    out = execFileSync('sqlite3', [db, 'PRAGMA integrity_check'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
  } catch (e) {
    out = `sqlite3 failed: ${e.message}`;
  }
  if (out !== 'ok') R.problem('integrity', `PRAGMA integrity_check: ${short(out)}`);
}

// ---- the checks ---------------------------------------------------------------------------------

function loadEvents(R) {
  const all = [...R.events, ...readLog(R.sdkLog), ...readLog(R.embedLog)];
  for (const e of all) {
    if (e.t0 !== undefined && e.t0 !== null) e.t0 = BigInt(e.t0);
    if (e.t1 !== undefined && e.t1 !== null) e.t1 = BigInt(e.t1);
  }
  return all;
}

// Which acknowledged puts a reader must see (docs/postgres.md: a cached reader of another process
// may lag by one NOTIFY delivery; a CLI process has no cache).
function eligible(R, reader, writer) {
  if (R.st.kind !== 'pg' || reader.startsWith('cli.')) return true;
  if (reader.startsWith('sdk.')) return writer.startsWith('sdk.');
  return reader === writer;
}

function check(R, events, store) {
  const acks = Object.fromEntries(SECRETS.map((s) => [s, new Map()]));
  const tried = new Map(); // value -> secret
  const dtried = new Set();
  const destroyed = new Set();
  const counts = { put: { sdk: 0, cli: 0, embed: 0 }, read: { sdk: 0, cli: 0, embed: 0 }, destroy: 0, rotate: 0 };
  const actor = (who) => who.split('.')[0];
  for (const e of events) {
    if (e.k === 'try') tried.set(e.val, e.s);
    if (e.k === 'dtry') dtried.add(`${e.s}@${e.v}`);
    if (e.k === 'destroy') {
      destroyed.add(`${e.s}@${e.v}`);
      counts.destroy++;
    }
    if (e.k === 'rotate') counts.rotate++;
    if (e.k === 'read' || e.k === 'readid') counts.read[actor(e.who)]++;
    if (e.k === 'err' && (e.t1 === undefined || e.t1 < R.tKill))
      R.problem('error', `${e.who}: ${e.op}${e.s ? ` ${e.s}` : ''} failed before the kill: ${e.rc || e.cls || `exit ${e.code}`} ${e.msg}`);
    if (e.k !== 'put') continue;
    counts.put[actor(e.who)]++;
    const v = Number(e.v);
    const prev = acks[e.s].get(v);
    if (prev)
      R.problem('duplicate', `${e.s}@${v} acknowledged twice: to ${prev.who} at ${R.at(prev.t1)} (${short(prev.val)}) ` +
        `and to ${e.who} at ${R.at(e.t1)} (${short(e.val)})`);
    else acks[e.s].set(v, e);
  }

  // The store: ids 1..N, every value attempted once, every acknowledged put present.
  const owner = new Map(); // value -> s@id
  for (const s of SECRETS) {
    const { ids, state, val } = store[s];
    const bad = ids.findIndex((id, i) => id !== i + 1);
    if (bad >= 0) R.problem('ids', `${s}: version ids in the store are ${ids.join(',')}: expected 1..${ids.length}, unique and gapless`);
    for (const [id, v] of val) {
      if (v === undefined) continue;
      if (owner.has(v)) R.problem('duplicate', `${s}@${id}: the same value was also stored as ${owner.get(v)} (a double write)`);
      owner.set(v, `${s}@${id}`);
      if (tried.get(v) !== s) R.problem('value', `${s}@${id} holds ${short(v)}, which no actor put to ${s}`);
    }
    for (const [v, a] of acks[s]) {
      const where = `${s}@${v} acknowledged to ${a.who} at ${R.at(a.t1)}`;
      const st = state.get(v);
      if (st === undefined) R.problem('lost', `${where} is missing: the store has ${ids.length ? `versions 1..${ids.length}` : 'no version'} of ${s}`);
      else if (st === 'destroyed') {
        if (!dtried.has(`${s}@${v}`)) R.problem('destroy', `${where} is destroyed, but nobody destroyed it`);
      } else if (destroyed.has(`${s}@${v}`)) R.problem('destroy', `${where}: its destroy was acknowledged, but it is ${st}`);
      else if (val.get(v) !== a.val) R.problem('lost', `${where}: the store holds ${short(val.get(v))}, not the acknowledged ${short(a.val)}`);
    }
  }

  // Reads: the right value for their version, fresh, never backwards.
  const last = new Map(); // reader/secret -> [version, event]
  const lastIds = new Map();
  const unknownDestroyed = (s) => [...store[s].state].some(([id, st]) => st === 'destroyed' && !acks[s].has(id));
  for (const e of events) {
    if (!['read', 'readid', 'ids', 'list'].includes(e.k)) continue;
    const secrets = e.k === 'list' ? SECRETS.filter((s) => e.counts[s] !== undefined) : [e.s];
    for (const s of secrets) {
      let v;
      if (e.k === 'ids') v = e.ids.length ? e.ids[e.ids.length - 1] : 0;
      else if (e.k === 'list') v = e.counts[s];
      else if (e.v !== null) v = Number(e.v);
      else {
        // A CLI read: the version is the one that holds the value it printed.
        const o = owner.get(e.val);
        const a = [...acks[s]].find(([, x]) => x.val === e.val);
        if (o && o.startsWith(`${s}@`)) v = Number(o.split('@')[1]);
        else if (a) v = a[0];
        else {
          if (!(s === DESTROYABLE && unknownDestroyed(s)))
            R.problem('lost', `${e.who} read ${s} at ${R.at(e.t0)}..${R.at(e.t1)} and got ${short(e.val)}, which is in no version of ${s} now (lost after it was read?)`);
          continue;
        }
      }
      const where = `${e.who} ${e.k === 'read' ? 'read latest of' : e.k === 'readid' ? 'read by id' : e.k === 'ids' ? 'listed the versions of' : 'listed (coffer list)'} ${s} at ${R.at(e.t0)}..${R.at(e.t1)}`;
      if (e.k === 'ids' && e.ids.some((id, i) => id !== i + 1)) R.problem('ids', `${where}: ids ${e.ids.join(',')} are not 1..n`);
      if (v > store[s].ids.length) R.problem('lost', `${where}: saw version ${v}, but the store ends at ${store[s].ids.length} (lost after it was seen?)`);
      if ((e.k === 'read' || e.k === 'readid') && v > 0) {
        const expect = store[s].state.get(v) === 'enabled' ? store[s].val.get(v) : acks[s].get(v)?.val;
        if (expect !== undefined && expect !== e.val)
          R.problem('value', `${where}: version ${v} with value ${short(e.val)}, but version ${v} is ${short(expect)}`);
        if (e.k === 'readid' && (String(v) !== e.want || e.val !== e.expect))
          R.problem('value', `${where}: asked for ${e.want} (${short(e.expect)}), got version ${v} (${short(e.val)})`);
      }
      if (!MONO.has(s) || e.k === 'readid') continue;
      // Freshness: at least every eligible put acknowledged before this read began.
      let need = 0;
      let by = null;
      for (const [av, a] of acks[s])
        if (a.t1 < e.t0 && av > need && eligible(R, e.who, a.who)) {
          need = av;
          by = a;
        }
      if (v < need)
        R.problem('stale', `${where}: got version ${v}, but version ${need} had been acknowledged to ${by.who} at ${R.at(by.t1)}`);
      const map = e.k === 'read' ? last : lastIds;
      const key = `${e.who}/${s}`;
      const p = map.get(key);
      if (p && v < p[0]) R.problem('backwards', `${where}: got version ${v} after version ${p[0]} at ${R.at(p[1].t0)}`);
      map.set(key, [v, e]);
    }
  }
  return counts;
}

function tally(problems) {
  const n = PROBLEM_ORDER.map((cat) => [cat, problems.filter((p) => p.cat === cat).length]).filter(([, k]) => k > 0);
  return `${problems.length} problem(s) (${n.map(([cat, k]) => `${cat} ${k}`).join(', ')})`;
}

function report(problems) {
  for (const cat of PROBLEM_ORDER) {
    const list = problems.filter((p) => p.cat === cat);
    for (const p of list.slice(0, SHOWN_PER_CATEGORY)) console.log(`  ${cat.toUpperCase()}: ${p.msg}`);
    if (list.length > SHOWN_PER_CATEGORY) console.log(`  ${cat.toUpperCase()}: ... and ${list.length - SHOWN_PER_CATEGORY} more`);
  }
}

// ---- main ---------------------------------------------------------------------------------------

async function main() {
  if (KIND !== 'sqlite' && KIND !== 'pg') throw new Error('usage: test_scenario.mjs sqlite|pg [PART PARTS]');
  checkClock();
  if (!(PART >= 0 && PART < PARTS && TOTAL > 0)) throw new Error('usage: test_scenario.mjs sqlite|pg [PART PARTS]');
  const be = backend(KIND, `scenario_${PART}`);
  const rounds = [];
  if (ONLY !== null) rounds.push([(ONLY - BASE) | 0, ONLY]);
  else for (let n = PART; n < TOTAL; n += PARTS) rounds.push([n, (BASE + n) >>> 0]);
  console.log(`# scenario on ${KIND}: ${rounds.length} round(s), seed = ${hex(BASE)} + round` +
    ` (rerun one: SCENARIO_SEED=<seed>; more: SCENARIO_ROUNDS=<n> in all)`);
  const failed = [];
  const started = now();
  for (const [n, seed] of rounds) {
    const st = await be.fresh();
    const R = new Round(n, seed, st);
    const plan = planRound(seed);
    const planText = `run ${plan.runMs} ms${plan.early ? ', CLI+embedder start with the server' : ''}; ` +
      `kill ${plan.order.map((r) => `${r} ${plan.kill[r]}`).join(', ')}` +
      `; check via CLI${plan.fresh ? (plan.freshFirst ? ' after a fresh server' : ' then a fresh server') : ''}`;
    let counts = null;
    const T = [['start', now()]];
    const phase = (name) => T.push([name, now()]);
    try {
      await runRound(R, plan);
      if (st.settle) st.settle();
      phase('actors');
      const events = loadEvents(R);
      let view = null;
      if (plan.fresh && plan.freshFirst) view = await viewViaServer(R, events);
      const store = await storeViaCli(R);
      if (plan.fresh && !plan.freshFirst) view = await viewViaServer(R, events);
      if (view) compareViews(R, view, store);
      phase(plan.fresh ? 'CLI+server' : 'CLI');
      await integrityCheck(R);
      counts = check(R, events, store);
      phase('checks');
      if (process.env.SCENARIO_TIMING)
        console.log(`# ms: ${T.slice(1).map(([name, t], i) => `${name} ${(Number(t - T[i][1]) / 1e6).toFixed(0)}`).join(', ')}` +
          ` (ready at ${R.at(R.tGo)}, kill at ${R.at(R.tKill)})`);
    } catch (e) {
      R.problem('error', `the round could not run: ${String(e.message || e).trim().replace(/\n/g, '\n    ')}`);
    }
    const by = (o) => `${Object.values(o).reduce((a, b) => a + b, 0)} (${Object.entries(o).map(([k, v]) => `${k} ${v}`).join(', ')})`;
    const c = counts
      ? `puts acknowledged ${by(counts.put)}, reads ${by(counts.read)}, ${counts.destroy} destroy(s), ${counts.rotate} key rotation(s); `
      : '';
    if (R.problems.length === 0) {
      console.log(`ok - round ${n} seed ${hex(seed)}: ${c}${planText}`);
      st.cleanup();
    } else {
      failed.push(hex(seed));
      console.log(`not ok - round ${n} seed ${hex(seed)} (${KIND}): ${tally(R.problems)}; ${c}${planText}`);
      report(R.problems);
      if (process.env.COFFER_KEEP_TMP) console.log(`  store and logs kept in ${st.dir}`);
    }
  }
  const secs = (Number(now() - started) / 1e9).toFixed(1);
  console.log(`${rounds.length - failed.length} passed, ${failed.length} failed (${secs} s)` +
    (failed.length ? `; failing seeds: ${failed.join(' ')} (rerun: SCENARIO_SEED=<seed>)` : ''));
  process.exit(failed.length === 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(`not ok - ${e.stack || e}`);
  process.exit(1);
});
