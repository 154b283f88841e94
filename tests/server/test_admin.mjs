// The admin service (proto/coffer/admin/v1/admin.proto) from @grpc/grpc-js with the .proto loaded
// at run time: a client that shares no code with coffer's own (src/client) checks the contract.
// A development server: the service 'default' may use it, another listener's service may not.
import path from 'node:path';
import { cacheRequire, check, eq, loadContract, main, PROTO, startServer, T, A, tmpDir } from './lib.mjs';

const { grpc, pkg } = loadContract();
const protoLoader = cacheRequire()('@grpc/proto-loader');
const adminDef = protoLoader.loadSync(['coffer/admin/v1/admin.proto'], {
  includeDirs: [PROTO], keepCase: true, longs: String, enums: String, defaults: true,
});
const Admin = grpc.loadPackageDefinition(adminDef).coffer.admin.v1.Admin;
const SecretManager = pkg.nitric.proto.secrets.v1.SecretManager;
const Resources = pkg.nitric.proto.resources.v1.Resources;

const call = (client, method, req) =>
  new Promise((resolve) => client[method](req, (err, resp) => resolve({ err, resp })));

async function ok(client, method, req) {
  const { err, resp } = await call(client, method, req);
  if (err) throw new Error(`${method} failed: ${err.code} ${err.details}`);
  return resp;
}

await main([
  ['versions, list and destroy on a development server', async () => {
    const dir = tmpDir('admin');
    const s = await startServer(path.join(dir, 'store'),
      ['--listen', '127.0.0.1:0', '--listen', 'billing=127.0.0.1:0', '--quiet']);
    const creds = grpc.credentials.createInsecure();
    const admin = new Admin(s.addr(), creds);
    const sm = new SecretManager(s.addr(), creds);
    const res = new Resources(s.addr(), creds);
    await ok(res, 'Declare', {
      id: { type: T.Policy, name: '' },
      policy: { principals: [{ type: T.Service, name: '' }], actions: [A.SecretPut, A.SecretAccess],
        resources: [{ type: T.Secret, name: 'db.password' }, { type: T.Secret, name: 'api-key' }] },
    });
    for (const v of ['one', 'two']) await ok(sm, 'Put', { secret: { name: 'db.password' }, value: Buffer.from(v) });
    await ok(sm, 'Put', { secret: { name: 'api-key' }, value: Buffer.from('k') });

    let r = await ok(admin, 'Versions', { secret: 'db.password' });
    eq(r.secret, 'db.password', 'Versions secret');
    eq(r.versions.length, 2, 'two versions');
    eq(r.versions[0].version, '1', 'oldest first');
    eq(r.versions[0].state, 'VERSION_STATE_ENABLED', 'state');
    eq(r.versions[1].size, '3', 'size of "two"');
    check(Number(r.versions[0].created_unix_ms) > 1.6e12, 'created_unix_ms is a Unix time in ms');

    r = await ok(admin, 'Destroy', { secret: 'db.password', version: 'latest' });
    eq(r.version, '2', 'latest resolved to its id');
    r = await ok(admin, 'Versions', { secret: 'db.password' });
    eq(r.versions[1].state, 'VERSION_STATE_DESTROYED', 'destroyed');
    const acc = await ok(sm, 'Access', { secret_version: { secret: { name: 'db.password' }, version: 'latest' } });
    eq(acc.secret_version.version, '1', 'latest moved back');

    r = await ok(admin, 'List', { limit: 1 });
    eq(r.secrets.map((x) => x.name).join(), 'api-key', 'first page');
    eq(r.more, true, 'more');
    r = await ok(admin, 'List', { start_after: 'api-key' });
    eq(r.secrets.map((x) => `${x.name}:${x.enabled_versions}`).join(), 'db.password:1', 'second page');
    eq(r.more, false, 'no more');

    let e = (await call(admin, 'Versions', { secret: 'nosuch' })).err;
    eq(e && e.code, grpc.status.NOT_FOUND, 'unknown secret');
    e = (await call(admin, 'Destroy', { secret: 'db.password', version: '' })).err;
    eq(e && e.code, grpc.status.INVALID_ARGUMENT, 'no version');
    e = (await call(admin, 'Versions', { secret: '../x' })).err;
    eq(e && e.code, grpc.status.INVALID_ARGUMENT, 'bad name');

    // Another service's listener: not the operator.
    const other = new Admin(`127.0.0.1:${s.port('billing')}`, creds);
    e = (await call(other, 'List', {})).err;
    eq(e && e.code, grpc.status.PERMISSION_DENIED, 'billing may not');
    check(/admin/.test(e.details), `message names the admin service: ${e.details}`);
    for (const c of [admin, sm, res, other]) c.close();
    eq((await s.stop()).code, 0, 'exit code');
  }],
]);
