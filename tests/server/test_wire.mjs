// Acceptance 3: bad input over the wire. Each is answered with the right status or a connection
// error, the server keeps serving others, and nothing is stored.
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { check, eq, main, startServer, tmpDir } from './lib.mjs';
import { F, PREFACE, RawConn, T, accessReq, frame, grpcHeaders, grpcMsg, ld, putReq, settingsFrame, varint } from './h2raw.mjs';

const PUT = '/nitric.proto.secrets.v1.SecretManager/Put';
const ACCESS = '/nitric.proto.secrets.v1.SecretManager/Access';
const dir = tmpDir('wire');
let srv, session;

// One request over node's http2 client: body chunks written as given; resolves with statuses.
function request(body, headers = {}, chunks = null) {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':method': 'POST', ':path': PUT, 'content-type': 'application/grpc', te: 'trailers', ...headers,
    });
    const out = { status: null, grpc: null, message: null, data: [] };
    const take = (h) => {
      if (h['grpc-status'] !== undefined) {
        out.grpc = Number(h['grpc-status']);
        out.message = decodeURIComponent(h['grpc-message'] || '');
      }
    };
    req.on('response', (h) => {
      out.status = Number(h[':status']);
      take(h);
    });
    req.on('trailers', take);
    req.on('data', (d) => out.data.push(d));
    req.on('end', () => resolve(out));
    req.on('error', reject);
    if (chunks) {
      for (const c of chunks) req.write(c);
      req.end();
    } else req.end(body);
  });
}

async function expectGrpc(p, code, re) {
  const r = await p;
  eq(r.grpc, code, `grpc-status (message ${JSON.stringify(r.message)})`);
  if (re) check(re.test(r.message), `message ${JSON.stringify(r.message)} !~ ${re}`);
  return r;
}

// The server still answers a normal Access (of a secret that must not exist).
async function stillServing(name = 'wire') {
  const r = await request(grpcMsg(accessReq(name, 'latest')), { ':path': ACCESS });
  eq(r.grpc, 5, `normal request after abuse: ${r.message}`);
}

