import { strict as assert } from "node:assert";
import { test } from "node:test";
import { parseServerLogLine } from "../src/serverLog";

test("Python logging lines keep their level, without the duplicate timestamp", () => {
  assert.deepEqual(
    parseServerLogLine("2026-11-26 07:27:47,706 INFO codellama_lsp.engines.factory: loading in-process"),
    { level: "info", message: "codellama_lsp.engines.factory: loading in-process" },
  );
  assert.deepEqual(parseServerLogLine("2026-11-26 07:27:47,706 WARNING slow prefill"), {
    level: "warn",
    message: "slow prefill",
  });
  assert.equal(parseServerLogLine("ERROR: could not load model").level, "error");
  assert.equal(parseServerLogLine("CRITICAL boom").level, "error");
  assert.equal(parseServerLogLine("DEBUG x").level, "debug");
});

test("other lines are info, a traceback start is an error", () => {
  assert.deepEqual(parseServerLogLine("Loading weights: 100%|██████████| 38/38"), {
    level: "info",
    message: "Loading weights: 100%|██████████| 38/38",
  });
  assert.equal(parseServerLogLine("Traceback (most recent call last):").level, "error");
  assert.equal(parseServerLogLine("INFORMATION is not a level").level, "info");
  assert.equal(parseServerLogLine("INFORMATION is not a level").message, "INFORMATION is not a level");
});
