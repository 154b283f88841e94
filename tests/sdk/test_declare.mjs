// Issue 13 item 5: what the SDKs need of a server, with a generic gRPC client (@grpc/grpc-js with
// our .proto files, both contracts) and node:http2: a secret Declare with and without its config
// field, the same Declare repeated, a policy for a secret never declared, the first contract's
// own enum values, an error answer's first HEADERS frame, a percent-encoded grpc-message, and
// thousands of short connections.
import http2 from 'node:http2';
import path from 'node:path';
import { cacheRequire, check, eq, main, startServer, tmpDir } from '../server/lib.mjs';
import { accessReq, grpcMsg } from '../server/h2raw.mjs';

const require = cacheRequire();
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const PROTO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'proto');
const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(
  ['nitric/proto/secrets/v1/secrets.proto', 'nitric/proto/resources/v1/resources.proto',
    'nitric/secret/v1/secret.proto', 'nitric/resource/v1/resource.proto'],
  { includeDirs: [PROTO], keepCase: true, longs: String, enums: Number, defaults: true },
));
const cur = { res: pkg.nitric.proto.resources.v1.Resources, sm: pkg.nitric.proto.secrets.v1.SecretManager };
const v0 = { res: pkg.nitric.resource.v1.ResourceService, sm: pkg.nitric.secret.v1.SecretService };

const store = path.join(tmpDir('declare'), 'store');
let srv;
const clients = [];
const client = (Ctor) => {
  const c = new Ctor(srv.addr(), grpc.credentials.createInsecure());
  clients.push(c);
  return c;
};
const call = (c, method, req) =>
  new Promise((resolve, reject) => c[method](req, (err, resp) => (err ? reject(err) : resolve(resp))));
const code = (p) => p.then(() => 0, (e) => e.code);

