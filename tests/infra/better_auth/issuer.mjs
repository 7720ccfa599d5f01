// A Better Auth server with the JWT plugin, as a Next.js frontend runs it: email/password
// accounts in memory, its HTTP API served by `toNodeHandler(auth)` on 127.0.0.1.
//
// Configured by the environment (all optional):
//   ISSUER_PORT            port to listen on; 0 (default) picks a free one
//   ISSUER_BASE_PATH       appended to http://127.0.0.1:<port> to make `baseURL`, e.g. "/api/auth"
//                          (a baseURL with a path is where Better Auth mounts its routes)
//   ISSUER_ALG             jwks.keyPairConfig.alg: EdDSA (default), ES256, ES512, RS256, PS256
//   ISSUER_JWT_ISSUER      jwt.issuer (default: the origin of baseURL)
//   ISSUER_JWT_AUDIENCE    jwt.audience, comma-separated for several (default: the origin)
//   ISSUER_ROTATION_SECONDS  jwks.rotationInterval: a key older than this is replaced on the
//                          next signature, the old one stays published for jwks.gracePeriod
//   BETTER_AUTH_SECRET     the secret Better Auth encrypts the private keys with
//
// Once listening it prints one line on stdout:
//   ISSUER_READY {"baseURL": ..., "authURL": <where its routes are>, "port": ..., "version": ...}
// and it stops on SIGTERM or SIGINT. The accounts, sessions and keys live in this process only.

import http from "node:http";

import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins";

const env = process.env;
const ALGORITHMS = ["EdDSA", "ES256", "ES512", "RS256", "PS256"];

function settings(port) {
  const alg = env.ISSUER_ALG || "EdDSA";
  if (!ALGORITHMS.includes(alg)) {
    throw new Error(`ISSUER_ALG=${alg}: use one of ${ALGORITHMS.join(", ")}`);
  }
  const jwtOptions = {};
  if (env.ISSUER_JWT_ISSUER) jwtOptions.issuer = env.ISSUER_JWT_ISSUER;
  if (env.ISSUER_JWT_AUDIENCE) {
    const audiences = env.ISSUER_JWT_AUDIENCE.split(",").map((value) => value.trim());
    jwtOptions.audience = audiences.length === 1 ? audiences[0] : audiences;
  }
  const jwks = { keyPairConfig: { alg } };
  if (env.ISSUER_ROTATION_SECONDS) jwks.rotationInterval = Number(env.ISSUER_ROTATION_SECONDS);
  return {
    baseURL: `http://127.0.0.1:${port}${env.ISSUER_BASE_PATH || ""}`,
    secret: env.BETTER_AUTH_SECRET || "better-auth-test-issuer-secret-0123456789",
    database: memoryAdapter({ user: [], session: [], account: [], verification: [], jwks: [] }),
    emailAndPassword: { enabled: true },
    rateLimit: { enabled: false },
    telemetry: { enabled: false },
    plugins: [jwt({ jwks, jwt: jwtOptions })],
  };
}

let handler = null;
const server = http.createServer((request, response) => {
  if (handler === null) {
    response.writeHead(503).end();
    return;
  }
  handler(request, response);
});

server.listen(Number(env.ISSUER_PORT || 0), "127.0.0.1", async () => {
  const { port } = server.address();
  const options = settings(port);
  const auth = betterAuth(options);
  const context = await auth.$context;
  handler = toNodeHandler(auth);
  const ready = { baseURL: options.baseURL, authURL: context.baseURL, port, version: context.version };
  process.stdout.write(`ISSUER_READY ${JSON.stringify(ready)}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
