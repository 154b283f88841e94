// Real `coffer serve` processes on one PostgreSQL database (issue 4), driven by @grpc/grpc-js:
//
//   node test_servers.mjs two    acceptance 2: two servers, 32 clients (16 per server) put to
//                                three secrets for a while. Afterwards every acknowledged put is
//                                read back by id with its exact value, ids per secret are unique
//                                and gapless and nothing else was written, every value a client
//                                read as latest is the one acknowledged for that id, and no client
//                                saw latest (through its own server) go backwards or behind its
//                                own acknowledged put.
//   node test_servers.mjs crash  acceptance 3: puts stream through two servers; PostgreSQL is
//                                stopped with `pg_ctl stop -m immediate` and started again; the
//                                same server processes serve puts again by themselves, and every
//                                acknowledged put is present with its value.
//
// Environment (set by tests/pg/CMakeLists.txt): COFFER_BIN, COFFER_NODE_CACHE, COFFER_PG_STATE,
// COFFER_PG_SCRIPT. Seeds are fixed and printed; waits are bounded; timing decides nothing.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HERE as SERVER_TESTS, cacheRequire, check, eq, main } from '../server/lib.mjs';

const require = cacheRequire();
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO = path.resolve(SERVER_TESTS, '..', '..', 'proto');
const def = protoLoader.loadSync(['nitric/proto/secrets/v1/secrets.proto'], {
  includeDirs: [PROTO],
  keepCase: true,
  longs: String,
  defaults: true,
});
const SecretManager = grpc.loadPackageDefinition(def).nitric.proto.secrets.v1.SecretManager;

const COFFER = process.env.COFFER_BIN;
const STATE = process.env.COFFER_PG_STATE;
const SCRIPT = process.env.COFFER_PG_SCRIPT;
const KEY = 'AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=';
const SECRETS = ['pg.shared.a', 'pg.shared.b', 'pg.shared.c'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// mulberry32: small, seedable, deterministic.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function newdb(name) {
  return execFileSync(SCRIPT, ['newdb', STATE, name]).toString().trim();
}

// Start `coffer --store URL serve` on a free port; resolves with {proc, addr, stop()}.
function startServer(url, work, tag) {
  const policy = path.join(work, 'policy');
  fs.writeFileSync(policy, 'allow default put,access *\n');
  const env = { ...process.env, COFFER_MASTER_KEY: KEY };
  delete env.COFFER_PASSPHRASE;
  delete env.COFFER_KEY_FILE;
  const proc = spawn(
    COFFER,
    ['--store', url, 'serve', '--listen', '127.0.0.1:0', '--policy', policy, '--quiet'],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => {
    err += d;
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({ code, sig })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server ${tag} did not start:\n${err}`)), 60000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m && /^coffer: store /m.test(out)) {
        clearTimeout(timer);
        resolve({
          proc,
          addr: `127.0.0.1:${m[1]}`,
          stderr: () => err,
          alive: () => proc.exitCode === null && proc.signalCode === null,
          stop: async () => {
            proc.kill('SIGTERM');
            return exited;
          },
        });
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server ${tag} exited with ${code}:\n${err}`));
    });
  });
}

// One client = one channel of its own (no subchannel sharing), so 32 clients are 32 connections.
function client(addr) {
  return new SecretManager(addr, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  });
}

function put(c, name, value) {
  return new Promise((resolve) => {
    c.Put({ secret: { name }, value: Buffer.from(value) }, { deadline: Date.now() + 30000 }, (err, resp) =>
      resolve(err ? { err } : { version: Number(resp.secret_version.version) }),
    );
  });
}

function access(c, name, version) {
  return new Promise((resolve) => {
    c.Access({ secret_version: { secret: { name }, version } }, { deadline: Date.now() + 30000 }, (err, resp) =>
      resolve(
        err
          ? { err }
          : { version: Number(resp.secret_version.version), value: Buffer.from(resp.value).toString() },
      ),
    );
  });
}

// acked[k] maps version -> value. Every version 1..n of each secret must be acknowledged (when
// `all`), hold exactly its value, and version n+1 must not exist: unique, gapless, no double write.
async function verifyAcked(clients, acked, all) {
  let checked = 0;
  for (let k = 0; k < SECRETS.length; k++) {
    const versions = [...acked[k].keys()].sort((a, b) => a - b);
    const max = versions.length ? versions[versions.length - 1] : 0;
    if (all) eq(versions.length, max, `${SECRETS[k]}: acknowledged ids are 1..${max}`);
    for (const v of versions) {
      const r = await access(clients[checked % clients.length], SECRETS[k], String(v));
      check(!r.err, `${SECRETS[k]}@${v}: ${r.err && r.err.details}`);
      eq(r.value, acked[k].get(v), `${SECRETS[k]}@${v} value`);
      checked++;
    }
    // Gapless even where an outcome was unknown: every id up to the newest exists.
    const latest = await access(clients[0], SECRETS[k], 'latest');
    check(!latest.err, `${SECRETS[k]}@latest: ${latest.err && latest.err.details}`);
    for (let v = 1; v <= latest.version; v++) {
      if (acked[k].has(v)) continue;
      const r = await access(clients[v % clients.length], SECRETS[k], String(v));
      check(!r.err, `${SECRETS[k]}@${v} (outcome unknown to its client) must exist if a later id does`);
    }
    if (all) eq(latest.version, max, `${SECRETS[k]}: latest is the newest acknowledged id`);
    const next = await access(clients[1 % clients.length], SECRETS[k], String(latest.version + 1));
    eq(next.err && next.err.code, grpc.status.NOT_FOUND, `${SECRETS[k]}@${latest.version + 1}`);
  }
  return checked;
}

