// A second put becomes latest, the first stays readable, an unknown version is NotFound,
// and a binary value with 0x00 and 0xFF round-trips.
import { secret } from '@nitric/sdk';

const dbPassword = secret('db.password').allow('put', 'access');

const v1 = await dbPassword.put('bleak_dearest_hanged_reigns');
const v2 = await dbPassword.put('crummy_goofed_caddy_radiant');
console.log(`versions ${v1.version} ${v2.version}`);

const latest = await dbPassword.latest().access();
console.log(`latest ${latest.secretVersion.version} ${latest.asString()}`);
const first = await dbPassword.version(v1.version).access();
console.log(`first ${first.secretVersion.version} ${first.asString()}`);

try {
  await dbPassword.version('999').access();
  console.log('unknown version: no error');
} catch (e) {
  console.log(`unknown version: ${e.constructor.name}`);
  console.log(`unknown version message: ${e.message.split('\n')[0]}`);
}

const binary = secret('blob').allow('put', 'access');
const raw = new Uint8Array([0x00, 0xff, 0x00, 0x41, 0xff, 0xfe, 0x00]);
const bv = await binary.put(raw);
const back = await binary.version(bv.version).access();
console.log(`binary ${bv.version} ${Buffer.from(back.asBytes()).toString('hex')}`);
