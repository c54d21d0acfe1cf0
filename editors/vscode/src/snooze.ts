/**
 * Pure logic for the snooze: the menu's choices, when a snooze ends, what the status bar says,
 * what is kept in the workspace's state. No `vscode` import: unit-tested with node's test runner.
 * The server does the same on its side (`codellama.snooze`), so the status and other clients agree.
 */

/** A snooze: until a moment (ms since the epoch), or until VS Code (this window) restarts. */
export type Snooze = { until: number } | { untilRestart: true };

/** What `codellama.snooze` is asked: minutes (0 resumes), or null for "until restart". */
export type SnoozeRequest = { minutes: number | null };

export interface SnoozeChoice {
  label: string;
  description?: string;
  /** Minutes; null: until restart; 0: resume; "ask": ask for the minutes. */
  minutes: number | null | "ask";
}

/** The menu's snooze entries (with "Resume" first while snoozed). */
export function snoozeChoices(current: Snooze | null, now: number): SnoozeChoice[] {
  const choices: SnoozeChoice[] = [];
  if (current !== null && isActive(current, now)) {
    choices.push({ label: "$(bell) Resume suggestions", description: describeSnooze(current), minutes: 0 });
  }
  choices.push(
    { label: "$(bell-slash) Snooze for 5 minutes", minutes: 5 },
    { label: "$(bell-slash) Snooze for 30 minutes", minutes: 30 },
    { label: "$(bell-slash) Snooze until restart", description: "in this workspace", minutes: null },
    { label: "$(bell-slash) Snooze for…", description: "minutes", minutes: "ask" },
  );
  return choices;
}

/** Minutes typed into the "Snooze for…" box; null when it is not a positive number. */
export function parseMinutes(text: string): number | null {
  const value = Number(text.trim().replace(",", "."));
  return Number.isFinite(value) && value > 0 && value <= 7 * 24 * 60 ? value : null;
}

/** The snooze that `minutes` starts at `now` (null: none, i.e. resume). */
export function snoozeFor(minutes: number | null, now: number): Snooze | null {
  if (minutes === null) return { untilRestart: true };
  if (minutes <= 0) return null;
  return { until: now + minutes * 60_000 };
}

export function isActive(snooze: Snooze | null, now: number): boolean {
  if (snooze === null) return false;
  return "untilRestart" in snooze || snooze.until > now;
}

/** Milliseconds until a timed snooze ends (null for none or until restart). */
export function remainingMs(snooze: Snooze | null, now: number): number | null {
  if (snooze === null || "untilRestart" in snooze) return null;
  return Math.max(0, snooze.until - now);
}

/** The server's command argument for what is left of `snooze` (resume when it is over). */
export function serverRequest(snooze: Snooze | null, now: number): SnoozeRequest {
  if (snooze === null || !isActive(snooze, now)) return { minutes: 0 };
  if ("untilRestart" in snooze) return { minutes: null };
  return { minutes: (snooze.until - now) / 60_000 };
}

/** `14:05` for a moment in ms since the epoch, in local time. */
export function clock(ms: number): string {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

/** "until 14:05" or "until restart". */
export function describeSnooze(snooze: Snooze): string {
  return "untilRestart" in snooze ? "until restart" : `until ${clock(snooze.until)}`;
}

/**
 * The snooze kept in the workspace's state: only a timed one (one "until restart" ends with the
 * window), and only while it lasts. `stored` is untrusted (what the state held).
 */
export function restoredSnooze(stored: unknown, now: number): Snooze | null {
  if (typeof stored !== "number" || !Number.isFinite(stored) || stored <= now) return null;
  return { until: stored };
}

/** The value to keep in the workspace's state for `snooze` (undefined: nothing). */
export function storedSnooze(snooze: Snooze | null): number | undefined {
  return snooze !== null && "until" in snooze ? snooze.until : undefined;
}

/** The server's `snoozed_until` (seconds since the epoch, or null: until restart) as a snooze. */
export function fromServer(snoozed: boolean, snoozedUntil: number | null | undefined): Snooze | null {
  if (!snoozed) return null;
  return typeof snoozedUntil === "number" ? { until: snoozedUntil * 1000 } : { untilRestart: true };
}