// Both servers agree on latest once the staleness bound has passed (bounded poll).
async function converge(ca, cb) {
  for (let i = 0; i < 300; i++) {
    let same = true;
    for (const s of SECRETS) {
      const a = await access(ca, s, 'latest');
      const b = await access(cb, s, 'latest');
      if (a.err || b.err || a.version !== b.version) same = false;
    }
    if (same) return;
    await sleep(50);
  }
  throw new Error('the two servers never agreed on latest');
}

const CLIENTS = 32;
const ROUNDS = 40;

async function twoServers() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-pg2-'));
  const url = newdb('two_servers');
  // Both start at once on an empty database: schema and header are created exactly once.
  const [A, B] = await Promise.all([startServer(url, work, 'A'), startServer(url, work, 'B')]);
  try {
    const acked = SECRETS.map(() => new Map());
    const readsSeen = []; // [k, version, value] read as latest
    const clients = [];
    console.log(`# ${CLIENTS} clients x ${ROUNDS} rounds, seeds 0xc0ffee+i`);
    const runClient = async (i) => {
      const c = client(i % 2 ? B.addr : A.addr);
      clients.push(c);
      const rand = rng(0xc0ffee + i);
      const seen = SECRETS.map(() => 0);
      for (let r = 0; r < ROUNDS; r++) {
        const k = Math.floor(rand() * SECRETS.length);
        const value = `c${i}-r${r}-${Math.floor(rand() * 1e9)}`;
        const p = await put(c, SECRETS[k], value);
        check(!p.err, `client ${i} put: ${p.err && p.err.details}`);
        check(!acked[k].has(p.version), `${SECRETS[k]}@${p.version} acknowledged twice`);
        acked[k].set(p.version, value);
        seen[k] = Math.max(seen[k], p.version); // read-your-writes through the same server
        const k2 = Math.floor(rand() * SECRETS.length);
        const a = await access(c, SECRETS[k2], 'latest');
        if (a.err && a.err.code === grpc.status.NOT_FOUND && seen[k2] === 0) continue; // none yet
        check(!a.err, `client ${i} access: ${a.err && a.err.details}`);
        check(a.version >= seen[k2], `client ${i}: latest of ${SECRETS[k2]} went from ${seen[k2]} back to ${a.version}`);
        seen[k2] = a.version;
        readsSeen.push([k2, a.version, a.value]);
      }
    };
    const t0 = Date.now();
    await Promise.all([...Array(CLIENTS).keys()].map(runClient));
    const secs = (Date.now() - t0) / 1000;
    const n = acked.reduce((s, m) => s + m.size, 0);
    console.log(`# ${n} puts and ${readsSeen.length} reads in ${secs.toFixed(1)} s through 2 servers`);
    eq(n, CLIENTS * ROUNDS, 'every put acknowledged');
    await converge(client(A.addr), client(B.addr));
    const checked = await verifyAcked(clients, acked, true);
    for (const [k, v, value] of readsSeen) eq(value, acked[k].get(v), `value read as latest of ${SECRETS[k]}@${v}`);
    console.log(`# ${checked} acknowledged puts verified, ${readsSeen.length} latest reads matched`);
    for (const c of clients) c.close();
  } finally {
    await A.stop();
    await B.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function crashRestart() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'coffer-pg3-'));
  const url = newdb('crash_servers');
  const [A, B] = await Promise.all([startServer(url, work, 'A'), startServer(url, work, 'B')]);
  const pids = [A.proc.pid, B.proc.pid];
  let stopping = false;
  try {
    const acked = SECRETS.map(() => new Map());
    let ok = 0;
    let failed = 0;
    const stream = async (i) => {
      const c = client(i % 2 ? B.addr : A.addr);
      for (let r = 0; !stopping; r++) {
        const k = (i + r) % SECRETS.length;
        const value = `s${i}-r${r}`;
        const p = await put(c, SECRETS[k], value);
        if (p.err) {
          check(p.err.code === grpc.status.UNAVAILABLE, `put failed with ${p.err.code}: ${p.err.details}`);
          failed++;
          await sleep(20);
          continue;
        }
        acked[k].set(p.version, value);
        ok++;
      }
      c.close();
    };
    const streams = [...Array(8).keys()].map(stream);
    const until = async (cond, what) => {
      for (let i = 0; i < 1200 && !cond(); i++) await sleep(50);
      check(cond(), `timed out waiting for ${what}`);
    };
    await until(() => ok >= 100, '100 acknowledged puts');
    execFileSync(SCRIPT, ['crash', STATE]);
    const okAtCrash = ok;
    await until(() => failed >= 8, 'puts to fail while PostgreSQL is down');
    execFileSync(SCRIPT, ['restart', STATE]);
    await until(() => ok >= okAtCrash + 100, '100 more acknowledged puts after the restart');
    stopping = true;
    await Promise.all(streams);
    check(A.alive() && B.alive(), 'both servers still running');
    eq(A.proc.pid, pids[0], 'server A not restarted');
    console.log(`# ${ok} puts acknowledged, ${failed} refused as UNAVAILABLE while PostgreSQL was down`);
    const checked = await verifyAcked([client(A.addr), client(B.addr)], acked, false);
    console.log(`# ${checked} acknowledged puts present after the crash`);
  } finally {
    stopping = true;
    await A.stop();
    await B.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

const which = process.argv[2];
if (which === 'two') await main([['two servers, 32 clients, one database', twoServers]]);
else if (which === 'crash') await main([['PostgreSQL crash and restart under two servers', crashRestart]]);
else {
  console.error('usage: node test_servers.mjs two|crash');
  process.exit(2);
}
