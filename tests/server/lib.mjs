// Shared helpers for the coffer serve tests: start a server on a free port with its own temporary
// store, run Node programs against it, tiny test runner. Node built-ins only.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

export const COFFER = process.env.COFFER_BIN;
export const CACHE = process.env.COFFER_NODE_CACHE;
export const HERE = path.dirname(new URL(import.meta.url).pathname);

if (!COFFER) throw new Error('COFFER_BIN is not set');

// A require() that finds the npm packages installed in the cache folder.
export function cacheRequire() {
  if (!CACHE) throw new Error('COFFER_NODE_CACHE is not set');
  return createRequire(path.join(CACHE, 'package.json'));
}

export const PROTO = path.resolve(HERE, '..', '..', 'proto');
// The current Nitric contract's numbers the tests use (ResourceType, Action).
export const T = { Service: 1, Bucket: 2, Policy: 7, Secret: 8 };
export const A = { SecretPut: 400, SecretAccess: 401 };

// grpc-js with the current contract's .proto files loaded at run time, as any gRPC client could:
// { grpc, pkg } (pkg.nitric.proto.secrets.v1.SecretManager, pkg.nitric.proto.resources.v1.Resources).
export function loadContract() {
  const require = cacheRequire();
  const grpc = require('@grpc/grpc-js');
  const protoLoader = require('@grpc/proto-loader');
  const def = protoLoader.loadSync(
    ['nitric/proto/secrets/v1/secrets.proto', 'nitric/proto/resources/v1/resources.proto'],
    { includeDirs: [PROTO], keepCase: true, longs: String, enums: Number, defaults: true },
  );
  return { grpc, pkg: grpc.loadPackageDefinition(def) };
}

const cleanEnv = () => {
  const env = { ...process.env };
  delete env.COFFER_MASTER_KEY;
  delete env.COFFER_PASSPHRASE;
  delete env.COFFER_KEY_FILE;
  delete env.COFFER_STORE;
  return env;
};

// Temporary folders are removed when the test process exits (COFFER_KEEP_TMP=1 keeps them).
const tmpDirs = [];
process.on('exit', () => {
  if (process.env.COFFER_KEEP_TMP) return;
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

export function tmpDir(tag) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `coffer-${tag}-`));
  tmpDirs.push(d);
  return d;
}

export class Server {
  constructor(proc) {
    this.proc = proc;
    this.ports = {};
    this.stdout = '';
    this.stderr = '';
    // 'close', not 'exit': by then everything the server wrote to stdout/stderr has been read.
    this.exited = new Promise((resolve) => proc.on('close', (code, sig) => resolve({ code, sig })));
  }
  addr(service = 'default') {
    return `127.0.0.1:${this.ports[service]}`;
  }
  port(service = 'default') {
    return this.ports[service];
  }
  async stop(signal = 'SIGTERM') {
    this.proc.kill(signal);
    return this.exited;
  }
  alive() {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }
}

// Start `coffer --store STORE serve ARGS...`; resolves once every listener is announced.
export function startServer(store, args = ['--listen', '127.0.0.1:0'], env = {}) {
  const proc = spawn(COFFER, ['--store', store, 'serve', ...args], {
    env: { ...cleanEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const srv = new Server(proc);
  proc.stderr.on('data', (d) => {
    srv.stderr += d;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${srv.stderr}`)), 30000);
    proc.stdout.on('data', (d) => {
      srv.stdout += d;
      for (const m of srv.stdout.matchAll(/listening on \S+:(\d+) \(service ([^)]+)\)/g))
        srv.ports[m[2]] = Number(m[1]);
      if (/^coffer: store /m.test(srv.stdout)) {
        clearTimeout(timer);
        resolve(srv);
      }
    });
    proc.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${srv.stderr}`));
    });
  });
}

// Run a command to completion; stdout as a Buffer.
export function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: { ...cleanEnv(), ...(opts.env || {}) }, cwd: opts.cwd });
    const out = [];
    let err = '';
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.on('data', (d) => {
      err += d;
    });
    p.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
  });
}

// Run a JavaScript program as a user would: in its own folder, packages from the cache.
export async function runProgram(file, env) {
  const dir = tmpDir('prog');
  fs.symlinkSync(path.join(CACHE, 'node_modules'), path.join(dir, 'node_modules'));
  const dest = path.join(dir, path.basename(file));
  fs.copyFileSync(file, dest);
  const r = await run(process.execPath, [dest], { env, cwd: dir });
  fs.rmSync(dir, { recursive: true, force: true });
  return r;
}

export function check(cond, msg) {
  if (!cond) throw new Error(`check failed: ${msg}`);
}

export function eq(actual, expected, msg) {
  if (actual !== expected)
    throw new Error(`${msg}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

// Run named async tests in order; print a TAP-like line each and the closing count line.
export async function main(tests) {
  let passed = 0;
  let failed = 0;
  for (const [name, fn] of tests) {
    try {
      await fn();
      console.log(`ok - ${name}`);
      passed++;
    } catch (e) {
      console.log(`not ok - ${name}\n  ${String(e.stack || e).replace(/\n/g, '\n  ')}`);
      failed++;
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

// One unary gRPC call on an open node:http2 session; resolves with its grpc-status (from the
// headers of a trailers-only answer or from the trailers), or null if none came.
export function grpcStatus(session, method, body) {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': method, 'content-type': 'application/grpc' });
    let status = null;
    const take = (h) => {
      if (h['grpc-status'] !== undefined) status = Number(h['grpc-status']);
    };
    req.on('response', take);
    req.on('trailers', take);
    req.on('data', () => {});
    req.on('end', () => resolve(status));
    req.on('error', reject);
    req.end(body);
  });
}
