/**
 * Pure logic for partial accepts (VS Code's accept next word / line): which of the server's
 * items was partly accepted, and how much of it. No `vscode` import: unit-tested with node.
 *
 * The server hears of a partial accept with the Copilot language server's notification
 * (`textDocument/didPartiallyAcceptCompletion`: the item and `acceptedLength`, the length in
 * UTF-16 units from the item's start to the end of the accepted text); it then serves the rest
 * of the suggestion by typing-through and counts it in `codellama.stats`.
 */

export const DID_PARTIALLY_ACCEPT = "textDocument/didPartiallyAcceptCompletion";

/** What the extension remembers of an item the server answered with. */
export interface ShownItem {
  insertText: string;
  /** Offset (UTF-16) of the item's start in the document when it was answered. */
  startOffset: number;
  command?: { title: string; command: string; arguments?: unknown[] };
}

/**
 * How much of `item` the document now holds after a partial accept: the length (UTF-16) from
 * the item's start to `cursorOffset` when the text there begins the item and is not all of it
 * (an accept of the whole item runs the item's command instead); otherwise null.
 */
export function acceptedLength(item: ShownItem, textFromStart: string): number | null {
  const n = textFromStart.length;
  if (n === 0 || n >= item.insertText.length) return null;
  return item.insertText.startsWith(textFromStart) ? n : null;
}

/** The notification's params for a partial accept of `length` units of `item`. */
export function partialAcceptParams(item: ShownItem, length: number): Record<string, unknown> {
  return {
    item: { insertText: item.insertText, command: item.command },
    acceptedLength: length,
  };
}
