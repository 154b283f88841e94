// A program that declares many secrets at start-up, as a loop over a configuration would
// (COUNT, default 150), then uses the first and the last. A failed Declare throws inside the SDK
// and crashes the program, so "it starts" means every Declare was answered. DECLARE_V0=1: the
// first contract's @nitric/sdk 0.15.0 (`.for`).
import { secret } from '@nitric/sdk';

const count = Number(process.env.COUNT || 150);
const refs = [];
const v0 = process.env.DECLARE_V0 === '1';
const prefix = v0 ? 's0' : 's';
for (let i = 0; i < count; i++) {
  const ref = secret(`${prefix}-${i}`);
  refs.push(v0 ? ref.for('put', 'access') : ref.allow('put', 'access'));
}
await refs[0].put('first');
await refs[count - 1].put('last');
const a = await refs[0].latest().access();
const b = await refs[count - 1].latest().access();
console.log(`declared ${count} ${a.asString()} ${b.asString()}`);
