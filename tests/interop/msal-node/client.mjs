// Microsoft's MSAL for Node (@azure/msal-node, pinned in package.json, locked in
// package-lock.json), client credentials against a given authority.
//
// Run (from tests/tests/interop.rs):
//
//   NODE_EXTRA_CA_CERTS=ca.pem node client.mjs --authority https://127.0.0.1:PORT/TENANT \
//       --client-id ID --mode sha256|sha1|secret [--key key.pem --thumbprint HEX] \
//       --scope api://weather/.default [--scope api://other/.default …]
//
// Modes, as msal-node 7 builds the credential (ConfidentialClientApplication's constructor):
//   sha256  clientCertificate {thumbprintSha256, privateKey}: PS256 + x5t#S256
//   sha1    clientCertificate {thumbprint, privateKey}: RS256 + x5t (SHA-1)
//   secret  clientSecret, read from the MSAL_CLIENT_SECRET environment variable
//
// Every --scope is asked for in turn from ONE ConfidentialClientApplication, as a service
// calling several APIs does: MSAL signs one client assertion and sends it with each request
// until it nears expiry.
//
// Prints one JSON object on stdout: {"msal_version", "results": [{"scope", "ok",
// "token_type", "access_token"} or {"scope", "ok": false, "error": {"name", "errorCode",
// "errorMessage", "subError", "errorNo", "status"}}], "token_requests": [{"url",
// "form_fields", "assertion_header", "assertion_jti", "assertion_sha256"}], "get_requests":
// [<urls>]}. Assertions themselves are not printed, only their SHA-256 (to tell a reused
// one). Exit 0 when every scope got a token, 1 otherwise, 2 on bad arguments.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { ConfidentialClientApplication, LogLevel, version } from "@azure/msal-node";

const { values } = parseArgs({
    options: {
        authority: { type: "string" },
        "client-id": { type: "string" },
        mode: { type: "string" },
        key: { type: "string" },
        thumbprint: { type: "string" },
        scope: { type: "string", multiple: true },
    },
});
const missing = ["authority", "client-id", "mode", "scope"].filter((name) => !values[name]);
if (missing.length > 0 || !["sha256", "sha1", "secret"].includes(values.mode)) {
    console.error(`client.mjs: missing or bad arguments: ${missing.join(", ") || `--mode ${values.mode}`}`);
    process.exit(2);
}

// msal-node 7 sends every request with the global fetch: record what it sends.
const tokenRequests = [];
const getRequests = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, options = {}) => {
    const method = (options.method || "GET").toUpperCase();
    if (method === "POST") {
        const form = new URLSearchParams(typeof options.body === "string" ? options.body : "");
        const assertion = form.get("client_assertion");
        let header = null;
        let jti = null;
        if (assertion) {
            const [h, p] = assertion.split(".");
            header = JSON.parse(Buffer.from(h, "base64url").toString("utf8"));
            jti = JSON.parse(Buffer.from(p, "base64url").toString("utf8")).jti ?? null;
        }
        tokenRequests.push({
            url: String(url),
            form_fields: [...new Set(form.keys())].sort(),
            assertion_header: header,
            assertion_jti: jti,
            assertion_sha256: assertion ? createHash("sha256").update(assertion).digest("hex") : null,
        });
    } else {
        getRequests.push(String(url));
    }
    return realFetch(url, options);
};

const authority = values.authority;
const auth = {
    clientId: values["client-id"],
    authority,
    // The authority is not one Microsoft knows: trust its host instead of asking
    // login.microsoftonline.com's instance discovery; MSAL still reads
    // {authority}/v2.0/.well-known/openid-configuration and checks its issuer.
    knownAuthorities: [new URL(authority).host],
};
if (values.mode === "secret") {
    auth.clientSecret = process.env.MSAL_CLIENT_SECRET;
} else {
    const privateKey = readFileSync(values.key, "utf8");
    auth.clientCertificate =
        values.mode === "sha256"
            ? { thumbprintSha256: values.thumbprint, privateKey }
            : { thumbprint: values.thumbprint, privateKey };
}
const app = new ConfidentialClientApplication({
    auth,
    system: {
        loggerOptions: {
            logLevel: LogLevel.Warning,
            piiLoggingEnabled: false,
            loggerCallback: (_level, message) => console.error(message),
        },
    },
});

const results = [];
for (const scope of values.scope) {
    try {
        const result = await app.acquireTokenByClientCredential({ scopes: [scope] });
        results.push({
            scope,
            ok: Boolean(result && result.accessToken),
            token_type: result?.tokenType ?? null,
            access_token: result?.accessToken ?? null,
        });
    } catch (error) {
        results.push({
            scope,
            ok: false,
            error: {
                name: error?.name ?? null,
                errorCode: error?.errorCode ?? null,
                errorMessage: error?.errorMessage ?? String(error),
                subError: error?.subError ?? null,
                errorNo: error?.errorNo ?? null,
                status: error?.status ?? null,
            },
        });
    }
}

console.log(
    JSON.stringify({
        msal_version: version,
        results,
        token_requests: tokenRequests,
        get_requests: getRequests,
    }),
);
process.exit(results.every((r) => r.ok) ? 0 : 1);
