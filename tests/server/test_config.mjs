// Issue 12 item 3: one configuration file for `coffer serve`, and SIGHUP reload. A real server
// started with the sample coffer.conf of docs/operations.md (paths pointed at a temporary folder);
// --print-config (sources, precedence, a password masked); SIGHUP with a new policy and token file
// while a grpc-js channel and a raw HTTP/2 session stay open (the change applies on the same
// connections: no new connection is accepted, neither session sees GOAWAY or a close); SIGHUP with
// a broken policy or token file (refused, the old ones kept, a log line without the token); a
// changed configuration file (a path taken, the rest named as needing a restart); health SERVING;
// /metrics counters moved by exactly the calls sent, and the reload counter.
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { cacheRequire, check, COFFER, eq, grpcStatus, HERE, loadContract, main, PROTO, run, Server, tmpDir } from './lib.mjs';

const { grpc, pkg } = loadContract();
const protoLoader = cacheRequire()('@grpc/proto-loader');
const healthPkg = grpc.loadPackageDefinition(
  protoLoader.loadSync('grpc/health/v1/health.proto', { includeDirs: [PROTO], keepCase: true, enums: Number, defaults: true }),
);
const Health = healthPkg.grpc.health.v1.Health;
const SecretManager = pkg.nitric.proto.secrets.v1.SecretManager;

const dir = tmpDir('config');
const rnd = (n) => Array.from({ length: n }, () => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'[Math.floor(Math.random() * 26)]).join('');
const TOKEN1 = `TOKA${rnd(28)}`;
const TOKEN2 = `TOKB${rnd(28)}`;
const BAD_TOKEN = `TOKC${rnd(28)}`;
const PASSWORD = `PW${rnd(20)}`;

// The sample from docs/operations.md, its paths and ports pointed at this test's folder.
function sampleConf() {
  const doc = fs.readFileSync(path.resolve(HERE, '..', '..', 'docs', 'operations.md'), 'utf8');
  const m = /<!-- sample coffer\.conf[^\n]*-->\n```ini\n([\s\S]*?)```/.exec(doc);
  check(m, 'docs/operations.md has the sample coffer.conf block');
  return m[1]
    .replaceAll('/var/lib/coffer', path.join(dir, 'store'))
    .replaceAll('/etc/coffer/', `${dir}/`)
    .replaceAll('127.0.0.1:50051', '127.0.0.1:0')
    .replaceAll('127.0.0.1:9464', '127.0.0.1:0');
}
const CONF = path.join(dir, 'coffer.conf');
const POLICY = path.join(dir, 'policy');
const TOKENS = path.join(dir, 'tokens');
const lineOf = (text, re) => text.split('\n').findIndex((l) => re.test(l)) + 1;

const writeTokens = (text) => {
  fs.writeFileSync(`${TOKENS}.new`, text, { mode: 0o600 });
  fs.renameSync(`${TOKENS}.new`, TOKENS);
};

function start(args) {
  const proc = spawn(COFFER, args, {
    env: { ...process.env, COFFER_MASTER_KEY: '', COFFER_PASSPHRASE: '', COFFER_KEY_FILE: '', COFFER_STORE: '', COFFER_CONFIG: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const srv = new Server(proc);
  proc.stderr.on('data', (d) => (srv.stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${srv.stderr}`)), 30000);
    proc.stdout.on('data', (d) => {
      srv.stdout += d;
      for (const m of srv.stdout.matchAll(/listening on \S+:(\d+) \(service ([^)]+)\)/g)) srv.ports[m[2]] = Number(m[1]);
      if (/^coffer: store /m.test(srv.stdout)) {
        clearTimeout(timer);
        resolve(srv);
      }
    });
    proc.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${srv.stderr}`));
    });
  });
}

// SIGHUP, then wait for the reload's outcome line (the n-th since start).
async function hup(srv, n) {
  srv.proc.kill('SIGHUP');
  const outcomes = () => (srv.stderr.match(/coffer: (reloaded: |reload refused)/g) || []).length;
  for (let i = 0; i < 1000 && outcomes() < n; i++) await new Promise((r) => setTimeout(r, 10));
  eq(outcomes(), n, 'reload outcome lines');
  const lines = srv.stderr.split('\n').filter((l) => /coffer: (reloaded: |reload refused)/.test(l));
  return lines[n - 1];
}

