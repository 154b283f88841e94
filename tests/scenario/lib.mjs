// Shared parts of the scenario tests (tests/scenario): the two backends, the one clock, CLI
// processes, the embedder program, a gRPC client for checking through a server. Node built-ins
// and the packages the server tests already install (tests/server/npm_setup.sh).
//
// The clock. Every actor stamps its events with CLOCK_MONOTONIC: the C program reads it with
// clock_gettime(CLOCK_MONOTONIC); Node's process.hrtime.bigint() is libuv's uv_hrtime(), which on
// Linux reads the same clock. CLOCK_MONOTONIC is one clock for the whole system (not per process,
// unlike what "hrtime is relative to an arbitrary point" suggests), so stamps from different
// processes compare. checkClock() proves it at start instead of trusting it: the driver reads its
// clock, a child prints its reading, the driver reads again, and the child's value must lie
// between the two, for the C program and for a Node child alike. Wall clocks (Date.now(),
// `date +%s%N`) are never used: they step.
//
// Stamps are always taken on the safe side: t0 before a call is sent (or before a CLI process is
// spawned), t1 after its answer arrived (or after the process was reaped). So "put acknowledged
// (t1) before a read began (t0)" computed from stamps implies it really was, and a freshness
// violation the checker reports is never an artefact of late stamps.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { COFFER, HERE as SERVER_TESTS, cacheRequire, startServer, tmpDir } from '../server/lib.mjs';

export { COFFER, startServer, tmpDir };
export const HERE = path.dirname(new URL(import.meta.url).pathname);
export const EMBED = process.env.SCENARIO_EMBED;
export const TEST_KEY = 'AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=';
if (!EMBED) throw new Error('SCENARIO_EMBED is not set (run through ctest)');

export const now = () => process.hrtime.bigint();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// mulberry32: small, seedable, deterministic.
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const hex = (n) => `0x${(n >>> 0).toString(16)}`;

// A seed from the environment: decimal or 0x-hex.
export function envSeed(name) {
  const s = process.env[name];
  if (s === undefined || s === '') return null;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`${name}: not a 32-bit seed: ${s}`);
  return n >>> 0;
}

// The environment of every child: no key material or store inherited from the caller.
export function baseEnv(extra = {}) {
  const env = { ...process.env };
  for (const k of ['COFFER_MASTER_KEY', 'COFFER_PASSPHRASE', 'COFFER_KEY_FILE', 'COFFER_STORE', 'COFFER_MAX_VALUE'])
    delete env[k];
  return { ...env, ...extra };
}

// ---- backends ----------------------------------------------------------------------------------

// A fresh, initialized store per call: {kind, location, env, dir, cleanup()}. SQLite: a folder
// with its default key file. PostgreSQL: a database (re)created on the test server
// (tests/pg/pg_server.sh), with the master key in the environment as PostgreSQL needs.
export function backend(kind, dbname) {
  if (kind !== 'sqlite' && kind !== 'pg') throw new Error(`unknown backend ${kind}`);
  return {
    kind,
    async fresh() {
      let st;
      if (kind === 'sqlite') {
        const dir = tmpDir('scenario');
        st = { kind, dir, location: path.join(dir, 'store'), env: baseEnv() };
      } else {
        const state = process.env.COFFER_PG_STATE;
        const script = process.env.COFFER_PG_SCRIPT;
        if (!state || !script) throw new Error('COFFER_PG_STATE / COFFER_PG_SCRIPT not set (run through ctest)');
        const url = execFileSync(script, ['newdb', state, dbname]).toString().trim();
        const dir = tmpDir('scenario-pg');
        st = { kind, dir, location: url, env: baseEnv({ COFFER_MASTER_KEY: TEST_KEY }) };
        // After the actors are killed, their PostgreSQL sessions may still be finishing a
        // COMMIT: the checks wait until every session on the database has ended.
        st.settle = () => execFileSync(script, ['quiesce', state, dbname]);
      }
      // COFFER_KEEP_TMP=1 keeps every store and log for a look afterwards.
      st.cleanup = () => process.env.COFFER_KEEP_TMP || fs.rmSync(st.dir, { recursive: true, force: true });
      const r = await cli(st, ['init']).done;
      if (r.code !== 0) throw new Error(`coffer init failed (${r.code}): ${r.stderr}`);
      return st;
    },
  };
}

// ---- processes ---------------------------------------------------------------------------------

// Spawn `coffer --store LOCATION ARGS...`; {proc, done} where done resolves with
// {code, sig, stdout (Buffer), stderr, t0, t1}: t0 before the spawn, t1 after the process closed.
export function cli(st, args, input = '') {
  const t0 = now();
  const proc = spawn(COFFER, ['--store', st.location, ...args], { env: st.env, stdio: ['pipe', 'pipe', 'pipe'] });
  const out = [];
  let err = '';
  proc.stdout.on('data', (d) => out.push(d));
  proc.stderr.on('data', (d) => {
    err += d;
  });
  proc.stdin.on('error', () => {}); // a killed process closes its end early
  proc.stdin.end(input);
  const done = new Promise((resolve) =>
    proc.on('close', (code, sig) => resolve({ code, sig, stdout: Buffer.concat(out), stderr: err, t0, t1: now() })),
  );
  return { proc, done };
}

