// Issue 7, acceptance 3: the exact reproduction of the lost puts, and its variant with two
// handles in one process. Both lose acknowledged puts while a process that holds SQLite
// connections on the store opens and closes coffer.db behind SQLite's back (precreate()): POSIX
// close() drops every fcntl lock the process holds on that file, so another process closing
// its own connection believes it is the last one, checkpoints, and deletes the WAL and shm that
// the first process goes on writing into.
//
//   node test_regress.mjs sqlite
//
// Each step is fixed (no randomness); the puts are canaries.
import fs from 'node:fs';
import { cacheRequire, check, eq, main } from '../server/lib.mjs';
import { Embed, backend, cli, firstLine, serve } from './lib.mjs';

const be = backend('sqlite');

// The SDK sends its Declares without awaiting them and throws their failures inside a callback.
// When the server is killed while one is still in flight (on a loaded machine), that is expected
// and must not crash this test; before the kill, such a failure is a real one.
let serverKilled = false;
const onSdkError = (e) => {
  const msg = String((e && e.message) || e).replace(/\s+/g, ' ');
  if (serverKilled) console.log(`(after kill -9 the SDK reported, as expected: ${msg})`);
  else check(false, `the SDK failed outside a call before the server was killed: ${msg}`);
};
process.on('uncaughtException', onSdkError);
process.on('unhandledRejection', onSdkError);

// The store files a process still has open although they are gone from the folder: the
// symptom in /proc/PID/fd ("coffer.db-wal (deleted)").
function deletedStoreFiles(pid) {
  const out = [];
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let target = '';
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    if (/coffer\.db(-wal|-shm)? \(deleted\)$/.test(target)) out.push(target.replace(/^.*\//, ''));
  }
  return [...new Set(out)];
}

// Every version 1..n of `name` is there with exactly these values, through fresh CLI processes.
async function expectVersions(st, name, values, what) {
  const r = await cli(st, ['versions', name, '--json']).done;
  const ids = r.code === 0 ? JSON.parse(r.stdout.toString()).map((v) => v.version).join(',') : `exit ${r.code}`;
  const want = values.map((_, i) => String(i + 1)).join(',');
  eq(ids, want, `${what}: versions of ${name} through the CLI (expected ${want}, observed ${ids})`);
  for (let i = 0; i < values.length; i++) {
    const a = await cli(st, ['access', `${name}@${i + 1}`]).done;
    check(a.code === 0, `${what}: coffer access ${name}@${i + 1} exited ${a.code}: ${firstLine(a.stderr)}`);
    eq(a.stdout.toString(), values[i], `${what}: value of ${name}@${i + 1}`);
  }
  const l = await cli(st, ['access', name]).done;
  eq(l.stdout.toString(), values[values.length - 1], `${what}: ${name}@latest through the CLI (expected version ${values.length})`);
}

await main([
  [
    'coffer serve running, `coffer list` beside it, a put through the server, kill -9: the CLI reads the put',
    async () => {
      const st = await be.fresh();
      const srv = await serve(st);
      const list = await cli(st, ['list']).done;
      eq(list.code, 0, `coffer list beside the server (${firstLine(list.stderr)})`);
      const deleted = deletedStoreFiles(srv.proc.pid);
      // The official SDK, as a Nitric service would put.
      process.env.SERVICE_ADDRESS = srv.addr();
      const { secret } = cacheRequire()('@nitric/sdk');
      const value = 'regress-canary-server-1-bleak_dearest_hanged_reigns';
      const v = await secret('regress.x').allow('put', 'access').put(value);
      eq(v.version, '1', 'the put through the server was acknowledged as version 1');
      serverKilled = true;
      srv.proc.kill('SIGKILL');
      await srv.exited;
      const r = await cli(st, ['access', 'regress.x@1']).done;
      check(
        r.code === 0 && r.stdout.toString() === value,
        `after kill -9 of the server, coffer access regress.x@1: expected version 1 (acknowledged), ` +
          `observed exit ${r.code} ${firstLine(r.stderr)}` +
          (deleted.length ? `; after 'coffer list' the server held deleted store files: ${deleted.join(', ')}` : ''),
      );
      check(deleted.length === 0, `after 'coffer list' the server held deleted store files: ${deleted.join(', ')}`);
      await expectVersions(st, 'regress.x', [value], 'after kill -9 of the server');
      st.cleanup();
    },
  ],
  [
    'two handles in one process: open 1, put, open 2, put, close 2; another process puts; put on 1; kill -9: all four present',
    async () => {
      const st = await be.fresh();
      const e = new Embed(st);
      const values = [1, 2, 3, 4].map((i) => `regress-canary-two-handles-${i}`);
      let deleted = [];
      try {
        await e.ok('open 0');
        eq((await e.ok(`put 0 two.x ${values[0]}`))[0], '1', 'put through handle 1');
        await e.ok('open 1'); // a second coffer_open() in a process holding a connection
        eq((await e.ok(`put 1 two.x ${values[1]}`))[0], '2', 'put through handle 2');
        await e.ok('close 1');
        const c = await cli(st, ['put', 'two.x', '-'], values[2]).done;
        eq(c.code, 0, `a second process (coffer put) puts and closes (${firstLine(c.stderr)})`);
        eq(c.stdout.toString(), '3\n', 'the second process got version 3');
        deleted = deletedStoreFiles(e.proc.pid);
        const d = await e.ok(`put 0 two.x ${values[3]}`);
        check(
          d[0] === '4',
          `put through handle 1 after the other process closed: expected version 4, observed ${d[0]}` +
            (deleted.length ? ` (the process holds deleted store files: ${deleted.join(', ')})` : ''),
        );
        const l = await e.ok('access 0 two.x latest');
        eq(l.join(' '), `4 ${values[3]}`, 'latest through handle 1');
      } finally {
        await e.kill('SIGKILL');
      }
      const note = deleted.length ? ` (before its last put the process held deleted store files: ${deleted.join(', ')})` : '';
      try {
        await expectVersions(st, 'two.x', values, 'after kill -9 of the embedding process');
      } catch (err) {
        throw new Error(`${err.message}${note}`);
      }
      check(deleted.length === 0, `the embedding process held deleted store files: ${deleted.join(', ')}`);
      st.cleanup();
    },
  ],
]);
