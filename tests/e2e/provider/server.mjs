// Test-only OpenID Provider for the fastapi_oidc_guard end-to-end tests.
//
// Usage: node server.mjs <config.json>
//
// The first (and only) line written to stdout is the issuer, e.g.
// "http://127.0.0.1:40123". Everything else (including oidc-provider's own
// notices) goes to stderr. The config file is written by tests/e2e/_provider.py;
// see DEFAULTS below for the recognised keys.
//
// Extra, non-standard endpoints for tests:
//   GET  /__test/counters        -> JSON object of request counters
//   POST /__test/counters/reset  -> resets the counters (204)

import { readFileSync, writeFileSync, renameSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import process from 'node:process';

import Provider, { errors } from 'oidc-provider';

// oidc-provider prints NOTICE lines with console.info (stdout); keep stdout for the issuer.
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

const DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  jwks_path: null, // required: JSON file {"keys": [private JWKs]}; first key signs
  state_path: null, // optional: JSON file persisting sessions/grants/tokens across restarts
  cookie_keys: ['e2e-cookie-key-do-not-use-in-production'],
  client: {
    client_id: 'test-client',
    client_secret: 'test-secret-0123456789abcdef0123456789abcdef',
    redirect_uris: ['http://127.0.0.1:8000/auth/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1:8000/'],
    backchannel_logout_uri: null,
    backchannel_logout_session_required: true,
    scope: null, // optional allow-list; may only name the static scopes below, not the API's
    extra: {}, // merged last into the client metadata
  },
  extra_clients: [], // raw oidc-provider client metadata objects
  api: {
    identifier: 'https://api.example.test',
    scope: 'api:read api:write',
    access_token_ttl: 300,
  },
  other_apis: [], // more resource identifiers, same settings (tokens for "another audience")
  opaque_apis: [], // resource identifiers whose access tokens are opaque (introspection)
  ttl: {
    AccessToken: 3600, // opaque (userinfo) access tokens; resource tokens use api.access_token_ttl
    AuthorizationCode: 60,
    ClientCredentials: 600, // only without a resource; resource tokens use api.access_token_ttl
    IdToken: 3600,
    Interaction: 3600,
    RefreshToken: 86400,
    Session: 86400,
    Grant: 86400,
  },
  rotate_refresh_token: 'always', // 'always' | 'never' | 'default' (oidc-provider's policy)
  conform_id_token_claims: true, // oidc-provider default
  features: {}, // merged over the feature set built below
};

/** Recursively merges plain objects (arrays and scalars are replaced). */
function merge(base, override) {
  if (override === undefined || override === null) return base;
  if (typeof base !== 'object' || base === null || Array.isArray(base)) return override;
  const out = { ...base };
  for (const [key, value] of Object.entries(override)) {
    out[key] = key in base ? merge(base[key], value) : value;
  }
  return out;
}

/** Minimal oidc-provider adapter persisted to a JSON file (or memory only). */
function makeAdapterClass(statePath) {
  const store = new Map(); // key -> { value, exp: epoch ms | null }

  if (statePath && existsSync(statePath)) {
    const now = Date.now();
    for (const [key, entry] of Object.entries(JSON.parse(readFileSync(statePath, 'utf8')))) {
      if (entry.exp === null || entry.exp > now) store.set(key, entry);
    }
  }

  const flush = () => {
    if (!statePath) return;
    const tmp = `${statePath}.tmp`;
    writeFileSync(tmp, JSON.stringify(Object.fromEntries(store)));
    renameSync(tmp, statePath);
  };
  const get = (key) => {
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.exp !== null && entry.exp <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.value;
  };
  const set = (key, value, expiresIn) => {
    store.set(key, { value, exp: expiresIn ? Date.now() + expiresIn * 1000 : null });
  };
  const grantable = new Set([
    'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest',
  ]);

  return class FileAdapter {
    constructor(model) { this.model = model; }

    key(id) { return `${this.model}:${id}`; }

    async upsert(id, payload, expiresIn) {
      const key = this.key(id);
      if (this.model === 'Session') set(`sessionUid:${payload.uid}`, id, expiresIn);
      if (grantable.has(this.model) && payload.grantId) {
        const grantKey = `grant:${payload.grantId}`;
        set(grantKey, [...(get(grantKey) || []), key], null);
      }
      if (payload.userCode) set(`userCode:${payload.userCode}`, id, expiresIn);
      set(key, payload, expiresIn);
      flush();
    }

    async find(id) { return get(this.key(id)); }

    async findByUid(uid) {
      const id = get(`sessionUid:${uid}`);
      return id === undefined ? undefined : this.find(id);
    }

    async findByUserCode(userCode) {
      const id = get(`userCode:${userCode}`);
      return id === undefined ? undefined : this.find(id);
    }

    async consume(id) {
      const entry = store.get(this.key(id));
      if (entry) {
        entry.value.consumed = Math.floor(Date.now() / 1000);
        flush();
      }
    }

    async destroy(id) {
      store.delete(this.key(id));
      flush();
    }

    async revokeByGrantId(grantId) {
      const grantKey = `grant:${grantId}`;
      for (const key of get(grantKey) || []) store.delete(key);
      store.delete(grantKey);
      flush();
    }
  };
}

