// Acceptance 6: kill -9 the server during a stream of SDK puts, restart it: every put the client
// saw succeed is readable with its exact value.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CACHE, COFFER, HERE, check, eq, main, run, startServer, tmpDir } from './lib.mjs';

const store = path.join(tmpDir('crash'), 'store');
const ROUNDS = 3;
const KILL_AFTER = 25; // acknowledged puts per round before the kill
const acked = new Map(); // version -> value

// Run put_stream.mjs until KILL_AFTER acks, then SIGKILL the server and collect what was acked.
async function round() {
  const srv = await startServer(store);
  const dir = tmpDir('prog');
  fs.symlinkSync(path.join(CACHE, 'node_modules'), path.join(dir, 'node_modules'));
  fs.copyFileSync(path.join(HERE, 'programs', 'put_stream.mjs'), path.join(dir, 'put_stream.mjs'));
  const client = spawn(process.execPath, ['put_stream.mjs'], {
    cwd: dir,
    env: { ...process.env, SERVICE_ADDRESS: srv.addr() },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let buf = '';
  let n = 0;
  const done = new Promise((resolve) => client.on('close', resolve));
  client.stdout.on('data', (d) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop();
    for (const line of parts) {
      const m = /^ack (\d+) (.*)$/.exec(line);
      if (!m) continue;
      acked.set(m[1], m[2]);
      if (++n === KILL_AFTER) srv.proc.kill('SIGKILL');
    }
  });
  await srv.exited;
  // The client sees the failure and stops; give up on it if it lingers.
  const t = setTimeout(() => client.kill('SIGKILL'), 20000);
  await done;
  clearTimeout(t);
  fs.rmSync(dir, { recursive: true, force: true });
  check(n >= KILL_AFTER, `only ${n} puts acknowledged`);
}

const tests = [];
for (let i = 1; i <= ROUNDS; i++) tests.push([`round ${i}: puts, then kill -9`, round]);
tests.push(['after restart every acknowledged put is readable, exactly', async () => {
  const srv = await startServer(store);
  // Read through the server with the CLI's store access after the server stops.
  eq((await srv.stop()).code, 0, 'clean exit');
  check(acked.size >= ROUNDS * KILL_AFTER, `acked ${acked.size}`);
  for (const [version, value] of acked) {
    const r = await run(COFFER, ['--store', store, 'access', `stream@${version}`]);
    eq(r.code, 0, `access stream@${version} (${r.stderr})`);
    eq(r.stdout.toString(), value, `value of version ${version}`);
  }
}]);
await main(tests);
