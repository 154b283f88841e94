// The seed's workflow with the official Nitric SDK, as an application writes it.
import { secret } from '@nitric/sdk';

const apiKey = secret('api-key').allow('put', 'access');

const version = await apiKey.put('bleak_dearest_hanged_reigns');
console.log(`put ${version.version}`);

const latest = await apiKey.latest().access();
console.log(`latest ${latest.secretVersion.version} ${latest.asString()}`);

const exact = await apiKey.version(version.version).access();
console.log(`bytes ${Buffer.from(exact.asBytes()).toString('hex')}`);
