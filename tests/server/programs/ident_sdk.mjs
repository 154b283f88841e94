// A Nitric program as some Unix user runs it, against SERVICE_ADDRESS (host:port or unix:PATH):
// declares SECRET with put and access, puts VALUE if given, then reads latest. One line per step;
// a failed step prints the error's class and message. A refused Declare is reported too (the SDK
// throws it inside a callback, which would otherwise crash the program).
import { secret } from '@nitric/sdk';

const flat = (e) => String((e && e.message) || e).replace(/\s+/g, ' ');
const failed = (step, e) => console.log(`${step} failed: ${e && e.constructor ? e.constructor.name : '?'}: ${flat(e)}`);
let declareReported = false;
const onDeclare = (e) => {
  if (!declareReported) failed('declare', e);
  declareReported = true;
};
process.on('uncaughtException', onDeclare);
process.on('unhandledRejection', onDeclare);

console.log(`uid ${process.getuid()}`);
const s = secret(process.env.SECRET).allow('put', 'access');
if (process.env.VALUE) {
  try {
    console.log(`put ${(await s.put(process.env.VALUE)).version}`);
  } catch (e) {
    failed('put', e);
  }
}
try {
  const v = await s.latest().access();
  console.log(`read ${v.secretVersion.version} ${v.asString()}`);
} catch (e) {
  failed('access', e);
}
process.exit(0);