function scrape(port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        const m = new Map();
        for (const line of body.split('\n')) {
          if (line === '' || line.startsWith('#')) continue;
          const i = line.lastIndexOf(' ');
          m.set(line.slice(0, i), Number(line.slice(i + 1)));
        }
        resolve(m);
      });
    }).on('error', reject);
  });
}

let srv, sm, health, session, sessionEvents = [], metricsPort;
const sent = new Map(); // 'method,code' -> calls sent since the first scrape
let counting = false;

const code = (err) => (err ? err.code : grpc.status.OK);
const CODE_NAME = { 0: 'OK', 7: 'PERMISSION_DENIED', 16: 'UNAUTHENTICATED', 5: 'NOT_FOUND' };
function tally(method, c) {
  if (!counting) return;
  const k = `${method},${CODE_NAME[c]}`;
  sent.set(k, (sent.get(k) || 0) + 1);
}
function call(method, req, token) {
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve) => sm[method](req, md, (err) => {
    tally(method, code(err));
    resolve(code(err));
  }));
}
const access = (name, token) => call('Access', { secret_version: { secret: { name }, version: 'latest' } }, token);
const put = (name) => call('Put', { secret: { name }, value: Buffer.from(`value of ${name}`) });
async function healthCheck() {
  const st = await new Promise((resolve) => health.Check({ service: '' }, (err, resp) => resolve(err ? -1 : resp.status)));
  tally('Check', 0);
  return st;
}
async function rawCheck() {
  const st = await grpcStatus(session, '/grpc.health.v1.Health/Check', Buffer.from([0, 0, 0, 0, 0]));
  tally('Check', st);
  return st;
}

