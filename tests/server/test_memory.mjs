// Values do not stay in the server's memory: random canary values go through Put and Access (and
// through refused calls) from @grpc/grpc-js, then the live server's memory is read from
// /proc/PID/mem (every readable mapping: heap, thread stacks, libraries' data) and no canary may
// be found, while the client's connection is still open and again after it closed.
//
// Reading another process's memory needs ptrace rights over it: root (CAP_SYS_PTRACE) has them
// even when the server made itself non-dumpable (Release builds). Without them the test says so
// and is skipped (exit code 77), never passed.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { grpcMsg, ld } from './h2raw.mjs';
import { A, check, eq, grpcStatus, loadContract, main, run, startServer, T, tmpDir } from './lib.mjs';

const { grpc, pkg } = loadContract();
const MAX_VALUE = 100; // --max-value of the h2c server: a put of 200 bytes is over it

// Mappings larger than this are skipped: only a sanitizer's shadow memory is that large (14 TiB
// under ASan), and it holds shadow bytes, not data.
const SCAN_MAX_MAPPING = 2 ** 30;
const CHUNK = 4 << 20;

function mappings(pid) {
  return fs
    .readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [range, perms, , , , name = ''] = l.split(/\s+/);
      const [start, end] = range.split('-').map((x) => parseInt(x, 16));
      return { start, end, perms, name };
    });
}

// Each thread's stack pointer (from /proc/PID/task/TID/syscall: the threads wait in a syscall).
function stackPointers(pid) {
  const sps = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const f = fs.readFileSync(`/proc/${pid}/task/${tid}/syscall`, 'utf8').trim().split(' ');
    if (f.length >= 8) sps.push({ tid, sp: parseInt(f[f.length - 2], 16) });
  }
  return sps;
}

function where(addr, maps, sps) {
  const m = maps.find((x) => addr >= x.start && addr < x.end);
  if (!m) return `0x${addr.toString(16)}`;
  const t = sps.find((s) => s.sp >= m.start && s.sp < m.end);
  const what = t
    ? `thread ${t.tid}'s stack, ${t.sp - addr} bytes ${addr < t.sp ? 'below' : 'above'} its stack pointer`
    : m.name || 'anonymous memory';
  return `0x${addr.toString(16)} in ${what} (${m.perms} ${m.start.toString(16)}-${m.end.toString(16)})`;
}

// Every place where a needle occurs in the process's readable memory.
function scan(pid, needles) {
  const maps = mappings(pid);
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  const buf = Buffer.alloc(CHUNK);
  const longest = Math.max(...needles.map((n) => n.bytes.length));
  const hits = [];
  let read = 0;
  try {
    for (const m of maps) {
      if (m.perms[0] !== 'r' || m.end - m.start > SCAN_MAX_MAPPING) continue;
      if (m.name === '[vvar]' || m.name === '[vvar_vclock]' || m.name === '[vsyscall]') continue;
      let at = m.start;
      while (at < m.end) {
        const want = Math.min(CHUNK, m.end - at);
        let n = 0;
        try {
          n = fs.readSync(fd, buf, 0, want, at);
        } catch {
          // an unreadable page (device memory): nothing of ours is there
        }
        if (n <= 0) {
          at += 4096;
          continue;
        }
        read += n;
        const view = buf.subarray(0, n);
        for (const nd of needles)
          for (let i = view.indexOf(nd.bytes); i >= 0; i = view.indexOf(nd.bytes, i + 1))
            if (!hits.some((h) => h.needle === nd && h.addr === at + i)) hits.push({ needle: nd, addr: at + i });
        // The next read overlaps this one by a needle's length: none is missed at a boundary.
        at += at + n >= m.end || n <= longest ? n : n - longest;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  const sps = stackPointers(pid);
  for (const h of hits) h.where = where(h.addr, maps, sps);
  return { hits, read };
}

function canReadMemory(pid) {
  try {
    const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
    fs.closeSync(fd);
    return true;
  } catch (e) {
    return e.code;
  }
}

const call = (client, method, req, md = new grpc.Metadata()) =>
  new Promise((resolve) => client[method](req, md, (err, resp) => resolve({ err, resp })));

async function ok(client, method, req) {
  const { err, resp } = await call(client, method, req);
  if (err) throw new Error(`${method} failed: ${err.code} ${err.details}`);
  return resp;
}

async function fails(client, method, req, code, md) {
  const { err } = await call(client, method, req, md);
  check(err, `${method} should fail with ${code}`);
  eq(err.code, code, `${method} status (${err.details})`);
}

const seed = crypto.randomBytes(8).toString('hex');
const dir = tmpDir('memory');

// A value nobody else has (64 bytes unless told), random hex so that it is also a valid string,
// registered with the server it is sent to. What is looked for is every 16-byte piece of it (at
// most about 16 of them, evenly spread): a piece of a value is a leak as well.
function canary(ctx, label, len = 64) {
  const bytes = Buffer.from(crypto.randomBytes(len).toString('hex').slice(0, len));
  const step = Math.max(16, Math.floor(len / 256) * 16);
  for (let at = 0; at + 16 <= len; at += step)
    ctx.needles.push({ label, at, total: Math.floor((len - 16) / step) + 1, bytes: bytes.subarray(at, at + 16) });
  return bytes;
}

// The server's open sockets (listeners, connections).
function sockets(pid) {
  let n = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      // closed while we looked
    }
  }
  return n;
}

// Wait for a condition, looking every 20 ms, for at most 30 s.
async function until(pred) {
  for (let i = 0; i < 1500 && !pred(); i++) await new Promise((r) => setTimeout(r, 20));
  return pred();
}

// Every thread of the server asleep (state S): an answer reached us only after the thread that
// wrote it had made its copies, and once that thread sleeps again (in epoll_wait) it has also
// finished with them (written, wiped, freed). A thread still at work is R, or D in an fsync.
function idle(pid) {
  return fs.readdirSync(`/proc/${pid}/task`).every((tid) => {
    const st = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2)[0] === 'S';
  });
}

