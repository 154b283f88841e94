// Issue 9, acceptance 2, with real processes: a running `coffer serve` and, beside it, a process
// changing version states through the library (tests/server/state_tool.c). The Nitric Access of
// `latest` after the newest version is disabled answers the previous enabled one; an Access of a
// disabled version is FAILED_PRECONDITION saying it is disabled, of a destroyed one NOT_FOUND;
// enabling it again makes it readable again. The store is COFFER_TEST_STORE when set, else a
// fresh SQLite folder with its default key file.
import path from 'node:path';
import { A, check, COFFER, eq, loadContract, main, run, startServer, T, tmpDir } from './lib.mjs';

const { grpc, pkg } = loadContract();
const TOOL = process.env.COFFER_STATE_TOOL;
const dir = tmpDir('lifecycle');
const store = process.env.COFFER_TEST_STORE || path.join(dir, 'store');
const name = `lc${process.pid}`;
let srv, sm, res;

const call = (c, method, req) =>
  new Promise((resolve) => c[method](req, new grpc.Metadata(), (err, resp) => resolve({ err, resp })));
const put = (value) => call(sm, 'Put', { secret: { name }, value: Buffer.from(value) });
const access = (version) => call(sm, 'Access', { secret_version: { secret: { name }, version } });
const tool = (...args) => run(TOOL, [store, ...args]);

async function reads(version, value, id) {
  const { err, resp } = await access(version);
  check(!err, `access ${version}: ${err && err.details}`);
  eq(resp.value.toString(), value, `value of ${version}`);
  eq(resp.secret_version.version, id, `version id of ${version}`);
}

async function refused(version, code, re) {
  const { err } = await access(version);
  check(err, `access ${version} should fail`);
  eq(err.code, code, `status of access ${version} (${err.details})`);
  check(re.test(err.details), `message of access ${version}: ${err.details}`);
}

await main([
  ['start a server, declare, put three versions', async () => {
    if (process.env.COFFER_TEST_STORE) eq((await run(COFFER, ['--store', store, 'init'])).code, 0, 'init');
    srv = await startServer(store, ['--listen', '127.0.0.1:0', '--policy-wait', '300']);
    const creds = grpc.credentials.createInsecure();
    sm = new pkg.nitric.proto.secrets.v1.SecretManager(srv.addr(), creds);
    res = new pkg.nitric.proto.resources.v1.Resources(srv.addr(), creds);
    for (const req of [
      { id: { type: T.Secret, name }, secret: {} },
      {
        id: { type: T.Policy, name: '' },
        policy: {
          principals: [{ type: T.Service, name: '' }],
          actions: [A.SecretPut, A.SecretAccess],
          resources: [{ type: T.Secret, name }],
        },
      },
    ]) {
      const { err } = await call(res, 'Declare', req);
      check(!err, `declare: ${err && err.details}`);
    }
    for (const v of ['one', 'two', 'three']) {
      const { err } = await put(v);
      check(!err, `put: ${err && err.details}`);
    }
    await reads('latest', 'three', '3'); // now in the server's cache
  }],
  ['latest after disable of the newest is the previous enabled version', async () => {
    const r = await tool('disable', name, 'latest');
    eq(r.code, 0, `disable: ${r.stderr}`);
    eq(r.stdout.toString().trim(), '3', 'the version disabled');
    await reads('latest', 'two', '2');
  }],
  ['a disabled version is FAILED_PRECONDITION, saying so', async () => {
    await refused('3', 9, /version '3' is disabled/);
    check(!/three/.test(srv.stderr), 'no value in the log');
  }],
  ['a destroyed version is NOT_FOUND; latest moves past it', async () => {
    const r = await tool('destroy', name, '2');
    eq(r.code, 0, `destroy: ${r.stderr}`);
    await refused('2', 5, /not found/);
    await reads('latest', 'one', '1');
  }],
  ['enable makes it readable again, and latest again', async () => {
    const r = await tool('enable', name, '3');
    eq(r.code, 0, `enable: ${r.stderr}`);
    await reads('3', 'three', '3');
    await reads('latest', 'three', '3');
    const again = await tool('enable', name, '2');
    eq(again.code, 3, `enable of a destroyed version: ${again.stderr}`);
    check(/is destroyed/.test(again.stderr), again.stderr);
  }],
  ['a secret scheduled for deletion is FAILED_PRECONDITION; restored, it reads again', async () => {
    let r = await tool('delete', name, '7');
    eq(r.code, 0, `delete: ${r.stderr}`);
    await refused('latest', 9, /scheduled for deletion/);
    const { err } = await put('four');
    check(err && err.code === 9, `put to a deleted secret: ${err && err.details}`);
    r = await tool('restore', name, '-');
    eq(r.code, 0, `restore: ${r.stderr}`);
    await reads('latest', 'three', '3');
  }],
  ['the server exits cleanly', async () => {
    eq((await srv.stop()).code, 0, 'clean exit');
  }],
]);
