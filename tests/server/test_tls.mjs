// Issue 14 #8: TLS. On TLS 1.2 only ECDHE key exchange with AEAD ciphers is negotiated (no CBC,
// no SHA-1 MAC, no RSA key transport, no finite-field DHE); TLS 1.3 as OpenSSL has it; nothing
// below 1.2. A private key file that group or others can read is refused at start-up, as is one
// reached through a symbolic link. Clients: `openssl s_client` and the Node TLS stack.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { check, eq, main, run, startServer, tmpDir } from './lib.mjs';

const dir = tmpDir('tls');
const store = path.join(dir, 'store');
const keys = {};
let srv;

async function makeCert(kind) {
  const key = path.join(dir, `${kind}.key`);
  const cert = path.join(dir, `${kind}.pem`);
  const alg = kind === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  const r = await run('openssl', ['req', '-x509', ...alg, '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1']);
  eq(r.code, 0, `openssl req (${r.stderr})`);
  fs.chmodSync(key, 0o600);
  keys[kind] = { key, cert };
}

// One TLS handshake with s_client (stdin at EOF: it closes once connected); resolves
// { ok, cipher, out }.
function handshake(port, args) {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-alpn', 'h2', '-brief', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('close', (code) => {
      const m = /^CONNECTION ESTABLISHED$[^]*^Ciphersuite: (\S+)$/m.exec(out);
      resolve({ ok: code === 0 && m !== null, cipher: m && m[1], out });
    });
  });
}

// Run `coffer serve` expecting it to refuse to start; its stderr.
async function refusedToStart(args) {
  try {
    const s = await startServer(store, args);
    await s.stop();
  } catch (e) {
    return e.message;
  }
  throw new Error(`the server started with ${args.join(' ')}`);
}

await main([
  ['certificates (RSA and ECDSA)', async () => {
    await makeCert('rsa');
    await makeCert('ec');
  }],
  ['RSA certificate: CBC and SHA-1 suites, RSA key transport and DHE are refused on TLS 1.2', async () => {
    srv = await startServer(store, ['--listen', '127.0.0.1:0', '--tls-cert', keys.rsa.cert, '--tls-key', keys.rsa.key]);
    for (const c of ['AES128-SHA', 'AES256-SHA256', 'AES128-GCM-SHA256', 'ECDHE-RSA-AES128-SHA',
      'ECDHE-RSA-AES256-SHA384', 'DHE-RSA-AES128-GCM-SHA256']) {
      const h = await handshake(srv.port(), ['-tls1_2', '-cipher', c]);
      check(!h.ok, `${c} was negotiated:\n${h.out}`);
    }
  }],
  ['RSA certificate: ECDHE with AES-GCM or ChaCha20-Poly1305 is negotiated; TLS 1.3 too; TLS 1.1 is not', async () => {
    for (const c of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']) {
      const h = await handshake(srv.port(), ['-tls1_2', '-cipher', c]);
      check(h.ok, `${c} refused:\n${h.out}`);
      eq(h.cipher, c, 'negotiated suite');
    }
    const any12 = await handshake(srv.port(), ['-tls1_2']);
    check(any12.ok && /^ECDHE-RSA-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/.test(any12.cipher), any12.out);
    const t13 = await handshake(srv.port(), ['-tls1_3']);
    check(t13.ok && /^TLS_/.test(t13.cipher), t13.out);
    const t11 = await handshake(srv.port(), ['-tls1_1', '-cipher', 'ALL:@SECLEVEL=0']);
    check(!t11.ok, `TLS 1.1 was negotiated:\n${t11.out}`);
    eq((await srv.stop()).code, 0, 'exit code');
  }],
  ['ECDSA certificate: ECDHE-ECDSA with AEAD only', async () => {
    srv = await startServer(store, ['--listen', '127.0.0.1:0', '--tls-cert', keys.ec.cert, '--tls-key', keys.ec.key]);
    for (const c of ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-CHACHA20-POLY1305']) {
      const h = await handshake(srv.port(), ['-tls1_2', '-cipher', c]);
      check(h.ok && h.cipher === c, `${c}:\n${h.out}`);
    }
    for (const c of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA384']) {
      const h = await handshake(srv.port(), ['-tls1_2', '-cipher', c]);
      check(!h.ok, `${c} was negotiated:\n${h.out}`);
    }
    eq((await srv.stop()).code, 0, 'exit code');
  }],
  ['a private key that group or others can read is refused, with the chmod to run', async () => {
    for (const mode of [0o644, 0o640, 0o604]) {
      fs.chmodSync(keys.ec.key, mode);
      const msg = await refusedToStart(['--listen', '127.0.0.1:0', '--tls-cert', keys.ec.cert, '--tls-key', keys.ec.key]);
      check(/exited with 2/.test(msg), `exit code 2: ${msg}`);
      check(msg.includes(`coffer serve: TLS key '${keys.ec.key}' is accessible by group or others ` +
        `(mode 0${mode.toString(8)}); run: chmod 600 '${keys.ec.key}'`), msg);
      check(!/listening on/.test(msg), 'nothing was served');
    }
    fs.chmodSync(keys.ec.key, 0o600);
  }],
  ['a private key reached through a symbolic link is refused', async () => {
    const link = path.join(dir, 'link.key');
    fs.symlinkSync(keys.ec.key, link);
    const msg = await refusedToStart(['--listen', '127.0.0.1:0', '--tls-cert', keys.ec.cert, '--tls-key', link]);
    check(msg.includes(`coffer serve: TLS key '${link}': is a symbolic link`), msg);
  }],
  ['the key is never printed when it is unusable', async () => {
    const bad = path.join(dir, 'bad.key');
    const pem = fs.readFileSync(keys.ec.key, 'utf8');
    fs.writeFileSync(bad, pem.replace(/\n[A-Za-z0-9+/=]{20,}\n/, '\nAAAA\n'), { mode: 0o600 });
    const msg = await refusedToStart(['--listen', '127.0.0.1:0', '--tls-cert', keys.ec.cert, '--tls-key', bad]);
    check(/TLS (certificate or )?key/.test(msg), msg);
    for (const line of pem.split('\n').filter((l) => l.length > 20)) check(!msg.includes(line), 'key material in the message');
  }],
]);
