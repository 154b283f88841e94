// Issue 13 item 8: declarations are kept in the store. Development mode learns them (and a
// restart keeps them), `coffer list` shows declared secrets without a value yet, `coffer policy
// show [--json]` prints the grants, and `coffer serve --record-policy FILE` writes them as a
// policy file that `--policy` takes: the same program then works, and a call it never declared
// is denied.
import fs from 'node:fs';
import path from 'node:path';
import { CACHE, COFFER, HERE, A, T, check, eq, loadContract, main, run, startServer, tmpDir } from '../server/lib.mjs';

const { grpc, pkg } = loadContract();
const dir = tmpDir('record');
const store = path.join(dir, 'store');
const policy = path.join(dir, 'recorded.policy');
let srv;

// The Node SDK 1.2.2 program of sdk_loopback: allow('put', 'access'), one put, one access.
async function program(name) {
  const d = tmpDir('prog');
  fs.symlinkSync(path.join(CACHE, 'node_modules'), path.join(d, 'node_modules'));
  fs.copyFileSync(path.join(HERE, '..', 'sdk', 'programs', 'loopback_v1.mjs'), path.join(d, 'p.mjs'));
  return run(process.execPath, [path.join(d, 'p.mjs')], { env: { SERVICE_ADDRESS: srv.addr(), SECRET_NAME: name }, cwd: d });
}

const call = (client, method, req) =>
  new Promise((resolve, reject) => client[method](req, (err, resp) => (err ? reject(err) : resolve(resp))));

function clients() {
  const creds = grpc.credentials.createInsecure();
  return {
    res: new pkg.nitric.proto.resources.v1.Resources(srv.addr(), creds),
    sm: new pkg.nitric.proto.secrets.v1.SecretManager(srv.addr(), creds),
    close() { this.res.close(); this.sm.close(); },
  };
}

// A put without any Declare on this connection: its grpc status code.
async function bareCode(method, name) {
  const c = clients();
  try {
    const req = method === 'Put' ? { secret: { name }, value: Buffer.from('bare') }
      : { secret_version: { secret: { name }, version: 'latest' } };
    await call(c.sm, method, req);
    return 0;
  } catch (e) {
    return e.code;
  } finally {
    c.close();
  }
}

await main([
  ['development server with --record-policy', async () => {
    srv = await startServer(store, ['--listen', '127.0.0.1:0', '--record-policy', policy, '--policy-wait', '300']);
  }],
  ['a program runs; another declares a secret (access only) and never puts', async () => {
    const r = await program('rec-app');
    eq(r.code, 0, `program:\n${r.stderr}`);
    eq(r.stdout.toString().trim(), `put 1 read via ${srv.addr()}`, 'program output');
    const c = clients();
    await call(c.res, 'Declare', { id: { type: T.Secret, name: 'rec-declared' }, secret: {} });
    await call(c.res, 'Declare', {
      id: { type: T.Policy, name: '' },
      policy: { principals: [{ type: T.Service, name: '' }], actions: [A.SecretAccess], resources: [{ type: T.Secret, name: 'rec-declared' }] },
    });
    await call(c.res, 'Declare', { id: { type: T.Secret, name: 'rec-bare' } });
    c.close();
  }],
  ['SIGTERM writes the policy file of what was declared', async () => {
    eq((await srv.stop('SIGTERM')).code, 0, 'exit code');
    check(srv.stderr.includes(`wrote the declared grants to ${policy}`), srv.stderr);
    const lines = fs.readFileSync(policy, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    eq(lines.join('|'), 'allow default put,access rec-app|allow default access rec-declared', 'the grants');
    check(fs.readFileSync(policy, 'utf8').includes('# default declared rec-bare without any action'), 'the bare declaration, as a comment');
  }],
  ['coffer list shows the declared secrets that have no value yet', async () => {
    const t = (await run(COFFER, ['--store', store, 'list'])).stdout.toString();
    check(/^rec-app\s+1$/m.test(t), t);
    check(/^rec-declared\s+0 \(declared, no value yet\)$/m.test(t), t);
    check(/^rec-bare\s+0 \(declared, no value yet\)$/m.test(t), t);
    const j = JSON.parse((await run(COFFER, ['--store', store, 'list', '--json'])).stdout.toString());
    eq(JSON.stringify(j), JSON.stringify([
      { name: 'rec-app', versions: 1 }, { name: 'rec-bare', versions: 0, declared: true },
      { name: 'rec-declared', versions: 0, declared: true }]), 'list --json');
  }],
  ['coffer policy show [--json] prints the grants', async () => {
    const t = (await run(COFFER, ['--store', store, 'policy', 'show'])).stdout.toString();
    check(/^default\s+rec-app\s+put,access$/m.test(t), t);
    check(/^default\s+rec-declared\s+access$/m.test(t), t);
    check(/^default\s+rec-bare\s+\(declared, no actions\)$/m.test(t), t);
    const j = JSON.parse((await run(COFFER, ['--store', store, 'policy', 'show', '--json'])).stdout.toString());
    eq(JSON.stringify(j), JSON.stringify([
      { service: 'default', secret: 'rec-app', actions: ['put', 'access'] },
      { service: 'default', secret: 'rec-bare', actions: [] },
      { service: 'default', secret: 'rec-declared', actions: ['access'] }]), 'policy show --json');
    eq((await run(COFFER, ['--store', store, 'policy', 'frob'])).code, 2, 'a usage error');
  }],
  ['--record-policy does not go with --policy', async () => {
    const r = await run(COFFER, ['--store', store, 'serve', '--listen', '127.0.0.1:0', '--policy', policy, '--record-policy', policy]);
    eq(r.code, 2, r.stderr);
  }],
  ['with --policy FILE the same program works, and what it never declared is denied', async () => {
    srv = await startServer(store, ['--listen', '127.0.0.1:0', '--policy', policy]);
    const r = await program('rec-app');
    eq(r.code, 0, `program:\n${r.stderr}`);
    eq(r.stdout.toString().trim(), `put 2 read via ${srv.addr()}`, 'program output');
    const other = await program('rec-other');
    check(other.code !== 0, 'a secret it never declared');
    check(/PermissionDenied/.test(other.stderr.toString()), other.stderr.toString());
    eq(await bareCode('Put', 'rec-declared'), grpc.status.PERMISSION_DENIED, 'put on an access-only declaration');
    eq(await bareCode('Access', 'rec-bare'), grpc.status.PERMISSION_DENIED, 'a secret declared without actions');
    eq((await srv.stop('SIGTERM')).code, 0, 'exit code');
  }],
  ['development mode after a restart keeps what was declared', async () => {
    srv = await startServer(store, ['--listen', '127.0.0.1:0', '--policy-wait', '300']);
    // Three from the first run, and rec-other: declared (and denied) under the policy file.
    check(/4 declaration\(s\) kept from earlier runs/.test(srv.stderr), srv.stderr);
    eq(await bareCode('Put', 'rec-app'), 0, 'a put with no Declare on this run');
    eq(await bareCode('Put', 'rec-declared'), grpc.status.PERMISSION_DENIED, 'still access only');
    eq(await bareCode('Put', 'rec-never'), grpc.status.PERMISSION_DENIED, 'never declared');
    eq((await srv.stop('SIGTERM')).code, 0, 'exit code');
  }],
]);
