// Sustained load with @nitric/sdk 1.2.2 (or 0.15.0 with SOAK_V0=1): for SECONDS, IN_FLIGHT
// workers on one client alternate a put and an access of one secret. Prints the number of calls
// and the failures by error class; exits 0 even on failures so that the test can show them.
import { secret } from '@nitric/sdk';

const seconds = Number(process.env.SECONDS || 10);
const inFlight = Number(process.env.IN_FLIGHT || 5);
const name = process.env.SECRET_NAME || 'soak';
const s = process.env.SOAK_V0 === '1' ? secret(name).for('put', 'access') : secret(name).allow('put', 'access');
const end = Date.now() + seconds * 1000;
let calls = 0;
const errors = {};

async function worker(w) {
  for (let i = 0; Date.now() < end; i++) {
    try {
      if (i % 2 === 0) await s.put(`w${w}-${i}`);
      else await s.latest().access();
    } catch (e) {
      const k = `${e.constructor.name}: ${String(e.message).split('\n')[0]}`;
      errors[k] = (errors[k] || 0) + 1;
    }
    calls++;
  }
}

await Promise.all(Array.from({ length: inFlight }, (_, w) => worker(w)));
console.log(`soak ${inFlight} in flight: calls ${calls} failed ${JSON.stringify(errors)}`);
