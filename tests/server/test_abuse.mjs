// Acceptance 4: abuse. Rapid Reset, a CONTINUATION flood, huge header lists, many streams with
// partial bodies, idle connections: the server stays up, memory stays bounded, and a normal client
// keeps getting answers. Loopback only; every loop is bounded in count and time.
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { check, eq, grpcStatus, main, startServer, tmpDir } from './lib.mjs';
import { F, PREFACE, RawConn, T, accessReq, frame, grpcHeaders, grpcMsg, hpackField, rstFrame, settingsFrame } from './h2raw.mjs';

const ACCESS = '/nitric.proto.secrets.v1.SecretManager/Access';
const dir = tmpDir('abuse');
let srv, rssStart;

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

// A normal gRPC Access over a fresh connection: must come back NOT_FOUND (the secret is absent).
async function normalCall() {
  const s = http2.connect(`http://${srv.addr()}`);
  await new Promise((resolve, reject) => s.on('error', reject).on('connect', resolve));
  try {
    return await grpcStatus(s, ACCESS, grpcMsg(accessReq('abuse', 'latest')));
  } finally {
    s.close();
  }
}

async function stillServing() {
  eq(await normalCall(), 5, 'a normal client gets its answer');
  check(srv.alive(), 'server alive');
}

async function rawOpen() {
  const c = await RawConn.open(srv.port());
  c.write(Buffer.concat([PREFACE, settingsFrame()]));
  return c;
}