/** Request counters exposed at /__test/counters. */
const counters = {};
function bump(name) { counters[name] = (counters[name] || 0) + 1; }

function buildProvider(cfg, issuer) {
  const { client, api, ttl } = cfg;
  const jwks = JSON.parse(readFileSync(cfg.jwks_path, 'utf8'));

  const clientMetadata = {
    client_id: client.client_id,
    client_secret: client.client_secret,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'],
    redirect_uris: client.redirect_uris,
    post_logout_redirect_uris: client.post_logout_redirect_uris,
    ...(client.scope ? { scope: client.scope } : {}),
    ...(client.backchannel_logout_uri ? {
      backchannel_logout_uri: client.backchannel_logout_uri,
      backchannel_logout_session_required: client.backchannel_logout_session_required,
    } : {}),
    ...client.extra,
  };

  const rotateRefreshToken = {
    always: true,
    never: false,
    default: undefined, // keep oidc-provider's default policy function
  }[cfg.rotate_refresh_token];
  if (!(cfg.rotate_refresh_token in { always: 1, never: 1, default: 1 })) {
    throw new Error(`invalid rotate_refresh_token: ${cfg.rotate_refresh_token}`);
  }

  const features = merge({
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => undefined,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        if (resourceIndicator === api.identifier || (cfg.other_apis || []).includes(resourceIndicator)) {
          return {
            scope: api.scope,
            audience: resourceIndicator,
            accessTokenFormat: 'jwt',
            accessTokenTTL: api.access_token_ttl,
          };
        }
        if ((cfg.opaque_apis || []).includes(resourceIndicator)) { // introspected (RFC 7662)
          return {
            scope: api.scope,
            audience: resourceIndicator,
            accessTokenFormat: 'opaque',
            accessTokenTTL: api.access_token_ttl,
          };
        }
        throw new errors.InvalidTarget();
      },
    },
  }, cfg.features);

  const configuration = {
    adapter: makeAdapterClass(cfg.state_path),
    clients: [clientMetadata, ...cfg.extra_clients],
    jwks,
    cookies: { keys: cfg.cookie_keys },
    features,
    conformIdTokenClaims: cfg.conform_id_token_claims,
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    async findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          const given = sub.charAt(0).toUpperCase() + sub.slice(1);
          return {
            sub,
            name: `${given} Example`,
            given_name: given,
            family_name: 'Example',
            preferred_username: sub,
            email: `${sub}@example.test`,
            email_verified: true,
          };
        },
      };
    },
    ttl: {
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL || ttl.AccessToken,
      AuthorizationCode: ttl.AuthorizationCode,
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL || ttl.ClientCredentials,
      IdToken: ttl.IdToken,
      Interaction: ttl.Interaction,
      RefreshToken: ttl.RefreshToken,
      Session: ttl.Session,
      Grant: ttl.Grant,
    },
    ...(rotateRefreshToken === undefined ? {} : { rotateRefreshToken }),
  };

  const provider = new Provider(issuer, configuration);

  provider.use(async (ctx, next) => {
    if (ctx.path === '/__test/counters' && ctx.method === 'GET') {
      ctx.body = counters;
      return;
    }
    if (ctx.path === '/__test/counters/reset' && ctx.method === 'POST') {
      for (const key of Object.keys(counters)) delete counters[key];
      ctx.status = 204;
      return;
    }
    try {
      await next();
    } finally {
      const route = ctx.oidc?.route || 'unmatched';
      bump(route);
      if (ctx.status >= 400) bump(`${route}_error`);
      if (route === 'token') {
        const grantType = ctx.oidc?.params?.grant_type || 'unknown';
        bump(`token_${grantType}`);
        if (ctx.status >= 400) bump(`token_${grantType}_error`);
      }
    }
  });

  provider.on('backchannel.success', () => bump('backchannel_logout'));
  provider.on('backchannel.error', (ctx, err) => {
    bump('backchannel_logout_error');
    console.error('backchannel logout error:', err);
  });
  provider.on('server_error', (ctx, err) => console.error('server_error:', err));

  return provider;
}

function main() {
  const [configPath] = process.argv.slice(2);
  if (!configPath) {
    console.error('usage: node server.mjs <config.json>');
    process.exit(2);
  }
  const cfg = merge(DEFAULTS, JSON.parse(readFileSync(configPath, 'utf8')));
  if (!cfg.jwks_path) throw new Error('config.jwks_path is required');

  let handler = (req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = createServer((req, res) => handler(req, res));

  server.on('error', (err) => {
    console.error('listen error:', err);
    process.exit(1);
  });

  server.listen(cfg.port, cfg.host, () => {
    const { port } = server.address();
    const issuer = `http://${cfg.host}:${port}`;
    const provider = buildProvider(cfg, issuer);
    handler = provider.callback();
    process.stdout.write(`${issuer}\n`);
  });

  // All state is flushed synchronously, so exiting at once is safe.
  const shutdown = () => process.exit(0);
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main();
