// Issue 13 item 1: the Python SDK (PyPI nitric 1.2.4, grpclib over h2, a third HTTP/2 stack
// besides grpc-js and grpc-go) runs the documentation's workflow against coffer serve; the CLI
// reads every value back. Skipped (77) when the SDK could not be installed.
import path from 'node:path';
import { COFFER, HERE, eq, main, run, startServer, tmpDir } from '../server/lib.mjs';

const VENV = process.env.COFFER_PY_VENV;
if (!VENV) throw new Error('COFFER_PY_VENV is not set');
const setup = await run('bash', [path.join(HERE, '..', 'sdk', 'py_setup.sh'), VENV]);
if (setup.code === 77) {
  console.log(`# ${setup.stderr.trim()}`);
  process.exit(77);
}
if (setup.code !== 0) throw new Error(`py_setup.sh failed:\n${setup.stderr}`);

const store = path.join(tmpDir('python'), 'store');
let srv;

await main([
  ['server starts', async () => {
    srv = await startServer(store);
  }],
  ['the documentation workflow in Python', async () => {
    const r = await run(path.join(VENV, 'bin', 'python'), [path.join(HERE, '..', 'sdk', 'programs', 'scenario.py')],
      { env: { SERVICE_ADDRESS: srv.addr() }, cwd: tmpDir('py') });
    if (r.code !== 0) throw new Error(`scenario.py exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
    const out = r.stdout.toString().trim().split('\n');
    eq(out[0], 'versions 1 2', 'two puts');
    eq(out[1], 'latest 2 the second value', 'latest is the second, with its real id');
    eq(out[2], 'first a new secret value', 'version 1 keeps its value');
    eq(out[3], 'binary 00ff004100', 'binary with NUL bytes');
    eq(out[4], 'utf8 grüße ✓ 秘密', 'UTF-8');
    eq(out[5], 'missing NotFoundException', 'a missing version');
    eq(out[6], 'put on access-only PermissionDeniedException', 'put without permission');
    eq(out[7], 'too big InvalidArgumentException', '70,000 bytes');
  }],
  ['the CLI reads every value back', async () => {
    for (const [ref, value] of [['api-key-py@1', 'a new secret value'], ['api-key-py@2', 'the second value'],
      ['api-key-py', 'grüße ✓ 秘密']]) {
      eq((await run(COFFER, ['--store', store, 'access', ref])).stdout.toString(), value, ref);
    }
    eq((await run(COFFER, ['--store', store, 'access', 'blob-py'])).stdout.toString('hex'), '00ff004100', 'binary');
  }],
  ['150 declarations, 1,000 concurrent puts and accesses, 3,000 puts with 5 in flight: no failure', async () => {
    const r = await run(path.join(VENV, 'bin', 'python'), [path.join(HERE, '..', 'sdk', 'programs', 'load.py')],
      { env: { SERVICE_ADDRESS: srv.addr() }, cwd: tmpDir('py') });
    if (r.code !== 0) throw new Error(`load.py exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
    const out = r.stdout.toString().trim().split('\n');
    eq(out[0], 'declared 150 last', 'declarations');
    eq(out[1], 'burst put failed {}', 'burst puts');
    eq(out[2], 'burst access failed {}', 'burst accesses');
    eq(out[3], 'sustained put failed {}', 'sustained puts');
    eq((await run(COFFER, ['--store', store, 'access', 'burst-py@4000'])).code, 0, 'every put stored');
  }],
  ['SIGTERM drains and exits 0', async () => {
    eq((await srv.stop('SIGTERM')).code, 0, 'exit code');
  }],
]);
