// The common SDK scenario (issue 13, acceptance 1) with @nitric/sdk 0.15.0, the first contract.
// Each line: what happened, error classes by name.
import { secret } from '@nitric/sdk';

const say = (s) => console.log(s);
const errName = async (p) => {
  try {
    await p;
    return 'no error';
  } catch (e) {
    return e.constructor.name;
  }
};

const s = secret('scenario-v0').for('put', 'access');
const v1 = await s.put('first value');
const v2 = await s.put('second value');
say(`versions ${v1.version} ${v2.version}`);
const latest = await s.latest().access();
say(`latest ${latest.secretVersion.version} ${latest.asString()}`);
say(`first ${(await s.version(v1.version).access()).asString()}`);
const bin = secret('scenario-v0-bin').for('put', 'access');
const bv = await bin.put(new Uint8Array([0, 255, 0, 65, 0]));
say(`binary ${Buffer.from((await bin.version(bv.version).access()).asBytes()).toString('hex')}`);
const utf = secret('scenario-v0-utf8').for('put', 'access');
const uv = await utf.put('grüße ✓ 秘密');
say(`utf8 ${(await utf.version(uv.version).access()).asString()}`);
say(`missing ${await errName(s.version('999').access())}`);
const ro = secret('scenario-v0-ro').for('access');
say(`put on access-only ${await errName(ro.put('nope'))}`);
say(`too big ${await errName(s.put('x'.repeat(70000)))}`);