await main([
  ['start', async () => {
    const pol = path.join(dir, 'policy');
    fs.writeFileSync(pol, 'allow default put,access *\n');
    srv = await startServer(path.join(dir, 'store'), [
      '--listen', '127.0.0.1:0', '--policy', pol, '--header-timeout', '2', '--idle-timeout', '3',
    ]);
    await stillServing();
    rssStart = rssKiB(srv.proc.pid);
  }],
  ['core dumps are off', async () => {
    const limits = fs.readFileSync(`/proc/${srv.proc.pid}/limits`, 'utf8');
    check(/^Max core file size\s+0\s+0\s/m.test(limits), 'RLIMIT_CORE is 0');
  }],
  ['Rapid Reset: 2000 open-and-reset streams are cut short by a GOAWAY', async () => {
    const c = await rawOpen();
    const hb = grpcHeaders(ACCESS);
    const burst = [];
    for (let i = 0; i < 2000; i++) {
      const id = 1 + 2 * i;
      burst.push(frame(T.HEADERS, F.END_HEADERS, id, hb), rstFrame(id));
    }
    c.write(Buffer.concat(burst));
    check(await c.until(() => c.goaway() !== null), 'GOAWAY received');
    // nghttp2's reset limiter answers INTERNAL_ERROR; our own flood path ENHANCE_YOUR_CALM.
    check([0x2, 0xb].includes(c.goaway().code), `GOAWAY code ${c.goaway().code}`);
    check(c.goaway().last < 2 * 2000 - 1, `cut short at stream ${c.goaway().last}`);
    c.close();
    await stillServing();
  }],
  ['more than 100 concurrent streams: the 101st is refused', async () => {
    const c = await rawOpen();
    // Wait for the server's SETTINGS (max 100 streams) to be acknowledged, as the RFC wants.
    check(await c.until(() => c.frames.some((f) => f.type === T.SETTINGS && (f.flags & F.ACK))), 'SETTINGS ACK');
    const settings = c.frames.find((f) => f.type === T.SETTINGS && !(f.flags & F.ACK)).payload;
    let advertised = null;
    for (let i = 0; i + 6 <= settings.length; i += 6)
      if (settings.readUInt16BE(i) === 3) advertised = settings.readUInt32BE(i + 2);
    eq(advertised, 100, 'SETTINGS_MAX_CONCURRENT_STREAMS');
    const frames = [];
    for (let i = 0; i < 150; i++) frames.push(frame(T.HEADERS, F.END_HEADERS, 1 + 2 * i, grpcHeaders(ACCESS)));
    c.write(Buffer.concat(frames));
    check(await c.until(() => c.goaway() !== null || c.rst(201) !== null), 'refused');
    check(c.rst(199) === null, 'the 100th stream was accepted');
    c.close();
    await stillServing();
  }],
  ['CONTINUATION flood: connection torn down', async () => {
    const c = await rawOpen();
    const frames = [frame(T.HEADERS, 0, 1, grpcHeaders(ACCESS))];
    for (let i = 0; i < 200; i++) frames.push(frame(T.CONTINUATION, 0, 1, hpackField(`x-f${i}`, 'v')));
    c.write(Buffer.concat(frames));
    check(await c.until(() => c.goaway() !== null || c.closed), 'GOAWAY or close');
    c.close();
    await stillServing();
  }],
  ['huge header list: the stream is reset, the connection keeps working', async () => {
    const c = await rawOpen();
    const many = [];
    for (let i = 0; i < 150; i++) many.push([`x-h${i}`, 'v']);
    const big = Buffer.concat([grpcHeaders(ACCESS), ...many.map(([n, v]) => hpackField(n, v))]);
    c.write(frame(T.HEADERS, F.END_HEADERS, 1, big));
    // One 20 KB field: more than a frame, so HEADERS + CONTINUATION, over the 16 KiB list limit.
    const bigValue = Buffer.concat([grpcHeaders(ACCESS), hpackField('x-big', 'a'.repeat(20000))]);
    c.write(frame(T.HEADERS, 0, 3, bigValue.subarray(0, 16000)));
    c.write(frame(T.CONTINUATION, F.END_HEADERS, 3, bigValue.subarray(16000)));
    check(await c.until(() => c.rst(1) !== null && c.rst(3) !== null), 'both streams reset');
    // Same connection, a proper request on stream 5 gets its answer.
    c.write(frame(T.HEADERS, F.END_HEADERS, 5, grpcHeaders(ACCESS)));
    c.write(frame(T.DATA, F.END_STREAM, 5, grpcMsg(accessReq('abuse', 'latest'))));
    check(await c.until(() => c.frames.some((f) => f.stream === 5 && f.type === T.HEADERS && (f.flags & F.END_STREAM))),
      'stream 5 answered');
    c.close();
    await stillServing();
  }],
  ['100 streams declaring 4 MiB messages and sending little: memory bounded', async () => {
    const c = await rawOpen();
    const frames = [];
    for (let i = 0; i < 100; i++) {
      const id = 1 + 2 * i;
      frames.push(frame(T.HEADERS, F.END_HEADERS, id, grpcHeaders(ACCESS)));
      frames.push(frame(T.DATA, 0, id, grpcMsg(Buffer.alloc(500), 0, 4 * 1024 * 1024).subarray(0, 505)));
    }
    c.write(Buffer.concat(frames));
    await stillServing();
    c.close();
  }],
  ['PING flood from a peer that never reads: the server stops reading, memory bounded', async () => {
    const c = await rawOpen();
    c.sock.pause(); // never read the PING ACKs
    const ping = frame(T.PING, 0, 0, Buffer.alloc(8));
    const batch = Buffer.concat(Array(1000).fill(ping));
    for (let i = 0; i < 400; i++) c.write(batch); // 400,000 PINGs, 6.8 MB
    await new Promise((r) => setTimeout(r, 1000));
    await stillServing();
    const rss = rssKiB(srv.proc.pid);
    check(rss - rssStart < 100 * 1024, `RSS grew by ${rss - rssStart} KiB`);
    c.close();
  }],
  ['50 idle connections are closed by the timeouts while others are served', async () => {
    const silent = [];
    const afterPreface = [];
    for (let i = 0; i < 25; i++) silent.push(await RawConn.open(srv.port())); // never send a byte
    for (let i = 0; i < 25; i++) afterPreface.push(await rawOpen()); // preface, then nothing
    await stillServing();
    for (const c of [...silent, ...afterPreface])
      check(await c.until(() => c.closed, 20000), 'idle connection closed by the server');
    await stillServing();
  }],
  ['memory stayed bounded', async () => {
    const rss = rssKiB(srv.proc.pid);
    console.log(`# RSS ${rssStart} KiB at start, ${rss} KiB after the abuse`);
    check(rss - rssStart < 200 * 1024, `RSS grew by ${rss - rssStart} KiB`);
  }],
  ['SIGTERM still drains and exits 0', async () => {
    eq((await srv.stop()).code, 0, 'exit code');
  }],
]);
