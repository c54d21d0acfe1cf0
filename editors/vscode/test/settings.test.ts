import { strict as assert } from "node:assert";
import { test } from "node:test";
import {
  didChangeConfigurationParams,
  documentSelector,
  languages,
  LAUNCH_SETTING_KEYS,
  launchSpec,
  needsRestart,
  SERVER_SETTING_KEYS,
  servesDocument,
  serverSettings,
  type ConfigReader,
} from "../src/settings";
import { API_KEY_SETTING } from "../src/secrets";

/** A fake `WorkspaceConfiguration` reading from a flat object of dotted keys. */
function config(values: Record<string, unknown>): ConfigReader {
  return { get: <T>(key: string) => values[key] as T | undefined };
}

// The defaults that package.json contributes: "use the server's default" everywhere.
const PACKAGE_DEFAULTS: Record<string, unknown> = {
  enabled: true,
  "server.command": "codellama-lsp",
  "server.pythonPath": "",
  "server.args": [],
  "server.env": {},
  languages: ["python"],
  excludeFiles: null,
  completeInComments: null,
  completeInStrings: null,
  model: "",
  backend: "",
  serverUrl: "",
  apiKey: "",
  dtype: "",
  deviceMap: "",
  quantization: "",
  maxContextTokens: null,
  maxNewTokens: null,
  maxNewTokensSingleLine: null,
  temperature: null,
  topP: null,
  promptFormat: "",
  debounceMs: null,
  earlyFirstLine: "",
  keepMatchingGenerations: null,
  idlePrefill: null,
  candidates: null,
  parseCheck: null,
  parseCheckRetries: null,
  httpModelName: "",
  serverApi: "",
  fimSuffixShare: null,
  stopSequences: null,
  prefillChunkTokens: null,
  cacheSize: null,
  cacheTtlS: null,
  kvCacheSlots: null,
  kvCacheMaxTokens: null,
  prefetchAfterAccept: null,
  contextOtherDocuments: null,
  speculative: null,
  speculativeMaxDraft: null,
  draftModel: "",
  contextWorkspace: null,
  contextWorkspaceMaxFiles: null,
  localFilesOnly: null,
  logLevel: "",
};

test("defaults send only `enabled` and `languages`, leaving the rest to the server", () => {
  assert.deepEqual(serverSettings(config(PACKAGE_DEFAULTS)), { enabled: true, languages: ["python"] });
});

test("set values are sent with the server's snake_case keys", () => {
  const settings = serverSettings(
    config({
      ...PACKAGE_DEFAULTS,
      model: " demo ",
      backend: "http",
      serverUrl: "http://127.0.0.1:8000",
      maxNewTokens: 64,
      maxNewTokensSingleLine: 16,
      temperature: 0,
      topP: 0.9,
      debounceMs: 0,
      localFilesOnly: false,
      promptFormat: "fim",
      stopSequences: ["\ndef ", "\nclass "],
      kvCacheSlots: 0,
      prefetchAfterAccept: false,
      excludeFiles: [".env", "*.pem"],
      completeInComments: false,
    }),
  );
  assert.deepEqual(settings, {
    enabled: true,
    languages: ["python"],
    exclude_files: [".env", "*.pem"],
    complete_in_comments: false,
    model: "demo",
    backend: "http",
    server_url: "http://127.0.0.1:8000",
    max_new_tokens: 64,
    max_new_tokens_single_line: 16,
    temperature: 0,
    top_p: 0.9,
    debounce_ms: 0,
    local_files_only: false,
    prompt_format: "fim",
    stop_sequences: ["\ndef ", "\nclass "],
    kv_cache_slots: 0,
    prefetch_after_accept: false,
  });
});

test("every server key is snake_case and every VS Code key is in package.json", async () => {
  const pkg = (await import("node:fs")).readFileSync(`${__dirname}/../../package.json`, "utf8");
  const properties = JSON.parse(pkg).contributes.configuration.properties as Record<string, unknown>;
  for (const [vscodeKey, serverKey] of Object.entries(SERVER_SETTING_KEYS)) {
    assert.match(serverKey, /^[a-z]+(_[a-z]+)*$/);
    assert.ok(`codellama.${vscodeKey}` in properties, `codellama.${vscodeKey} missing in package.json`);
  }
  for (const key of Object.keys(PACKAGE_DEFAULTS)) {
    assert.ok(`codellama.${key}` in properties, `codellama.${key} missing in package.json`);
  }
  // And the converse: each contributed setting is either sent to the server or used by the client.
  const clientOnly = new Set([...LAUNCH_SETTING_KEYS, "trace.server", API_KEY_SETTING]);
  for (const key of Object.keys(properties)) {
    const name = key.replace(/^codellama\./, "");
    assert.ok(clientOnly.has(name) || name in SERVER_SETTING_KEYS, `${key} is not used`);
    assert.ok(name in PACKAGE_DEFAULTS || name === "trace.server", `${key} missing in PACKAGE_DEFAULTS`);
  }
});

