// A real OpenID provider for agentd's OIDC sign-in tests: npm `oidc-provider` (installed by
// scripts/install-oidc-provider.sh into .cache/oidc-provider), on 127.0.0.1, with one
// confidential test client and its development login and consent pages (any login name
// and password are accepted; the login name is the account id).
//
//   node tests/oidc/provider.mjs REDIRECT_URI [REDIRECT_URI...]
//
// Env: OIDC_PROVIDER_DIR (the install prefix, default <repo>/.cache/oidc-provider),
// OIDC_CLIENT_ID (default agentd-test), OIDC_CLIENT_SECRET (default agentd-test-secret).
// Prints one JSON line {"issuer": "http://127.0.0.1:PORT"} when it is listening.
//
// An account's claims: `email` is the login name when it has an `@`, else
// `LOGIN@example.com`, with `email_verified: true`; a login starting with `unverified-`
// gets `email_verified: false`. `name` is the part before the `@`.

import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// The provider's start-up notices go to stderr too (see the end).
console.log = console.error;
console.info = console.error;
console.warn = console.error;

const here = path.dirname(fileURLToPath(import.meta.url));
const prefix = process.env.OIDC_PROVIDER_DIR || path.join(here, '..', '..', '.cache', 'oidc-provider');
const require = createRequire(path.join(prefix, 'package.json'));
const { default: Provider } = await import(pathToFileURL(require.resolve('oidc-provider')).href);

const redirectUris = process.argv.slice(2);
if (redirectUris.length === 0) {
  console.error('usage: provider.mjs REDIRECT_URI [REDIRECT_URI...]');
  process.exit(2);
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', use: 'sig', alg: 'RS256' };

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.OIDC_CLIENT_ID || 'agentd-test',
    client_secret: process.env.OIDC_CLIENT_SECRET || 'agentd-test-secret',
    redirect_uris: redirectUris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  pkce: { required: () => true },
  cookies: { keys: ['agentd-oidc-test-cookie-key'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    const email = id.includes('@') ? id : `${id}@example.com`;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email,
          email_verified: !id.startsWith('unverified-'),
          name: email.split('@')[0],
        };
      },
    };
  },
});
// Plain http on loopback: not behind a TLS proxy.
provider.proxy = false;
server.on('request', provider.callback());
// stdout carries only this line (the test may stop reading it); the provider's own
// notices go to stderr.
process.stdout.write(`${JSON.stringify({ issuer })}\n`);
console.log = console.error;
console.info = console.error;
