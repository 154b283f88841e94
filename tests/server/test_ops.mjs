// Issue 12: what an operator watches. grpc.health.v1.Health/Check with a real gRPC client
// (grpc-js, proto/grpc/health/v1/health.proto), the --metrics listener's counters moving by exactly
// the requests sent, log lines with RFC 3339 UTC times and levels (text and --log-format json), no
// value, token or key in any log line or metric (canaries), and $STATE_DIRECTORY as the store.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { A, cacheRequire, check, COFFER, eq, loadContract, main, PROTO, startServer, T, tmpDir } from './lib.mjs';

const { grpc, pkg } = loadContract();
const protoLoader = cacheRequire()('@grpc/proto-loader');
const healthPkg = grpc.loadPackageDefinition(
  protoLoader.loadSync('grpc/health/v1/health.proto', { includeDirs: [PROTO], keepCase: true, enums: Number, defaults: true }),
);
const Health = healthPkg.grpc.health.v1.Health;
const SecretManager = pkg.nitric.proto.secrets.v1.SecretManager;
const Resources = pkg.nitric.proto.resources.v1.Resources;

const unary = (client, method, req, md = new grpc.Metadata()) =>
  new Promise((resolve) => client[method](req, md, (err, resp) => resolve({ err, resp })));
async function ok(client, method, req, md) {
  const { err, resp } = await unary(client, method, req, md);
  if (err) throw new Error(`${method} failed: ${err.code} ${err.details}`);
  return resp;
}

function scrape(port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body }));
    }).on('error', reject);
  });
}

// 'name{labels}' -> value, for every sample line.
function samples(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}
const val = (s, key) => s.get(key) ?? 0;

const metricsPort = (srv) => Number(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(srv.stdout)[1]);

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

