/**
 * When the extension makes VS Code ask the server again, and how each request goes (issue 27).
 *
 * - **The ghost text grows by itself.** The server answers a multi-line suggestion at its first
 *   line and sends `codellama/suggestionGrown` when the whole block is ready. If the cursor is
 *   still there (on that line, at or after that place: the user may have typed part of it),
 *   VS Code is made to ask again, and the server answers the whole block from its cache. Only an
 *   explicit trigger makes VS Code ask again where it has an answer; the server would take it
 *   for an Invoked request and write candidates for nothing, so that provider call is a
 *   re-ask, sent as Automatic. And through an explicit trigger VS Code keeps the item on screen
 *   (its new list gets the old item first), so the suggestion is hidden just before.
 * - **First candidate first.** The server answers an Invoked request with the first candidate at
 *   once, and the others when the editor asks again at the same place. VS Code asks (Invoked)
 *   when the user cycles (Alt+] / Alt+[) with a suggestion on screen: there the middleware asks
 *   twice, the second time for the others. VS Code never asks twice at one place, so after an
 *   explicit request that got one item (Trigger Inline Suggestion, or a re-ask), cycling fetches
 *   the others first, then has VS Code ask again (`cycle`).
 *
 * No `vscode` import: unit-tested with node's test runner.
 */

/** Where an inline request was made: the document (and its version) and the cursor. */
export interface Place {
  uri: string;
  version: number;
  line: number;
  character: number;
}

/** What the re-asks need from the editor. */
export interface ReaskHost {
  /** The active editor's document and cursor; undefined when no text editor has the focus. */
  cursor(): Place | undefined;
  /** Run a VS Code command. */
  run(command: string): Promise<unknown>;
  /** Ask the server itself (Invoked) at `place`; the number of items it answered. */
  askInvoked(place: Place): Promise<number>;
}

/** The VS Code values of `InlineCompletionTriggerKind` (its enum, passed in). */
export interface TriggerKinds<K> {
  invoke: K;
  automatic: K;
}

export const TRIGGER = "editor.action.inlineSuggest.trigger";
export const HIDE = "editor.action.inlineSuggest.hide";
export const SHOW_NEXT = "editor.action.inlineSuggest.showNext";
export const SHOW_PREVIOUS = "editor.action.inlineSuggest.showPrevious";
export const GROWN_NOTIFICATION = "codellama/suggestionGrown";

/** The last answer VS Code got for a document. */
interface Answer {
  place: Place;
  /** VS Code asked explicitly (whatever was sent): it will not ask again at this place. */
  invoked: boolean;
  items: number;
}

export function samePlace(a: Place, b: Place): boolean {
  return a.uri === b.uri && a.version === b.version && a.line === b.line && a.character === b.character;
}

/** `codellama/suggestionGrown`'s `{textDocument: {uri}, position: {line, character}}`, or null. */
export function grownAt(params: unknown): { uri: string; line: number; character: number } | null {
  if (params === null || typeof params !== "object") return null;
  const p = params as { textDocument?: { uri?: unknown }; position?: { line?: unknown; character?: unknown } };
  const uri = p.textDocument?.uri;
  const line = p.position?.line;
  const character = p.position?.character;
  if (typeof uri !== "string" || typeof line !== "number" || typeof character !== "number") return null;
  return { uri, line, character };
}

export class Reasks<K, R> {
  private readonly last = new Map<string, Answer>();
  /** The document whose next provider call is a re-ask (sent as Automatic). */
  private reasking: string | undefined;

  constructor(
    private readonly kinds: TriggerKinds<K>,
    private readonly host: ReaskHost,
    /** The number of items in a provider result. */
    private readonly count: (result: R) => number,
  ) {}

  /**
   * One provider call from the middleware: `ask(kind)` sends the request to the server.
   * A re-ask goes as Automatic; an Invoked one where a suggestion is on screen (the user cycles)
   * is asked again when the first answer has only the first candidate.
   */
  async provide(
    place: Place,
    kind: K,
    ask: (kind: K) => R | PromiseLike<R>,
    token: { isCancellationRequested: boolean },
  ): Promise<R> {
    const invoked = kind === this.kinds.invoke;
    let result: R;
    if (this.reasking === place.uri) {
      this.reasking = undefined;
      result = await ask(this.kinds.automatic);
    } else if (invoked && this.shownAt(place)) {
      result = await ask(kind);
      if (this.count(result) === 1 && !token.isCancellationRequested) result = await ask(kind);
    } else {
      result = await ask(kind);
    }
    if (!token.isCancellationRequested) this.last.set(place.uri, { place, invoked, items: this.count(result) });
    return result;
  }

  /** Whether VS Code's last answer at exactly `place` had a suggestion. */
  shownAt(place: Place): boolean {
    const last = this.last.get(place.uri);
    return last !== undefined && last.items > 0 && samePlace(last.place, place);
  }

  /**
   * `codellama/suggestionGrown`: the whole block is ready. Ask again if the cursor is still in
   * that document, on that line at or after that place, and a suggestion was shown there.
   * Whether it asked.
   */
  async grown(params: unknown): Promise<boolean> {
    const at = grownAt(params);
    const cursor = this.host.cursor();
    if (!at || !cursor || cursor.uri !== at.uri || cursor.line !== at.line || cursor.character < at.character) {
      return false;
    }
    const last = this.last.get(at.uri);
    if (!last || last.items === 0) return false; // nothing on screen to grow
    this.reasking = at.uri;
    try {
      await this.host.run(HIDE);
      await this.host.run(TRIGGER);
    } finally {
      this.reasking = undefined;
    }
    return true;
  }

  /**
   * Next (1) or previous (-1) suggestion. Where VS Code asked explicitly and got one item, it
   * would not ask again: fetch the others (the suggestion stays on screen meanwhile), then have
   * VS Code ask again (it gets them at once) before it moves.
   */
  async cycle(step: 1 | -1): Promise<void> {
    const place = this.host.cursor();
    const last = place && this.last.get(place.uri);
    if (place && last && last.invoked && last.items === 1 && samePlace(last.place, place)) {
      let items = await this.host.askInvoked(place);
      if (items === 1) items = await this.host.askInvoked(place); // the first ask started them
      const now = this.host.cursor();
      if (items > 1 && now && samePlace(now, place)) {
        await this.host.run(HIDE);
        await this.host.run(TRIGGER);
      }
    }
    await this.host.run(step > 0 ? SHOW_NEXT : SHOW_PREVIOUS);
  }

  forget(uri: string): void {
    this.last.delete(uri);
  }
}
