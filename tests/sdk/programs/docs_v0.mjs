// Nitric's documentation for secrets (the Node.js v0 reference: secret(), secret.put(),
// secret.version(), version.access()), its snippets run as printed, with @nitric/sdk 0.15.0.
import { secret } from '@nitric/sdk';

const apiKey = secret('api-key').for('put', 'access');

const latestVersion = await apiKey.put('a new secret value');
// We can get the version ID of our newly stored value
const versionId = latestVersion.version;
console.log(`put ${versionId}`);

const latest = await apiKey.latest().access();
const value = latest.asString();
console.log(`latest ${latest.secretVersion.version} ${value}`);

const specific = await apiKey.version(versionId).access();
console.log(`specific ${specific.secretVersion.version} ${specific.asString()}`);
