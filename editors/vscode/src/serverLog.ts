/**
 * Server stderr → the log output channel at the right level. The server logs with Python's
 * logging (`2026-11-26 07:27:47,706 INFO codellama_lsp.x: message`); the language client's default
 * would show every stderr line as an error. Pure: unit-tested without VS Code.
 */

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";

export interface LogLine {
  level: LogLevel;
  message: string;
}

const PYTHON_LEVELS: Readonly<Record<string, LogLevel>> = {
  DEBUG: "debug",
  INFO: "info",
  WARNING: "warn",
  WARN: "warn",
  ERROR: "error",
  CRITICAL: "error",
  FATAL: "error",
};

// Optional "2026-11-26 07:27:47,706 " timestamp, then the level, then the rest.
const LOG_LINE = /^(?:\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\s+)?(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b[:\s]*(.*)$/;

/** The level and message of one stderr line; lines without a level (progress bars, tracebacks'
 * continuation) are `info`, except the start of a traceback. */
export function parseServerLogLine(line: string): LogLine {
  const m = LOG_LINE.exec(line);
  if (m) {
    const level = PYTHON_LEVELS[m[1] ?? ""] ?? "info";
    return { level, message: m[2] ?? "" };
  }
  if (line.startsWith("Traceback (most recent call last)")) return { level: "error", message: line };
  return { level: "info", message: line };
}
