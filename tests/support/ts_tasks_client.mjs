// The TypeScript SDK v2 client (@modelcontextprotocol/client) with the Tasks extension's client
// (@modelcontextprotocol/ext-tasks/client) against this server, as a user's Node program would run it.
//
// Usage: MCP_NODE_MODULES=<node_modules dir> node ts_tasks_client.mjs <MCP server URL> <bearer token> <scenario> [run]
//
// The client pins protocol 2026-07-28 (`versionNegotiation: {mode: {pin}}`: connect is `server/discover`, and every
// request carries the per-request `_meta` envelope). For 2026-07-28 task traffic ext-tasks needs the host's raw
// request path (`rawDispatch`) and the client's framing values: here a second StreamableHTTPClientTransport of the
// SDK, owning its own request ids and matching responses, so the headers (`MCP-Protocol-Version`, `Mcp-Method`,
// `Mcp-Name`, the bearer) are the SDK's own.
//
// Scenarios, each printing one JSON line on stdout (errors go to stderr, with a non-zero exit):
//   ask     asking_report as a task, its question answered {archived: true}: {kind, statuses, asked, outcome, result}
//   cancel  long_job {seconds: 60, run} cancelled once it reports progress: {kind, outcome, status}
//   plain   blocking_job (a plain `def` tool) as a task: {kind, outcome, result}
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [serverUrl, token, scenario, run = ""] = process.argv.slice(2);
const modules = process.env.MCP_NODE_MODULES;
if (!serverUrl || !token || !scenario || !modules) {
  console.error("usage: MCP_NODE_MODULES=<dir> node ts_tasks_client.mjs <server url> <token> <ask|cancel|plain> [run]");
  process.exit(2);
}
/** The ES module entry `subpath` of package `name` in MCP_NODE_MODULES, as its package.json exports it. */
const load = (name, subpath = ".") => {
  const folder = join(modules, name);
  let entry = JSON.parse(readFileSync(join(folder, "package.json"), "utf8")).exports[subpath];
  entry = typeof entry === "string" ? entry : (entry.import?.default ?? entry.import ?? entry.default);
  return import(pathToFileURL(join(folder, entry)).href);
};
const { Client, StreamableHTTPClientTransport } = await load("@modelcontextprotocol/client");
const { createApplicationInputHandler, createTaskSessionFromClient, resultFromTaskOutcome } = await load(
  "@modelcontextprotocol/ext-tasks",
  "./client",
);

const timer = setTimeout(() => {
  console.error(`timed out in scenario ${scenario}`);
  process.exit(3);
}, 60_000);

const PROTOCOL = "2026-07-28";
const clientInfo = { name: "ts-sdk-tasks-test", version: "1.0.0" };
const capabilities = { elicitation: { form: {} } };
const auth = { token: async () => token };
const asked = []; // the questions the elicitation handler answered

/** The host's raw request path for ext-tasks: JSON-RPC requests over a transport of their own, answered by id. */
const rawDispatcher = async () => {
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: auth });
  const pending = new Map();
  let next = 0;
  transport.onmessage = (message) => {
    const waiter = pending.get(message.id);
    if (waiter === undefined) return; // notifications: this client polls
    pending.delete(message.id);
    waiter(message.error ? { kind: "error", error: message.error } : { kind: "result", result: message.result });
  };
  await transport.start();
  const dispatch = (request, options = {}) => {
    const id = `ext-tasks-${++next}`;
    const answered = new Promise((resolve) => pending.set(id, resolve));
    const sent = transport.send(
      { jsonrpc: "2.0", id, ...request },
      { headers: options.context?.headers, requestSignal: options.signal },
    );
    return Promise.race([answered, sent.then(() => answered)]).finally(() => pending.delete(id));
  };
  return { dispatch, close: () => transport.close() };
};

const client = new Client(clientInfo, { capabilities, versionNegotiation: { mode: { pin: PROTOCOL } } });
await client.connect(new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: auth }));
const raw = await rawDispatcher();
const session = createTaskSessionFromClient(client, {
  endpointId: serverUrl,
  rawDispatch: raw.dispatch,
  v2RequestFraming: { protocolVersion: PROTOCOL, clientInfo, clientCapabilities: capabilities },
  onInputRequest: createApplicationInputHandler({
    elicitation: async (request) => {
      asked.push(request.params.message);
      return { action: "accept", content: { archived: true } };
    },
  }),
});

/** Settles `execution`, noting every task status it observed. */
const settle = async (execution) => {
  const statuses = [];
  const { outcome } = await execution.settle({
    onEvent: (event) => {
      if (event.type === "task") statuses.push(event.task.status);
    },
  });
  return { statuses, outcome };
};

const scenarios = {
  async ask() {
    const execution = await session.callTool("asking_report", { topic: "kafka", seconds: 0 });
    const { statuses, outcome } = await settle(execution);
    const result = resultFromTaskOutcome(outcome);
    return { kind: execution.kind, statuses, asked, outcome: outcome.status, result };
  },
  async cancel() {
    const execution = await session.callTool("long_job", { seconds: 60, run });
    if (execution.kind !== "task") return { kind: execution.kind };
    const controller = session.task(execution.handle.taskId);
    let task = await controller.snapshot();
    while (task.status === "working" && !task.statusMessage?.startsWith("step")) {
      // until the tool itself reports progress, polling as the server suggests
      await new Promise((resolve) => setTimeout(resolve, task.suggestedPollIntervalMs ?? 100));
      task = await controller.snapshot();
    }
    await execution.cancel();
    const outcome = await execution.result();
    return { kind: execution.kind, outcome: outcome.status, status: (await controller.snapshot()).status };
  },
  async plain() {
    const execution = await session.callTool("blocking_job", { seconds: 0 });
    const { outcome } = await settle(execution);
    return { kind: execution.kind, outcome: outcome.status, result: resultFromTaskOutcome(outcome) };
  },
};

try {
  if (!Object.hasOwn(scenarios, scenario)) throw new Error(`unknown scenario ${scenario}`);
  console.log(JSON.stringify(await scenarios[scenario]()));
  await session.close();
  await raw.close();
  await client.close();
} catch (error) {
  console.error(error?.stack ?? String(error), error?.cause ?? "");
  process.exit(1);
} finally {
  clearTimeout(timer);
}
process.exit(0); // idle keep-alive sockets must not keep Node running
