// The TypeScript SDK's OAuth client against this server, as a user's Node program would run it.
//
// Usage: node ts_oauth_client.mjs <MCP server URL> <client id>   (MCP_TS_SDK: the @modelcontextprotocol/sdk package dir)
// A client id of `register` registers the client dynamically instead (RFC 7591, at the authorization-server facade).
//
// A pre-registered public client (the dev issuer's DEV_ISSUER__CLIENT_ID) with a loopback redirect URI on a free port
// (RFC 8252). It connects, gets 401, and the SDK discovers PRM and the authorization server and builds the authorization
// URL, which this prints as {"authorize": url}; whoever drives the browser opens it. The redirect comes back to the
// loopback listener here; the SDK exchanges the code (PKCE), reconnects, lists tools and calls whoami, and this prints
// {"tools": [...], "whoami": {...}, "scope": "..."}. Tokens are never printed.
import { randomBytes } from "node:crypto";
import http from "node:http";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [serverUrl, clientId] = process.argv.slice(2);
const sdk = process.env.MCP_TS_SDK;
if (!serverUrl || !clientId || !sdk) {
  console.error("usage: MCP_TS_SDK=<sdk package dir> node ts_oauth_client.mjs <server url> <client id>");
  process.exit(2);
}
const load = (path) => import(pathToFileURL(join(sdk, "dist", "esm", path)).href);
const { Client } = await load("client/index.js");
const { StreamableHTTPClientTransport } = await load("client/streamableHttp.js");
const { UnauthorizedError } = await load("client/auth.js");

// The loopback redirect URI: answers the browser, hands the authorization response to the flow below.
const callback = http.createServer();
await new Promise((resolve) => callback.listen(0, "127.0.0.1", resolve));
const redirectUrl = `http://127.0.0.1:${callback.address().port}/callback`;
const authorizationResponse = new Promise((resolve) => {
  callback.on("request", (request, response) => {
    const url = new URL(request.url, redirectUrl);
    if (url.pathname !== "/callback") {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { "content-type": "text/html" }).end("<p>Signed in; you can close this window.</p>");
    resolve(Object.fromEntries(url.searchParams));
  });
});

/** OAuthClientProvider for a pre-registered public client; everything in memory. */
class PreRegisteredClient {
  constructor() {
    this.expectedState = randomBytes(16).toString("hex");
    this.saved = undefined;
    this.verifier = undefined;
  }
  get redirectUrl() {
    return redirectUrl;
  }
  get clientMetadata() {
    return {
      client_name: "ts-sdk-oauth-test",
      redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  state() {
    return this.expectedState;
  }
  clientInformation() {
    if (clientId === "register") return this.registered; // undefined until the SDK has registered
    return { client_id: clientId, redirect_uris: [redirectUrl], token_endpoint_auth_method: "none" };
  }
  saveClientInformation(information) {
    this.registered = information;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens) {
    this.saved = tokens;
  }
  redirectToAuthorization(url) {
    console.log(JSON.stringify({ authorize: url.href }));
  }
  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

const provider = new PreRegisteredClient();
const connect = async () => {
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider });
  const client = new Client({ name: "ts-sdk-oauth-test", version: "1.0.0" });
  await client.connect(transport);
  return { client, transport };
};

const timer = setTimeout(() => {
  console.error("timed out waiting for the sign-in");
  process.exit(3);
}, 90_000);
try {
  let first;
  try {
    first = await connect();
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
  }
  if (first) throw new Error("connected without signing in");
  const answer = await authorizationResponse;
  if (answer.error) throw new Error(`authorization refused: ${answer.error}: ${answer.error_description}`);
  if (answer.state !== provider.expectedState) throw new Error("state mismatch");
  const pending = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider });
  await pending.finishAuth(answer.code);
  const { client } = await connect();
  const tools = (await client.listTools()).tools.map((tool) => tool.name).sort();
  const whoami = (await client.callTool({ name: "whoami", arguments: {} })).structuredContent;
  const registered = provider.registered?.client_id ?? null;
  console.log(JSON.stringify({ tools, whoami, scope: provider.saved?.scope ?? null, registered }));
  await client.close();
} finally {
  clearTimeout(timer);
  callback.close();
}
process.exit(0); // idle keep-alive sockets must not keep Node running
