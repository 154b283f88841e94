// Issue 14 #7: loopback is not an identity. Another Unix user on the machine, who cannot read the
// master key, must not read (or write) secrets through a server on 127.0.0.1 or a Unix socket by
// declaring a policy for itself. A throwaway user is created for the test (useradd) and removed
// afterwards, also when a check fails; its programs are the official Nitric SDK and @grpc/grpc-js,
// run with setpriv. Needs root: skipped (77) otherwise.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CACHE, COFFER, HERE, check, eq, main, run, startServer, tmpDir } from './lib.mjs';

if (process.getuid() !== 0) {
  console.log('skip: this test creates a throwaway Unix user (useradd) and runs programs as it: it needs root');
  process.exit(77);
}
for (const tool of ['useradd', 'userdel', 'setpriv']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    console.log(`skip: ${tool} is not installed`);
    process.exit(77);
  }
}

const PREFIX = 'cofferid';
const USER = `${PREFIX}${process.pid}`;
const SECRET = 'root-only';
const ROOT_VALUE = 'root_value_grim_oyster_lantern';
let uid = -1;
let gid = -1;
const servers = [];

function removeUser(name) {
  spawnSync('userdel', ['-f', name], { stdio: 'ignore' });
}

// The user goes with the test, however it ends; users left by a run that was killed (SIGKILL,
// where no handler runs) are removed by the next run: their name carries the dead test's pid.
process.on('exit', () => {
  for (const s of servers) if (s.alive()) s.proc.kill('SIGKILL');
  if (uid >= 0) removeUser(USER);
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => process.exit(1));
for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
  const m = new RegExp(`^(${PREFIX}(\\d+)):`).exec(line);
  if (m && !fs.existsSync(`/proc/${m[2]}`)) removeUser(m[1]);
}

// A folder the other user can enter, with the programs, the .proto files and the packages.
const pub = tmpDir('ident');
fs.chmodSync(pub, 0o755);
for (const p of ['ident_sdk.mjs', 'ident_token.mjs']) {
  fs.copyFileSync(path.join(HERE, 'programs', p), path.join(pub, p));
  fs.chmodSync(path.join(pub, p), 0o644);
}
fs.cpSync(path.resolve(HERE, '..', '..', 'proto'), path.join(pub, 'proto'), { recursive: true });
const store = path.join(tmpDir('ident-store'), 'store');
const sock = path.join(pub, 'coffer.sock');

// Run a program as `who` ('root' or the throwaway user); its output lines.
async function runAs(who, prog, env) {
  const node = [process.execPath, path.join(pub, prog)];
  const cmd = who === 'root' ? node
    : ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', ...node];
  const r = await run(cmd[0], cmd.slice(1), { env: { SECRET, PROTO_DIR: path.join(pub, 'proto'), ...env }, cwd: pub });
  const out = r.stdout.toString();
  check(r.code === 0, `${prog} as ${who} exited ${r.code}:\n${out}\n${r.stderr}`);
  eq(out.split('\n')[0], `uid ${who === 'root' ? 0 : uid}`, `${prog} ran as ${who}`);
  return out;
}

const start = async (args) => {
  const s = await startServer(store, args);
  servers.push(s);
  return s;
};

// What a refused caller is told, and what it must not get.
function refused(out, how) {
  check(!/^read /m.test(out), `${how}: read the root-only secret:\n${out}`);
  check(!out.includes(ROOT_VALUE), `${how}: the value reached the other user`);
  check(!/^put \d+$/m.test(out), `${how}: a put was accepted:\n${out}`);
}

const latestByCli = async () => {
  const r = await run(COFFER, ['--store', store, 'access', SECRET]);
  eq(r.code, 0, `coffer access (${r.stderr})`);
  return r.stdout.toString();
};

let srv;

