/**
 * The user's say over when suggestions appear, in VS Code: the snooze (status bar menu and
 * `Code Llama: Snooze Completions…`, kept per workspace), and the document's indentation sent to
 * the server before each inline request. The inline-completion middleware asks `allow()` in one
 * line; the rules that depend on the document's text (languages, excluded files, comments and
 * strings) are the server's settings.
 */
import * as vscode from "vscode";
import { EDITOR_OPTIONS_NOTIFICATION, SentOptions } from "./editorOptions";
import {
  isActive,
  parseMinutes,
  remainingMs,
  restoredSnooze,
  serverRequest,
  type Snooze,
  snoozeChoices,
  snoozeFor,
  storedSnooze,
} from "./snooze";

const SNOOZE_STATE = "codellama.snoozedUntil";
/** The server's command (the language client registers it in VS Code under this name too). */
const SNOOZE_COMMAND = "codellama.snooze";

/** What the controls need from the extension. */
export interface ControlsHost {
  /** Run a server command; rejects when the server is not running. */
  serverCommand(command: string, ...args: unknown[]): Promise<unknown>;
  /** Send a notification to the server, when it runs. */
  notify(method: string, params: unknown): Promise<void>;
  /** The snooze started or ended (redraw the status bar). */
  changed(): void;
  log: vscode.LogOutputChannel;
}

export class UserControls implements vscode.Disposable {
  private snooze: Snooze | null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly sent = new SentOptions();
  private readonly disposables: vscode.Disposable[];

  constructor(
    private readonly state: vscode.Memento,
    private readonly host: ControlsHost,
  ) {
    this.snooze = restoredSnooze(state.get<unknown>(SNOOZE_STATE), Date.now());
    this.schedule();
    this.disposables = [vscode.workspace.onDidCloseTextDocument((doc) => this.sent.forget(doc.uri.toString()))];
  }

  get snoozed(): boolean {
    return isActive(this.snooze, Date.now());
  }

  /**
   * Whether an inline request for `document` may go to the server: not while snoozed. Before
   * it goes, the server learns the document's indentation (once per change).
   */
  async allow(document: vscode.TextDocument): Promise<boolean> {
    if (this.snoozed) return false;
    const uri = document.uri.toString();
    const editor = vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === uri);
    const params = editor ? this.sent.changed(uri, editor.options) : null;
    if (params) await this.host.notify(EDITOR_OPTIONS_NOTIFICATION, params);
    return true;
  }

  /** A (re)started server: tell it what is left of the snooze; resend the indentation. */
  async serverStarted(): Promise<void> {
    this.sent.forget();
    if (this.snoozed) await this.tellServer();
  }

  /** Snooze for `minutes` (null: until restart; 0: resume now). */
  async snoozeFor(minutes: number | null): Promise<void> {
    this.snooze = snoozeFor(minutes, Date.now());
    await this.state.update(SNOOZE_STATE, storedSnooze(this.snooze));
    this.schedule();
    this.host.changed();
    await this.tellServer();
  }

  /** The snooze menu (*Code Llama: Snooze Completions…*); with `more`, the status bar menu. */
  async menu(more: { label: string; command: string }[] = []): Promise<void> {
    type Item = vscode.QuickPickItem & { run: () => Promise<void> };
    const items: Item[] = snoozeChoices(this.snooze, Date.now()).map((choice) => ({
      label: choice.label,
      description: choice.description,
      run: async () => {
        const minutes = choice.minutes === "ask" ? await this.askMinutes() : choice.minutes;
        if (minutes !== undefined) await this.snoozeFor(minutes);
      },
    }));
    if (more.length) {
      items.push({ label: "", kind: vscode.QuickPickItemKind.Separator, run: async () => undefined });
      for (const { label, command } of more) {
        items.push({ label, run: async () => void (await vscode.commands.executeCommand(command)) });
      }
    }
    const picked = await vscode.window.showQuickPick(items, { title: "Code Llama", placeHolder: "Suggestions" });
    await picked?.run();
  }

  private async askMinutes(): Promise<number | undefined> {
    const text = await vscode.window.showInputBox({
      title: "Code Llama: snooze suggestions for how many minutes?",
      validateInput: (value) => (parseMinutes(value) === null ? "A number of minutes, e.g. 10" : undefined),
    });
    const minutes = text === undefined ? null : parseMinutes(text);
    return minutes === null ? undefined : minutes;
  }

  private async tellServer(): Promise<void> {
    try {
      await this.host.serverCommand(SNOOZE_COMMAND, serverRequest(this.snooze, Date.now()));
    } catch (err) {
      this.host.log.warn(`codellama.snooze: ${String(err)}`);
    }
  }

  /** End a timed snooze when its time comes (the server ends its own). */
  private schedule(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const left = remainingMs(this.snooze, Date.now());
    if (left === null) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.snooze = null;
      void this.state.update(SNOOZE_STATE, undefined);
      this.host.changed();
    }, left + 50);
  }

  dispose(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    for (const d of this.disposables) d.dispose();
  }
}
