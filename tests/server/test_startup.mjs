// What coffer serve refuses at start-up, before it serves anything: a port that another process
// holds (the workers of one server share their port, never two servers), a non-loopback
// listener without TLS and tokens, refused before anything is bound, tokens without a policy
// file, and a Unix socket path that is not a socket or that another server listens on.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { check, COFFER, eq, loadContract, main, startServer, tmpDir } from './lib.mjs';

const { grpc, pkg } = loadContract();

const dir = tmpDir('startup');
const started = [];
process.on('exit', () => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

// Run `coffer serve` until it either exits (refused) or announces its listeners (started, then
// stopped here). Resolves with { started, code, stdout, stderr }.
function attempt(store, args) {
  return new Promise((resolve) => {
    const env = { ...process.env };
    for (const k of ['COFFER_MASTER_KEY', 'COFFER_PASSPHRASE', 'COFFER_KEY_FILE', 'COFFER_STORE']) delete env[k];
    const p = spawn(COFFER, ['--store', store, 'serve', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(p);
    let stdout = '';
    let stderr = '';
    let up = false;
    p.stderr.on('data', (d) => {
      stderr += d;
    });
    p.stdout.on('data', (d) => {
      stdout += d;
      if (!up && /^coffer: store /m.test(stdout)) {
        up = true;
        p.kill('SIGTERM');
      }
    });
    p.on('close', (code) => resolve({ started: up, code, stdout, stderr }));
  });
}

const call = (client, method, req) =>
  new Promise((resolve, reject) => client[method](req, (err, resp) => (err ? reject(err) : resolve(resp))));

// A fresh channel each time: a new connection, which the kernel would hand to any socket
// listening on the port.
async function readBack(addr, name) {
  const sm = new pkg.nitric.proto.secrets.v1.SecretManager(addr, grpc.credentials.createInsecure(),
    { 'grpc.use_local_subchannel_pool': 1 });
  try {
    const r = await call(sm, 'Access', { secret_version: { secret: { name }, version: 'latest' } });
    return Buffer.from(r.value).toString();
  } finally {
    sm.close();
  }
}

let a;

function refusedInUse(r, where) {
  check(!r.started, `a second server started on ${where}:\n${r.stdout}`);
  check(r.code !== 0 && r.code !== null, `exit code ${r.code}`);
  check(r.stderr.includes(`coffer serve: ${where} is already in use by another process`),
    `message: ${JSON.stringify(r.stderr)}`);
  check(!/listening on/.test(r.stdout), 'nothing announced');
}

await main([
  ['a server on a port (two workers)', async () => {
    a = await startServer(path.join(dir, 'store-a'), ['--listen', '127.0.0.1:0', '--threads', '2', '--policy-wait', '2000']);
    const res = new pkg.nitric.proto.resources.v1.Resources(a.addr(), grpc.credentials.createInsecure());
    const sm = new pkg.nitric.proto.secrets.v1.SecretManager(a.addr(), grpc.credentials.createInsecure());
    await call(res, 'Declare', {
      id: { type: 7, name: '' },
      policy: { principals: [{ type: 1, name: '' }], actions: [400, 401], resources: [{ type: 8, name: 'which' }] },
    });
    await call(sm, 'Put', { secret: { name: 'which' }, value: Buffer.from('server A') });
    res.close();
    sm.close();
    eq(await readBack(a.addr(), 'which'), 'server A', 'A serves');
  }],
  ['a second server on the same port is refused; the first keeps serving', async () => {
    const where = `127.0.0.1:${a.port()}`;
    const r = await attempt(path.join(dir, 'store-b'), ['--listen', where, '--threads', '2']);
    refusedInUse(r, where);
    check(a.alive(), 'A still runs');
    for (let i = 0; i < 8; i++) eq(await readBack(a.addr(), 'which'), 'server A', `connection ${i} served by A`);
  }],
  ['a second server on the wildcard address of that port is refused too', async () => {
    const r = await attempt(path.join(dir, 'store-b'), ['--listen', `0.0.0.0:${a.port()}`, '--insecure']);
    refusedInUse(r, `0.0.0.0:${a.port()}`);
    eq(await readBack(a.addr(), 'which'), 'server A', 'served by A');
  }],
  ['a port held by another program is refused with the same message', async () => {
    const other = net.createServer();
    await new Promise((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      const where = `127.0.0.1:${other.address().port}`;
      refusedInUse(await attempt(path.join(dir, 'store-b'), ['--listen', where]), where);
    } finally {
      other.close();
    }
  }],
  ['stop the first server', async () => {
    eq((await a.stop()).code, 0, 'exit code');
  }],
  ['a non-loopback listener without TLS and tokens is refused before anything is bound', async () => {
    // 192.0.2.1 (TEST-NET-1) is on no interface here: bind() would fail with EADDRNOTAVAIL. The
    // refusal must come from the exposure rule, checked before any socket or store is made.
    const store = path.join(dir, 'store-c');
    const r = await attempt(store, ['--listen', '192.0.2.1:50071']);
    check(!r.started, 'started');
    eq(r.code, 2, `exit code (${r.stderr})`);
    check(/refusing to listen on 192\.0\.2\.1 \(not loopback\) without TLS/.test(r.stderr), `message: ${JSON.stringify(r.stderr)}`);
    check(!/cannot listen/.test(r.stderr), `no bind was tried: ${JSON.stringify(r.stderr)}`);
    check(!fs.existsSync(store), 'no store was created');
  }],
  ['a token file that is a symlink is refused, even to a good file', async () => {
    const pol = path.join(dir, 'policy');
    fs.writeFileSync(pol, 'allow ci access *\n');
    const real = path.join(dir, 'tokens');
    fs.writeFileSync(real, 'ci 0123456789abcdef0123456789abcdef\n', { mode: 0o600 });
    const link = path.join(dir, 'tokens-link');
    fs.symlinkSync(real, link);
    const r = await attempt(path.join(dir, 'store-d'), ['--listen', '127.0.0.1:0', '--policy', pol, '--tokens', link]);
    check(!r.started, 'started');
    eq(r.code, 2, `exit code (${r.stderr})`);
    check(r.stderr.includes(`coffer serve: tokens: ${link}: is a symbolic link`), `message: ${JSON.stringify(r.stderr)}`);
    check(!r.stderr.includes('0123456789abcdef'), 'no token in the message');
    fs.chmodSync(real, 0o644);
    const open = await attempt(path.join(dir, 'store-d'), ['--listen', '127.0.0.1:0', '--policy', pol, '--tokens', real]);
    eq(open.code, 2, 'a token file others can read');
    check(/chmod 600/.test(open.stderr), open.stderr);
    fs.chmodSync(real, 0o600);
    check((await attempt(path.join(dir, 'store-d'), ['--listen', '127.0.0.1:0', '--policy', pol, '--tokens', real])).started, '0600 accepted');
  }],
  ['tokens without --policy are refused: they would authenticate and restrict nothing', async () => {
    const tokens = path.join(dir, 'tokens-np');
    fs.writeFileSync(tokens, 'ci 0123456789abcdef0123456789abcdef\n', { mode: 0o600 });
    const store = path.join(dir, 'store-e');
    const r = await attempt(store, ['--listen', '127.0.0.1:0', '--tokens', tokens]);
    check(!r.started, 'started');
    eq(r.code, 2, `exit code (${r.stderr})`);
    check(r.stderr.includes('coffer serve: --tokens needs --policy'), `message: ${JSON.stringify(r.stderr)}`);
    check(!fs.existsSync(store), 'no store was created');
  }],
  ['a Unix socket listener: mode 0600, removed at exit; a stale socket is replaced', async () => {
    const sock = path.join(dir, 'a.sock');
    const pol = path.join(dir, 'policy-which');
    fs.writeFileSync(pol, 'allow default access which\n');
    const s = await startServer(path.join(dir, 'store-a'), ['--listen', `unix:${sock}`, '--policy', pol]);
    check(/listening on unix:\S+a\.sock \(service default\)$/m.test(s.stdout), s.stdout);
    const st = fs.lstatSync(sock);
    check(st.isSocket(), 'a socket');
    eq(st.mode & 0o777, 0o600, 'mode');
    eq(await readBack(`unix:${sock}`, 'which'), 'server A', 'served over the socket');
    eq((await s.stop('SIGKILL')).sig, 'SIGKILL', 'killed');
    check(fs.lstatSync(sock).isSocket(), 'a killed server leaves its socket behind');
    const t = await startServer(path.join(dir, 'store-a'), ['--listen', `unix:${sock}`, '--policy', pol]);
    eq(await readBack(`unix:${sock}`, 'which'), 'server A', 'the stale socket was replaced');
    const r = await attempt(path.join(dir, 'store-b'), ['--listen', `unix:${sock}`]);
    check(!r.started && r.code !== 0, 'a second server on a live socket started');
    check(r.stderr.includes(`coffer serve: unix:${sock} is already in use by another process`), `message: ${JSON.stringify(r.stderr)}`);
    eq(await readBack(`unix:${sock}`, 'which'), 'server A', 'the first keeps serving');
    eq((await t.stop()).code, 0, 'exit code');
    check(!fs.existsSync(sock), 'removed at exit');
  }],
  ['a Unix socket path that is not a socket is refused and left alone', async () => {
    const file = path.join(dir, 'not-a-socket');
    fs.writeFileSync(file, 'keep me\n');
    const r = await attempt(path.join(dir, 'store-b'), ['--listen', `unix:${file}`]);
    check(!r.started && r.code !== 0, 'started');
    check(r.stderr.includes(`coffer serve: refusing to replace ${file}: it exists and is not a socket`), `message: ${JSON.stringify(r.stderr)}`);
    eq(fs.readFileSync(file, 'utf8'), 'keep me\n', 'the file is untouched');
    const link = path.join(dir, 'link.sock');
    fs.symlinkSync(path.join(dir, 'elsewhere.sock'), link);
    const l = await attempt(path.join(dir, 'store-b'), ['--listen', `unix:${link}`]);
    check(!l.started && l.stderr.includes(`refusing to replace ${link}: it exists and is not a socket`), l.stderr);
    check(fs.lstatSync(link).isSymbolicLink() && !fs.existsSync(path.join(dir, 'elsewhere.sock')), 'the link is untouched');
  }],
]);
