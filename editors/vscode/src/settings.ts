/**
 * Pure logic for settings: VS Code's `codellama.*` configuration → the server's launch command and
 * its snake_case settings (sent as initializationOptions and with workspace/didChangeConfiguration).
 * Nothing here imports `vscode`, so it is unit-tested with node's test runner.
 */

/** The subset of `vscode.WorkspaceConfiguration` that this module reads. */
export interface ConfigReader {
  get<T>(section: string): T | undefined;
}

/**
 * Server settings: VS Code setting key (under `codellama.`) → server key (snake_case). The API key
 * is not among them: it comes from SecretStorage (see secrets.ts).
 */
export const SERVER_SETTING_KEYS: Readonly<Record<string, string>> = {
  enabled: "enabled",
  languages: "languages",
  excludeFiles: "exclude_files",
  completeInComments: "complete_in_comments",
  completeInStrings: "complete_in_strings",
  model: "model",
  backend: "backend",
  serverUrl: "server_url",
  httpModelName: "http_model_name",
  serverApi: "server_api",
  dtype: "dtype",
  deviceMap: "device_map",
  quantization: "quantization",
  maxContextTokens: "max_context_tokens",
  maxNewTokens: "max_new_tokens",
  maxNewTokensSingleLine: "max_new_tokens_single_line",
  temperature: "temperature",
  topP: "top_p",
  promptFormat: "prompt_format",
  fimSuffixShare: "fim_suffix_share",
  stopSequences: "stop_sequences",
  debounceMs: "debounce_ms",
  earlyFirstLine: "early_first_line",
  keepMatchingGenerations: "keep_matching_generations",
  idlePrefill: "idle_prefill",
  candidates: "candidates",
  parseCheck: "parse_check",
  parseCheckRetries: "parse_check_retries",
  prefillChunkTokens: "prefill_chunk_tokens",
  cacheSize: "cache_size",
  cacheTtlS: "cache_ttl_s",
  kvCacheSlots: "kv_cache_slots",
  kvCacheMaxTokens: "kv_cache_max_tokens",
  prefetchAfterAccept: "prefetch_after_accept",
  contextOtherDocuments: "context_other_documents",
  speculative: "speculative",
  speculativeMaxDraft: "speculative_max_draft",
  draftModel: "draft_model",
  contextWorkspace: "context_workspace",
  contextWorkspaceMaxFiles: "context_workspace_max_files",
  localFilesOnly: "local_files_only",
  logLevel: "log_level",
};

/** Settings that change how the server process is started: a change needs a restart. */
export const LAUNCH_SETTING_KEYS: readonly string[] = [
  "server.command",
  "server.pythonPath",
  "server.args",
  "server.env",
  "languages",
];

export type ServerSettingValue = string | number | boolean | string[];
export type ServerSettings = Record<string, ServerSettingValue>;

/**
 * The settings the server gets. A value left at "use the server's default" (null, undefined or an
 * empty string) is left out, so that the server's own defaults and CLI flags apply.
 */
export function serverSettings(config: ConfigReader): ServerSettings {
  const out: ServerSettings = {};
  for (const [vscodeKey, serverKey] of Object.entries(SERVER_SETTING_KEYS)) {
    const value = config.get<unknown>(vscodeKey);
    if (value === null || value === undefined) continue;
    if (typeof value === "string") {
      const trimmed = value.trim();
      if (trimmed !== "") out[serverKey] = trimmed;
    } else if (typeof value === "number") {
      if (Number.isFinite(value)) out[serverKey] = value;
    } else if (typeof value === "boolean") {
      out[serverKey] = value;
    } else if (Array.isArray(value) && value.every((v) => typeof v === "string")) {
      out[serverKey] = value as string[]; // an empty list is a real value (e.g. no stop sequences)
    }
  }
  return out;
}

/** The body of a workspace/didChangeConfiguration notification for these settings. */
export function didChangeConfigurationParams(settings: ServerSettings): {
  settings: { codellama: ServerSettings };
} {
  return { settings: { codellama: settings } };
}

export interface LaunchSpec {
  command: string;
  args: string[];
  env: Record<string, string>;
}

/**
 * How to start the server. With `server.pythonPath` set, the interpreter runs the package's CLI
 * (so a venv need not be on PATH); otherwise `server.command` (default `codellama-lsp`).
 */
export function launchSpec(config: ConfigReader): LaunchSpec {
  const pythonPath = (config.get<string>("server.pythonPath") ?? "").trim();
  const command = (config.get<string>("server.command") ?? "").trim() || "codellama-lsp";
  const extraArgs = stringArray(config.get<unknown>("server.args"));
  const env = stringRecord(config.get<unknown>("server.env"));
  if (pythonPath !== "") {
    return {
      command: pythonPath,
      args: ["-c", "import sys; from codellama_lsp.cli import main; sys.exit(main())", ...extraArgs],
      env,
    };
  }
  return { command, args: extraArgs, env };
}

/** The language ids to serve (default: python; `*`: every language). */
export function languages(config: ConfigReader): string[] {
  const langs = stringArray(config.get<unknown>("languages"));
  return langs.length > 0 ? langs : ["python"];
}

/** The URI scheme of a notebook's cells (a Jupyter notebook's cell is a text document of its own). */
export const NOTEBOOK_CELL_SCHEME = "vscode-notebook-cell";

/** Schemes of the documents `*` serves: files, untitled ones and notebook cells. */
const EVERY_LANGUAGE_SCHEMES = ["file", "untitled", NOTEBOOK_CELL_SCHEME];

type DocumentFilter = { language: string } | { scheme: string } | { scheme: string; language: string };

/**
 * The language client's document selector for `languages` (`*`: files, untitled ones and
 * notebook cells). Each language's notebook cells are named too: the language client then
 * syncs Jupyter notebooks over LSP's notebook sync (the server asks for it), so that a cell's
 * prompt holds the cells above it, and asks for ghost text in those cells as in a file.
 */
export function documentSelector(langs: string[]): DocumentFilter[] {
  if (langs.includes("*")) return EVERY_LANGUAGE_SCHEMES.map((scheme) => ({ scheme }));
  return langs.flatMap((language) => [{ language }, { scheme: NOTEBOOK_CELL_SCHEME, language }]);
}

/** Whether a document (its language id and URI scheme) is one the server completes. */
export function servesDocument(langs: string[], languageId: string, scheme: string): boolean {
  if (langs.includes("*")) return EVERY_LANGUAGE_SCHEMES.includes(scheme);
  return langs.some((language) => language.toLowerCase() === languageId.toLowerCase());
}

/** Whether a configuration change touches settings that need the server restarted. */
export function needsRestart(affects: (section: string) => boolean): boolean {
  return LAUNCH_SETTING_KEYS.some((key) => affects(`codellama.${key}`));
}

function stringArray(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  return value.filter((v): v is string => typeof v === "string" && v.trim() !== "");
}

function stringRecord(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) return out;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v === "string") out[k] = v;
    else if (typeof v === "number" || typeof v === "boolean") out[k] = String(v);
  }
  return out;
}
