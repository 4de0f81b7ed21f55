// An independent OpenID provider for the interop suite: panva's oidc-provider (certified
// OpenID Connect implementation), configured to issue Entra-shaped app tokens with the
// client-credentials grant.
//
// Run: node server.mjs CONFIG.json
//
// CONFIG.json (written by tests/tests/interop.rs):
//   {
//     "port": 0,                                   // 0: any free port
//     "tenantId": "…",                             // the `tid` claim
//     "apis": [{ "resource": "api://weather", "audience": "<API client id>" }],
//     "clients": [
//       { "clientId": "…", "auth": "private_key_jwt", "certificateFile": "/tmp/…/client.pem",
//         "matchX5t": false,                       // true: register x5c and require the
//                                                  // assertion's x5t/x5t#S256 to name it
//         "roles": { "api://weather": ["service-api"] } },
//       { "clientId": "…", "auth": "client_secret_post", "secret": "…", "roles": { … } }
//     ]
//   }
//
// Prints `oidc-provider listening on http://127.0.0.1:PORT` once it accepts connections.
//
// Tokens: `scope=api://weather/.default` (Entra style, what tower-azure-auth's client sends)
// or `resource=api://weather` (RFC 8707) both select the API; the access token is an RS256
// JWT with `aud` = the API's audience, `azp` = client id, `azpacr` ("2" private_key_jwt,
// "1" client secret), `tid`, and `roles` when the client was granted any.
//
// Key rotation: `POST /_interop/rotate-signing-key` generates a new RSA key, makes it the
// signing key and keeps publishing the previous ones. oidc-provider has no API to change
// its keystore while running (it is fixed when the Provider is constructed), so the
// server builds a new Provider with the new key set and swaps it in behind the same HTTP
// server (same port, same issuer); clients and the replay store are unaffected. The
// endpoint answers `{"kid": <new signing kid>, "kids": [all published kids]}`.

import { createHash, generateKeyPairSync, randomUUID, verify, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const configPath = process.argv[2];
if (!configPath) {
  console.error('usage: node server.mjs CONFIG.json');
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, 'utf8'));

const b64url = (buffer) => Buffer.from(buffer).toString('base64url');

// Registered clients: their JWKS comes from the certificate the Rust test generated.
const clientThumbprints = new Map(); // clientId -> [{ x5t, x5tS256, publicKey }]
const clients = config.clients.map((client) => {
  const base = {
    client_id: client.clientId,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  };
  if (client.auth === 'client_secret_post') {
    return { ...base, client_secret: client.secret, token_endpoint_auth_method: 'client_secret_post' };
  }
  if (client.auth !== 'private_key_jwt') {
    throw new Error(`client ${client.clientId}: unsupported auth ${client.auth}`);
  }
  const certificate = new X509Certificate(readFileSync(client.certificateFile));
  const jwk = { ...certificate.publicKey.export({ format: 'jwk' }), use: 'sig' };
  if (client.matchX5t) {
    const x5t = b64url(createHash('sha1').update(certificate.raw).digest());
    const x5tS256 = b64url(createHash('sha256').update(certificate.raw).digest());
    Object.assign(jwk, { x5c: [certificate.raw.toString('base64')], x5t, 'x5t#S256': x5tS256 });
    clientThumbprints.set(client.clientId, [{ x5t, x5tS256, publicKey: certificate.publicKey }]);
  }
  return {
    ...base,
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'RS256',
    jwks: { keys: [jwk] },
  };
});
const rolesOf = new Map(config.clients.map((c) => [c.clientId, c.roles ?? {}]));
const apis = new Map(config.apis.map((api) => [api.resource, api]));

// oidc-provider picks client keys by `kid` and `alg` only; Entra-style assertions carry no
// `kid` but an `x5t` (or `x5t#S256`) naming the certificate. For clients registered with
// `matchX5t`, the thumbprint must name a registered certificate whose key verifies the
// assertion (checked again here with that key alone).
async function assertJwtClientAuthClaimsAndHeader(ctx, claims, header, client) {
  const registered = clientThumbprints.get(client.clientId);
  if (!registered) return;
  const named = registered.find((r) => (header['x5t#S256'] !== undefined
    ? r.x5tS256 === header['x5t#S256']
    : r.x5t === header.x5t));
  if (!named) {
    throw new errors.InvalidClientAuth('the assertion x5t/x5t#S256 names no registered certificate');
  }
  const [h, p, s] = ctx.oidc.params.client_assertion.split('.');
  const ok = verify('sha256', Buffer.from(`${h}.${p}`), named.publicKey, Buffer.from(s, 'base64url'));
  if (!ok) {
    throw new errors.InvalidClientAuth('the assertion is not signed by the certificate its x5t names');
  }
}

function scopeResource(ctx) {
  // Entra style: `scope=api://weather/.default` names the resource `api://weather`.
  const scope = ctx.oidc.params?.scope;
  if (typeof scope !== 'string') return undefined;
  const word = scope.split(' ').find((s) => s.endsWith('/.default'));
  return word ? word.slice(0, -'/.default'.length) : undefined;
}

function newSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: `interop-${randomUUID()}`, use: 'sig', alg: 'RS256' };
}

function buildProvider(issuer, signingKeys) {
  const signingKid = signingKeys[0].kid;
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: signingKeys },
    clientAuthMethods: ['private_key_jwt', 'client_secret_post'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (ctx, client, oneOf) => (oneOf ? oneOf[0] : scopeResource(ctx)),
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          const api = apis.get(resource);
          if (!api) throw new errors.InvalidTarget(`unknown resource ${resource}`);
          return {
            scope: `${resource}/.default`,
            audience: api.audience,
            accessTokenTTL: 3600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256', kid: signingKid } },
          };
        },
      },
    },
    assertJwtClientAuthClaimsAndHeader,
    extraTokenClaims: (ctx, token) => {
      if (token.kind !== 'ClientCredentials' || !token.resourceServer) return undefined;
      const client = ctx.oidc.client;
      const roles = rolesOf.get(client.clientId)?.[token.resourceServer.identifier()] ?? [];
      return {
        azp: client.clientId,
        azpacr: client.clientAuthMethod === 'private_key_jwt' ? '2' : '1',
        tid: config.tenantId,
        ...(roles.length ? { roles } : {}),
      };
    },
    ttl: { ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? 600 },
    cookies: { keys: [randomUUID()] },
  });
  for (const event of ['grant.error', 'server_error']) {
    provider.on(event, (ctx, error) => {
      console.error(`oidc-provider ${event}: ${error.message}${error.error_detail ? ` (${error.error_detail})` : ''}`);
    });
  }
  return provider;
}

let signingKeys = [newSigningKey()];
let handler;

const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/_interop/rotate-signing-key') {
    signingKeys = [newSigningKey(), ...signingKeys];
    handler = buildProvider(issuer, signingKeys).callback();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kid: signingKeys[0].kid, kids: signingKeys.map((k) => k.kid) }));
    return;
  }
  handler(req, res);
});

let issuer;
server.listen(config.port ?? 0, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  handler = buildProvider(issuer, signingKeys).callback();
  console.log(`oidc-provider listening on ${issuer}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
// The Rust test holds our stdin; when it goes away, so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