// Canaries: a value, a bearer token and a master key that must never be logged or exported.
const rnd = (n) => Array.from({ length: n }, () => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'[Math.floor(Math.random() * 26)]).join('');
const VALUE = `VAL${rnd(21)}`;
const TOKEN = `TOK${rnd(29)}`;
const KEY = Buffer.from(rnd(32)); // 32 bytes: the master key
const KEY_B64 = KEY.toString('base64');

function noCanary(text, where) {
  for (const [what, s] of [['value', VALUE], ['token', TOKEN], ['master key (base64)', KEY_B64],
    ['master key (raw)', KEY.toString()], ['master key (hex)', KEY.toString('hex')],
    ['value (base64)', Buffer.from(VALUE).toString('base64')], ['token fragment', TOKEN.slice(3, 15)],
    ['value fragment', VALUE.slice(3, 15)]])
    check(!text.includes(s), `the ${what} appears in ${where}`);
}

const dir = tmpDir('ops');
let srv, port, sm, res, health;

await main([
  ['start with --metrics 127.0.0.1:0', async () => {
    srv = await startServer(path.join(dir, 'store'), ['--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0']);
    port = metricsPort(srv);
    const creds = grpc.credentials.createInsecure();
    sm = new SecretManager(srv.addr(), creds);
    res = new Resources(srv.addr(), creds);
    health = new Health(srv.addr(), creds);
  }],
  ['Health/Check: the server and each of its services SERVING; an unknown service NOT_FOUND', async () => {
    eq((await ok(health, 'Check', { service: '' })).status, 1, 'Check("") status (SERVING)');
    for (const s of ['nitric.proto.secrets.v1.SecretManager', 'nitric.proto.resources.v1.Resources',
      'nitric.secret.v1.SecretService', 'grpc.health.v1.Health'])
      eq((await ok(health, 'Check', { service: s })).status, 1, `Check(${s})`);
    const { err } = await unary(health, 'Check', { service: 'no.such.Service' });
    eq(err && err.code, grpc.status.NOT_FOUND, 'unknown service');
  }],
  ['Health/Watch is UNIMPLEMENTED (unary server), so clients fall back to Check', async () => {
    const code = await new Promise((resolve) => {
      const call = health.Watch({ service: '' });
      call.on('data', () => {});
      call.on('error', (e) => resolve(e.code));
      call.on('end', () => resolve('end'));
    });
    eq(code, grpc.status.UNIMPLEMENTED, 'Watch');
  }],
  ['/metrics: Prometheus text; counters move by exactly the requests sent', async () => {
    await ok(res, 'Declare', {
      id: { type: T.Policy, name: '' },
      policy: { principals: [{ type: T.Service, name: '' }], actions: [A.SecretPut, A.SecretAccess],
        resources: [{ type: T.Secret, name: 'm.one' }, { type: T.Secret, name: 'm.none' }] },
    });
    const r0 = await scrape(port);
    eq(r0.status, 200, 'GET /metrics');
    check(/^text\/plain; version=0\.0\.4/.test(r0.type), `content type ${r0.type}`);
    check(/^coffer_build_info\{version="\d+\.\d+\.\d+",libversion="\d+\.\d+\.\d+"\} 1$/m.test(r0.body), 'build info');
    const a = samples(r0.body);
    const PUTS = 7, ACCESSES = 5, CHECKS = 3;
    for (let i = 0; i < PUTS; i++) await ok(sm, 'Put', { secret: { name: 'm.one' }, value: Buffer.from(`v${i}`) });
    for (let i = 0; i < ACCESSES; i++) await ok(sm, 'Access', { secret_version: { secret: { name: 'm.one' }, version: 'latest' } });
    const { err } = await unary(sm, 'Access', { secret_version: { secret: { name: 'm.none' }, version: 'latest' } });
    eq(err && err.code, grpc.status.NOT_FOUND, 'missing secret');
    for (let i = 0; i < CHECKS; i++) await ok(health, 'Check', { service: '' });
    const r1 = await scrape(port);
    const b = samples(r1.body);
    const d = (k) => val(b, k) - val(a, k);
    eq(d('coffer_requests_total{method="Put",code="OK"}'), PUTS, 'Put OK');
    eq(d('coffer_requests_total{method="Access",code="OK"}'), ACCESSES, 'Access OK');
    eq(d('coffer_requests_total{method="Access",code="NOT_FOUND"}'), 1, 'Access NOT_FOUND');
    eq(d('coffer_requests_total{method="Check",code="OK"}'), CHECKS, 'Check OK');
    eq(d('coffer_request_duration_seconds_count{method="Put"}'), PUTS, 'Put latency count');
    eq(d('coffer_request_duration_seconds_bucket{method="Access",le="+Inf"}'), ACCESSES + 1, 'Access +Inf bucket');
    check(d('coffer_request_duration_seconds_sum{method="Put"}') > 0, 'Put latency sum grew');
    eq(d('coffer_put_batch_size_sum'), PUTS, 'puts committed in batches');
    check(d('coffer_put_batch_size_count') >= 1 && d('coffer_put_batch_size_count') <= PUTS, 'batches');
    // Each Access that reached the library read the cache or the store.
    eq(d('coffer_cache_hits_total') + d('coffer_cache_misses_total'), ACCESSES + 1, 'cache hits + misses');
    check(val(b, 'coffer_connections_open') >= 1, 'a connection is open');
    check(val(b, 'coffer_connections_total') >= 1, 'connections accepted');
    for (const [k, v] of b) check(Number.isFinite(v), `sample ${k} is a number`);
    const notFound = await new Promise((resolve) => http.get({ host: '127.0.0.1', port, path: '/' }, (r) => { r.resume(); resolve(r.statusCode); }));
    eq(notFound, 404, 'GET / (only /metrics)');
  }],
  ['log lines: RFC 3339 UTC time, a level, then the message', async () => {
    const lines = srv.stderr.split('\n').filter((l) => l !== '');
    check(lines.length > 10, `request lines logged: ${lines.length}`);
    for (const l of lines) {
      const [ts, level] = l.split(' ');
      check(RFC3339.test(ts) && ['info', 'warn', 'error'].includes(level), `log line ${JSON.stringify(l)}`);
    }
    check(lines.some((l) => / info coffer: Check principal=- secret=- version=- status=0 us=\d+$/.test(l)), 'a Check line');
  }],
  ['stop', async () => {
    sm.close(); res.close(); health.close();
    const { code } = await srv.stop();
    eq(code, 0, 'exit code');
  }],
  ['--log-format json, tokens and a master key: no value, token or key in any log line or metric', async () => {
    const pol = path.join(dir, 'policy'), tok = path.join(dir, 'tokens');
    fs.writeFileSync(pol, 'allow ci put,access canary.secret\n');
    fs.writeFileSync(tok, `ci ${TOKEN}\n`, { mode: 0o600 });
    const s = await startServer(path.join(dir, 'store2'),
      ['--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0', '--log-format', 'json', '--policy', pol, '--tokens', tok],
      { COFFER_MASTER_KEY: KEY_B64 });
    const creds = grpc.credentials.createInsecure();
    const c = new SecretManager(s.addr(), creds);
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${TOKEN}`);
    const put = await ok(c, 'Put', { secret: { name: 'canary.secret' }, value: Buffer.from(VALUE) }, md);
    const got = await ok(c, 'Access', { secret_version: { secret: { name: 'canary.secret' }, version: put.secret_version.version } }, md);
    eq(Buffer.from(got.value).toString(), VALUE, 'the value round-trips');
    const bad = new grpc.Metadata();
    bad.set('authorization', `Bearer ${TOKEN.slice(0, -1)}x`); // a wrong token is not logged either
    const { err } = await unary(c, 'Access', { secret_version: { secret: { name: 'canary.secret' }, version: 'latest' } }, bad);
    eq(err && err.code, grpc.status.UNAUTHENTICATED, 'wrong token');
    const m = await scrape(metricsPort(s));
    c.close();
    eq((await s.stop()).code, 0, 'exit code');
    noCanary(s.stderr, 'the log');
    noCanary(s.stdout, 'the start-up lines');
    noCanary(m.body, '/metrics');
    const lines = s.stderr.split('\n').filter((l) => l !== '');
    const objs = lines.map((l) => JSON.parse(l));
    for (const o of objs)
      check(RFC3339.test(o.time) && ['info', 'warn', 'error'].includes(o.level) && typeof o.msg === 'string', JSON.stringify(o));
    const puts = objs.filter((o) => o.msg === 'request' && o.method === 'Put');
    eq(puts.length, 1, 'one Put request line');
    eq(puts[0].principal, 'ci', 'principal');
    eq(puts[0].secret, 'canary.secret', 'secret name');
    eq(puts[0].status, 0, 'status');
    check(objs.some((o) => o.msg === 'request' && o.method === 'Access' && o.status === 16), 'the refused Access is logged');
  }],
  ['no --store and no COFFER_STORE: the store is $STATE_DIRECTORY (systemd StateDirectory=), not ./.coffer', async () => {
    const state = path.join(dir, 'state'), cwd = path.join(dir, 'cwd');
    fs.mkdirSync(state, { mode: 0o700 });
    fs.mkdirSync(cwd);
    const env = { ...process.env, STATE_DIRECTORY: state };
    delete env.COFFER_STORE;
    const p = spawn(COFFER, ['serve', '--listen', '127.0.0.1:0'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    await new Promise((resolve, reject) => {
      p.stdout.on('data', (d) => { out += d; if (/^coffer: store /m.test(out)) resolve(); });
      p.on('close', (code) => reject(new Error(`exited ${code}`)));
    });
    check(out.includes(`coffer: store ${state},`), out);
    p.kill('SIGTERM');
    await new Promise((resolve) => p.on('close', resolve));
    check(fs.existsSync(path.join(state, 'master.key')), 'store and key in STATE_DIRECTORY');
    check(!fs.existsSync(path.join(cwd, '.coffer')), 'nothing in the working directory');
  }],
]);
