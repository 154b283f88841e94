// The start-up burst with @nitric/sdk 0.15.0: 1,000 concurrent puts right after for().
import { secret } from '@nitric/sdk';

const s = secret('burst-v0').for('put', 'access');
const results = await Promise.allSettled(Array.from({ length: 1000 }, (_, i) => s.put(`v0-${i}`)));
const failed = results.filter((r) => r.status === 'rejected');
console.log(`put ok ${1000 - failed.length} failed ${failed.length}${failed.length ? ` ${failed[0].reason.message.split('\n')[0]}` : ''}`);
