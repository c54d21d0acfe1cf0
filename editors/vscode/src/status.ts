/**
 * Pure logic for the status bar: the server's `codellama/status` object (and the client's own
 * states) → what the status bar item shows. No `vscode` import: unit-tested with node's test runner.
 */
import { clock } from "./snooze";

export type ServerState = "loading" | "ready" | "error" | "disabled" | "snoozed";
/** Client-side states that the server cannot report itself. */
export type ClientState = "starting" | "stopped";
export type State = ServerState | ClientState;

/** The object the server sends with `codellama/status` and returns from `codellama.status`. */
export interface ServerStatus {
  state: ServerState;
  message?: string | null;
  model?: string | null;
  last_latency_ms?: number | null;
  /** While snoozed: when it ends (seconds since the epoch); null: until restart. */
  snoozed_until?: number | null;
  /** A generation for a request is queued or running (a suggestion is being written). */
  generating?: boolean;
  /** Recent suggestions came too late to be used: the server's message (why, what would help). */
  slow?: string | null;
}

/** Work-done progress seen while the model loads (`$/progress`). */
export interface Progress {
  title?: string;
  message?: string;
  percentage?: number;
}

export interface StatusView {
  /** Status bar text, with a codicon: `$(check) Code Llama: ready · 12 ms`. */
  text: string;
  tooltip: string;
  /** The command run on click. */
  command: string;
  /** A theme color id for the background, for states that need attention. */
  background?: "statusBarItem.errorBackground" | "statusBarItem.warningBackground";
}

/** The acceptance figures of `codellama.stats` (its `acceptance` object). */
export interface Acceptance {
  shown: number;
  accepted: number;
  accepted_chars: number;
  partially_accepted: number;
  partially_accepted_chars: number;
  dismissed: number;
  acceptance_rate: number | null;
  retained_after_30s?: Retained;
  retained_after_20_edits?: Retained;
}

export interface Retained {
  accepted_chars: number;
  kept_share: number | null;
}

const ACCEPTANCE_COUNTS = [
  "shown",
  "accepted",
  "accepted_chars",
  "partially_accepted",
  "partially_accepted_chars",
  "dismissed",
] as const;

/** The `acceptance` object of an untrusted `codellama.stats` result; null when absent. */
export function parseAcceptance(stats: unknown): Acceptance | null {
  if (stats === null || typeof stats !== "object") return null;
  const a = (stats as Record<string, unknown>).acceptance;
  if (a === null || typeof a !== "object") return null;
  const v = a as Record<string, unknown>;
  if (!ACCEPTANCE_COUNTS.every((key) => typeof v[key] === "number")) return null;
  const retained = (value: unknown): Retained | undefined => {
    if (value === null || typeof value !== "object") return undefined;
    const r = value as Record<string, unknown>;
    if (typeof r.accepted_chars !== "number") return undefined;
    return { accepted_chars: r.accepted_chars, kept_share: typeof r.kept_share === "number" ? r.kept_share : null };
  };
  return {
    ...(Object.fromEntries(ACCEPTANCE_COUNTS.map((key) => [key, v[key]])) as Record<
      (typeof ACCEPTANCE_COUNTS)[number],
      number
    >),
    acceptance_rate: typeof v.acceptance_rate === "number" ? v.acceptance_rate : null,
    retained_after_30s: retained(v.retained_after_30s),
    retained_after_20_edits: retained(v.retained_after_20_edits),
  };
}

const percent = (share: number | null): string => (share === null ? "-" : `${Math.round(share * 100)}%`);

/** The figures as lines for people: counts, acceptance rate, text still there. */
export function acceptanceLines(a: Acceptance): string[] {
  const lines = [
    `Suggestions: ${a.shown} shown, ${a.accepted} accepted, ${a.partially_accepted} partly accepted, ` +
      `${a.dismissed} dismissed (acceptance ${percent(a.acceptance_rate)})`,
    `Accepted: ${a.accepted_chars} chars whole, ${a.partially_accepted_chars} chars in parts`,
  ];
  const kept: [string, Retained | undefined][] = [
    ["after 30 s", a.retained_after_30s],
    ["after 20 edits", a.retained_after_20_edits],
  ];
  for (const [when, r] of kept) {
    if (r && r.accepted_chars > 0) lines.push(`Still there ${when}: ${percent(r.kept_share)} of ${r.accepted_chars} chars`);
  }
  return lines;
}

const KNOWN_STATES: readonly ServerState[] = ["loading", "ready", "error", "disabled", "snoozed"];

/** Validate an untrusted notification payload; null when it is not a status object. */
export function parseStatus(value: unknown): ServerStatus | null {
  if (value === null || typeof value !== "object") return null;
  const v = value as Record<string, unknown>;
  if (typeof v.state !== "string" || !KNOWN_STATES.includes(v.state as ServerState)) return null;
  const status: ServerStatus = { state: v.state as ServerState };
  if (typeof v.message === "string") status.message = v.message;
  if (typeof v.model === "string") status.model = v.model;
  if (typeof v.last_latency_ms === "number" && Number.isFinite(v.last_latency_ms)) {
    status.last_latency_ms = v.last_latency_ms;
  }
  if (typeof v.snoozed_until === "number" && Number.isFinite(v.snoozed_until)) status.snoozed_until = v.snoozed_until;
  if (typeof v.generating === "boolean") status.generating = v.generating;
  if (typeof v.slow === "string" && v.slow !== "") status.slow = v.slow;
  return status;
}

/**
 * How long the server must have been writing a suggestion before the status bar says so: a fast
 * model's suggestion comes sooner, and a spinner that came and went for each of them would only
 * flicker.
 */
