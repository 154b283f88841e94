// Issue 9, acceptance 3 (the server's part; the CLI gets its commands later): `coffer serve
// --audit` records every request before answering it. After mixed requests (puts, reads, reads
// of a version that does not exist, reads without permission) the log verifies; no value
// appears in the store's files in clear (canary scan); then one entry deleted, one edited and
// two swapped are each named by the check. 400 requests; COFFER_SOAK=1: 10,000.
import fs from 'node:fs';
import path from 'node:path';
import { A, check, COFFER, eq, loadContract, main, run, startServer, T, tmpDir } from './lib.mjs';

const { grpc, pkg } = loadContract();
const TOOL = process.env.COFFER_STATE_TOOL;
const N = process.env.COFFER_SOAK === '1' ? 10000 : 400;
const dir = tmpDir('audit');
const store = path.join(dir, 'store');
let srv, sm, res;

const call = (c, method, req) =>
  new Promise((resolve) => c[method](req, new grpc.Metadata(), (err, resp) => resolve({ err, resp })));
const verify = () => run(TOOL, [store, 'audit-verify', '-', '-']);
const sql = (q) => run('sqlite3', ['-batch', '-bail', '-cmd', '.timeout 10000', path.join(store, 'coffer.db'), q]);

await main([
  [`${N} mixed requests through coffer serve --audit`, async () => {
    srv = await startServer(store, ['--listen', '127.0.0.1:0', '--policy-wait', '300', '--audit', '--quiet']);
    const creds = grpc.credentials.createInsecure();
    sm = new pkg.nitric.proto.secrets.v1.SecretManager(srv.addr(), creds);
    res = new pkg.nitric.proto.resources.v1.Resources(srv.addr(), creds);
    for (const req of [
      { id: { type: T.Secret, name: 'k' }, secret: {} },
      {
        id: { type: T.Policy, name: '' },
        policy: {
          principals: [{ type: T.Service, name: '' }],
          actions: [A.SecretPut, A.SecretAccess],
          resources: [{ type: T.Secret, name: 'k' }],
        },
      },
    ]) {
      const { err } = await call(res, 'Declare', req);
      check(!err, `declare: ${err && err.details}`);
    }
    let ok = 0, refused = 0; // every call is answered: N in all
    for (let i = 0; i < N; i += 10) {
      const batch = [];
      for (let j = i; j < i + 10 && j < N; j++) {
        if (j % 4 === 0) batch.push(call(sm, 'Put', { secret: { name: 'k' }, value: Buffer.from(`canary-val-${j}`) }));
        else if (j % 4 === 1) batch.push(call(sm, 'Access', { secret_version: { secret: { name: 'k' }, version: 'latest' } }));
        else if (j % 4 === 2) batch.push(call(sm, 'Access', { secret_version: { secret: { name: 'k' }, version: '999999' } }));
        else batch.push(call(sm, 'Access', { secret_version: { secret: { name: 'other' }, version: 'latest' } }));
      }
      for (const { err } of await Promise.all(batch)) err ? refused++ : ok++;
    }
    check(ok > 0 && refused > 0, `ok ${ok}, refused ${refused}`);
    eq(ok + refused, N, 'every call answered');
    eq((await srv.stop()).code, 0, 'clean exit');
  }],
  ['the log verifies and holds every request', async () => {
    const r = await verify();
    eq(r.code, 0, `verify: ${r.stderr}`);
    const n = Number(r.stdout.toString());
    check(n >= N, `${n} entries for ${N} requests`);
    // Exactly one entry per answered request, refused ones included: the N calls and the two
    // Declares (the library's own lowercase `put` entries are not requests).
    const q = async (where) => Number((await sql(`SELECT count(*) FROM audit WHERE ${where}`)).stdout.toString());
    eq(await q(`action IN ('Put', 'Access', 'Declare')`), N + 2, 'entries of requests');
    eq(await q(`action = 'Put' AND outcome = 0`), await q(`action = 'put'`), 'each stored put is in the log twice');
    check(await q(`action = 'Access' AND outcome = 7`) > 0, 'denied reads are recorded (PERMISSION_DENIED)');
    check(await q(`action = 'Access' AND outcome = 5`) > 0, 'reads of a missing version are recorded (NOT_FOUND)');
  }],
  ['no value in clear anywhere in the store (canary scan)', async () => {
    for (const f of fs.readdirSync(store)) {
      const data = fs.readFileSync(path.join(store, f));
      check(!data.includes('canary-val-'), `a value in clear in ${f}`);
    }
  }],
  ['a deleted, an edited and two swapped entries are each named', async () => {
    const ids = (await sql('SELECT id FROM audit ORDER BY id')).stdout.toString().trim().split('\n').map(Number);
    const mid = ids[Math.floor(ids.length / 2)];
    eq((await sql('CREATE TABLE keep AS SELECT * FROM audit')).code, 0, 'copy');
    const restore = async () => eq((await sql('DELETE FROM audit; INSERT INTO audit SELECT * FROM keep')).code, 0, 'put back');
    const named = async (want) => {
      const r = await verify();
      eq(r.code, 5, `verify after tampering: ${r.stderr}`);
      check(r.stderr.includes(`entry ${want} `), `names entry ${want}: ${r.stderr}`);
    };
    eq((await sql(`DELETE FROM audit WHERE id = ${mid}`)).code, 0, 'delete');
    await named(ids[ids.indexOf(mid) + 1]);
    await restore();
    eq((await sql(`UPDATE audit SET principal = 'someone-else' WHERE id = ${mid}`)).code, 0, 'edit');
    await named(mid);
    await restore();
    const cols = 'chain, seq, ts_ms, principal, action, secret, version, outcome, error, rid, mac';
    const b = ids[ids.indexOf(mid) + 3];
    eq((await sql(`DELETE FROM audit WHERE id IN (${mid}, ${b}); ` +
      `INSERT INTO audit (id, ${cols}) SELECT ${mid}, ${cols} FROM keep WHERE id = ${b}; ` +
      `INSERT INTO audit (id, ${cols}) SELECT ${b}, ${cols} FROM keep WHERE id = ${mid}`)).code, 0, 'swap');
    await named(mid);
    await restore();
    eq((await verify()).code, 0, 'put back: verifies again');
  }],
  ['--audit-sync os: every answered request is in the log after a kill -9', async () => {
    // Entries are committed without a sync (the OS holds them): a crash of coffer loses none.
    const st2 = path.join(dir, 'store-os');
    const s2 = await startServer(st2, ['--listen', '127.0.0.1:0', '--policy-wait', '300', '--audit',
      '--audit-sync', 'os', '--quiet']);
    const creds = grpc.credentials.createInsecure();
    const sm2 = new pkg.nitric.proto.secrets.v1.SecretManager(s2.addr(), creds);
    const M = 200;
    let answered = 0;
    for (let i = 0; i < M; i += 10) {
      const batch = [];
      for (let j = i; j < i + 10; j++)
        batch.push(j % 2 ? call(sm2, 'Access', { secret_version: { secret: { name: 'o' }, version: 'latest' } })
          : call(sm2, 'Put', { secret: { name: 'o' }, value: Buffer.from(`canary-val-os-${j}`) }));
      answered += (await Promise.all(batch)).length;
    }
    eq(answered, M, 'every call answered');
    const e = await s2.stop('SIGKILL');
    eq(e.sig, 'SIGKILL', 'killed');
    const r = await run(TOOL, [st2, 'audit-verify', '-', '-']);
    eq(r.code, 0, `verify: ${r.stderr}`);
    const c = await run('sqlite3', ['-batch', path.join(st2, 'coffer.db'),
      "SELECT count(*) FROM audit WHERE action IN ('Put', 'Access')"]);
    eq(Number(c.stdout.toString()), M, 'an entry per answered request');
  }],
  ['--audit-sync: a bad value, or without --audit, is refused', async () => {
    const st3 = path.join(dir, 'store-bad');
    let r = await run(COFFER, ['--store', st3, 'serve', '--listen', '127.0.0.1:0', '--audit', '--audit-sync', 'never']);
    eq(r.code, 2, `exit code: ${r.stderr}`);
    check(r.stderr.includes('expected --audit-sync full or os'), r.stderr);
    r = await run(COFFER, ['--store', st3, 'serve', '--listen', '127.0.0.1:0', '--audit-sync', 'os']);
    eq(r.code, 2, `exit code: ${r.stderr}`);
    check(r.stderr.includes('--audit-sync is for --audit'), r.stderr);
  }],
]);
