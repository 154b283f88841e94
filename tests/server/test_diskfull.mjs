// A full disk under running `coffer serve` processes (a small tmpfs of our own; needs root to
// mount, skipped with exit 77 otherwise).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { HERE, COFFER, cacheRequire, check, eq, main, run, startServer, tmpDir } from './lib.mjs';

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

const require = cacheRequire();
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const PROTO = path.resolve(HERE, '..', '..', 'proto');
const def = protoLoader.loadSync(
  ['nitric/proto/secrets/v1/secrets.proto', 'nitric/proto/resources/v1/resources.proto'],
  { includeDirs: [PROTO], keepCase: true, longs: String, enums: Number, defaults: true },
);
const pkg = grpc.loadPackageDefinition(def);

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

// A server on the store, allowed to put and access `names`; returns { srv, sm }.
async function serve(names) {
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

const store = path.join(mnt, 'store');
const servers = [];

await main([
  ['a server that opened without coffer.gen (disk full) publishes its puts once there is room', async () => {
    // A keeps SQLite's shared memory alive, so B can open the store on the full disk.
    const a = await serve(['t']);
    servers.push(a);
    await ok(a.sm, 'Put', put('t', 'a-1'));
    fill();
    fs.rmSync(path.join(store, 'coffer.gen'));
    const b = await serve(['t']); // cannot allocate coffer.gen: runs without the cache
    servers.push(b);
    eq(await latest(b.sm, 't'), 'a-1', 'B reads on the full disk');
    freeSpace();
    // (A still maps the deleted coffer.gen: it only holds the store from here on.)
    // C maps the new coffer.gen, publishes its own put and serves latest from its cache.
    const c = await serve(['t']);
    servers.push(c);
    await ok(c.sm, 'Put', put('t', 'c-2'));
    eq(await latest(c.sm, 't'), 'c-2', 'C reads its put');
    eq(await latest(c.sm, 't'), 'c-2', 'C again (from its cache)');
    // B puts: it must publish into coffer.gen now that it can, or C serves a stale latest.
    await ok(b.sm, 'Put', put('t', 'b-3'));
    eq(await latest(c.sm, 't'), 'b-3', "C sees B's put (never stale)");
    const cli = await run(COFFER, ['--store', store, 'access', 't']);
    eq(cli.stdout.toString(), 'b-3', 'and so does the CLI');
  }],
  ['stop', async () => {
    for (const { srv } of servers) if (srv.alive()) eq((await srv.stop()).code, 0, 'clean exit');
  }],
]);
