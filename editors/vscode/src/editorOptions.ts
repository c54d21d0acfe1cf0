/**
 * Pure logic for telling the server a document's indentation (`codellama/didChangeEditorOptions`,
 * LSP's `FormattingOptions`: tabSize, insertSpaces). No `vscode` import: unit-tested with node's
 * test runner. The server re-indents suggestions to the document's style with it.
 */

export const EDITOR_OPTIONS_NOTIFICATION = "codellama/didChangeEditorOptions";

/** The subset of `vscode.TextEditorOptions` read here (`"auto"` only while being set). */
export interface IndentOptions {
  tabSize?: number | string;
  insertSpaces?: boolean | string;
}

export interface EditorOptionsParams {
  textDocument: { uri: string };
  options: { tabSize: number; insertSpaces: boolean };
}

/** The notification's params; null when the options are not resolved numbers/booleans. */
export function editorOptionsParams(uri: string, options: IndentOptions): EditorOptionsParams | null {
  const { tabSize, insertSpaces } = options;
  if (typeof tabSize !== "number" || !Number.isInteger(tabSize) || tabSize < 1 || typeof insertSpaces !== "boolean") {
    return null;
  }
  return { textDocument: { uri }, options: { tabSize, insertSpaces } };
}

/** Remembers what each document's server copy was told, so each change is sent once. */
export class SentOptions {
  private readonly sent = new Map<string, string>();

  /** The params to send for `uri` now, or null when the server already has them. */
  changed(uri: string, options: IndentOptions): EditorOptionsParams | null {
    const params = editorOptionsParams(uri, options);
    if (params === null) return null;
    const key = `${params.options.tabSize}:${params.options.insertSpaces}`;
    if (this.sent.get(uri) === key) return null;
    this.sent.set(uri, key);
    return params;
  }

  /** The document was closed (or the server restarted): send again next time. */
  forget(uri?: string): void {
    if (uri === undefined) this.sent.clear();
    else this.sent.delete(uri);
  }
}
