// @nitric/sdk 1.2.2: one put and one access through SERVICE_ADDRESS (issue 13 item 6).
import { secret } from '@nitric/sdk';

const s = secret(process.env.SECRET_NAME).allow('put', 'access');
const p = await s.put(`via ${process.env.SERVICE_ADDRESS}`);
const v = await s.latest().access();
console.log(`put ${p.version} read ${v.asString()}`);