export const firstLine = (s) => String(s).split('\n').find((l) => l.trim() !== '') || '';

// The embedder in script mode (scenario_embed.c): cmd('put 0 NAME VALUE') -> 'ok 3'.
export class Embed {
  constructor(st) {
    this.proc = spawn(EMBED, ['script', st.location], { env: st.env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.waiting = [];
    this.stderr = '';
    let buf = '';
    this.proc.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const w = this.waiting.shift();
        if (w) w.resolve(line);
      }
    });
    this.proc.stderr.on('data', (d) => {
      this.stderr += d;
    });
    this.proc.stdin.on('error', () => {});
    this.exited = new Promise((resolve) => this.proc.on('close', (code, sig) => resolve({ code, sig })));
    this.exited.then(() => {
      for (const w of this.waiting.splice(0)) w.reject(new Error(`scenario_embed exited: ${this.stderr}`));
    });
  }
  cmd(line) {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.proc.stdin.write(`${line}\n`);
    });
  }
  // cmd() that must answer "ok ...": the words after "ok".
  async ok(line) {
    const a = await this.cmd(line);
    if (!a.startsWith('ok')) throw new Error(`scenario_embed '${line.split(' ').slice(0, 3).join(' ')}': ${a}`);
    return a.split(' ').slice(1);
  }
  kill(sig = 'SIGKILL') {
    this.proc.kill(sig);
    return this.exited;
  }
}

// A free TCP port on 127.0.0.1 right now (the caller retries if someone takes it first).
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// `coffer serve` on the store with an operator policy granting everything to `default` (so no
// call waits for its policy Declare), two workers whatever the machine has (the committer opens a
// third handle), on `port` (0: any).
export async function serve(st, port = 0, extra = []) {
  const policy = path.join(st.dir, 'policy');
  fs.writeFileSync(policy, 'allow default put,access *\n');
  const args = ['--listen', `127.0.0.1:${port}`, '--threads', '2', '--policy', policy, '--quiet', ...extra];
  const env = {};
  if (st.env.COFFER_MASTER_KEY) env.COFFER_MASTER_KEY = st.env.COFFER_MASTER_KEY;
  return startServer(st.location, args, env);
}

// Prove that this process and its children stamp events with one clock (see the top).
export function checkClock() {
  const probes = [
    ['scenario_embed (clock_gettime CLOCK_MONOTONIC)', EMBED, ['now']],
    ['node child (process.hrtime.bigint)', process.execPath, ['-e', 'process.stdout.write(String(process.hrtime.bigint()))']],
  ];
  for (const [what, cmd, args] of probes)
    for (let i = 0; i < 3; i++) {
      const a = now();
      const c = BigInt(execFileSync(cmd, args).toString().trim());
      const b = now();
      if (!(a <= c && c <= b))
        throw new Error(`clock check: ${what} read ${c}, not between the driver's ${a} and ${b}: ` +
          'the actors do not share CLOCK_MONOTONIC, so cross-process times cannot be compared');
    }
}

// The JSON lines of an actor's log; a torn last line (the writer was killed) is dropped.
export function readLog(file) {
  if (!fs.existsSync(file)) return [];
  const text = fs.readFileSync(file, 'utf8');
  const lines = text.split('\n');
  lines.pop(); // after the last '\n': empty, or a line cut short by a kill
  const out = [];
  for (const l of lines) {
    try {
      out.push(JSON.parse(l));
    } catch {
      throw new Error(`${file}: unparsable log line: ${l.slice(0, 120)}`);
    }
  }
  return out;
}

// ---- a gRPC client (for checks through a server) ----------------------------------------------

let SecretManager = null;
export function grpcClient(addr) {
  const require = cacheRequire();
  const grpc = require('@grpc/grpc-js');
  if (!SecretManager) {
    const protoLoader = require('@grpc/proto-loader');
    const def = protoLoader.loadSync(['nitric/proto/secrets/v1/secrets.proto'], {
      includeDirs: [path.resolve(SERVER_TESTS, '..', '..', 'proto')],
      keepCase: true,
      longs: String,
      defaults: true,
    });
    SecretManager = grpc.loadPackageDefinition(def).nitric.proto.secrets.v1.SecretManager;
  }
  const c = new SecretManager(addr, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  // access(name, version) -> {version, value (Buffer)} or {code, details}
  c.accessP = (name, version) =>
    new Promise((resolve) =>
      c.Access({ secret_version: { secret: { name }, version } }, { deadline: Date.now() + 30000 }, (err, resp) =>
        resolve(
          err
            ? { code: err.code, details: err.details }
            : { version: resp.secret_version.version, value: Buffer.from(resp.value) },
        ),
      ),
    );
  return c;
}
