import { strict as assert } from "node:assert";
import { test } from "node:test";
import {
  acceptanceLines,
  formatLatency,
  formatStats,
  parseAcceptance,
  parseStatus,
  statusView,
  WRITING_DELAY_MS,
  WritingIndicator,
} from "../src/status";

test("parseStatus accepts the server's object and rejects anything else", () => {
  assert.deepEqual(parseStatus({ state: "ready", message: "ok", model: "demo", last_latency_ms: 12.5 }), {
    state: "ready",
    message: "ok",
    model: "demo",
    last_latency_ms: 12.5,
  });
  assert.deepEqual(parseStatus({ state: "loading", message: null, model: null, last_latency_ms: null }), {
    state: "loading",
  });
  assert.equal(parseStatus({ state: "sleeping" }), null);
  assert.equal(parseStatus(null), null);
  assert.equal(parseStatus("ready"), null);
  assert.equal(parseStatus([]), null);
});

test("latency formatting", () => {
  assert.equal(formatLatency(0), "0 ms");
  assert.equal(formatLatency(87.4), "87 ms");
  assert.equal(formatLatency(999.6), "1000 ms");
  assert.equal(formatLatency(1234.5), "1.23 s");
});

test("ready shows the last latency and opens the menu", () => {
  const view = statusView("ready", { state: "ready", model: "demo", last_latency_ms: 42 });
  assert.equal(view.text, "$(check) Code Llama: ready · 42 ms");
  assert.equal(view.command, "codellama.statusMenu");
  assert.match(view.tooltip, /Model: demo/);
  assert.match(view.tooltip, /Last completion: 42 ms/);
  assert.equal(view.background, undefined);
  assert.equal(statusView("ready", { state: "ready" }).text, "$(check) Code Llama: ready");
});

test("loading spins and shows progress", () => {
  const view = statusView("loading", { state: "loading", model: "codellama/CodeLlama-7b-hf" }, { message: "weights 3/4", percentage: 75.2 });
  assert.equal(view.text, "$(loading~spin) Code Llama: loading 75%");
  assert.match(view.tooltip, /weights 3\/4/);
  assert.equal(statusView("loading", { state: "loading" }).text, "$(loading~spin) Code Llama: loading");
});

test("error is red and opens the log", () => {
  const view = statusView("error", { state: "error", message: "CUDA out of memory" });
  assert.equal(view.text, "$(error) Code Llama: error");
  assert.equal(view.command, "codellama.showLog");
  assert.equal(view.background, "statusBarItem.errorBackground");
  assert.match(view.tooltip, /CUDA out of memory/);
});

test("disabled toggles back on; stopped restarts; starting shows the log", () => {
  assert.equal(statusView("disabled").command, "codellama.toggle");
  assert.equal(statusView("disabled").text, "$(circle-slash) Code Llama: off");
  assert.equal(statusView("stopped").command, "codellama.restartServer");
  assert.equal(statusView("starting").command, "codellama.showLog");
});

test("stats are flattened one per line", () => {
  assert.equal(
    formatStats({ requests: 3, latency_ms: { p50: 12.345, p95: 20 }, model: "demo" }),
    'requests: 3\nlatency_ms.p50: 12.3\nlatency_ms.p95: 20\nmodel: "demo"',
  );
  assert.equal(formatStats(null), "null");
});

test("acceptance figures: parsed from codellama.stats, shown in the ready tooltip", () => {
  const stats = {
    requests: 9,
    acceptance: {
      shown: 4,
      accepted: 2,
      accepted_chars: 30,
      partially_accepted: 1,
      partially_accepted_chars: 4,
      dismissed: 1,
      acceptance_rate: 0.75,
      retained_after_30s: { accepted_chars: 34, kept_chars: 30, kept_share: 0.882 },
      retained_after_20_edits: { accepted_chars: 0, kept_chars: 0, kept_share: null },
    },
  };
  const acceptance = parseAcceptance(stats);
  assert.ok(acceptance);
  assert.deepEqual(acceptanceLines(acceptance), [
    "Suggestions: 4 shown, 2 accepted, 1 partly accepted, 1 dismissed (acceptance 75%)",
    "Accepted: 30 chars whole, 4 chars in parts",
    "Still there after 30 s: 88% of 34 chars",
  ]);
  const view = statusView("ready", { state: "ready", model: "demo" }, null, acceptance);
  assert.match(view.tooltip, /4 shown, 2 accepted/);
  assert.equal(parseAcceptance({ requests: 1 }), null);
  assert.equal(parseAcceptance({ acceptance: { shown: "4" } }), null);
});

