// A program that starts serving traffic at once: N (default 1,000) concurrent calls right after
// allow(), before the SDK has even sent its policy Declare (it sends it only after the secret's
// Declare returned, and queues it behind the calls already waiting for a stream). OP=put puts N
// values; OP=access reads the latest N times; OP=put-denied allows only access and puts N values.
// Prints the counts; exits 0 even on failures.
import { secret } from '@nitric/sdk';

const n = Number(process.env.N || 1000);
const op = process.env.OP || 'put';
const s = secret(process.env.SECRET || 'burst').allow(...(op === 'put' ? ['put', 'access'] : ['access']));
const calls = Array.from({ length: n }, (_, i) => (op === 'access' ? s.latest().access() : s.put(`burst-${i}`)));
const results = await Promise.allSettled(calls);
const errors = {};
for (const r of results)
  if (r.status === 'rejected') {
    const k = `${r.reason.constructor.name}: ${String(r.reason.message).split('\n')[0]}`;
    errors[k] = (errors[k] || 0) + 1;
  }
const ok = results.filter((r) => r.status === 'fulfilled').length;
console.log(`${op} ok ${ok} failed ${n - ok} ${JSON.stringify(errors)}`);