await main([
  ['a throwaway user who cannot read the store', async () => {
    const r = await run('useradd', ['-M', '-U', '-s', '/usr/sbin/nologin', USER]);
    eq(r.code, 0, `useradd (${r.stderr})`);
    uid = Number(spawnSync('id', ['-u', USER]).stdout);
    gid = Number(spawnSync('id', ['-g', USER]).stdout);
    check(uid > 0 && gid > 0, `uid ${uid} gid ${gid}`);
    // The packages: through a link if the user can read the cache, else a copy it can read.
    const probe = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--',
      process.execPath, '-e', `require(${JSON.stringify(path.join(CACHE, 'node_modules/@nitric/sdk/package.json'))})`]);
    if (probe.status === 0) fs.symlinkSync(path.join(CACHE, 'node_modules'), path.join(pub, 'node_modules'));
    else fs.cpSync(path.join(CACHE, 'node_modules'), path.join(pub, 'node_modules'), { recursive: true });
  }],
  ['development server on loopback TCP: its own uid is served (SDK)', async () => {
    srv = await start(['--listen', '127.0.0.1:0']);
    const out = await runAs('root', 'ident_sdk.mjs', { SERVICE_ADDRESS: srv.addr(), VALUE: ROOT_VALUE });
    check(/^put 1$/m.test(out) && new RegExp(`^read 1 ${ROOT_VALUE}$`, 'm').test(out), out);
  }],
  ['another uid is refused on loopback TCP: UNAUTHENTICATED, saying why (SDK and grpc-js)', async () => {
    const out = await runAs(USER, 'ident_sdk.mjs', { SERVICE_ADDRESS: srv.addr(), VALUE: 'stolen-write' });
    refused(out, 'SDK over TCP');
    const why = `uid ${uid} may not use this development server (started by uid 0); ` +
      `start it with --allow-uid ${uid} or use --policy with tokens`;
    check(out.includes(why), `the reason is given:\n${out}`);
    const raw = await runAs(USER, 'ident_token.mjs', { ADDRESS: srv.addr() });
    check(raw.includes(`access failed: 16 ${why}`), `grpc-js sees 16 and the reason:\n${raw}`);
    eq(await latestByCli(), ROOT_VALUE, 'nothing was written by the other user');
  }],
  ['stop', async () => {
    eq((await srv.stop()).code, 0, 'exit code');
    check(/may not use this development server/.test(srv.stderr), `the refusal is logged:\n${srv.stderr}`);
  }],
  ['development server on a Unix socket: 0600, its own uid is served (SDK, SERVICE_ADDRESS=unix:PATH)', async () => {
    srv = await start(['--listen', '127.0.0.1:0', '--listen', `unix:${sock}`]);
    const st = fs.lstatSync(sock);
    check(st.isSocket(), 'a socket');
    eq(st.mode & 0o777, 0o600, 'socket mode');
    const out = await runAs('root', 'ident_sdk.mjs', { SERVICE_ADDRESS: `unix:${sock}`, VALUE: `${ROOT_VALUE}2` });
    check(/^put 2$/m.test(out) && new RegExp(`^read 2 ${ROOT_VALUE}2$`, 'm').test(out), out);
  }],
  ['another uid cannot even connect to the Unix socket', async () => {
    const out = await runAs(USER, 'ident_sdk.mjs', { SERVICE_ADDRESS: `unix:${sock}`, VALUE: 'stolen-write' });
    refused(out, 'SDK over the Unix socket');
    check(/access failed: .*(EACCES|permission denied)/i.test(out), `connect refused by the file mode:\n${out}`);
    eq(await latestByCli(), `${ROOT_VALUE}2`, 'nothing was written by the other user');
  }],
  ['stop: the socket file is removed', async () => {
    eq((await srv.stop()).code, 0, 'exit code');
    check(!fs.existsSync(sock), 'socket removed at exit');
  }],
  ['--allow-uid USER: that user is served on loopback TCP and on the Unix socket (0666)', async () => {
    srv = await start(['--listen', '127.0.0.1:0', '--listen', `unix:${sock}`, '--allow-uid', USER]);
    eq(fs.lstatSync(sock).mode & 0o777, 0o666, 'socket mode: the peer uid decides');
    const tcp = await runAs(USER, 'ident_sdk.mjs', { SERVICE_ADDRESS: srv.addr() });
    check(new RegExp(`^read 2 ${ROOT_VALUE}2$`, 'm').test(tcp), `TCP:\n${tcp}`);
    const unix = await runAs(USER, 'ident_sdk.mjs', { SERVICE_ADDRESS: `unix:${sock}`, VALUE: 'allowed' });
    check(/^put 3$/m.test(unix) && /^read 3 allowed$/m.test(unix), `Unix socket:\n${unix}`);
    eq((await srv.stop()).code, 0, 'exit code');
  }],
  ['--allow-uid of someone else: this uid gets UNAUTHENTICATED on the Unix socket (SO_PEERCRED)', async () => {
    srv = await start(['--listen', `unix:${sock}`, '--allow-uid', String(uid + 1)]);
    const out = await runAs(USER, 'ident_sdk.mjs', { SERVICE_ADDRESS: `unix:${sock}`, VALUE: 'stolen-write' });
    refused(out, 'SDK over the Unix socket');
    check(out.includes(`uid ${uid} may not use this development server (started by uid 0)`), out);
    eq((await srv.stop()).code, 0, 'exit code');
  }],
  ['--policy with tokens: another uid needs its token; with it, the token rules', async () => {
    const pol = path.join(pub, 'policy');
    fs.writeFileSync(pol, `allow default access ${SECRET}\nallow ops access ${SECRET}\n`, { mode: 0o600 });
    const tok = path.join(pub, 'tokens');
    const token = 'ops-token-5b1f0c9a2e7d4c3b8a6f';
    fs.writeFileSync(tok, `ops ${token}\n`, { mode: 0o600 });
    srv = await start(['--listen', '127.0.0.1:0', '--policy', pol, '--tokens', tok]);
    const anon = await runAs(USER, 'ident_token.mjs', { ADDRESS: srv.addr() });
    refused(anon, 'no token');
    check(anon.includes(`access failed: 16 uid ${uid} may not act as service 'default' on this server`), anon);
    const withToken = await runAs(USER, 'ident_token.mjs', { ADDRESS: srv.addr(), TOKEN: token });
    check(/^read 3 allowed$/m.test(withToken), `the token holder reads:\n${withToken}`);
    const own = await runAs('root', 'ident_token.mjs', { ADDRESS: srv.addr() });
    check(/^read 3 allowed$/m.test(own), `the server's own uid, no token:\n${own}`);
    eq((await srv.stop()).code, 0, 'exit code');
    check(!srv.stderr.includes(token), 'token never logged');
  }],
]);