test("non-finite numbers and values of other types are dropped", () => {
  assert.deepEqual(serverSettings(config({ temperature: Number.NaN, debounceMs: Infinity, enabled: false })), {
    enabled: false,
  });
  assert.deepEqual(serverSettings(config({ model: [1], backend: { a: 1 } })), {});
  assert.deepEqual(serverSettings(config({ stopSequences: [] })), { stop_sequences: [] });
});

test("didChangeConfiguration nests the settings under `codellama`", () => {
  assert.deepEqual(didChangeConfigurationParams({ model: "demo" }), {
    settings: { codellama: { model: "demo" } },
  });
});

test("launch: command from PATH by default, extra args and env passed", () => {
  assert.deepEqual(launchSpec(config(PACKAGE_DEFAULTS)), { command: "codellama-lsp", args: [], env: {} });
  assert.deepEqual(
    launchSpec(
      config({
        ...PACKAGE_DEFAULTS,
        "server.command": "/opt/venv/bin/codellama-lsp",
        "server.args": ["--model", "demo", ""],
        "server.env": { HF_HOME: "/data/hf", CUDA_VISIBLE_DEVICES: 0 },
      }),
    ),
    {
      command: "/opt/venv/bin/codellama-lsp",
      args: ["--model", "demo"],
      env: { HF_HOME: "/data/hf", CUDA_VISIBLE_DEVICES: "0" },
    },
  );
  assert.equal(launchSpec(config({ "server.command": "  " })).command, "codellama-lsp");
});

test("launch: a Python interpreter runs the package's CLI", () => {
  const spec = launchSpec(config({ ...PACKAGE_DEFAULTS, "server.pythonPath": "/venv/bin/python", "server.args": ["--tcp", "127.0.0.1:9000"] }));
  assert.equal(spec.command, "/venv/bin/python");
  assert.equal(spec.args[0], "-c");
  assert.match(spec.args[1] ?? "", /from codellama_lsp\.cli import main/);
  assert.deepEqual(spec.args.slice(2), ["--tcp", "127.0.0.1:9000"]);
});

test("a document selector and a check for the languages; `*` is every file", () => {
  assert.deepEqual(documentSelector(["python", "rust"]), [
    { language: "python" },
    { scheme: "vscode-notebook-cell", language: "python" },
    { language: "rust" },
    { scheme: "vscode-notebook-cell", language: "rust" },
  ]);
  assert.deepEqual(documentSelector(["*"]), [
    { scheme: "file" },
    { scheme: "untitled" },
    { scheme: "vscode-notebook-cell" },
  ]);
  assert.equal(servesDocument(["python"], "python", "file"), true);
  assert.equal(servesDocument(["python"], "rust", "file"), false);
  assert.equal(servesDocument(["Rust"], "rust", "untitled"), true);
  assert.equal(servesDocument(["*"], "plaintext", "file"), true);
  assert.equal(servesDocument(["*"], "plaintext", "output"), false);
  // Notebook cells: a Python cell is served like a Python file; a markdown cell is not.
  assert.equal(servesDocument(["python"], "python", "vscode-notebook-cell"), true);
  assert.equal(servesDocument(["python"], "markdown", "vscode-notebook-cell"), false);
  assert.equal(servesDocument(["*"], "python", "vscode-notebook-cell"), true);
});

test("languages default to python", () => {
  assert.deepEqual(languages(config({})), ["python"]);
  assert.deepEqual(languages(config({ languages: [] })), ["python"]);
  assert.deepEqual(languages(config({ languages: ["python", "rust"] })), ["python", "rust"]);
});

test("only launch settings need a restart", () => {
  const affects = (changed: string[]) => (section: string) => changed.some((c) => c === section || c.startsWith(`${section}.`));
  assert.equal(needsRestart(affects(["codellama.server.command"])), true);
  assert.equal(needsRestart(affects(["codellama.server.env"])), true);
  assert.equal(needsRestart(affects(["codellama.languages"])), true);
  assert.equal(needsRestart(affects(["codellama.temperature"])), false);
  assert.equal(needsRestart(affects(["codellama.model"])), false);
});
