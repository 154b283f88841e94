// Acceptance 2: a client that is not Nitric's (@grpc/grpc-js, the repo's .proto files loaded at
// run time) calls every method with valid and invalid requests and checks codes and messages.
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { grpcMsg, ld, putReq } from './h2raw.mjs';
import { A, cacheRequire, check, eq, grpcStatus, loadContract, main, PROTO, run, startServer, T, tmpDir } from './lib.mjs';

const { grpc, pkg } = loadContract();
const protobuf = cacheRequire()('protobufjs');
const SecretManager = pkg.nitric.proto.secrets.v1.SecretManager;
const Resources = pkg.nitric.proto.resources.v1.Resources;
const statusRoot = protobuf.loadSync([
  path.join(PROTO, 'google/rpc/status.proto'),
  path.join(PROTO, 'google/protobuf/struct.proto'),
]);
const Status = statusRoot.lookupType('google.rpc.Status');
const Struct = statusRoot.lookupType('google.protobuf.Struct');


function clients(addr, token, rootCert) {
  const creds = rootCert ? grpc.credentials.createSsl(rootCert) : grpc.credentials.createInsecure();
  const c = { sm: new SecretManager(addr, creds), res: new Resources(addr, creds), raw: new grpc.Client(addr, creds) };
  c.md = () => {
    const m = new grpc.Metadata();
    if (token) m.set('authorization', `Bearer ${token}`);
    return m;
  };
  return c;
}

function call(c, svc, method, req) {
  return new Promise((resolve) => {
    c[svc][method](req, c.md(), (err, resp) => resolve({ err, resp }));
  });
}

async function ok(c, svc, method, req) {
  const { err, resp } = await call(c, svc, method, req);
  if (err) throw new Error(`${method} failed: ${err.code} ${err.details}`);
  return resp;
}

async function fails(c, svc, method, req, code, re) {
  const { err } = await call(c, svc, method, req);
  check(err, `${method} should fail with ${code}`);
  eq(err.code, code, `${method} status (${err.details})`);
  if (re) check(re.test(err.details), `${method} message ${JSON.stringify(err.details)} !~ ${re}`);
  return err;
}

const declareSecret = (c, name) =>
  ok(c, 'res', 'Declare', { id: { type: T.Secret, name }, secret: {} });
const declarePolicy = (c, names, actions) =>
  ok(c, 'res', 'Declare', {
    id: { type: T.Policy, name: '' },
    policy: {
      principals: [{ type: T.Service, name: '' }],
      actions,
      resources: names.map((name) => ({ type: T.Secret, name })),
    },
  });

const put = (name, value) => ({ secret: { name }, value: Buffer.from(value) });
const acc = (name, version) => ({ secret_version: { secret: { name }, version } });

const dir = tmpDir('grpcjs');
let srv, c;

