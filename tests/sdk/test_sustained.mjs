// Issue 13 item 7: the abuse limits never hit a well-behaved SDK. @nitric/sdk 1.2.2 (grpc-js
// 1.10) resets most streams with RST_STREAM(NO_ERROR) after their answer is complete; at a steady
// rate that used to exhaust the Rapid Reset budget and the server answered GOAWAY(INTERNAL_ERROR).
import path from 'node:path';
import { HERE, check, eq, main, run, runProgram, startServer, tmpDir, COFFER } from '../server/lib.mjs';

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
  ['SIGTERM drains and exits 0', async () => {
    check(srv.alive(), 'server alive');
    eq((await srv.stop('SIGTERM')).code, 0, 'exit code');
  }],
]);
