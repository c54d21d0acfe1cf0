import { strict as assert } from "node:assert";
import { test } from "node:test";
import { API_KEY_SECRET, applyApiKeyInput, migrateApiKey, type SecretStore, withApiKey } from "../src/secrets";
import { serverSettings } from "../src/settings";

/** An in-memory SecretStorage. */
function store(initial: Record<string, string> = {}): SecretStore & { data: Map<string, string> } {
  const data = new Map(Object.entries(initial));
  return {
    data,
    get: async (key) => data.get(key),
    store: async (key, value) => void data.set(key, value),
    delete: async (key) => void data.delete(key),
  };
}

test("a key in settings.json moves to secret storage and leaves the settings", async () => {
  const secrets = store();
  let setting: string | undefined = " sk-123 ";
  const moved = await migrateApiKey(secrets, { value: setting, clear: async () => void (setting = undefined) });
  assert.equal(moved, true);
  assert.equal(secrets.data.get(API_KEY_SECRET), "sk-123");
  assert.equal(setting, undefined);
});

test("nothing to move: the stored key stays and the settings are not touched", async () => {
  const secrets = store({ [API_KEY_SECRET]: "kept" });
  let cleared = false;
  for (const value of [undefined, "", "   "]) {
    assert.equal(await migrateApiKey(secrets, { value, clear: async () => void (cleared = true) }), false);
  }
  assert.equal(secrets.data.get(API_KEY_SECRET), "kept");
  assert.equal(cleared, false);
});

test("the server gets the stored key, never the settings.json value", () => {
  const fromSettings = serverSettings({ get: <T>(key: string) => ({ apiKey: "leaked", enabled: true })[key] as T });
  assert.deepEqual(fromSettings, { enabled: true });
  assert.deepEqual(withApiKey(fromSettings, "secret"), { enabled: true, api_key: "secret" });
  // No key: the server's own flag or environment variable applies.
  assert.deepEqual(withApiKey(fromSettings, undefined), { enabled: true });
  // A removed key is cleared on the server too.
  assert.deepEqual(withApiKey(fromSettings, undefined, true), { enabled: true, api_key: "" });
});

test("Set API Key: Escape changes nothing, an empty answer removes the key", async () => {
  const secrets = store({ [API_KEY_SECRET]: "old" });
  assert.equal(await applyApiKeyInput(secrets, undefined), "unchanged");
  assert.equal(secrets.data.get(API_KEY_SECRET), "old");
  assert.equal(await applyApiKeyInput(secrets, " new "), "stored");
  assert.equal(secrets.data.get(API_KEY_SECRET), "new");
  assert.equal(await applyApiKeyInput(secrets, ""), "removed");
  assert.equal(secrets.data.has(API_KEY_SECRET), false);
});
