/**
 * The model server's API key lives in VS Code's SecretStorage (the OS keychain), not in
 * settings.json, which is plain text, often synced, and sometimes committed. The command
 * `Code Llama: Set API Key` stores it; a value found in the old `codellama.apiKey` setting is
 * moved there and removed from the settings. Nothing here imports `vscode`, so it is unit-tested.
 */
import type { ServerSettings } from "./settings";

/** The SecretStorage key. */
export const API_KEY_SECRET = "codellama.apiKey";
/** The old setting (under `codellama.`), read only to move its value into SecretStorage. */
export const API_KEY_SETTING = "apiKey";

/** The subset of `vscode.SecretStorage` used here. */
export interface SecretStore {
  get(key: string): PromiseLike<string | undefined>;
  store(key: string, value: string): PromiseLike<void>;
  delete(key: string): PromiseLike<void>;
}

/** The old setting: its value (any scope) and a way to remove it from every scope. */
export interface LegacySetting {
  value: string | undefined;
  clear(): PromiseLike<void>;
}

/**
 * Move a key from settings.json into SecretStorage; true when one was moved. A key in the
 * settings is the newer one (the user just typed it there), so it replaces a stored one.
 */
export async function migrateApiKey(secrets: SecretStore, legacy: LegacySetting): Promise<boolean> {
  const value = (legacy.value ?? "").trim();
  if (value === "") return false;
  await secrets.store(API_KEY_SECRET, value);
  await legacy.clear();
  return true;
}

/**
 * The server settings with the stored key. Without one, `api_key` is left out so the server's
 * own `--api-key` flag or `CODELLAMA_LSP_API_KEY` apply; after the key was removed from
 * SecretStorage (`removed`), an empty key is sent so the server forgets the old one.
 */
export function withApiKey(settings: ServerSettings, key: string | undefined, removed = false): ServerSettings {
  const trimmed = (key ?? "").trim();
  if (trimmed !== "") return { ...settings, api_key: trimmed };
  if (removed) return { ...settings, api_key: "" };
  const { api_key: _ignored, ...rest } = settings;
  return rest;
}

/**
 * What the Set API Key input box's answer means: undefined (Escape) changes nothing, an empty
 * answer removes the key, anything else is the new key.
 */
export async function applyApiKeyInput(secrets: SecretStore, input: string | undefined): Promise<"unchanged" | "removed" | "stored"> {
  if (input === undefined) return "unchanged";
  const value = input.trim();
  if (value === "") {
    await secrets.delete(API_KEY_SECRET);
    return "removed";
  }
  await secrets.store(API_KEY_SECRET, value);
  return "stored";
}
