// coffer serve --audit on a full disk (a small tmpfs of our own; needs root to mount, skipped
// with exit 77 otherwise): no answer leaves without its audit entry. Reads are answered only
// after the group commit that carries their entries; once the disk is full and an audit write
// fails, those reads are answered UNAVAILABLE (14), never with their value; every call answered
// otherwise has exactly one entry; once space is freed the same server answers again and the log
// verifies.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { check, eq, loadContract, main, run, startServer, tmpDir } from './lib.mjs';

const dir = tmpDir('auditfull');
const mnt = path.join(dir, 'fs');
fs.mkdirSync(mnt, { mode: 0o700 });
const mounted =
  process.getuid() === 0 &&
  spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'coffer-test', mnt]).status === 0;
if (!mounted) {
  console.log('# skipped: cannot mount a tmpfs (needs root)');
  process.exit(77);
}
process.prependListener('exit', () => spawnSync('umount', [mnt]));

const { grpc, pkg } = loadContract();
const TOOL = process.env.COFFER_STATE_TOOL;
const store = path.join(mnt, 'store');
const call = (client, method, req) =>
  new Promise((resolve) => client[method](req, (err, resp) => resolve({ err, resp })));
const acc = (name, version) => ({ secret_version: { secret: { name }, version } });
const fill = () => spawnSync('dd', ['if=/dev/zero', `of=${path.join(mnt, 'fill')}`, 'bs=4k']);
const freeSpace = () => fs.rmSync(path.join(mnt, 'fill'), { force: true });
const sql = (q) => run('sqlite3', ['-batch', '-bail', '-cmd', '.timeout 10000', path.join(store, 'coffer.db'), q]);
let srv, sm;
let answered = 0; // Access calls answered with anything but UNAVAILABLE

await main([
  ['on a full disk a read whose entry cannot be written is UNAVAILABLE, never answered', async () => {
    srv = await startServer(store, ['--listen', '127.0.0.1:0', '--policy-wait', '300', '--audit', '--quiet']);
    const creds = grpc.credentials.createInsecure();
    sm = new pkg.nitric.proto.secrets.v1.SecretManager(srv.addr(), creds);
    const res = new pkg.nitric.proto.resources.v1.Resources(srv.addr(), creds);
    for (const req of [
      { id: { type: 8, name: 's' }, secret: {} },
      { id: { type: 7, name: '' }, policy: { principals: [{ type: 1, name: '' }], actions: [400, 401], resources: [{ type: 8, name: 's' }] } },
    ]) {
      const { err } = await call(res, 'Declare', req);
      check(!err, `declare: ${err && err.details}`);
    }
    const p = await call(sm, 'Put', { secret: { name: 's' }, value: Buffer.from('audited-value') });
    check(!p.err, `put: ${p.err && p.err.details}`);
    fill();
    // SQLite may still have room inside its files: read in rounds of 50 until one is refused
    // (more entries in all than the file system holds, so one must be).
    let unavailable = null;
    for (let round = 0; round < 400 && !unavailable; round++) {
      const rs = await Promise.all(Array.from({ length: 50 }, () => call(sm, 'Access', acc('s', 'latest'))));
      for (const r of rs) {
        if (r.err && r.err.code === 14) {
          unavailable = r.err;
          check(!r.resp, 'no value with the refusal');
        } else {
          check(!r.err, `Access: ${r.err && r.err.code} ${r.err && r.err.details}`);
          eq(Buffer.from(r.resp.value).toString(), 'audited-value', 'an answered read');
          answered++;
        }
      }
    }
    check(unavailable, 'some read was refused once the audit log could not grow');
    check(/audit log/.test(unavailable.details), `message ${JSON.stringify(unavailable.details)}`);
    const again = await call(sm, 'Access', acc('s', 'latest'));
    eq(again.err && again.err.code, 14, 'a second read on the full disk');
  }],
  ['space freed: the same server answers again; one entry per answered read, the log verifies', async () => {
    freeSpace();
    check(srv.alive(), 'the server is still running');
    const r = await call(sm, 'Access', acc('s', 'latest'));
    check(!r.err, `Access after freeing space: ${r.err && r.err.details}`);
    answered++;
    eq((await srv.stop()).code, 0, 'clean exit');
    const n = await sql(`SELECT count(*) FROM audit WHERE action = 'Access'`);
    eq(Number(n.stdout.toString()), answered, 'entries of reads == reads answered');
    const v = await run(TOOL, [store, 'audit-verify', '-', '-']);
    eq(v.code, 0, `verify: ${v.stderr}`);
  }],
]);
