// Acceptance 1: the official Nitric SDK (@nitric/sdk 1.2.2), unmodified, against coffer serve.
import fs from 'node:fs';
import path from 'node:path';
import { COFFER, HERE, check, eq, main, run, runProgram, startServer, tmpDir } from './lib.mjs';

const prog = (name) => path.join(HERE, 'programs', name);
const store = path.join(tmpDir('sdk'), 'store');
let srv;

const sdkEnv = (service = 'default') => ({ SERVICE_ADDRESS: srv.addr(service) });

function lines(r) {
  if (r.code !== 0) throw new Error(`program exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout.toString().trim().split('\n');
}

await main([
  ['server starts with a service per listener', async () => {
    srv = await startServer(store, ['--listen', '127.0.0.1:0', '--listen', 'reader=127.0.0.1:0']);
    check(srv.port('default') > 0 && srv.port('reader') > 0, `ports ${JSON.stringify(srv.ports)}`);
  }],
  ['the seed program runs and exits 0', async () => {
    const out = lines(await runProgram(prog('seed.mjs'), sdkEnv()));
    eq(out[0], 'put 1', 'put answers the new version');
    eq(out[1], 'latest 1 bleak_dearest_hanged_reigns', 'latest resolves to its real id');
    eq(out[2], `bytes ${Buffer.from('bleak_dearest_hanged_reigns').toString('hex')}`, 'version(id)');
  }],
  ['second put is latest, old version readable, NotFound, binary round-trip', async () => {
    const out = lines(await runProgram(prog('versions.mjs'), sdkEnv()));
    eq(out[0], 'versions 1 2', 'two puts, two versions');
    eq(out[1], 'latest 2 crummy_goofed_caddy_radiant', 'second put is latest');
    eq(out[2], 'first 1 bleak_dearest_hanged_reigns', 'first version still readable');
    eq(out[3], 'unknown version: NotFoundError', 'unknown version');
    check(/db\.password/.test(out[4]) && /999/.test(out[4]), `message names secret and version: ${out[4]}`);
    eq(out[5], 'binary 1 00ff0041fffe00', 'binary value');
  }],
  ['a service that declared only access cannot put', async () => {
    const out = lines(await runProgram(prog('access_only.mjs'), sdkEnv('reader')));
    eq(out[0], 'put: PermissionDeniedError', 'put without the put permission');
    // The reader's own access grant lets it read what the default service stored.
    eq(out[1], 'access 1 bleak_dearest_hanged_reigns', 'access still works');
  }],
  ['90 concurrent puts from one connection: distinct versions, exact values', async () => {
    const out = lines(await runProgram(prog('concurrent.mjs'), sdkEnv()));
    eq(out[0], 'distinct 90 min 1 max 90', 'versions');
    eq(out[1], 'mismatches 0', 'values');
    eq(out[2], 'latest 90', 'latest');
  }],
  ['SIGTERM drains and exits 0', async () => {
    const { code } = await srv.stop('SIGTERM');
    eq(code, 0, 'exit code');
  }],
  ['the server logs each request without values', async () => {
    check(/coffer: Put principal=default secret=api-key version=1 status=0 us=\d+/.test(srv.stderr),
      'a Put log line');
    check(/coffer: Put principal=reader secret=api-key version=- status=7/.test(srv.stderr),
      'the denied put is logged');
    check(!srv.stderr.includes('bleak_dearest') && !srv.stderr.includes('crummy_goofed'),
      'no value in the log');
  }],
  ['values were stored encrypted and read back with the CLI', async () => {
    const a = await run(COFFER, ['--store', store, 'access', 'api-key@1']);
    eq(a.code, 0, `coffer access exit (${a.stderr})`);
    eq(a.stdout.toString(), 'bleak_dearest_hanged_reigns', 'CLI reads the SDK value');
    const b = await run(COFFER, ['--store', store, 'access', 'blob@1']);
    eq(b.stdout.toString('hex'), '00ff0041fffe00', 'CLI reads binary exactly');
    const c = await run(COFFER, ['--store', store, 'access', 'db.password']);
    eq(c.stdout.toString(), 'crummy_goofed_caddy_radiant', 'latest via CLI');
    const d = await run(COFFER, ['--store', store, 'access', 'api-key@2']);
    check(d.code !== 0, 'the denied put stored nothing');
    for (const f of fs.readdirSync(store)) {
      const bytes = fs.readFileSync(path.join(store, f));
      for (const plain of ['bleak_dearest_hanged_reigns', 'crummy_goofed_caddy_radiant'])
        check(!bytes.includes(Buffer.from(plain)), `${plain} in clear in ${f}`);
    }
  }],
]);
