// Issue 13 item 2: a Go client through grpc-go. The Nitric Go SDK module
// (github.com/nitrictech/go-sdk) is not served by this machine's Go module proxy (403), so
// tests/sdk/go speaks both contracts with grpc-go itself, the way the SDK does; its messages are
// built at run time (dynamicpb) from a descriptor set that protoc-c makes here from proto/.
// The test fetches grpc-go and protobuf-go (versions pinned in go.mod/go.sum) and builds it,
// GOPATH, GOMODCACHE and GOCACHE under the build folder. Skipped (77), saying why, only when there
// is no Go toolchain (1.26 or newer) or the Go module proxy cannot be reached at all.
// COFFER_SOAK=1: the sustained runs last 60 s instead of 10 s.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { COFFER, HERE, PROTO, check, eq, main, run, startServer, tmpDir } from '../server/lib.mjs';

const CACHE = process.env.COFFER_GO_CACHE;
if (!CACHE) throw new Error('COFFER_GO_CACHE is not set');
const SECONDS = process.env.COFFER_SOAK === '1' ? 60 : 10;
const skip = (why) => {
  console.log(`# SKIP: ${why}`);
  process.exit(77);
};

const goEnv = {
  GOPATH: path.join(CACHE, 'path'), GOMODCACHE: path.join(CACHE, 'mod'), GOCACHE: path.join(CACHE, 'cache'),
  GOFLAGS: '-mod=mod -modcacherw', GOTOOLCHAIN: 'local', PATH: process.env.PATH, HOME: CACHE,
};
const work = path.join(CACHE, 'build');
fs.mkdirSync(work, { recursive: true });
const gover = await run('go', ['version'], { env: goEnv });
if (gover.code !== 0) skip('no Go toolchain (go) on PATH');
// grpc-go 1.85 needs Go 1.26 (GOTOOLCHAIN=local: no toolchain is downloaded).
const gv = gover.stdout.toString().match(/go(\d+)\.(\d+)/);
if (!gv || Number(gv[1]) * 1000 + Number(gv[2]) < 1026) skip(`grpc-go 1.85 needs Go 1.26 or newer; ${gover.stdout.toString().trim()}`);
for (const f of ['main.go', 'go.mod', 'go.sum'])
  fs.copyFileSync(path.join(HERE, '..', 'sdk', 'go', f), path.join(work, f));
const dl = await run('go', ['mod', 'download'], { env: goEnv, cwd: work });
if (dl.code !== 0) {
  const why = dl.stderr.trim().split('\n').slice(-2).join(' ');
  if (/dial tcp|no such host|connection refused|i\/o timeout|network is unreachable|proxyconnect|TLS handshake/.test(why))
    skip(`the Go module proxy cannot be reached: ${why}`);
  throw new Error(`go mod download failed:\n${dl.stderr}`);
}
const build = await run('go', ['build', '-o', 'sdkgo', '.'], { env: goEnv, cwd: work });
if (build.code !== 0) throw new Error(`go build failed:\n${build.stderr}`);
const DESC = path.join(work, 'nitric.pb');
const protoc = await run('protoc-c', [`--proto_path=${PROTO}`, `--descriptor_set_out=${DESC}`, '--include_imports',
  'nitric/proto/secrets/v1/secrets.proto', 'nitric/proto/resources/v1/resources.proto',
  'nitric/secret/v1/secret.proto', 'nitric/resource/v1/resource.proto']);
if (protoc.code !== 0) throw new Error(`protoc-c failed:\n${protoc.stderr}`);

const store = path.join(tmpDir('go'), 'store');
let srv;

async function sdkgo(...args) {
  return sdkgoAt(srv.addr(), ...args);
}