await main([
  ['start', async () => {
    srv = await startServer(path.join(dir, 'store'), ['--listen', '127.0.0.1:0', '--policy-wait', '300']);
    c = clients(srv.addr());
  }],
  ['Declare: secret, policy and other resources answer OK', async () => {
    await declareSecret(c, 'api-key');
    await declarePolicy(c, ['api-key', 'db.password'], [A.SecretPut, A.SecretAccess]);
    await ok(c, 'res', 'Declare', { id: { type: T.Bucket, name: 'files' }, bucket: {} });
    await ok(c, 'res', 'Declare', {}); // nothing at all
    await declarePolicy(c, ['ro'], [A.SecretAccess]);
  }],
  ['Put answers the new id; Access resolves latest to the real id', async () => {
    const p1 = await ok(c, 'sm', 'Put', put('api-key', 'one'));
    eq(p1.secret_version.version, '1', 'first version');
    eq(p1.secret_version.secret.name, 'api-key', 'name echoed');
    const p2 = await ok(c, 'sm', 'Put', put('api-key', 'two'));
    eq(p2.secret_version.version, '2', 'second version');
    const a = await ok(c, 'sm', 'Access', acc('api-key', 'latest'));
    eq(a.secret_version.version, '2', 'latest is 2');
    eq(Buffer.from(a.value).toString(), 'two', 'latest value');
    const b = await ok(c, 'sm', 'Access', acc('api-key', 'LATEST'));
    eq(b.secret_version.version, '2', 'latest in any case');
    const d = await ok(c, 'sm', 'Access', acc('api-key', '1'));
    eq(Buffer.from(d.value).toString(), 'one', 'version 1 value');
  }],
  ['Put refuses bad input with INVALID_ARGUMENT', async () => {
    await fails(c, 'sm', 'Put', put('api-key', ''), 3, /empty/);
    await fails(c, 'sm', 'Put', { value: Buffer.from('x') }, 3, /name is required/);
    for (const bad of ['../x', 'a/b', 'has space', '.env', 'é', 'x'.repeat(256)])
      await fails(c, 'sm', 'Put', put(bad, 'x'), 3, /invalid secret name/);
    await fails(c, 'sm', 'Put', put('api-key', 'x'.repeat(65537)), 3, /65536/);
    const at = await ok(c, 'sm', 'Put', put('api-key', 'y'.repeat(65536)));
    eq(at.secret_version.version, '3', 'a value exactly at the limit is accepted');
  }],
  ['Access errors: NOT_FOUND names secret and version, bad versions INVALID_ARGUMENT', async () => {
    await fails(c, 'sm', 'Access', acc('api-key', '999'), 5, /api-key.*999|999.*api-key/);
    await fails(c, 'sm', 'Access', acc('db.password', 'latest'), 5, /db\.password/);
    await fails(c, 'sm', 'Access', acc('api-key', ''), 3, /version is required/);
    for (const v of ['1abc', '-1', '0', '99999999999999999999'])
      await fails(c, 'sm', 'Access', acc('api-key', v), 3);
    // A word is a label (docs/lifecycle.md): one the secret does not have is not found.
    await fails(c, 'sm', 'Access', acc('api-key', 'abc'), 5, /no label 'abc'/);
    await fails(c, 'sm', 'Access', acc('', 'latest'), 3, /name is required/);
  }],
  ['errors carry grpc-status-details-bin: google.rpc.Status with Struct{cause}', async () => {
    const err = await fails(c, 'sm', 'Access', acc('api-key', '999'), 5);
    const bin = err.metadata.get('grpc-status-details-bin')[0];
    check(Buffer.isBuffer(bin), 'details trailer present');
    const st = Status.decode(bin);
    eq(st.code, 5, 'status code in details');
    eq(st.details[0].type_url || st.details[0].typeUrl, 'type.googleapis.com/google.protobuf.Struct', 'Any type');
    const s = Struct.toObject(Struct.decode(st.details[0].value));
    check(/999/.test(s.fields.cause.stringValue), `cause ${JSON.stringify(s)}`);
  }],
  ['permissions: access-only secret refuses put; undeclared secret is denied', async () => {
    await fails(c, 'sm', 'Put', put('ro', 'x'), 7, /not allowed to put secret 'ro'/);
    await fails(c, 'sm', 'Put', put('never-declared', 'x'), 7, /not allowed/);
    await fails(c, 'sm', 'Access', acc('never-declared', 'latest'), 7);
  }],
  ['unknown method is UNIMPLEMENTED', async () => {
    const err = await new Promise((resolve) =>
      c.raw.makeUnaryRequest('/nitric.proto.secrets.v1.SecretManager/Destroy', (x) => x, (x) => x,
        Buffer.alloc(0), (e) => resolve(e)));
    eq(err.code, 12, 'status');
    check(/Destroy/.test(err.details), err.details);
    const err2 = await new Promise((resolve) =>
      c.raw.makeUnaryRequest('/nitric.proto.kvstore.v1.KvStore/Get', (x) => x, (x) => x,
        Buffer.alloc(0), (e) => resolve(e)));
    eq(err2.code, 12, 'other service');
  }],
  ['garbage protobuf is INVALID_ARGUMENT, nothing stored', async () => {
    for (const m of ['Put', 'Access', 'Declare']) {
      const path_ = m === 'Declare' ? '/nitric.proto.resources.v1.Resources/Declare'
        : `/nitric.proto.secrets.v1.SecretManager/${m}`;
      const err = await new Promise((resolve) =>
        c.raw.makeUnaryRequest(path_, (x) => x, (x) => x, Buffer.from([0x0a, 0xff, 0xff, 0x01]),
          (e) => resolve(e)));
      eq(err && err.code, 3, `${m} garbage`);
    }
    const a = await ok(c, 'sm', 'Access', acc('api-key', 'latest'));
    eq(a.secret_version.version, '3', 'nothing new stored');
  }],
  ['stop', async () => {
    eq((await srv.stop()).code, 0, 'exit code');
  }],
  ['bearer tokens name the principal; a bad token is UNAUTHENTICATED', async () => {
    const tokens = path.join(dir, 'tokens');
    fs.writeFileSync(tokens, 'ci 0123456789abcdef0123456789abcdef\n', { mode: 0o600 });
    // Tokens go with a policy file: without one they would authenticate and restrict nothing.
    const pol = path.join(dir, 'policy-ci');
    fs.writeFileSync(pol, 'allow ci access api-key\n');
    const s = await startServer(path.join(dir, 'store'), ['--listen', '127.0.0.1:0', '--policy', pol, '--tokens', tokens]);
    try {
      const good = clients(s.addr(), '0123456789abcdef0123456789abcdef');
      await declarePolicy(good, ['api-key'], [A.SecretAccess]);
      const a = await ok(good, 'sm', 'Access', acc('api-key', '2'));
      eq(Buffer.from(a.value).toString(), 'two', 'token holder reads');
      const bad = clients(s.addr(), '0123456789abcdef0123456789abcdeX');
      await fails(bad, 'sm', 'Access', acc('api-key', '2'), 16, /invalid bearer token/);
    } finally {
      await s.stop();
    }
    // Log lines are written at the end of a loop iteration: read them once the server is done.
    check(/principal=ci /.test(s.stderr), 'logged as the token principal');
    check(!s.stderr.includes('0123456789abcdef'), 'token never logged');
  }],
  ['with --policy the operator rules: a Declare beyond it grants nothing', async () => {
    const pol = path.join(dir, 'policy');
    fs.writeFileSync(pol, '# grants\nallow default access api-key\nallow default put,access scratch\n');
    const s = await startServer(path.join(dir, 'store'), ['--listen', '127.0.0.1:0', '--policy', pol]);
    try {
      const k = clients(s.addr());
      await declarePolicy(k, ['api-key', 'other'], [A.SecretPut, A.SecretAccess]); // answered OK
      await fails(k, 'sm', 'Put', put('api-key', 'x'), 7);
      await fails(k, 'sm', 'Access', acc('other', 'latest'), 7);
      const a = await ok(k, 'sm', 'Access', acc('api-key', '1'));
      eq(Buffer.from(a.value).toString(), 'one', 'granted access');
      const p = await ok(k, 'sm', 'Put', put('scratch', 'z'));
      eq(p.secret_version.version, '1', 'granted put');
    } finally {
      await s.stop();
    }
    check(/grants nothing/.test(s.stderr), 'the ignored declaration is logged');
  }],
  ['a wrong master key is refused at start, before listening', async () => {
    let msg = '';
    try {
      const s = await startServer(path.join(dir, 'store'), ['--listen', '127.0.0.1:0'],
        { COFFER_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') });
      await s.stop();
    } catch (e) {
      msg = e.message;
    }
    check(/exited with 5/.test(msg), `exit code 5 (key): ${msg}`);
    check(/cannot open the store/.test(msg) && !/listening on/.test(msg), msg);
  }],
  ['a non-loopback listener without TLS and tokens is refused', async () => {
    let failed = false;
    try {
      const s = await startServer(path.join(dir, 'store'), ['--listen', '0.0.0.0:0']);
      await s.stop();
    } catch (e) {
      failed = /refusing to listen/.test(e.message);
    }
    check(failed, 'refused with a clear message');
  }],
  ['TLS (ALPN h2) with tokens: a non-loopback listener is allowed and demands a token', async () => {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    const gen = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
      '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1']);
    eq(gen.code, 0, `openssl (${gen.stderr})`);
    const tokens = path.join(dir, 'tokens2');
    fs.writeFileSync(tokens, 'ops tls-token-0123456789abcdef\n', { mode: 0o600 });
    // 0.0.0.0 is not loopback; the test still only connects to 127.0.0.1.
    const pol = path.join(dir, 'policy-ops');
    fs.writeFileSync(pol, 'allow ops access api-key\n');
    const s = await startServer(path.join(dir, 'store'), ['--listen', '0.0.0.0:0', '--tls-cert', cert,
      '--tls-key', key, '--policy', pol, '--tokens', tokens]);
    try {
      check(/ tls$/m.test(s.stdout), 'announced as TLS');
      const root = fs.readFileSync(cert);
      const anon = clients(`127.0.0.1:${s.port()}`, null, root);
      await fails(anon, 'sm', 'Access', acc('api-key', '1'), 16, /requires/);
      const ops = clients(`127.0.0.1:${s.port()}`, 'tls-token-0123456789abcdef', root);
      await declarePolicy(ops, ['api-key'], [A.SecretAccess]);
      const a = await ok(ops, 'sm', 'Access', acc('api-key', '1'));
      eq(Buffer.from(a.value).toString(), 'one', 'read over TLS');
      const plain = clients(`127.0.0.1:${s.port()}`, 'tls-token-0123456789abcdef');
      const { err } = await call(plain, 'sm', 'Access', acc('api-key', '1'));
      check(err && err.code === 14, 'plaintext h2c to a TLS port fails');
    } finally {
      eq((await s.stop()).code, 0, 'exit code');
    }
  }],
  ['SIGTERM drains: a call in flight is answered before the server exits 0', async () => {
    const s = await startServer(path.join(dir, 'store'), ['--listen', '127.0.0.1:0', '--policy-wait', '5000']);
    const session = http2.connect(`http://${s.addr()}`);
    const unary = (p, body) => grpcStatus(session, p, body);
    // No policy for 'late': the Put waits for one (up to 5 s). A Declare sent after it on the
    // same connection is answered only once the server has read the Put: frames of one
    // connection are handled in order, and the Put's stream id is below the GOAWAY's.
    const pending = unary('/nitric.proto.secrets.v1.SecretManager/Put', grpcMsg(putReq('late', 'x')));
    const decl = Buffer.concat([ld(1, Buffer.concat([Buffer.from([0x08, 0x08]), ld(2, 'late')])), ld(14, '')]);
    eq(await unary('/nitric.proto.resources.v1.Resources/Declare', grpcMsg(decl)), 0, 'Declare');
    const exited = s.stop('SIGTERM');
    eq(await pending, 7, 'the in-flight Put is answered (denied after its wait)');
    session.close();
    eq((await exited).code, 0, 'exit code after drain');
  }],
]);
