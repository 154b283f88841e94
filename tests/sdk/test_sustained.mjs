// Issue 13 item 7: the abuse limits never hit a well-behaved SDK. @nitric/sdk 1.2.2 (grpc-js
// 1.10) resets most streams with RST_STREAM(NO_ERROR) after their answer is complete; at a steady
// rate that used to exhaust the Rapid Reset budget and the server answered GOAWAY(INTERNAL_ERROR).
// Then (acceptance 2) every SDK puts and accesses with 5 and with 50 in flight for 10 s each
// (60 s under COFFER_SOAK=1): 0 failures; and a program declaring 1,000 secrets starts, in each
// SDK (Go: sdk_go).
import fs from 'node:fs';
import path from 'node:path';
import { HERE, check, eq, main, run, runProgram, startServer, tmpDir, COFFER } from '../server/lib.mjs';

const V0 = process.env.COFFER_SDK_V0_CACHE;
const VENV = process.env.COFFER_PY_VENV;
if (!V0 || !VENV) throw new Error('COFFER_SDK_V0_CACHE and COFFER_PY_VENV must be set');
const SECONDS = process.env.COFFER_SOAK === '1' ? 60 : 10;

// Run a program with @nitric/sdk 0.15.0's node_modules.
async function runV0(file, env) {
  const d = tmpDir('prog');
  fs.symlinkSync(path.join(V0, 'node_modules'), path.join(d, 'node_modules'));
  fs.copyFileSync(file, path.join(d, path.basename(file)));
  return run(process.execPath, [path.join(d, path.basename(file))], { env, cwd: d });
}

// "soak N in flight: calls X failed {...}": no failure, some calls.
function soakOk(sdk, line, n) {
  const m = line.match(/^soak (\d+) in flight: calls (\d+) failed (\{.*\})$/);
  check(m, `${sdk}: ${line}`);
  eq(m[1], String(n), `${sdk}: in flight`);
  eq(m[3], '{}', `${sdk}, ${n} in flight for ${SECONDS} s: failures`);
  check(Number(m[2]) > 0, `${sdk}: calls made`);
  console.log(`# ${sdk}: ${line}`);
}

const prog = (name) => path.join(HERE, '..', 'sdk', 'programs', name);
const store = path.join(tmpDir('sustained'), 'store');
let srv;

function lines(r) {
  if (r.code !== 0) throw new Error(`program exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout.toString().trim().split('\n');
}

await main([
  ['server starts', async () => {
    srv = await startServer(store, ['--listen', '127.0.0.1:0', '--quiet']);
  }],
  ['3,000 puts and 3,000 accesses with 5 in flight: no failure', async () => {
    const out = lines(await runProgram(prog('sustained.mjs'), { SERVICE_ADDRESS: srv.addr(), PUTS: '3000' }));
    eq(out[0], 'puts ok 3000 failed 0 {}', 'puts');
    eq(out[1], 'accesses ok 3000 failed 0 {}', 'accesses');
    // Every put stored exactly one version.
    eq((await run(COFFER, ['--store', store, 'access', 'sustained@3000'])).code, 0, 'version 3000 exists');
    check((await run(COFFER, ['--store', store, 'access', 'sustained@3001'])).code !== 0, 'no version 3001');
  }],
  ['a program declaring 150 secrets starts', async () => {
    const out = lines(await runProgram(prog('declare_many.mjs'), { SERVICE_ADDRESS: srv.addr(), COUNT: '150' }));
    eq(out[0], 'declared 150 first last', 'started');
  }],
  ['a program declaring 1,000 secrets starts', async () => {
    const out = lines(await runProgram(prog('declare_many.mjs'), { SERVICE_ADDRESS: srv.addr(), COUNT: '1000' }));
    eq(out[0], 'declared 1000 first last', 'started');
  }],
  [`@nitric/sdk 1.2.2: 5 and 50 in flight for ${SECONDS} s each, no failure`, async () => {
    for (const n of [5, 50]) {
      const out = lines(await runProgram(prog('soak.mjs'), { SERVICE_ADDRESS: srv.addr(), SECONDS: String(SECONDS), IN_FLIGHT: String(n), SECRET_NAME: `soak-v1-${n}` }));
      soakOk('@nitric/sdk 1.2.2', out[0], n);
    }
  }],
  [`@nitric/sdk 0.15.0: 5 and 50 in flight for ${SECONDS} s each, no failure`, async () => {
    for (const n of [5, 50]) {
      const out = lines(await runV0(prog('soak.mjs'), { SERVICE_ADDRESS: srv.addr(), SECONDS: String(SECONDS), IN_FLIGHT: String(n), SECRET_NAME: `soak-v0-${n}`, SOAK_V0: '1' }));
      soakOk('@nitric/sdk 0.15.0', out[0], n);
    }
  }],
  ['@nitric/sdk 0.15.0: a program declaring 1,000 secrets starts', async () => {
    const out = lines(await runV0(prog('declare_many.mjs'), { SERVICE_ADDRESS: srv.addr(), COUNT: '1000', DECLARE_V0: '1' }));
    eq(out[0], 'declared 1000 first last', 'started');
  }],
  [`Python nitric 1.2.4: 5 and 50 in flight for ${SECONDS} s each, no failure; 1,000 declarations`, async () => {
    const setup = await run('bash', [path.join(HERE, '..', 'sdk', 'py_setup.sh'), VENV]);
    if (setup.code === 77) {
      console.log(`# Python skipped: ${setup.stderr.trim()}`);
      return;
    }
    eq(setup.code, 0, `py_setup.sh:\n${setup.stderr}`);
    const py = path.join(VENV, 'bin', 'python');
    const out = lines(await run(py, [prog('soak.py')], { env: { SERVICE_ADDRESS: srv.addr(), SECONDS: String(SECONDS) }, cwd: tmpDir('py') }));
    soakOk('Python nitric 1.2.4', out[0], 5);
    soakOk('Python nitric 1.2.4', out[1], 50);
    const many = lines(await run(py, [prog('declare_many.py')], { env: { SERVICE_ADDRESS: srv.addr(), COUNT: '1000' }, cwd: tmpDir('py') }));
    eq(many[0], 'declared 1000 last', 'started');
  }],
  ['SIGTERM drains and exits 0', async () => {
    check(srv.alive(), 'server alive');
    eq((await srv.stop('SIGTERM')).code, 0, 'exit code');
  }],
]);
