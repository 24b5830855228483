// An independent OpenID provider for Guichet's interop test: panva's oidc-provider (certified
// by the OpenID Foundation), configured with one confidential client and its development
// login/consent screens (any login, any password). Loopback only.
//
//   PORT=... REDIRECT_URI=... POST_LOGOUT_REDIRECT_URI=... CLIENT_SECRET=... node server.mjs
//
// Encryption mode, when ENC_ALG is set (ECDH-ES, RSA-OAEP or RSA-OAEP-256): id_tokens are
// signed with ES256 then encrypted to the client's keys (CLIENT_JWKS, a JWK Set in JSON, given
// inline as the client's `jwks`), and userinfo is answered as a JWT, signed with ES256 then
// encrypted the same way. Content encryption: A256GCM.
import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const encAlg = process.env.ENC_ALG;
const ENC_ALGS = ['ECDH-ES', 'RSA-OAEP', 'RSA-OAEP-256'];
if (encAlg !== undefined && !ENC_ALGS.includes(encAlg)) {
  throw new Error(`ENC_ALG must be one of ${ENC_ALGS.join(', ')}, not ${encAlg}`);
}

const client = {
  client_id: 'guichet',
  client_secret: process.env.CLIENT_SECRET,
  redirect_uris: [process.env.REDIRECT_URI],
  post_logout_redirect_uris: [process.env.POST_LOGOUT_REDIRECT_URI],
  response_types: ['code'],
  grant_types: ['authorization_code'],
  token_endpoint_auth_method: 'client_secret_basic',
};

const features = {
  devInteractions: { enabled: true },
  rpInitiatedLogout: { enabled: true },
};

const encryption = {};
if (encAlg !== undefined) {
  if (!process.env.CLIENT_JWKS) {
    throw new Error('ENC_ALG needs CLIENT_JWKS, the client\'s public encryption keys');
  }
  Object.assign(client, {
    jwks: JSON.parse(process.env.CLIENT_JWKS),
    id_token_signed_response_alg: 'ES256',
    id_token_encrypted_response_alg: encAlg,
    id_token_encrypted_response_enc: 'A256GCM',
    userinfo_signed_response_alg: 'ES256',
    userinfo_encrypted_response_alg: encAlg,
    userinfo_encrypted_response_enc: 'A256GCM',
  });
  features.encryption = { enabled: true };
  features.jwtUserinfo = { enabled: true };
  // A signing key made at startup: ES256 for id_tokens and userinfo.
  const signing = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .privateKey.export({ format: 'jwk' });
  Object.assign(encryption, {
    jwks: { keys: [{ ...signing, kid: 'sig-es256', use: 'sig', alg: 'ES256' }] },
    enabledJWA: {
      idTokenSigningAlgValues: ['ES256'],
      userinfoSigningAlgValues: ['ES256'],
      idTokenEncryptionAlgValues: [encAlg],
      idTokenEncryptionEncValues: ['A256GCM'],
      userinfoEncryptionAlgValues: [encAlg],
      userinfoEncryptionEncValues: ['A256GCM'],
    },
  });
}

const provider = new Provider(issuer, {
  clients: [client],
  claims: {
    openid: ['sub'],
    profile: ['given_name', 'family_name'],
    email: ['email'],
  },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          given_name: 'Grégory',
          family_name: 'Françoise',
          email: `${id}@example.org`,
        };
      },
    };
  },
  features,
  cookies: { keys: ['guichet-interop-test-only'] },
  ...encryption,
});
provider.proxy = false;

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}${encAlg ? ` (encrypting with ${encAlg})` : ''}`);
});
