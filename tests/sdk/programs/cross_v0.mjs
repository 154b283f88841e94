// @nitric/sdk 0.15.0 (the first contract) reads what 1.2.2 put.
import { secret } from '@nitric/sdk';

const cross = secret('cross').for('access');
const v = await cross.latest().access();
console.log(`read ${v.secretVersion.version} ${v.asString()}`);
