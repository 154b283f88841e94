// Issue 13 item 2: the Go SDK (github.com/nitrictech/go-sdk v1.1.x, grpc-go) runs the common
// scenario against coffer serve. The test fetches the module and builds tests/sdk/go with the Go
// toolchain, GOPATH, GOMODCACHE and GOCACHE under the build folder. Skipped (77), saying why,
// when there is no Go toolchain or the module cannot be fetched.
import fs from 'node:fs';
import path from 'node:path';
import { COFFER, HERE, check, eq, main, run, startServer, tmpDir } from '../server/lib.mjs';

const CACHE = process.env.COFFER_GO_CACHE;
if (!CACHE) throw new Error('COFFER_GO_CACHE is not set');
const skip = (why) => {
  console.log(`# SKIP: ${why}`);
  process.exit(77);
};

const goEnv = {
  GOPATH: path.join(CACHE, 'path'), GOMODCACHE: path.join(CACHE, 'mod'), GOCACHE: path.join(CACHE, 'cache'),
  GOFLAGS: '-modcacherw', GOTOOLCHAIN: 'local', PATH: process.env.PATH, HOME: CACHE,
};
const work = path.join(CACHE, 'build');
fs.mkdirSync(work, { recursive: true });
if ((await run('go', ['version'], { env: goEnv })).code !== 0) skip('no Go toolchain (go) on PATH');
fs.copyFileSync(path.join(HERE, '..', 'sdk', 'go', 'main.go'), path.join(work, 'main.go'));
fs.copyFileSync(path.join(HERE, '..', 'sdk', 'go', 'go.mod.in'), path.join(work, 'go.mod'));
const get = await run('go', ['get', 'github.com/nitrictech/go-sdk@v1.1'], { env: goEnv, cwd: work });
if (get.code !== 0) skip(`could not fetch github.com/nitrictech/go-sdk v1.1.x: ${get.stderr.trim().split('\n').slice(-2).join(' ')}`);
const build = await run('go', ['build', '-o', 'sdkgo', '.'], { env: goEnv, cwd: work });
if (build.code !== 0) throw new Error(`go build failed:\n${build.stderr}`);

const store = path.join(tmpDir('go'), 'store');
let srv;

await main([
  ['server starts', async () => {
    srv = await startServer(store);
  }],
  ['the common scenario with the Go SDK', async () => {
    const r = await run(path.join(work, 'sdkgo'), [], { env: { SERVICE_ADDRESS: srv.addr(), NITRIC_SERVICE_ADDRESS: srv.addr() } });
    if (r.code !== 0) throw new Error(`sdkgo exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
    const out = r.stdout.toString().trim().split('\n');
    eq(out[0], 'versions 1 2', 'two puts');
    eq(out[1], 'latest the second value', 'latest');
    eq(out[2], 'first a new secret value', 'version 1');
    eq(out[3], 'binary 00ff004100', 'binary');
    eq(out[4], 'utf8 grüße ✓ 秘密', 'UTF-8');
    check(/not ?found/i.test(out[5]), out[5]);
    check(/permission/i.test(out[6]), out[6]);
    check(/invalid/i.test(out[7]), out[7]);
  }],
  ['the CLI reads the values back', async () => {
    eq((await run(COFFER, ['--store', store, 'access', 'api-key-go@1'])).stdout.toString(), 'a new secret value', 'v1');
    eq((await run(COFFER, ['--store', store, 'access', 'blob-go'])).stdout.toString('hex'), '00ff004100', 'binary');
  }],
  ['SIGTERM drains and exits 0', async () => {
    eq((await srv.stop('SIGTERM')).code, 0, 'exit code');
  }],
]);