await main([
  ['server starts (5 s policy wait)', async () => {
    srv = await startServer(store, ['--listen', '127.0.0.1:0', '--policy-wait', '5000']);
  }],
  ['a secret Declare with and without its config field, repeated, answers OK (both contracts)', async () => {
    const res = client(cur.res);
    const res0 = client(v0.res);
    for (let i = 0; i < 3; i++) {
      await call(res, 'Declare', { id: { type: 8, name: 'd1' }, secret: {} });
      await call(res, 'Declare', { id: { type: 8, name: 'd1' } });
      await call(res0, 'Declare', { resource: { type: 9, name: 'd1' }, secret: {} });
      await call(res0, 'Declare', { resource: { type: 9, name: 'd1' } });
    }
  }],
  ['a policy for a secret never declared grants it (development mode)', async () => {
    await call(client(cur.res), 'Declare', {
      id: { type: 7, name: '' },
      policy: { principals: [{ type: 1, name: '' }], actions: [400, 401], resources: [{ type: 8, name: 'undeclared' }] },
    });
    const r = await call(client(cur.sm), 'Put', { secret: { name: 'undeclared' }, value: Buffer.from('v') });
    eq(r.secret_version.version, '1', 'put allowed');
  }],
  ['the first contract grants with its own numbers (Function 1, Secret 9, 500/501)', async () => {
    await call(client(v0.res), 'Declare', {
      resource: { type: 8, name: '' },
      policy: { principals: [{ type: 1, name: '' }], actions: [500, 501], resources: [{ type: 9, name: 'first' }] },
    });
    const sm0 = client(v0.sm);
    eq((await call(sm0, 'Put', { secret: { name: 'first' }, value: Buffer.from('one') })).secret_version.version, '1', 'put');
    const a = await call(client(cur.sm), 'Access', { secret_version: { secret: { name: 'first' }, version: 'latest' } });
    eq(Buffer.from(a.value).toString(), 'one', 'read through the current contract');
  }],
  ['the current contract\'s numbers sent to the first contract grant nothing', async () => {
    // 400/401 are collection actions in the first contract; type 8 is Policy there, not Secret.
    await call(client(v0.res), 'Declare', {
      resource: { type: 8, name: '' },
      policy: { principals: [{ type: 1, name: '' }], actions: [400, 401], resources: [{ type: 9, name: 'mixed' }] },
    });
    eq(await code(call(client(v0.sm), 'Put', { secret: { name: 'mixed' }, value: Buffer.from('x') })), 7, 'PERMISSION_DENIED');
  }],
  ['an error answer: :status 200 and content-type in its one HEADERS frame, grpc-message percent-encoded', async () => {
    const s = http2.connect(`http://${srv.addr()}`);
    await new Promise((resolve, reject) => s.on('error', reject).on('connect', resolve));
    const req = s.request({ ':method': 'POST', ':path': '/a%b/Put', 'content-type': 'application/grpc' });
    const headers = await new Promise((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
      req.end();
    });
    req.resume();
    s.close();
    eq(headers[':status'], 200, ':status');
    eq(headers['content-type'], 'application/grpc', 'content-type');
    eq(headers['grpc-status'], '12', 'grpc-status in the same frame (trailers-only)');
    eq(headers['grpc-message'], 'unknown method /a%25b/Put', 'grpc-message');
  }],
  ['2,000 short connections, one Declare each, 20 at a time', async () => {
    const body = Buffer.from([0, 0, 0, 0, 6, 0x0a, 0x04, 0x08, 0x08, 0x12, 0x00]); // Declare{id{Secret,""}}
    let next = 0;
    let ok = 0;
    async function one() {
      const s = http2.connect(`http://${srv.addr()}`);
      await new Promise((resolve, reject) => s.on('error', reject).on('connect', resolve));
      const st = await new Promise((resolve, reject) => {
        const req = s.request({ ':method': 'POST', ':path': '/nitric.proto.resources.v1.Resources/Declare', 'content-type': 'application/grpc' });
        let status = null;
        req.on('trailers', (h) => { status = h['grpc-status']; });
        req.on('response', (h) => { if (h['grpc-status'] !== undefined) status = h['grpc-status']; });
        req.on('data', () => {});
        req.on('end', () => resolve(status));
        req.on('error', reject);
        req.end(body);
      });
      s.close();
      if (st === '0') ok++;
    }
    await Promise.all(Array.from({ length: 20 }, async () => {
      while (next < 2000) {
        next++;
        await one();
      }
    }));
    eq(ok, 2000, 'answered OK');
    check(srv.alive(), 'server alive');
  }],
  ['grpc-timeout is honoured: a call parked for a policy that never comes ends at its deadline', async () => {
    // --policy-wait is 5 s here; the request says grpc-timeout 300 ms. node:http2 keeps no
    // deadline of its own, so the answer is the server's: DEADLINE_EXCEEDED (4), where it used to
    // hold the stream for the whole wait and answer PERMISSION_DENIED (7).
    const s = http2.connect(`http://${srv.addr()}`);
    await new Promise((resolve, reject) => s.on('error', reject).on('connect', resolve));
    const req = s.request({ ':method': 'POST', ':path': '/nitric.proto.secrets.v1.SecretManager/Access',
      'content-type': 'application/grpc', 'grpc-timeout': '300m' });
    const status = await new Promise((resolve, reject) => {
      let st = null;
      req.on('response', (h) => { if (h['grpc-status'] !== undefined) st = h['grpc-status']; });
      req.on('trailers', (h) => { st = h['grpc-status']; });
      req.on('data', () => {});
      req.on('end', () => resolve(st));
      req.on('error', reject);
      req.end(grpcMsg(accessReq('no-policy', 'latest')));
    });
    s.close();
    eq(status, '4', 'grpc-status');
  }],
  ['SIGTERM drains and exits 0', async () => {
    for (const c of clients) c.close();
    eq((await srv.stop('SIGTERM')).code, 0, 'exit code');
    check(/Access principal=default secret=no-policy version=\S+ status=4 /.test(srv.stderr), 'the deadline is logged');
  }],
]);