await main([
  ['start', async () => {
    const pol = path.join(dir, 'policy');
    fs.writeFileSync(pol, 'allow default put,access *\n');
    srv = await startServer(path.join(dir, 'store'), ['--listen', '127.0.0.1:0', '--policy', pol]);
    session = http2.connect(`http://${srv.addr()}`);
  }],
  ['length prefix larger than the data: INTERNAL (truncated)', () =>
    expectGrpc(request(grpcMsg(putReq('wire', 'v'), 0, 100)), 13, /truncated/)],
  ['truncated 5-byte prefix: INTERNAL', () =>
    expectGrpc(request(Buffer.from([0, 0, 0])), 13, /truncated/)],
  ['no message at all: INTERNAL', () => expectGrpc(request(Buffer.alloc(0)), 13, /no request message/)],
  ['length prefix over the 4 MiB limit: RESOURCE_EXHAUSTED before any data', () =>
    expectGrpc(request(grpcMsg(Buffer.alloc(10), 0, 5 * 1024 * 1024)), 8, /larger than max/)],
  ['a real 5 MiB message: RESOURCE_EXHAUSTED', () =>
    expectGrpc(request(grpcMsg(putReq('wire', Buffer.alloc(5 * 1024 * 1024, 0x61)))), 8, /4194304/)],
  ['compressed flag without grpc-encoding: INTERNAL', () =>
    expectGrpc(request(grpcMsg(putReq('wire', 'v'), 1)), 13, /compressed/)],
  ['compressed flag with grpc-encoding gzip: UNIMPLEMENTED', () =>
    expectGrpc(request(grpcMsg(putReq('wire', 'v'), 1), { 'grpc-encoding': 'gzip' }), 12, /compression/)],
  ['reserved flag bits: INTERNAL', () => expectGrpc(request(grpcMsg(putReq('wire', 'v'), 4)), 13)],
  ['two messages on a unary method: INTERNAL', () =>
    expectGrpc(request(Buffer.concat([grpcMsg(putReq('wire', 'a')), grpcMsg(putReq('wire', 'b'))])), 13, /more than one/)],
  ['garbage protobuf: INVALID_ARGUMENT', async () => {
    await expectGrpc(request(grpcMsg(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]))), 3, /malformed/);
    await expectGrpc(request(grpcMsg(Buffer.from([0x0a, 0x05, 0x0a]))), 3); // length past the end
    await expectGrpc(request(grpcMsg(Buffer.from([0x0b]))), 3); // group start
  }],
  ['a NUL byte inside a name: INVALID_ARGUMENT', () =>
    expectGrpc(request(grpcMsg(putReq('wire\0x', 'v'))), 3)],
  ['wrong content-type: HTTP 415', async () => {
    const r = await request(grpcMsg(putReq('wire', 'v')), { 'content-type': 'application/json' });
    eq(r.status, 415, 'http status');
    const r2 = await request(grpcMsg(putReq('wire', 'v')), { 'content-type': 'application/grpcx' });
    eq(r2.status, 415, 'prefix-only match refused');
  }],
  ['unknown method: UNIMPLEMENTED', () =>
    expectGrpc(request(grpcMsg(Buffer.alloc(0)), { ':path': '/nitric.proto.secrets.v1.SecretManager/Destroy' }), 12, /Destroy/)],
  ['GET: HTTP 405', async () => {
    const r = await new Promise((resolve) => {
      const req = session.request({ ':method': 'GET', ':path': PUT });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.end();
    });
    eq(r, 405, 'http status');
  }],
  ['message split into 1-byte DATA frames still works', async () => {
    const body = grpcMsg(accessReq('wire', 'latest'));
    const chunks = [...body].map((b) => Buffer.from([b]));
    const r = await request(null, { ':path': ACCESS }, chunks);
    eq(r.grpc, 5, 'not found, but parsed');
  }],
  ['unknown fields are ignored', async () => {
    const extra = Buffer.concat([ld(99, 'future'), varint((100 << 3) | 0), varint(7)]);
    const r = await expectGrpc(request(grpcMsg(putReq('unknown-fields', 'kept', extra))), 0);
    check(r.data.length > 0, 'a response message');
    const a = await request(grpcMsg(accessReq('unknown-fields', 'latest', extra)), { ':path': ACCESS });
    eq(a.grpc, 0, 'access with unknown fields');
    check(Buffer.concat(a.data).includes(Buffer.from('kept')), 'value read back');
  }],
  ['truncated HTTP/2 frame, then close: server unaffected', async () => {
    const c = await RawConn.open(srv.port());
    c.write(Buffer.concat([PREFACE, settingsFrame()]));
    const hb = grpcHeaders(PUT);
    c.write(frame(T.HEADERS, F.END_HEADERS, 1, hb).subarray(0, 9 + 5)); // cut mid-frame
    c.close();
    await stillServing();
  }],
  ['bad client preface: connection closed', async () => {
    const c = await RawConn.open(srv.port());
    c.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    check(await c.until(() => c.closed, 10000), 'closed');
    await stillServing();
  }],
  ['garbage frames after the preface: GOAWAY', async () => {
    const c = await RawConn.open(srv.port());
    c.write(Buffer.concat([PREFACE, settingsFrame(), frame(T.DATA, 0, 2, Buffer.from('xx')), frame(T.HEADERS, 0, 0, Buffer.from([0xff]))]));
    check(await c.until(() => c.goaway() !== null || c.closed), 'GOAWAY or close');
    c.close();
    await stillServing();
  }],
  ['nothing was stored by the bad requests', async () => {
    const r = await request(grpcMsg(accessReq('wire', 'latest')), { ':path': ACCESS });
    eq(r.grpc, 5, 'wire has no version');
    session.close();
    eq((await srv.stop()).code, 0, 'clean exit');
  }],
  ['requests this layer refused are logged too, never with a value', async () => {
    check(/coffer: Unknown principal=default secret=- version=- status=12 /.test(srv.stderr), 'unknown method');
    check(/coffer: Put principal=default secret=- version=- status=8 /.test(srv.stderr), 'oversize');
    check(/coffer: Put principal=default secret=- version=- status=13 /.test(srv.stderr), 'truncated');
    check(!srv.stderr.includes('kept'), 'no value in the log');
  }],
]);
