// 90 puts at once from one process (one HTTP/2 connection, many streams): every put gets its
// own version, and every version holds the value that was put. (Kept under the 100 streams of a
// connection: the SDK sends its policy Declare only after the secret's Declare returned, so more
// calls than free streams would queue it behind puts that are waiting for that very policy.)
import { secret } from '@nitric/sdk';

const many = secret('many').allow('put', 'access');
const values = Array.from({ length: 90 }, (_, i) => `value-${i}`);
const versions = await Promise.all(values.map((v) => many.put(v)));
const ids = versions.map((v) => Number(v.version));
console.log(`distinct ${new Set(ids).size} min ${Math.min(...ids)} max ${Math.max(...ids)}`);
const back = await Promise.all(versions.map((v) => many.version(v.version).access()));
const wrong = back.filter((b, i) => b.asString() !== values[i]).length;
console.log(`mismatches ${wrong}`);
const latest = await many.latest().access();
console.log(`latest ${latest.secretVersion.version}`);