export const WRITING_DELAY_MS = 250;

/**
 * Whether the status bar shows that a suggestion is being written: the server's `generating`,
 * once it has lasted WRITING_DELAY_MS. `changed` is called when that flips.
 */
export class WritingIndicator {
  private since: ReturnType<typeof setTimeout> | undefined;
  private shownNow = false;

  constructor(
    private readonly changed: () => void,
    private readonly delayMs = WRITING_DELAY_MS,
  ) {}

  /** Whether the spinner is on. */
  get shown(): boolean {
    return this.shownNow;
  }

  /** The server's `generating` (from each status). */
  update(generating: boolean): void {
    if (!generating) {
      this.stopTimer();
      this.set(false);
    } else if (!this.shownNow && this.since === undefined) {
      this.since = setTimeout(() => {
        this.since = undefined;
        this.set(true);
      }, this.delayMs);
    }
  }

  dispose(): void {
    this.stopTimer();
  }

  private stopTimer(): void {
    if (this.since !== undefined) clearTimeout(this.since);
    this.since = undefined;
  }

  private set(shown: boolean): void {
    if (shown === this.shownNow) return;
    this.shownNow = shown;
    this.changed();
  }
}

/** `1234.5` → `1.23 s`, `87.2` → `87 ms`. */
export function formatLatency(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.round(ms)} ms`;
}

/** The status bar item's menu (snooze, stats, …). */
export const STATUS_MENU_COMMAND = "codellama.statusMenu";

/** " until 14:05" (local time) for the server's `snoozed_until`, "" for until restart. */
function snoozedUntil(seconds: number | null | undefined): string {
  return typeof seconds === "number" ? ` until ${clock(seconds * 1000)}` : "";
}

/**
 * What the status bar shows for a state. `writing`: a suggestion has been being written for a
 * while (see WritingIndicator): a spinner while the server is ready.
 */
export function statusView(
  state: State,
  status?: ServerStatus | null,
  progress?: Progress | null,
  acceptance?: Acceptance | null,
  writing = false,
): StatusView {
  const model = status?.model ? `Model: ${status.model}` : "";
  const message = status?.message ?? "";
  const lines = (...parts: string[]): string => parts.filter((p) => p !== "").join("\n");
  switch (state) {
    case "starting":
      return {
        text: "$(loading~spin) Code Llama: starting",
        tooltip: "Starting the codellama-lsp server…",
        command: "codellama.showLog",
      };
    case "loading": {
      const pct =
        progress?.percentage !== undefined ? ` ${Math.round(progress.percentage)}%` : "";
      const detail = progress?.message ?? message;
      return {
        text: `$(loading~spin) Code Llama: loading${pct}`,
        tooltip: lines("Loading the model…", model, detail),
        command: "codellama.showLog",
      };
    }
    case "ready": {
      const latency = status?.last_latency_ms;
      const suffix = latency !== undefined && latency !== null ? ` · ${formatLatency(latency)}` : "";
      const slow = status?.slow ?? null;
      // Writing (a spinner) wins over slow and ready; slow keeps its warning background.
      const text = writing
        ? "$(loading~spin) Code Llama: writing…"
        : slow
          ? `$(warning) Code Llama: slow${suffix}`
          : `$(check) Code Llama: ready${suffix}`;
      return {
        text,
        tooltip: lines(
          writing ? "Code Llama is writing a suggestion…" : "",
          slow ?? "",
          "Code Llama is ready. Click for the menu: snooze, stats, …",
          model,
          latency !== undefined && latency !== null
            ? `Last completion: ${formatLatency(latency)}`
            : "",
          ...(acceptance ? acceptanceLines(acceptance) : []),
        ),
        command: STATUS_MENU_COMMAND,
        ...(slow ? { background: "statusBarItem.warningBackground" as const } : {}),
      };
    }
    case "snoozed": {
      const until = snoozedUntil(status?.snoozed_until);
      return {
        text: `$(bell-slash) Code Llama: snoozed${until}`,
        tooltip: lines(`Suggestions are snoozed${until}. Click to resume or snooze longer.`, model),
        command: STATUS_MENU_COMMAND,
      };
    }
    case "error":
      return {
        text: "$(error) Code Llama: error",
        tooltip: lines(`Error: ${message || "see the log"}`, model, "Click to show the log."),
        command: "codellama.showLog",
        background: "statusBarItem.errorBackground",
      };
    case "disabled":
      return {
        text: "$(circle-slash) Code Llama: off",
        tooltip: "Completions are off. Click to turn them on.",
        command: "codellama.toggle",
      };
    case "stopped":
      return {
        text: "$(debug-disconnect) Code Llama: stopped",
        tooltip: lines("The server is not running. Click to restart it.", message),
        command: "codellama.restartServer",
        background: "statusBarItem.warningBackground",
      };
  }
}

/** Stats (`codellama.stats`) as Markdown-free plain text lines for the output channel. */
export function formatStats(stats: unknown): string {
  if (stats === null || typeof stats !== "object") return String(stats);
  const out: string[] = [];
  const walk = (obj: Record<string, unknown>, prefix: string): void => {
    for (const [key, value] of Object.entries(obj)) {
      if (value !== null && typeof value === "object" && !Array.isArray(value)) {
        walk(value as Record<string, unknown>, `${prefix}${key}.`);
      } else {
        const shown = typeof value === "number" && !Number.isInteger(value) ? value.toFixed(1) : JSON.stringify(value);
        out.push(`${prefix}${key}: ${shown}`);
      }
    }
  };
  walk(stats as Record<string, unknown>, "");
  return out.join("\n");
}
