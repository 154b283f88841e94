// Issue 13 item 0: both Nitric contracts on one port, over one store and one set of permissions.
// The documentation's JavaScript runs as printed with @nitric/sdk 0.15.0 (the first contract,
// nitric.secret.v1 / nitric.resource.v1), and a secret put through one contract is read through
// the other (@nitric/sdk 1.2.2, the current contract).
import fs from 'node:fs';
import path from 'node:path';
import { CACHE, COFFER, HERE, check, eq, main, run, startServer, tmpDir } from '../server/lib.mjs';

const V0 = process.env.COFFER_SDK_V0_CACHE;
if (!V0) throw new Error('COFFER_SDK_V0_CACHE is not set');
const prog = (name) => path.join(HERE, '..', 'sdk', 'programs', name);
const store = path.join(tmpDir('contracts'), 'store');
let srv;

// Run a program in its own folder, with the node_modules of one SDK release.
async function runWith(cache, name) {
  const dir = tmpDir('prog');
  fs.symlinkSync(path.join(cache, 'node_modules'), path.join(dir, 'node_modules'));
  fs.copyFileSync(prog(name), path.join(dir, name));
  const r = await run(process.execPath, [path.join(dir, name)], { env: { SERVICE_ADDRESS: srv.addr() }, cwd: dir });
  if (r.code !== 0) throw new Error(`${name} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout.toString().trim().split('\n');
}

await main([
  ['server starts', async () => {
    srv = await startServer(store);
  }],
  ['the documentation snippets run verbatim with @nitric/sdk 0.15.0', async () => {
    const out = await runWith(V0, 'docs_v0.mjs');
    eq(out[0], 'put 1', 'put answers the version id');
    eq(out[1], 'latest 1 a new secret value', 'latest().access()');
    eq(out[2], 'specific 1 a new secret value', 'version(id).access()');
  }],
  ['the common scenario with @nitric/sdk 0.15.0', async () => {
    const out = await runWith(V0, 'scenario_v0.mjs');
    eq(out[0], 'versions 1 2', 'two puts');
    eq(out[1], 'latest 2 second value', 'latest is the second');
    eq(out[2], 'first first value', 'version 1 keeps its value');
    eq(out[3], 'binary 00ff004100', 'binary with NUL bytes');
    eq(out[4], 'utf8 grüße ✓ 秘密', 'UTF-8');
    eq(out[5], 'missing NotFoundError', 'a missing version');
    eq(out[6], 'put on access-only PermissionDeniedError', 'put without permission');
    eq(out[7], 'too big InvalidArgumentError', '70,000 bytes');
  }],
  ['a secret put through the first contract is read through the current one, and back', async () => {
    const out = await runWith(CACHE, 'cross_v1.mjs');
    eq(out[0], 'read 1 a new secret value', '1.2.2 reads what 0.15.0 put');
    eq(out[1], 'put 1', '1.2.2 puts');
    const back = await runWith(V0, 'cross_v0.mjs');
    eq(back[0], 'read 1 put through the current contract', '0.15.0 reads what 1.2.2 put');
  }],
  ['1,000 concurrent puts right after for() with @nitric/sdk 0.15.0: no failure', async () => {
    const out = await runWith(V0, 'burst_v0.mjs');
    eq(out[0], 'put ok 1000 failed 0', 'puts');
  }],
  ['the CLI reads every value back', async () => {
    const want = {
      'api-key@1': 'a new secret value', 'scenario-v0@1': 'first value', 'scenario-v0': 'second value',
      'scenario-v0-utf8': 'grüße ✓ 秘密', cross: 'put through the current contract',
    };
    for (const [ref, value] of Object.entries(want)) {
      const r = await run(COFFER, ['--store', store, 'access', ref]);
      eq(r.stdout.toString(), value, `coffer access ${ref}`);
    }
    const b = await run(COFFER, ['--store', store, 'access', 'scenario-v0-bin']);
    eq(b.stdout.toString('hex'), '00ff004100', 'binary');
    check((await run(COFFER, ['--store', store, 'access', 'scenario-v0-ro'])).code !== 0, 'the denied put stored nothing');
  }],
  ['SIGTERM drains and exits 0; the log names the first contract\'s calls', async () => {
    eq((await srv.stop('SIGTERM')).code, 0, 'exit code');
    check(!/status=12/.test(srv.stderr), `no UNIMPLEMENTED answer:\n${srv.stderr}`);
    check(!srv.stderr.includes('a new secret value'), 'no value in the log');
  }],
]);
