// Write the seed corpus of fuzz_grpc: what a client sends after the HTTP/2 preface.
// Run: node fuzz/make_corpus.mjs  (rewrites fuzz/corpus/grpc/seed-*)
import fs from 'node:fs';
import path from 'node:path';
import { F, T, accessReq, frame, grpcHeaders, grpcMsg, hpackField, ld, putReq, rstFrame, settingsFrame, varint } from '../tests/server/h2raw.mjs';

const out = path.join(path.dirname(new URL(import.meta.url).pathname), 'corpus', 'grpc');
const PUT = '/nitric.proto.secrets.v1.SecretManager/Put';
const ACCESS = '/nitric.proto.secrets.v1.SecretManager/Access';
const DECLARE = '/nitric.proto.resources.v1.Resources/Declare';
const req = (id, p, body, extra = []) => Buffer.concat([
  frame(T.HEADERS, F.END_HEADERS, id, grpcHeaders(p, extra)),
  frame(T.DATA, F.END_STREAM, id, body),
]);
const policy = Buffer.concat([
  ld(1, Buffer.from([0x08, 0x07])),
  ld(10, Buffer.concat([ld(1, Buffer.from([0x08, 0x01])), ld(2, Buffer.concat([varint(400), varint(401)])), ld(3, Buffer.concat([Buffer.from([0x08, 0x08]), ld(2, 'api-key')]))])),
]);
const seeds = {
  put: req(1, PUT, grpcMsg(putReq('api-key', 'value'))),
  access: req(1, ACCESS, grpcMsg(accessReq('api-key', 'latest'))),
  declare_secret: req(1, DECLARE, grpcMsg(Buffer.concat([ld(1, Buffer.concat([Buffer.from([0x08, 0x08]), ld(2, 'api-key')])), ld(14, '')]))),
  declare_policy: req(1, DECLARE, grpcMsg(policy)),
  three_streams: Buffer.concat([req(1, DECLARE, grpcMsg(policy)), req(3, PUT, grpcMsg(putReq('k', '\0\xff'))), req(5, ACCESS, grpcMsg(accessReq('k', '1')))]),
  truncated_prefix: req(1, PUT, Buffer.from([0, 0, 0, 0x10])),
  oversize: req(1, PUT, grpcMsg(Buffer.alloc(4), 0, 5 << 20)),
  compressed: req(1, PUT, grpcMsg(putReq('k', 'v'), 1), [['grpc-encoding', 'gzip']]),
  two_messages: req(1, PUT, Buffer.concat([grpcMsg(putReq('k', 'a')), grpcMsg(putReq('k', 'b'))])),
  unknown_method: req(1, '/x.Y/Z', grpcMsg(Buffer.alloc(0))),
  bearer: req(1, ACCESS, grpcMsg(accessReq('k', 'latest')), [['authorization', 'Bearer 0123456789abcdef']]),
  reset: Buffer.concat([frame(T.HEADERS, F.END_HEADERS, 1, grpcHeaders(PUT)), rstFrame(1)]),
  continuation: Buffer.concat([frame(T.HEADERS, 0, 1, grpcHeaders(PUT)), frame(T.CONTINUATION, 0, 1, hpackField('x-a', 'b')), frame(T.CONTINUATION, F.END_HEADERS, 1, hpackField('x-c', 'd'))]),
  split_data: Buffer.concat([frame(T.HEADERS, F.END_HEADERS, 1, grpcHeaders(ACCESS)), frame(T.DATA, 0, 1, grpcMsg(accessReq('k', '1')).subarray(0, 3)), frame(T.DATA, F.END_STREAM, 1, grpcMsg(accessReq('k', '1')).subarray(3))]),
  settings_ping: Buffer.concat([settingsFrame(), frame(T.PING, 0, 0, Buffer.alloc(8))]),
};
fs.mkdirSync(out, { recursive: true });
for (const [name, bytes] of Object.entries(seeds)) fs.writeFileSync(path.join(out, `seed-${name}`), bytes);
console.log(`wrote ${Object.keys(seeds).length} seeds to ${out}`);