await main([
  ['the sample coffer.conf from docs/operations.md, a policy and a token file', async () => {
    fs.writeFileSync(CONF, sampleConf());
    fs.writeFileSync(POLICY, 'allow default put,access c.one\nallow default put c.two\nallow svc access c.one\n');
    writeTokens(`svc ${TOKEN1}\n`);
  }],
  ['--print-config: every value and where it came from; flags > environment > file; password masked', async () => {
    const text = fs.readFileSync(CONF, 'utf8');
    const r = await run(COFFER, ['serve', '--config', CONF, '--threads', '3', '--print-config'],
      { env: { COFFER_STORE: `postgres://coffer:${PASSWORD}@127.0.0.1/coffer` } });
    const out = r.stdout.toString();
    eq(r.code, 0, `exit code (${r.stderr})`);
    check(!out.includes(PASSWORD) && !r.stderr.includes(PASSWORD), 'the password is not printed');
    const has = (re, what) => check(re.test(out), `${what} in:\n${out}`);
    has(/^store = postgres:\/\/coffer:\*\*\*@127\.0\.0\.1\/coffer +# environment COFFER_STORE$/m, 'store from the environment, masked');
    has(/^threads = 3 +# flag --threads$/m, 'threads from the flag');
    has(new RegExp(`^policy = ${POLICY} +# ${CONF}:${lineOf(text, /^policy =/)}$`, 'm'), 'policy from the file');
    has(new RegExp(`^listen = 127\\.0\\.0\\.1:0 +# ${CONF}:${lineOf(text, /^listen =/)}$`, 'm'), 'listen from the file');
    has(/^log-format = text +#/m, 'log-format');
    has(/^# allow-uid: not set \(default\)$/m, 'unset keys say so');
    has(new RegExp(`^# configuration file: ${CONF} \\(--config\\)$`, 'm'), 'which file');
    // COFFER_CONFIG names the file when --config does not.
    const e = await run(COFFER, ['serve', '--print-config'], { env: { COFFER_CONFIG: CONF } });
    eq(e.code, 0, 'exit code with COFFER_CONFIG');
    check(/configuration file: .* \(environment COFFER_CONFIG\)/.test(e.stdout.toString()), 'COFFER_CONFIG used');
  }],
  ['a bad coffer.conf is refused with FILE:LINE and the server does not start', async () => {
    const bad = path.join(dir, 'bad.conf');
    for (const [text, want] of [
      ['[serve]\nlisten = 127.0.0.1:0\nlisten-on = 127.0.0.1:0\n', `${bad}:3: unknown key 'listen-on'`],
      ['[serve]\nthreads = 2\nthreads = 4\n', `${bad}:3: 'threads' given twice (first at line 2)`],
      ['[serve]\nmax-conns = lots\n', `${bad}:2: 'max-conns' wants a number from 1 to 100000`],
      ['[server]\n', `${bad}:1: unknown section [server]`],
      // Values only the server can judge are named by their line too.
      ['[serve]\nlisten = 127.0.0.1:0\nlisten = nonsense\n', `${bad}:3: expected --listen [SERVICE=]HOST:PORT`],
      ['[serve]\nlog-format = xml\n', `${bad}:2: expected --log-format text or json`],
    ]) {
      fs.writeFileSync(bad, text);
      const r = await run(COFFER, ['serve', '--config', bad]);
      eq(r.code, 2, `exit code for ${JSON.stringify(text)}`);
      check(r.stderr.includes(want), `message ${JSON.stringify(r.stderr)} has ${JSON.stringify(want)}`);
    }
  }],
  ['start coffer serve --config coffer.conf; open a grpc-js channel and a raw HTTP/2 session', async () => {
    srv = await start(['serve', '--config', CONF]);
    metricsPort = Number(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(srv.stdout)[1]);
    check(/2 threads, policy file rules/.test(srv.stdout), `threads and policy from the file: ${srv.stdout}`);
    sm = new SecretManager(srv.addr(), grpc.credentials.createInsecure());
    health = new Health(srv.addr(), grpc.credentials.createInsecure());
    session = http2.connect(`http://${srv.addr()}`);
    for (const ev of ['goaway', 'close', 'error']) session.on(ev, () => sessionEvents.push(ev));
    eq(await put('c.one'), 0, 'put c.one');
    eq(await put('c.two'), 0, 'put c.two');
    eq(await access('c.one'), 0, 'access c.one (policy 1)');
    eq(await access('c.two'), grpc.status.PERMISSION_DENIED, 'access c.two (policy 1: put only)');
    eq(await access('c.one', TOKEN1), 0, 'svc (token 1) access c.one');
    eq(await rawCheck(), 0, 'raw session: Health/Check');
  }],
  ['SIGHUP with a new policy and token file: applied on the open connections', async () => {
    const m0 = await scrape(metricsPort);
    counting = true;
    fs.writeFileSync(`${POLICY}.new`, 'allow default put c.one\nallow default put,access c.two\nallow svc access c.two\n');
    fs.renameSync(`${POLICY}.new`, POLICY);
    writeTokens(`svc ${TOKEN2}\n`);
    const line = await hup(srv, 1);
    check(line.includes(`reloaded: policy ${POLICY} (3 grants), tokens ${TOKENS} (1)`), `log: ${line}`);
    eq(await access('c.one'), grpc.status.PERMISSION_DENIED, 'access c.one, formerly allowed, now denied');
    eq(await access('c.two'), 0, 'access c.two, formerly denied, now allowed');
    eq(await access('c.two', TOKEN1), grpc.status.UNAUTHENTICATED, 'the old token no longer works');
    eq(await access('c.two', TOKEN2), 0, 'the new token works');
    eq(await rawCheck(), 0, 'raw session still answers');
    const m1 = await scrape(metricsPort);
    eq(m1.get('coffer_connections_total') - m0.get('coffer_connections_total'), 0, 'no new connection: the same ones served');
    eq(m1.get('coffer_reloads_total{result="ok"}'), 1, 'reloads ok');
    srv.m0 = m0;
  }],
  ['SIGHUP with a broken policy: refused, the old one kept, a log line saying where', async () => {
    fs.writeFileSync(POLICY, 'allow default put,access c.one\nallow default everything c.two\n');
    const line = await hup(srv, 2);
    check(line.includes(`reload refused, nothing changed: ${POLICY}:2: expected 'allow PRINCIPAL`), `log: ${line}`);
    check(/ error coffer: /.test(line), `logged as an error: ${line}`);
    eq(await access('c.one'), grpc.status.PERMISSION_DENIED, 'still policy 2: c.one denied');
    eq(await access('c.two'), 0, 'still policy 2: c.two allowed');
    eq(await access('c.two', TOKEN2), 0, 'tokens unchanged');
  }],
  ['SIGHUP with a broken token file: refused, old tokens kept, no token in the log', async () => {
    fs.writeFileSync(POLICY, 'allow default put c.one\nallow default put,access c.two\nallow svc access c.two\n');
    writeTokens(`svc ${TOKEN2}\nsvc ${BAD_TOKEN} trailing-word\n`);
    const line = await hup(srv, 3);
    check(line.includes(`reload refused, nothing changed: ${TOKENS}:2: expected 'PRINCIPAL TOKEN'`), `log: ${line}`);
    for (const t of [TOKEN1, TOKEN2, BAD_TOKEN]) check(!srv.stderr.includes(t) && !srv.stderr.includes(t.slice(4, 16)), 'a token in the log');
    eq(await access('c.two', TOKEN2), 0, 'the token in force still works');
    eq(await access('c.two', BAD_TOKEN), grpc.status.UNAUTHENTICATED, 'nothing of the bad file was taken');
    writeTokens(`svc ${TOKEN2}\n`);
  }],
  ['the configuration file changed: a new policy path is taken, the rest needs a restart', async () => {
    const p3 = path.join(dir, 'policy3');
    fs.writeFileSync(p3, 'allow default put,access c.one\nallow default put c.two\nallow svc access c.one\n');
    const text = fs.readFileSync(CONF, 'utf8').replace(/^policy = .*$/m, `policy = ${p3}`).replace(/^threads = 2$/m, 'threads = 3')
      .replace(/^listen = .*$/m, 'listen = 127.0.0.1:1');
    fs.writeFileSync(CONF, text);
    const line = await hup(srv, 4);
    check(line.includes(`reloaded: policy ${p3} (3 grants)`), `log: ${line}`);
    check(srv.stderr.includes(`warn coffer: ${CONF} changed listen, threads: needs a restart, not applied`), `restart line:\n${srv.stderr}`);
    eq(await access('c.one'), 0, 'policy3 applies: c.one allowed');
    eq(await access('c.two'), grpc.status.PERMISSION_DENIED, 'policy3 applies: c.two denied');
    eq(await access('c.one', TOKEN2), 0, 'svc with the token in force');
    // A configuration file that no longer parses: nothing changes.
    fs.writeFileSync(CONF, `${text}bogus = 1\n`);
    const bad = await hup(srv, 5);
    check(bad.includes(`reload refused, nothing changed: ${CONF}:${text.split('\n').length}: unknown key 'bogus'`), `log: ${bad}`);
    eq(await access('c.one'), 0, 'policy3 still applies');
    fs.writeFileSync(CONF, text);
  }],
  ['health SERVING; /metrics moved by exactly the calls sent, reloads counted; the sessions never closed', async () => {
    eq(await healthCheck(), 1, 'Health/Check SERVING');
    eq(await rawCheck(), 0, 'raw session: Health/Check after every reload');
    const m0 = srv.m0;
    const m1 = await scrape(metricsPort);
    for (const [k, n] of sent) {
      const [method, c] = k.split(',');
      const key = `coffer_requests_total{method="${method}",code="${c}"}`;
      eq((m1.get(key) || 0) - (m0.get(key) || 0), n, key);
    }
    let total = 0;
    for (const [k, v] of m1) if (k.startsWith('coffer_requests_total{')) total += v - (m0.get(k) || 0);
    eq(total, [...sent.values()].reduce((a, b) => a + b, 0), 'no request counted that was not sent');
    eq(m1.get('coffer_reloads_total{result="ok"}'), 2, 'reloads ok');
    eq(m1.get('coffer_reloads_total{result="refused"}'), 3, 'reloads refused');
    eq(m1.get('coffer_connections_total') - m0.get('coffer_connections_total'), 0, 'no new connection over all reloads');
    eq(sessionEvents.join(','), '', 'raw session events (no GOAWAY, no close)');
    check(!session.closed && !session.destroyed, 'raw session open');
  }],
  ['SIGHUP under load: every call in flight or arriving during reloads answered, none failed', async () => {
    const calls = [];
    const clients = Array.from({ length: 4 }, () => new SecretManager(srv.addr(), grpc.credentials.createInsecure()));
    const one = (c) => new Promise((resolve) => c.Access({ secret_version: { secret: { name: 'c.one' }, version: 'latest' } },
      (err) => resolve(err ? err.code : 0)));
    const before = (srv.stderr.match(/coffer: reloaded: /g) || []).length;
    for (let i = 0; i < 400; i++) {
      calls.push(one(clients[i % clients.length]));
      if (i % 40 === 0) srv.proc.kill('SIGHUP');
    }
    const codes = await Promise.all(calls);
    eq(codes.filter((c) => c !== 0).length, 0, 'failed calls during reloads');
    for (let i = 0; i < 1000 && (srv.stderr.match(/coffer: reloaded: /g) || []).length < before + 1; i++)
      await new Promise((r) => setTimeout(r, 10));
    check((srv.stderr.match(/coffer: reloaded: /g) || []).length > before, 'reloads happened');
    for (const c of clients) c.close();
  }],
  ['SIGTERM drains and exits 0', async () => {
    session.close();
    sm.close();
    health.close();
    const { code: c } = await srv.stop();
    eq(c, 0, `exit code\n${srv.stderr}`);
    for (const t of [TOKEN1, TOKEN2, BAD_TOKEN]) check(!srv.stderr.includes(t), 'a token in the log');
  }],
  ['TLS: SIGHUP swaps the certificate for new connections; an open one keeps its own; a bad key is refused', async () => {
    const mk = async (name) => {
      const key = path.join(dir, `${name}.key`);
      const cert = path.join(dir, `${name}.pem`);
      const r = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`]);
      eq(r.code, 0, `openssl req (${r.stderr})`);
      fs.chmodSync(key, 0o600);
      return { key, cert };
    };
    const a = await mk('tls-a');
    const b = await mk('tls-b');
    const cert = path.join(dir, 'tls.pem');
    const key = path.join(dir, 'tls.key');
    const use = (c) => {
      fs.copyFileSync(c.cert, `${cert}.new`);
      fs.copyFileSync(c.key, `${key}.new`);
      fs.chmodSync(`${key}.new`, 0o600);
      fs.renameSync(`${cert}.new`, cert);
      fs.renameSync(`${key}.new`, key);
    };
    use(a);
    const conf = path.join(dir, 'tls.conf');
    fs.writeFileSync(conf, `[serve]\nstore = ${path.join(dir, 'store')}\nlisten = 127.0.0.1:0\ntls-cert = ${cert}\ntls-key = ${key}\n`);
    const t = await start(['serve', '--config', conf]);
    const connect = () => new Promise((resolve, reject) => {
      const s = http2.connect(`https://${t.addr()}`, { rejectUnauthorized: false });
      s.on('error', reject);
      s.on('connect', () => resolve(s));
    });
    const cn = (s) => s.socket.getPeerCertificate().subject.CN;
    const s1 = await connect();
    eq(cn(s1), 'tls-a', 'first certificate');
    const events = [];
    for (const ev of ['goaway', 'close', 'error']) s1.on(ev, () => events.push(ev));
    use(b);
    check((await hup(t, 1)).includes(`reloaded: no policy file (development), TLS ${cert}`), 'TLS reload logged');
    const s2 = await connect();
    eq(cn(s2), 'tls-b', 'a new connection gets the new certificate');
    eq(await grpcStatus(s1, '/grpc.health.v1.Health/Check', Buffer.from([0, 0, 0, 0, 0])), 0, 'the old connection still served');
    eq(cn(s1), 'tls-a', 'the old connection keeps its certificate');
    // A key others may read is refused: nothing changes.
    use(a);
    fs.chmodSync(key, 0o644);
    const line = await hup(t, 2);
    check(line.includes('reload refused, nothing changed') && line.includes(key), `log: ${line}`);
    const s3 = await connect();
    eq(cn(s3), 'tls-b', 'still the certificate in force');
    eq(await grpcStatus(s3, '/grpc.health.v1.Health/Check', Buffer.from([0, 0, 0, 0, 0])), 0, 'new connection served');
    eq(events.join(','), '', 'old TLS session events');
    for (const s of [s1, s2, s3]) s.close();
    eq((await t.stop()).code, 0, 'exit code');
  }],
]);
