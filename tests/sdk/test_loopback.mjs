// Issue 13 item 6: both loopback families. `--listen localhost:PORT` listens on 127.0.0.1 and
// on ::1 (same port), `[::1]:PORT` works, and every SDK reaches the server through
// SERVICE_ADDRESS=localhost:PORT, [::1]:PORT and 127.0.0.1:PORT. The exposure check and the
// port-in-use refusal hold for both families.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { CACHE, COFFER, HERE, check, eq, main, run, startServer, tmpDir } from '../server/lib.mjs';

const V0 = process.env.COFFER_SDK_V0_CACHE;
const VENV = process.env.COFFER_PY_VENV;
if (!V0 || !VENV) throw new Error('COFFER_SDK_V0_CACHE and COFFER_PY_VENV must be set');
const prog = (name) => path.join(HERE, '..', 'sdk', 'programs', name);
const dir = tmpDir('loopback');
let srv;
let port;
let python = true;

async function runNode(cache, name, env) {
  const d = tmpDir('prog');
  fs.symlinkSync(path.join(cache, 'node_modules'), path.join(d, 'node_modules'));
  fs.copyFileSync(prog(name), path.join(d, name));
  return run(process.execPath, [path.join(d, name)], { env, cwd: d });
}

const sdks = [
  ['@nitric/sdk 0.15.0', (env) => runNode(V0, 'loopback_v0.mjs', env)],
  ['@nitric/sdk 1.2.2', (env) => runNode(CACHE, 'loopback_v1.mjs', env)],
  ['Python nitric 1.2.4', (env) => run(path.join(VENV, 'bin', 'python'), [prog('loopback.py')], { env, cwd: tmpDir('py') })],
];

// Connect with a plain TCP socket to host:port; resolves true if it connected.
function connects(host, p) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port: p });
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

// Start a second server that must be refused; returns its exit code and stderr.
function refused(store, args) {
  return run(COFFER, ['--store', store, 'serve', ...args]);
}

await main([
  ['python SDK installed', async () => {
    const setup = await run('bash', [path.join(HERE, '..', 'sdk', 'py_setup.sh'), VENV]);
    if (setup.code === 77) {
      python = false;
      console.log(`# Python skipped: ${setup.stderr.trim()}`);
      return;
    }
    eq(setup.code, 0, `py_setup.sh:\n${setup.stderr}`);
  }],
  ['--listen localhost:0 listens on 127.0.0.1 and [::1], on the same port', async () => {
    srv = await startServer(path.join(dir, 'store'), ['--listen', 'localhost:0']);
    const v4 = srv.stdout.match(/listening on 127\.0\.0\.1:(\d+) \(service default\)/);
    const v6 = srv.stdout.match(/listening on \[::1\]:(\d+) \(service default\)/);
    check(v4 && v6, `both announced:\n${srv.stdout}`);
    eq(v6[1], v4[1], 'the same port');
    port = Number(v4[1]);
    check(await connects('127.0.0.1', port), 'IPv4 connects');
    check(await connects('::1', port), 'IPv6 connects');
  }],
  ['every SDK works with SERVICE_ADDRESS=localhost, [::1] and 127.0.0.1', async () => {
    let n = 0;
    for (const [sdk, runIt] of sdks) {
      if (sdk.startsWith('Python') && !python) continue;
      for (const addr of [`localhost:${port}`, `[::1]:${port}`, `127.0.0.1:${port}`]) {
        const name = `loop-${n++}`;
        const r = await runIt({ SERVICE_ADDRESS: addr, SECRET_NAME: name });
        eq(r.code, 0, `${sdk} via ${addr} exit code:\n${r.stdout}\n${r.stderr}`);
        // The first line (Python adds a warning that the program never called Nitric.run()).
        eq(r.stdout.toString().trim().split('\n')[0], `put 1 read via ${addr}`, `${sdk} via ${addr}`);
        eq((await run(COFFER, ['--store', path.join(dir, 'store'), 'access', name])).stdout.toString(),
          `via ${addr}`, `the CLI reads ${name}`);
      }
    }
  }],
  ['a second server on either family of that port is refused; the first keeps serving', async () => {
    for (const where of [`127.0.0.1:${port}`, `[::1]:${port}`, `localhost:${port}`]) {
      const r = await refused(path.join(dir, 'store-b'), ['--listen', where]);
      check(r.code !== 0, `${where}: exit code ${r.code}`);
      check(/(127\.0\.0\.1|\[::1\]):\d+ is already in use by another process/.test(r.stderr), `${where}: ${r.stderr}`);
      check(!/listening on/.test(r.stdout.toString()), `${where}: nothing announced`);
    }
    check(srv.alive(), 'the first server still runs');
    check(await connects('::1', port), 'IPv6 still connects');
  }],
  ['stop the server', async () => {
    eq((await srv.stop('SIGTERM')).code, 0, 'exit code');
  }],
  ['localhost on a port another program holds on ::1 only is refused too (no half-listening)', async () => {
    const other = net.createServer();
    await new Promise((resolve) => other.listen(0, '::1', resolve));
    try {
      const p = other.address().port;
      const r = await refused(path.join(dir, 'store-c'), ['--listen', `localhost:${p}`]);
      check(r.code !== 0, `exit code ${r.code}`);
      check(r.stderr.includes(`[::1]:${p} is already in use by another process`), r.stderr);
      check(!(await connects('127.0.0.1', p)), 'nothing left listening on 127.0.0.1');
    } finally {
      other.close();
    }
  }],
  ['[::1]:0 alone works and is loopback (no TLS or token asked)', async () => {
    const s = await startServer(path.join(dir, 'store-d'), ['--listen', '[::1]:0']);
    const m = s.stdout.match(/listening on \[::1\]:(\d+)/);
    check(m, s.stdout);
    const r = await sdks[1][1]({ SERVICE_ADDRESS: `[::1]:${m[1]}`, SECRET_NAME: 'v6-only' });
    eq(r.stdout.toString().trim(), `put 1 read via [::1]:${m[1]}`, `1.2.2 via [::1]:\n${r.stderr}`);
    eq((await s.stop('SIGTERM')).code, 0, 'exit code');
  }],
  ['a non-loopback IPv6 address without TLS and tokens is still refused', async () => {
    // 2001:db8::1 (documentation range) is on no interface: refused before any bind.
    const r = await refused(path.join(dir, 'store-e'), ['--listen', '[2001:db8::1]:0']);
    eq(r.code, 2, `exit code: ${r.stderr}`);
    check(r.stderr.includes('refusing to listen on 2001:db8::1 (not loopback)'), r.stderr);
  }],
]);
