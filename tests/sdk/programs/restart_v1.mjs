// @nitric/sdk 1.2.2 (or 0.15.0 with RESTART_V0=1) across a server restart: one put; "ready";
// waits for a line on stdin (the server restarts meanwhile); then puts until one succeeds
// (at most 100, 100 ms apart), printing each outcome by the SDK's error class.
import { createInterface } from 'node:readline';
import { secret } from '@nitric/sdk';

const s = process.env.RESTART_V0 === '1'
  ? secret(process.env.SECRET_NAME).for('put', 'access')
  : secret(process.env.SECRET_NAME).allow('put', 'access');
await s.put('before the restart');
console.log('ready');
const rl = createInterface({ input: process.stdin });
await new Promise((resolve) => rl.once('line', resolve));
rl.close();
const outcomes = [];
for (let i = 0; i < 100; i++) {
  try {
    await s.put('after the restart');
    outcomes.push('OK');
    break;
  } catch (e) {
    outcomes.push(e.constructor.name);
    await new Promise((r) => setTimeout(r, 100));
  }
}
let then;
try {
  then = `OK ${(await s.latest().access()).asString()}`;
} catch (e) {
  then = e.constructor.name;
}
console.log(`outcomes ${outcomes.join(' ')}\nthen ${then}`);
process.exit(0);
