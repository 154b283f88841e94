// A service that declared only 'access' on a secret tries to put it.
import { secret } from '@nitric/sdk';

const apiKey = secret('api-key').allow('access');
try {
  await apiKey.put('should-not-be-stored');
  console.log('put: allowed');
} catch (e) {
  console.log(`put: ${e.constructor.name}`);
}
const v = await apiKey.latest().access();
console.log(`access ${v.secretVersion.version} ${v.asString()}`);