async function sdkgoAt(addr, ...args) {
  const r = await run(path.join(work, 'sdkgo'), [DESC, ...args], { env: { SERVICE_ADDRESS: addr } });
  if (r.code !== 0) throw new Error(`sdkgo ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout.toString().trim().split('\n');
}

const scenario = (out, contract) => {
  eq(out[0], 'versions 1 2', `${contract}: two puts`);
  eq(out[1], 'latest 2 the second value', `${contract}: latest is the second, with its real id`);
  eq(out[2], 'first a new secret value', `${contract}: version 1 keeps its value`);
  eq(out[3], 'binary 00ff004100', `${contract}: binary with NUL bytes`);
  eq(out[4], 'utf8 grüße ✓ 秘密', `${contract}: UTF-8`);
  eq(out[5], 'missing NotFound', `${contract}: a missing version is codes.NotFound`);
  eq(out[6], 'put on access-only PermissionDenied', `${contract}: codes.PermissionDenied`);
  eq(out[7], 'too big InvalidArgument', `${contract}: 70,000 bytes is codes.InvalidArgument`);
};

let keepalive;

await main([
  ['server starts', async () => {
    srv = await startServer(store, ['--listen', 'localhost:0', '--quiet']);
    // Runs beside the next tests: 25 s without a call, keepalive PINGs every 10 s.
    keepalive = sdkgo('keepalive', '25');
  }],
  ['the common scenario through grpc-go, both contracts (SERVICE_ADDRESS localhost and [::1])', async () => {
    scenario(await sdkgoAt(`localhost:${srv.port()}`, 'scenario', 'v1', 'api-key-go'), 'current contract');
    scenario(await sdkgoAt(`[::1]:${srv.port()}`, 'scenario', 'v0', 'api-key-go0'), 'first contract');
  }],
  ['the CLI reads every value back', async () => {
    for (const p of ['api-key-go', 'api-key-go0']) {
      eq((await run(COFFER, ['--store', store, 'access', `${p}@1`])).stdout.toString(), 'a new secret value', `${p}@1`);
      eq((await run(COFFER, ['--store', store, 'access', `${p}@2`])).stdout.toString(), 'the second value', `${p}@2`);
      eq((await run(COFFER, ['--store', store, 'access', p])).stdout.toString(), 'grüße ✓ 秘密', `${p} latest`);
      eq((await run(COFFER, ['--store', store, 'access', `${p}-bin`])).stdout.toString('hex'), '00ff004100', `${p}-bin`);
      check((await run(COFFER, ['--store', store, 'access', `${p}-ro`])).code !== 0, `${p}-ro: the denied put stored nothing`);
    }
  }],
  ['1,000 puts sent before their policy Declare, then 1,000 accesses: no failure', async () => {
    for (const c of ['v1', 'v0']) {
      const out = await sdkgo('burst', c, `burst-go-${c}`, '1000');
      eq(out[0], 'burst put failed {}', `${c} puts`);
      eq(out[1], 'burst access failed {}', `${c} accesses`);
      eq((await run(COFFER, ['--store', store, 'access', `burst-go-${c}@1000`])).code, 0, `${c}: every put stored`);
    }
  }],
  [`puts and accesses with 5 and with 50 in flight for ${SECONDS} s each: no failure`, async () => {
    for (const n of ['5', '50']) {
      const out = await sdkgo('sustained', 'v1', `sustained-go-${n}`, String(SECONDS), n);
      const m = out[0].match(/^sustained (\d+) in flight: calls (\d+) failed (\{.*\})$/);
      check(m, out[0]);
      eq(m[3], '{}', `${n} in flight: failures`);
      console.log(`# ${out[0]}`);
    }
  }],
  ['a program declaring 1,000 secrets starts', async () => {
    eq((await sdkgo('declare', 'v1', 'many-go', '1000'))[0], 'declared 1000 last', 'started');
  }],
  ['keepalive PINGs (every 10 s, also without a call) never cost the connection', async () => {
    const out = await keepalive;
    const m = out[0].match(/^after 25 s idle: (\w+) before, connections made (\d+), idle pings (\d+), pings acked (\d+) of (\d+)$/);
    check(m, out[0]);
    eq(m[1], 'OK', 'the call after the pings');
    eq(m[2], '1', 'one connection: the server never closed it');
    check(Number(m[3]) >= 2, `keepalive pings were sent while idle: ${out[0]}`);
    check(Number(m[4]) >= Number(m[5]) - 1, `the server acked them: ${out[0]}`);
    console.log(`# ${out[0]}`);
  }],
  ['a server restart under a connected client: the next calls fail UNAVAILABLE at most, then succeed', async () => {
    const port = srv.port();
    const p = spawn(path.join(work, 'sdkgo'), [DESC, 'restart', 'v1', 'restart-go'],
      { env: { ...process.env, SERVICE_ADDRESS: srv.addr() }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    const closed = new Promise((resolve) => p.on('close', resolve));
    await new Promise((resolve, reject) => {
      p.stdout.on('data', (d) => { out += d; if (out.includes('ready\n')) resolve(); });
      p.on('close', () => reject(new Error(`sdkgo exited early:\n${out}\n${err}`)));
    });
    eq((await srv.stop('SIGTERM')).code, 0, 'the first server exits 0');
    srv = await startServer(store, ['--listen', `127.0.0.1:${port}`, '--quiet']);
    p.stdin.write('go\n');
    eq(await closed, 0, `exit code:\n${err}`);
    const m = out.match(/outcomes ([A-Za-z ]+)\nthen (\w+) (.*)\n/);
    check(m, out);
    const outcomes = m[1].trim().split(' ');
    eq(outcomes[outcomes.length - 1], 'OK', 'a call succeeds after the restart');
    for (const o of outcomes.slice(0, -1)) eq(o, 'Unavailable', 'a failed call before it');
    eq(m[2], 'OK', 'the access after it');
    eq(m[3], 'after the restart', 'reads the new value');
    console.log(`# grpc-go after a restart: ${outcomes.join(', ')}`);
  }],
  ['SIGTERM drains and exits 0', async () => {
    eq((await srv.stop('SIGTERM')).code, 0, 'exit code');
  }],
]);