test("snoozed says until when, and opens the menu", () => {
  const until = new Date(2030, 0, 2, 14, 5).getTime() / 1000;
  const parsed = parseStatus({ state: "snoozed", snoozed: true, snoozed_until: until });
  assert.deepEqual(parsed, { state: "snoozed", snoozed_until: until });
  const view = statusView("snoozed", parsed);
  assert.equal(view.text, "$(bell-slash) Code Llama: snoozed until 14:05");
  assert.equal(view.command, "codellama.statusMenu");
  assert.match(view.tooltip, /snoozed until 14:05/);
  const restart = statusView("snoozed", { state: "snoozed", snoozed_until: null });
  assert.equal(restart.text, "$(bell-slash) Code Llama: snoozed");
});

test("generating and slow are parsed; anything else is left out", () => {
  const slow = "codellama-lsp: suggestions take 4.2 s (median of the last 9), too late to be useful while you type.";
  assert.deepEqual(parseStatus({ state: "ready", generating: true, slow }), { state: "ready", generating: true, slow });
  assert.deepEqual(parseStatus({ state: "ready", generating: false, slow: null }), { state: "ready", generating: false });
  assert.deepEqual(parseStatus({ state: "ready", generating: "yes", slow: 3 }), { state: "ready" });
});

test("writing a suggestion: a spinner, and the tooltip says so", () => {
  const status = { state: "ready" as const, model: "demo", last_latency_ms: 42, generating: true };
  const view = statusView("ready", status, null, null, true);
  assert.equal(view.text, "$(loading~spin) Code Llama: writing…");
  assert.match(view.tooltip, /^Code Llama is writing a suggestion…/);
  assert.match(view.tooltip, /Model: demo/);
  assert.equal(view.command, "codellama.statusMenu");
  assert.equal(view.background, undefined);
  // Not yet shown (the indicator waits): the status bar stays as it was.
  assert.equal(statusView("ready", status, null, null, false).text, "$(check) Code Llama: ready · 42 ms");
  // Only while ready: loading, snoozed, … are what they were.
  assert.equal(statusView("snoozed", { state: "snoozed" }, null, null, true).text, "$(bell-slash) Code Llama: snoozed");
});

test("slow: a warning with the server's message in the tooltip, also while writing", () => {
  const slow = "codellama-lsp: 7 of the last 10 suggestions came after you had typed on. What would help: x.";
  const status = { state: "ready" as const, last_latency_ms: 4200, slow };
  const view = statusView("ready", status);
  assert.equal(view.text, "$(warning) Code Llama: slow · 4.20 s");
  assert.equal(view.background, "statusBarItem.warningBackground");
  assert.match(view.tooltip, /^codellama-lsp: 7 of the last 10 suggestions came after you had typed on/);
  assert.match(view.tooltip, /What would help: x\./);
  const writing = statusView("ready", status, null, null, true);
  assert.equal(writing.text, "$(loading~spin) Code Llama: writing…");
  assert.equal(writing.background, "statusBarItem.warningBackground");
  assert.match(writing.tooltip, /What would help/);
});

test("the spinner shows only once generating has lasted the delay", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let changes = 0;
  const writing = new WritingIndicator(() => changes++);
  assert.equal(WRITING_DELAY_MS, 250);
  // A fast model: generating starts and ends within the delay; nothing shows, nothing redraws.
  writing.update(true);
  t.mock.timers.tick(200);
  writing.update(false);
  t.mock.timers.tick(1000);
  assert.equal(writing.shown, false);
  assert.equal(changes, 0);
  // A slow one: shown after the delay (statuses meanwhile do not restart the wait), then off.
  writing.update(true);
  t.mock.timers.tick(150);
  writing.update(true);
  t.mock.timers.tick(100);
  assert.equal(writing.shown, true);
  assert.equal(changes, 1);
  writing.update(true);
  assert.equal(changes, 1);
  writing.update(false);
  assert.equal(writing.shown, false);
  assert.equal(changes, 2);
  // Disposed while waiting: nothing fires later.
  writing.update(true);
  writing.dispose();
  t.mock.timers.tick(1000);
  assert.equal(writing.shown, false);
  assert.equal(changes, 2);
});