// Start a server with its own store, and clients of it on one channel.
async function start(tag, args, creds) {
  const store = path.join(dir, `store-${tag}-${seed}`);
  const srv = await startServer(store, ['--listen', '127.0.0.1:0', '--threads', '2', '--quiet', ...args]);
  const can = canReadMemory(srv.proc.pid);
  if (can !== true) {
    console.log(`# cannot read /proc/${srv.proc.pid}/mem (${can}): needs root or CAP_SYS_PTRACE; skipped`);
    await srv.stop();
    process.exit(77);
  }
  const ctx = { srv, store, secret: `mem-${tag}-${seed}`, needles: [], base: sockets(srv.proc.pid) };
  ctx.sm = new pkg.nitric.proto.secrets.v1.SecretManager(srv.addr(), creds);
  ctx.res = new pkg.nitric.proto.resources.v1.Resources(srv.addr(), creds);
  const policy = (names, actions) =>
    ok(ctx.res, 'Declare', {
      id: { type: T.Policy, name: '' },
      policy: { principals: [{ type: T.Service, name: '' }], actions, resources: names.map((name) => ({ type: T.Secret, name })) },
    });
  await ok(ctx.res, 'Declare', { id: { type: T.Secret, name: ctx.secret }, secret: {} });
  await policy([ctx.secret], [A.SecretPut, A.SecretAccess]);
  await policy(['ro'], [A.SecretAccess]);
  return ctx;
}

// Put each value and read it back, by its version and as latest (twice: the cached path too).
async function putAndAccess(ctx, values) {
  const acc = (version) => ({ secret_version: { secret: { name: ctx.secret }, version } });
  let last;
  for (const v of values) {
    const r = await ok(ctx.sm, 'Put', { secret: { name: ctx.secret }, value: v });
    last = r.secret_version.version;
    check(Buffer.from((await ok(ctx.sm, 'Access', acc(last))).value).equals(v), `version ${last} read back`);
  }
  for (let i = 0; i < 2; i++)
    check(Buffer.from((await ok(ctx.sm, 'Access', acc('latest'))).value).equals(values[values.length - 1]), 'latest read back');
}

async function closeClients(ctx) {
  ctx.sm.close();
  ctx.res.close();
  // Wait until the server has closed the connections (its sockets are back to the listeners
  // it started with): then everything of theirs has been freed.
  const closed = await until(() => sockets(ctx.srv.proc.pid) === ctx.base);
  check(closed, `the server still holds ${sockets(ctx.srv.proc.pid)} sockets, ${ctx.base} at start`);
}

