// Put values one after another and print each one the server acknowledged, until it fails.
import { secret } from '@nitric/sdk';

const stream = secret('stream').allow('put', 'access');
for (let i = 0; i < 100000; i++) {
  const value = `value-${i}-${'x'.repeat(i % 50)}`;
  try {
    const v = await stream.put(value);
    process.stdout.write(`ack ${v.version} ${value}\n`);
  } catch (e) {
    process.stdout.write(`error ${e.constructor.name}\n`);
    process.exit(0);
  }
}
