// A full disk under running `coffer serve` processes (a small tmpfs of our own; needs root to
// mount, skipped with exit 77 otherwise): a Put that cannot be stored answers RESOURCE_EXHAUSTED
// (8) saying the disk is full, reads go on working, and once space is freed the same server,
// never restarted, stores puts again with every earlier value intact. A server that opened on
// the full disk without coffer.gen never leaves another process's cache stale.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { check, COFFER, eq, loadContract, main, run, startServer, tmpDir } from './lib.mjs';

const dir = tmpDir('diskfull');
const mnt = path.join(dir, 'fs');
fs.mkdirSync(mnt, { mode: 0o700 });
const mounted =
  process.getuid() === 0 &&
  spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'coffer-test', mnt]).status === 0;
if (!mounted) {
  console.log('# skipped: cannot mount a tmpfs (needs root)');
  process.exit(77);
}
process.prependListener('exit', () => spawnSync('umount', [mnt])); // before lib.mjs removes it

const { grpc, pkg } = loadContract();

const call = (client, method, req) =>
  new Promise((resolve) => client[method](req, (err, resp) => resolve({ err, resp })));
async function ok(client, method, req) {
  const { err, resp } = await call(client, method, req);
  if (err) throw new Error(`${method} failed: ${err.code} ${err.details}`);
  return resp;
}
const put = (name, value) => ({ secret: { name }, value: Buffer.from(value) });
const acc = (name, version) => ({ secret_version: { secret: { name }, version } });
const fill = () => spawnSync('dd', ['if=/dev/zero', `of=${path.join(mnt, 'fill')}`, 'bs=4k']);
const freeSpace = () => fs.rmSync(path.join(mnt, 'fill'), { force: true });

// A server on `store`, allowed to put and access `names`; returns { srv, sm }.
async function serve(store, names) {
  const srv = await startServer(store, ['--listen', '127.0.0.1:0', '--policy-wait', '300']);
  const creds = grpc.credentials.createInsecure();
  const sm = new pkg.nitric.proto.secrets.v1.SecretManager(srv.addr(), creds);
  const res = new pkg.nitric.proto.resources.v1.Resources(srv.addr(), creds);
  for (const name of names) await ok(res, 'Declare', { id: { type: 8, name }, secret: {} });
  await ok(res, 'Declare', {
    id: { type: 7, name: '' },
    policy: {
      principals: [{ type: 1, name: '' }],
      actions: [400, 401],
      resources: names.map((name) => ({ type: 8, name })),
    },
  });
  return { srv, sm };
}
const latest = async (sm, name) => Buffer.from((await ok(sm, 'Access', acc(name, 'latest'))).value).toString();

// One store per case, and the CLI only at the end of a case: while the lock bug of issue 7's
// data-loss fix is open, a CLI process can close a store as if it were its last user and delete
// SQLite's -wal and -shm under the servers.
const store1 = path.join(mnt, 'store1');
const store2 = path.join(mnt, 'store2');
const servers = [];
const acks = []; // [version, value] of every acknowledged put of 's'


await main([
  ['a put on a full disk is RESOURCE_EXHAUSTED, saying the disk is full', async () => {
    const a = await serve(store1, ['s']);
    servers.push(a);
    for (let i = 1; i <= 3; i++) {
      const v = `before-${i}`;
      acks.push([(await ok(a.sm, 'Put', put('s', v))).secret_version.version, v]);
    }
    fill();
    // SQLite may still have room inside its files: put 48 KiB values until one fails (more in
    // all than the file system holds, so one must).
    let err = null;
    for (let i = 0; i < 120 && !err; i++) {
      const v = `${i}:`.padEnd(48 * 1024, String.fromCharCode(97 + (i % 26)));
      const r = await call(a.sm, 'Put', put('s', v));
      if (r.err) err = r.err;
      else acks.push([r.resp.secret_version.version, v]);
    }
    check(err, 'some put failed');
    eq(err.code, 8, `status (${err.details})`);
    check(/disk is full/.test(err.details), `message ${JSON.stringify(err.details)}`);
    const again = await call(a.sm, 'Put', put('s', 'small'));
    eq(again.err && again.err.code, 8, 'a second put on the full disk');
    const [ver, val] = acks[acks.length - 1];
    const r = await ok(a.sm, 'Access', acc('s', 'latest'));
    eq(r.secret_version.version, ver, 'reads still work: latest is the last acknowledged put');
    eq(Buffer.from(r.value).toString(), val, 'and its value');
  }],
  ['space freed: the same server stores puts again, nothing lost', async () => {
    const { srv, sm } = servers[0];
    freeSpace();
    check(srv.alive(), 'the server is still running');
    const p = await ok(sm, 'Put', put('s', 'after-free'));
    acks.push([p.secret_version.version, 'after-free']);
    eq(await latest(sm, 's'), 'after-free', 'latest is the new put');
    for (const [ver, val] of acks) {
      const r = await ok(sm, 'Access', acc('s', ver));
      eq(Buffer.from(r.value).toString(), val, `version ${ver}`);
    }
    const cli = await run(COFFER, ['--store', store1, 'access', 's']);
    eq(cli.code, 0, `coffer access (${cli.stderr})`);
    eq(cli.stdout.toString(), 'after-free', 'another process reads the new latest');
  }],
  ['a server that opened without coffer.gen (disk full) publishes its puts once there is room', async () => {
    // A keeps SQLite's shared memory alive, so B can open the store on the full disk.
    const a = await serve(store2, ['t']);
    servers.push(a);
    await ok(a.sm, 'Put', put('t', 'a-1'));
    fill();
    fs.rmSync(path.join(store2, 'coffer.gen'));
    const b = await serve(store2, ['t']); // cannot allocate coffer.gen: runs without the cache
    servers.push(b);
    eq(await latest(b.sm, 't'), 'a-1', 'B reads on the full disk');
    freeSpace();
    // (A still maps the deleted coffer.gen: it only holds the store from here on.)
    // C maps the new coffer.gen, publishes its own put and serves latest from its cache.
    const c = await serve(store2, ['t']);
    servers.push(c);
    await ok(c.sm, 'Put', put('t', 'c-2'));
    eq(await latest(c.sm, 't'), 'c-2', 'C reads its put');
    eq(await latest(c.sm, 't'), 'c-2', 'C again (from its cache)');
    // B puts: it must publish into coffer.gen now that it can, or C serves a stale latest.
    await ok(b.sm, 'Put', put('t', 'b-3'));
    eq(await latest(c.sm, 't'), 'b-3', "C sees B's put (never stale)");
    const cli = await run(COFFER, ['--store', store2, 'access', 't']);
    eq(cli.stdout.toString(), 'b-3', 'and so does the CLI');
  }],
  ['stop', async () => {
    for (const { srv } of servers) if (srv.alive()) eq((await srv.stop()).code, 0, 'clean exit');
  }],
]);
