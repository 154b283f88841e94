// @nitric/sdk 1.2.2 (the current contract) reads what 0.15.0 put, and puts for 0.15.0 to read.
import { secret } from '@nitric/sdk';

const apiKey = secret('api-key').allow('access');
const v = await apiKey.latest().access();
console.log(`read ${v.secretVersion.version} ${v.asString()}`);
const cross = secret('cross').allow('put');
const p = await cross.put('put through the current contract');
console.log(`put ${p.version}`);
