// A well-behaved program under steady load: N puts (default 3,000) with 5 in flight on one
// connection, then as many accesses. grpc-js sends RST_STREAM(NO_ERROR) after most completed
// calls; none of that may be taken for an attack. Prints the counts; exits 0 even on failures so
// that the test can show them.
import { secret } from '@nitric/sdk';

const total = Number(process.env.PUTS || 3000);
const inFlight = Number(process.env.IN_FLIGHT || 5);
const s = secret('sustained').allow('put', 'access');

async function pump(op) {
  let next = 0;
  let ok = 0;
  const errors = {};
  async function worker() {
    while (next < total) {
      const i = next++;
      try {
        await op(i);
        ok++;
      } catch (e) {
        const k = `${e.constructor.name}: ${String(e.message).split('\n')[0]}`;
        errors[k] = (errors[k] || 0) + 1;
      }
    }
  }
  await Promise.all(Array.from({ length: inFlight }, worker));
  return { ok, errors };
}

const puts = await pump((i) => s.put(`value-${i}`));
console.log(`puts ok ${puts.ok} failed ${total - puts.ok} ${JSON.stringify(puts.errors)}`);
const reads = await pump(() => s.latest().access());
console.log(`accesses ok ${reads.ok} failed ${total - reads.ok} ${JSON.stringify(reads.errors)}`);
