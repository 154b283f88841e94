// Issue 13 item 5: a server restart while an SDK is connected. Each SDK puts, the server stops
// (SIGTERM: drain, GOAWAY) and starts again on the same port and store, and the SDK puts again
// on the same client: each call either succeeds or fails with UNAVAILABLE until one succeeds.
// What each SDK does is printed (and written down in docs/sdks.md). The grants the program
// declared are kept in the store, so it needs no new Declare (issue 13 item 8).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CACHE, HERE, check, eq, main, run, startServer, tmpDir } from '../server/lib.mjs';

const V0 = process.env.COFFER_SDK_V0_CACHE;
const VENV = process.env.COFFER_PY_VENV;
if (!V0 || !VENV) throw new Error('COFFER_SDK_V0_CACHE and COFFER_PY_VENV must be set');
const prog = (name) => path.join(HERE, '..', 'sdk', 'programs', name);
const store = path.join(tmpDir('restart'), 'store');
let srv;
let python = true;

function nodeCmd(cache) {
  const d = tmpDir('prog');
  fs.symlinkSync(path.join(cache, 'node_modules'), path.join(d, 'node_modules'));
  fs.copyFileSync(prog('restart_v1.mjs'), path.join(d, 'restart.mjs'));
  return { cmd: process.execPath, args: [path.join(d, 'restart.mjs')], cwd: d };
}

// Run the program; restart the server when it says "ready"; its outcomes.
async function acrossRestart({ cmd, args, cwd }, env) {
  const port = srv.port();
  const p = spawn(cmd, args, { env: { ...process.env, ...env, SERVICE_ADDRESS: srv.addr() }, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  const closed = new Promise((resolve) => p.on('close', resolve));
  await new Promise((resolve, reject) => {
    p.stdout.on('data', (d) => { out += d; if (out.includes('ready\n')) resolve(); });
    p.on('close', () => reject(new Error(`exited early:\n${out}\n${err}`)));
  });
  eq((await srv.stop('SIGTERM')).code, 0, 'the first server exits 0');
  srv = await startServer(store, ['--listen', `127.0.0.1:${port}`]);
  p.stdin.write('go\n');
  eq(await closed, 0, `exit code:\n${out}\n${err}`);
  const m = out.match(/outcomes ([A-Za-z ]+)\nthen (.*)\n/);
  check(m, out);
  return { outcomes: m[1].trim().split(' '), then: m[2] };
}

function judge(sdk, r, unavailable) {
  eq(r.outcomes[r.outcomes.length - 1], 'OK', `${sdk}: a put succeeds after the restart`);
  for (const o of r.outcomes.slice(0, -1)) eq(o, unavailable, `${sdk}: a failed call before it`);
  eq(r.then, 'OK after the restart', `${sdk}: the access after it reads the new value`);
  console.log(`# ${sdk} after a restart: ${r.outcomes.join(', ')}`);
}

await main([
  ['server starts; python SDK installed', async () => {
    srv = await startServer(store);
    const setup = await run('bash', [path.join(HERE, '..', 'sdk', 'py_setup.sh'), VENV]);
    if (setup.code === 77) {
      python = false;
      console.log(`# Python skipped: ${setup.stderr.trim()}`);
    } else {
      eq(setup.code, 0, `py_setup.sh:\n${setup.stderr}`);
    }
  }],
  ['@nitric/sdk 1.2.2 across a restart', async () => {
    judge('@nitric/sdk 1.2.2', await acrossRestart(nodeCmd(CACHE), { SECRET_NAME: 'restart-v1' }), 'UnavailableError');
  }],
  ['@nitric/sdk 0.15.0 across a restart', async () => {
    judge('@nitric/sdk 0.15.0', await acrossRestart(nodeCmd(V0), { SECRET_NAME: 'restart-v0', RESTART_V0: '1' }), 'UnavailableError');
  }],
  ['Python nitric 1.2.4 across a restart', async () => {
    if (!python) return;
    judge('Python nitric 1.2.4', await acrossRestart({ cmd: path.join(VENV, 'bin', 'python'), args: [prog('restart.py')], cwd: tmpDir('py') },
      { SECRET_NAME: 'restart-py' }), 'UnavailableException');
  }],
  ['SIGTERM drains and exits 0', async () => {
    eq((await srv.stop('SIGTERM')).code, 0, 'exit code');
  }],
]);