function assertClean(ctx, what) {
  return until(() => idle(ctx.srv.proc.pid)).then((quiet) => {
    check(quiet, 'the server never went idle');
    const controls = [
      // Positive controls: what the server must hold, proving that the scan reads its memory.
      { label: 'control: the store path (argv, main stack)', bytes: Buffer.from(ctx.store) },
      { label: 'control: the secret name (heap)', bytes: Buffer.from(ctx.secret) },
    ];
    const { hits, read } = scan(ctx.srv.proc.pid, [...ctx.needles, ...controls]);
    for (const c of controls)
      check(hits.some((h) => h.needle === c), `${c.label} not found in ${read} bytes read: the scan does not work`);
    const byValue = new Map();
    for (const h of hits.filter((x) => !controls.includes(x.needle))) {
      if (!byValue.has(h.needle.label)) byValue.set(h.needle.label, []);
      byValue.get(h.needle.label).push(h);
    }
    check(
      byValue.size === 0,
      `${what}: values found in the server's memory (${read} bytes read):\n` +
        [...byValue].map(([label, hs]) => `  ${label}: ${hs.length} of ${hs[0].needle.total} pieces, ` +
          `e.g. bytes ${hs[0].needle.at}-${hs[0].needle.at + 15} at ${hs[0].where}`).join('\n'),
    );
  });
}

let plain, tls, envsrv;
// A failed check leaves its server running: stop it with the test.
process.on('exit', () => {
  for (const ctx of [plain, tls, envsrv]) if (ctx && ctx.srv.alive()) ctx.srv.proc.kill('SIGKILL');
});

