// A client that is not a Nitric service (@grpc/grpc-js), run as some Unix user: reads the latest
// version of SECRET at ADDRESS, with 'authorization: Bearer TOKEN' when TOKEN is set. Prints
// "read VERSION VALUE" or "access failed: CODE DETAILS". The .proto files are in PROTO_DIR.
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const def = protoLoader.loadSync(['nitric/proto/secrets/v1/secrets.proto'], {
  includeDirs: [process.env.PROTO_DIR], keepCase: true, defaults: true,
});
const { SecretManager } = grpc.loadPackageDefinition(def).nitric.proto.secrets.v1;
const sm = new SecretManager(process.env.ADDRESS, grpc.credentials.createInsecure());
const md = new grpc.Metadata();
if (process.env.TOKEN) md.set('authorization', `Bearer ${process.env.TOKEN}`);
console.log(`uid ${process.getuid()}`);
sm.Access({ secret_version: { secret: { name: process.env.SECRET }, version: 'latest' } }, md, (err, r) => {
  if (err) console.log(`access failed: ${err.code} ${err.details}`);
  else console.log(`read ${r.secret_version.version} ${Buffer.from(r.value).toString()}`);
  sm.close();
});
