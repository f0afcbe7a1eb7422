// OpenID Connect provider for Sluice's tests, built on the `oidc-provider` package.
//
//   PORT=9000 node server.mjs            issuer http://127.0.0.1:$PORT
//   JWKS_FILE=keys.json                  sign with this private JWKS ({"keys":[...]}) instead of
//                                        a fresh RS256 key made at start (kid "test-rs256")
//
// What the tests rely on:
// - clients: `lake-client` / `lake-secret` (confidential) and `lake-cli` (public, PKCE), both
//   "native", so a loopback redirect URI matches on any port (RFC 8252 §7.3). Registered
//   redirect paths: `/callback` (the CLI's PKCE listener) and `/auth/oidc/callback` (Sluice's
//   browser SSO callback).
// - every access token is an RS256 JWT for the audience `urn:lakehouse:api`; tokens minted for
//   a user carry `email` and `groups` (["analysts"]).
// - devInteractions: the login page accepts any username with any password.
// - device flow, client credentials, refresh tokens (with `offline_access`), introspection and
//   revocation are on; PKCE is required for the authorization-code flow.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const port = Number(process.env.PORT ?? 9000);
const issuer = `http://127.0.0.1:${port}`;
const apiAudience = 'urn:lakehouse:api';
const scopes = ['openid', 'offline_access', 'email', 'profile', 'groups', 'lakehouse'];

function signingKeys() {
  if (process.env.JWKS_FILE) {
    return JSON.parse(readFileSync(process.env.JWKS_FILE, 'utf8'));
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: 'test-rs256', alg: 'RS256', use: 'sig' }] };
}

function claimsOf(accountId) {
  return {
    sub: accountId,
    name: accountId,
    preferred_username: accountId,
    email: `${accountId}@example.org`,
    email_verified: true,
    groups: ['analysts'],
  };
}

const loopbackRedirects = ['127.0.0.1', 'localhost'].flatMap((host) => [
  `http://${host}/callback`,
  `http://${host}/auth/oidc/callback`,
]);
const userGrants = ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'];

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'lake-client',
      client_secret: 'lake-secret',
      application_type: 'native',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [...userGrants, 'client_credentials'],
      response_types: ['code'],
      redirect_uris: loopbackRedirects,
    },
    {
      client_id: 'lake-cli',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: userGrants,
      response_types: ['code'],
      redirect_uris: loopbackRedirects,
    },
  ],
  jwks: signingKeys(),
  cookies: { keys: ['sluice-oidc-peer-cookie-key'] },
  scopes,
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  // Scope-requested claims go into the ID token as well, not only the userinfo endpoint.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Without a `resource` parameter the token is still for the API, so that every access
      // token the tests get is a JWT Sluice can verify against the JWKS.
      defaultResource: async () => apiAudience,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => {
        if (resource !== apiAudience) throw new errors.InvalidTarget();
        return {
          audience: apiAudience,
          scope: scopes.join(' '),
          accessTokenFormat: 'jwt',
          accessTokenTTL: 3600,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // A user's access token carries email and groups; a client-credentials token has no user.
  extraTokenClaims: async (_ctx, token) => {
    if (!token.accountId) return undefined;
    const { email, groups } = claimsOf(token.accountId);
    return { email, groups };
  },
  findAccount: async (_ctx, accountId) => ({ accountId, claims: async () => claimsOf(accountId) }),
  issueRefreshToken: async (_ctx, client, code) =>
    client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 600,
    ClientCredentials: 3600,
    DeviceCode: 600,
    IdToken: 3600,
    Interaction: 3600,
    Grant: 86400,
    Session: 86400,
    RefreshToken: 86400,
  },
});

provider.on('server_error', (_ctx, err) => console.error('server_error', err));

const server = provider.listen(port, '127.0.0.1', () => console.log(`oidc peer listening on ${issuer}`));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