await main([
  ['start', async () => {
    const tokens = path.join(dir, 'tokens');
    fs.writeFileSync(tokens, `ci ${crypto.randomBytes(16).toString('hex')}\n`, { mode: 0o600 });
    // Tokens go with a policy file (tokens alone are refused): the grants the Declares below ask for.
    const pol = path.join(dir, 'policy');
    fs.writeFileSync(pol, `allow default put,access mem-h2c-${seed}\nallow default access ro\n`);
    plain = await start('h2c', ['--policy-wait', '50', '--max-value', String(MAX_VALUE), '--policy', pol, '--tokens', tokens],
      grpc.credentials.createInsecure());
  }],
  ['values put and accessed do not stay in memory', async () => {
    // 64 bytes: one whole ChaCha20 block; 37 and 100: a partial last block.
    await putAndAccess(plain, [64, 64, 37, MAX_VALUE].map((len, i) => canary(plain, `put and accessed #${i} (${len} bytes)`, len)));
    await assertClean(plain, 'after Put and Access');
    await fails(plain.sm, 'Access', { secret_version: { secret: { name: plain.secret }, version: '999' } }, 5);
    await assertClean(plain, 'after an Access of a missing version');
  }],
  ['values of refused puts do not stay in memory', async () => {
    const put = (name, value) => ({ secret: { name }, value });
    const { sm, secret } = plain;
    await fails(sm, 'Put', put('ro', canary(plain, 'put to an access-only secret')), 7);
    await fails(sm, 'Put', put(`undeclared-${seed}`, canary(plain, 'put to an undeclared secret')), 7);
    await fails(sm, 'Put', put('a/b', canary(plain, 'put with an invalid name')), 3);
    await fails(sm, 'Put', put(secret, canary(plain, 'put over --max-value', 2 * MAX_VALUE)), 3);
    await fails(sm, 'Put', put('nul\0name', canary(plain, 'put with a NUL in its name')), 3);
    const md = new grpc.Metadata();
    md.set('authorization', 'Bearer not-a-valid-token-at-all');
    await fails(sm, 'Put', put(secret, canary(plain, 'put with a bad token')), 16, md);
    await assertClean(plain, 'after refused puts');
  }],
  ['values in malformed requests do not stay in memory', async () => {
    // The value first, then a secret whose inner field is cut short: protobuf-c copies the
    // value before it finds the fault in the nested message.
    const session = http2.connect(`http://${plain.srv.addr()}`);
    try {
      const value = ld(2, canary(plain, 'put whose secret is malformed'));
      const badSecret = ld(1, Buffer.from([0x0a, 0x40, 0x61]));
      const status = await grpcStatus(session, '/nitric.proto.secrets.v1.SecretManager/Put',
        grpcMsg(Buffer.concat([value, badSecret])));
      eq(status, 3, 'malformed put');
      await assertClean(plain, 'after a malformed put');
    } finally {
      session.close();
    }
  }],
  ['nothing is left once the clients closed', async () => {
    await closeClients(plain);
    await assertClean(plain, 'after the clients closed');
    eq((await plain.srv.stop()).code, 0, 'exit code');
  }],
  ['key material from the environment is wiped once the store is open', async () => {
    // The master key as base64 and a passphrase (ignored when a key is given, but still key
    // material) in the server's environment: after start-up neither may be in
    // /proc/PID/environ (the strings exec put on the stack) nor anywhere in its memory.
    const key = crypto.randomBytes(32).toString('base64');
    const pass = `pass-${crypto.randomBytes(12).toString('hex')}`;
    const store = path.join(dir, `store-env-${seed}`);
    const srv = await startServer(store, ['--listen', '127.0.0.1:0', '--threads', '2', '--quiet'],
      { COFFER_MASTER_KEY: key, COFFER_PASSPHRASE: pass });
    envsrv = { srv };
    const environ = fs.readFileSync(`/proc/${srv.proc.pid}/environ`);
    for (const [label, v] of [['COFFER_MASTER_KEY', key], ['COFFER_PASSPHRASE', pass]]) {
      check(environ.indexOf(Buffer.from(v)) < 0, `${label}'s value is still in /proc/PID/environ`);
    }
    const needles = [
      { label: 'COFFER_MASTER_KEY (base64)', bytes: Buffer.from(key), total: 1, at: 0 },
      { label: 'COFFER_PASSPHRASE', bytes: Buffer.from(pass), total: 1, at: 0 },
      { label: 'control: the store path', bytes: Buffer.from(store), total: 1, at: 0 },
    ];
    await until(() => idle(srv.proc.pid));
    const { hits, read } = scan(srv.proc.pid, needles);
    check(hits.some((h) => h.needle === needles[2]), `control not found in ${read} bytes: the scan does not work`);
    // An ASan build's runtime reads /proc/self/environ into a buffer of its own at start-up
    // (sanitizer_common's GetEnv, for ASAN_OPTIONS) and keeps it: a hit inside such a copy of
    // the whole initial environment (the variable's name before it, ASAN_OPTIONS= near) is the
    // runtime's, not coffer's. Release builds have no such copy, and nothing is excused there.
    const asan = fs.readFileSync(`/proc/${srv.proc.pid}/maps`, 'utf8').includes('libasan');
    const runtimeCopy = (h) => {
      if (!asan) return false;
      const name = Buffer.from(h.needle.label.startsWith('COFFER_MASTER_KEY') ? 'COFFER_MASTER_KEY=' : 'COFFER_PASSPHRASE=');
      const around = Buffer.alloc(8192);
      const fd = fs.openSync(`/proc/${srv.proc.pid}/mem`, 'r');
      try {
        fs.readSync(fd, around, 0, around.length, h.addr - 4096);
      } catch {
        return false;
      } finally {
        fs.closeSync(fd);
      }
      return around.subarray(4096 - name.length, 4096).equals(name) && around.includes('ASAN_OPTIONS=');
    };
    const found = hits.filter((h) => h.needle !== needles[2] && !runtimeCopy(h));
    check(found.length === 0, `key material in the server's memory:\n` +
      found.map((h) => `  ${h.needle.label} at ${h.where}`).join('\n'));
    eq((await srv.stop()).code, 0, 'exit code');
  }],
  ['over TLS, values put and accessed do not stay in memory', async () => {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    const gen = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
      '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1']);
    eq(gen.code, 0, `openssl (${gen.stderr})`);
    tls = await start('tls', ['--tls-cert', cert, '--tls-key', key],
      grpc.credentials.createSsl(fs.readFileSync(cert)));
    // 20000 bytes: more than one TLS record and more than one HTTP/2 DATA frame.
    await putAndAccess(tls, [64, 37, 20000].map((len, i) => canary(tls, `over TLS #${i} (${len} bytes)`, len)));
    await fails(tls.sm, 'Put', { secret: { name: 'ro' }, value: canary(tls, 'over TLS, refused', 20000) }, 7);
    await assertClean(tls, 'over TLS, after Put and Access');
    await closeClients(tls);
    await assertClean(tls, 'over TLS, after the clients closed');
    eq((await tls.srv.stop()).code, 0, 'exit code');
  }],
]);
