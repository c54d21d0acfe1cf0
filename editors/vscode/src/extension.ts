/**
 * Code Llama Completions: a thin VS Code client for the codellama-lsp language server.
 *
 * The server does the work (inline completions with the model kept loaded); VS Code's language
 * client registers `textDocument/inlineCompletion` by default, so ghost text and Tab-to-accept come
 * from VS Code itself. The server's accept command (`codellama.accepted`, attached to each item) is
 * registered by the client from the server's executeCommandProvider, so accepting reaches the
 * server. This file adds the status bar, the user commands and settings sync.
 */
import * as readline from "node:readline";
import * as vscode from "vscode";
import {
  ExecuteCommandRequest,
  InlineCompletionRequest,
  InlineCompletionTriggerKind as LspTriggerKind,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State as ClientRunState,
  WorkDoneProgress,
  WorkDoneProgressCreateRequest,
  type WorkDoneProgressBegin,
  type WorkDoneProgressReport,
  type WorkDoneProgressEnd,
} from "vscode-languageclient/node";
import {
  didChangeConfigurationParams,
  documentSelector,
  languages,
  launchSpec,
  needsRestart,
  servesDocument,
  serverSettings,
} from "./settings";
import { UserControls } from "./controls";
import { API_KEY_SECRET, API_KEY_SETTING, applyApiKeyInput, migrateApiKey, withApiKey } from "./secrets";
import { parseServerLogLine } from "./serverLog";
import { acceptedLength, DID_PARTIALLY_ACCEPT, partialAcceptParams, type ShownItem } from "./partialAccept";
import { GROWN_NOTIFICATION, type Place, Reasks } from "./reask";

/** A token never cancelled: see the inline-completion middleware. */
const NOT_FORWARDED = new vscode.CancellationTokenSource();
import {
  type Acceptance,
  acceptanceLines,
  formatLatency,
  formatStats,
  parseAcceptance,
  parseStatus,
  type Progress,
  type ServerStatus,
  type State,
  STATUS_MENU_COMMAND,
  statusView,
  WritingIndicator,
} from "./status";

const SECTION = "codellama";
/** VS Code's own partial accepts, which the extension's commands run and then report. */
const BUILT_IN_ACCEPT = {
  word: "editor.action.inlineSuggest.acceptNextWord",
  line: "editor.action.inlineSuggest.acceptNextLine",
} as const;
const STATS_REFRESH_MS = 1000;

type InlineResult = vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined;

function itemsOf(result: InlineResult): vscode.InlineCompletionItem[] {
  return Array.isArray(result) ? result : (result?.items ?? []);
}

function placeOf(document: vscode.TextDocument, position: vscode.Position): Place {
  return { uri: document.uri.toString(), version: document.version, line: position.line, character: position.character };
}

class CodeLlamaClient implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private readonly log: vscode.LogOutputChannel;
  private readonly statusItem: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];
  private state: State = "starting";
  private lastStatus: ServerStatus | null = null;
  private progress: Progress | null = null;
  private apiKey: string | undefined;
  private acceptance: Acceptance | null = null;
  private statsTimer: ReturnType<typeof setTimeout> | undefined;
  /** The items of the server's last answer, per document (for partial accepts). */
  private readonly shown = new Map<string, ShownItem[]>();
  /** Snooze, the status bar menu, the document's indentation for the server. */
  readonly controls: UserControls;
  /** Asking again: the ghost text grows by itself; cycling gets the other candidates. */
  readonly reasks: Reasks<vscode.InlineCompletionTriggerKind, InlineResult>;
  /** The spinner: the server has been writing a suggestion for a while. */
  private readonly writing = new WritingIndicator(() => this.render());

  constructor(
    private readonly secrets: vscode.SecretStorage,
    workspaceState: vscode.Memento,
  ) {
    this.log = vscode.window.createOutputChannel("Code Llama", { log: true });
    this.statusItem = vscode.window.createStatusBarItem("codellama.status", vscode.StatusBarAlignment.Right, 100);
    this.statusItem.name = "Code Llama";
    this.controls = new UserControls(workspaceState, {
      serverCommand: (command, ...args) => this.executeServerCommand(command, ...args),
      notify: async (method, params) => {
        if (this.client?.isRunning()) await this.client.sendNotification(method, params);
      },
      changed: () => this.render(),
      log: this.log,
    });
    this.reasks = new Reasks(
      { invoke: vscode.InlineCompletionTriggerKind.Invoke, automatic: vscode.InlineCompletionTriggerKind.Automatic },
      {
        cursor: () => {
          const editor = vscode.window.activeTextEditor;
          return editor ? placeOf(editor.document, editor.selection.active) : undefined;
        },
        run: (command) => Promise.resolve(vscode.commands.executeCommand(command)),
        askInvoked: (place) => this.askInvoked(place),
      },
      (result) => itemsOf(result).length,
    );
    this.disposables.push(this.log, this.statusItem, this.controls, this.writing);
    this.render();
    this.statusItem.show();
  }

  private config(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
  }

  /** The server settings, with the API key from SecretStorage (never from settings.json). */
  private serverSettings(keyRemoved = false): ReturnType<typeof serverSettings> {
    return withApiKey(serverSettings(this.config()), this.apiKey, keyRemoved);
  }

  /** Move a key found in settings.json (any scope) into SecretStorage, then read the stored key. */
  async loadApiKey(): Promise<void> {
    const config = this.config();
    const moved = await migrateApiKey(this.secrets, {
      value: config.get<string>(API_KEY_SETTING),
      clear: async () => {
        const scopes = config.inspect<string>(API_KEY_SETTING);
        if (scopes?.globalValue !== undefined) await config.update(API_KEY_SETTING, undefined, vscode.ConfigurationTarget.Global);
        if (scopes?.workspaceValue !== undefined) await config.update(API_KEY_SETTING, undefined, vscode.ConfigurationTarget.Workspace);
        if (scopes?.workspaceFolderValue !== undefined)
          await config.update(API_KEY_SETTING, undefined, vscode.ConfigurationTarget.WorkspaceFolder);
      },
    });
    if (moved) this.log.info("Moved codellama.apiKey from settings.json into VS Code's secret storage");
    this.apiKey = await this.secrets.get(API_KEY_SECRET);
  }

  /** The stored key changed (Set API Key, or another window): tell the running server. */
  async onApiKeyChanged(): Promise<void> {
    const had = Boolean(this.apiKey);
    this.apiKey = await this.secrets.get(API_KEY_SECRET);
    if (this.client?.isRunning()) {
      const settings = this.serverSettings(had && !this.apiKey);
      await this.client.sendNotification("workspace/didChangeConfiguration", didChangeConfigurationParams(settings));
    }
  }

  async setApiKey(): Promise<void> {
    const input = await vscode.window.showInputBox({
      title: "Code Llama: API key of the model server",
      prompt: "Kept in VS Code's secret storage. Leave empty to remove the stored key.",
      password: true,
      ignoreFocusOut: true,
    });
    const outcome = await applyApiKeyInput(this.secrets, input);
    if (outcome !== "unchanged") void vscode.window.showInformationMessage(`Code Llama: API key ${outcome}.`);
  }

  private render(): void {
    const view = statusView(this.state, this.lastStatus, this.progress, this.acceptance, this.writing.shown);
    this.statusItem.text = view.text;
    this.statusItem.tooltip = view.tooltip;
    this.statusItem.command = view.command;
    this.statusItem.backgroundColor = view.background ? new vscode.ThemeColor(view.background) : undefined;
  }

  private setStatus(status: ServerStatus): void {
    this.lastStatus = status;
    this.state = status.state;
    this.writing.update(status.state === "ready" && status.generating === true);
    if (status.state !== "loading") this.progress = null;
    this.render();
    if (status.state === "ready") this.refreshStatsSoon();
  }

  /** Fetch the acceptance figures for the tooltip, at most once per STATS_REFRESH_MS. */
  private refreshStatsSoon(): void {
    if (this.statsTimer !== undefined) return;
    this.statsTimer = setTimeout(() => {
      this.statsTimer = undefined;
      this.executeServerCommand("codellama.stats").then(
        (stats) => {
          this.acceptance = parseAcceptance(stats);
          this.render();
        },
        () => undefined,
      );
    }, STATS_REFRESH_MS);
  }

  private remember(document: vscode.TextDocument, position: vscode.Position, result: InlineResult): void {
    const items = itemsOf(result);
    this.shown.set(
      document.uri.toString(),
      items.map((item) => ({
        insertText: typeof item.insertText === "string" ? item.insertText : item.insertText.value,
        startOffset: document.offsetAt(item.range?.start ?? position),
        command: item.command
          ? { title: item.command.title, command: item.command.command, arguments: item.command.arguments }
          : undefined,
      })),
    );
  }

  /** Ask the server for the inline completion at `place` as the user would (Invoked); how many items. */
  private async askInvoked(place: Place): Promise<number> {
    const client = this.client;
    if (!client?.isRunning()) return 0;
    const result = await client.sendRequest(InlineCompletionRequest.type, {
      textDocument: { uri: place.uri },
      position: { line: place.line, character: place.character },
      context: { triggerKind: LspTriggerKind.Invoked },
    });
    return Array.isArray(result) ? result.length : (result?.items.length ?? 0);
  }

  /** Run VS Code's accept next word / line, then tell the server what was accepted. */
  async acceptPart(kind: keyof typeof BUILT_IN_ACCEPT): Promise<void> {
    await vscode.commands.executeCommand(BUILT_IN_ACCEPT[kind]);
    const editor = vscode.window.activeTextEditor;
    const client = this.client;
    if (!editor || !client?.isRunning()) return;
    const document = editor.document;
    const cursor = editor.selection.active;
    for (const item of this.shown.get(document.uri.toString()) ?? []) {
      const start = document.positionAt(item.startOffset);
      if (start.isAfter(cursor)) continue;
      const length = acceptedLength(item, document.getText(new vscode.Range(start, cursor)));
      if (length !== null) {
        await client.sendNotification(DID_PARTIALLY_ACCEPT, partialAcceptParams(item, length));
        this.refreshStatsSoon();
        return;
      }
    }
  }

  async start(): Promise<void> {
    const config = this.config();
    const spec = launchSpec(config);
    const serverOptions: ServerOptions = {
      command: spec.command,
      args: spec.args,
      options: { env: { ...process.env, ...spec.env } },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: documentSelector(languages(config)),
      outputChannel: this.log,
      stdioOptions: {
        stdout: (input, channel) => forwardLines(input, (line) => channel.info(line)),
        // The server's own log (Python logging) at its own level, not all as errors.
        stderr: (input, channel) =>
          forwardLines(input, (line) => {
            const { level, message } = parseServerLogLine(line);
            channel[level](message);
          }),
      },
      initializationOptions: () => this.serverSettings(),
      middleware: {
        // Client-side switch too, so that "off" is instant even while the server is busy.
        // VS Code cancels the inline request at every key. The server supersedes a document's
        // older request by itself and lets a generation run on while what is typed matches it
        // (its answer then serves the next pause), so the cancel is not forwarded: VS Code drops
        // a stale answer here instead of the server stopping the work there.
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          if (!this.config().get<boolean>("enabled", true)) return undefined;
          if (!(await this.controls.allow(document))) return undefined; // snoozed; sends indentation
          const ask = (kind: vscode.InlineCompletionTriggerKind) =>
            next(document, position, { ...context, triggerKind: kind }, NOT_FORWARDED.token);
          const result = await this.reasks.provide(placeOf(document, position), context.triggerKind, ask, token);
          if (token.isCancellationRequested) return undefined;
          this.remember(document, position, result);
          return result;
        },
      },
    };
    const client = new LanguageClient("codellama", "Code Llama", serverOptions, clientOptions);
    this.client = client;
    this.state = "starting";
    this.lastStatus = null;
    this.render();

    client.onDidChangeState((e) => {
      if (e.newState === ClientRunState.Stopped && this.client === client) {
        this.state = "stopped";
        this.writing.update(false);
        this.render();
      }
    });
    client.onNotification("codellama/status", (params: unknown) => {
      const status = parseStatus(params);
      if (status) this.setStatus(status);
    });
    client.onNotification(GROWN_NOTIFICATION, (params: unknown) => {
      this.reasks.grown(params).catch((err) => this.log.warn(`asking again for the grown suggestion: ${String(err)}`));
    });

    this.log.info(`Starting ${spec.command} ${spec.args.join(" ")}`);
    try {
      await client.start();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.log.error(`Could not start the server: ${message}`);
      this.setStatus({ state: "error", message: `Could not start ${spec.command}: ${message}` });
      void vscode.window
        .showErrorMessage(
          `Code Llama: could not start \`${spec.command}\`. Install codellama-lsp or set codellama.server.command.`,
          "Show Log",
        )
        .then((choice) => (choice ? this.log.show() : undefined));
      return;
    }
    // Model loading progress goes to our status bar item instead of a separate indicator.
    client.onRequest(WorkDoneProgressCreateRequest.type, ({ token }) => {
      client.onProgress(WorkDoneProgress.type, token, (value: WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd) => {
        if (value.kind === "end") {
          this.progress = null;
        } else {
          this.progress = {
            title: value.kind === "begin" ? value.title : this.progress?.title,
            message: value.message ?? this.progress?.message,
            percentage: value.percentage ?? this.progress?.percentage,
          };
        }
        if (this.state === "loading" || this.state === "starting") {
          if (value.kind !== "end") this.state = "loading";
          this.render();
        }
      });
    });
    await this.controls.serverStarted();
    await this.refreshStatus();
  }

  /** The status bar item's menu: snooze, and the other commands. */
  async statusMenu(): Promise<void> {
    await this.controls.menu([
      { label: "$(graph) Show Stats", command: "codellama.showStats" },
      { label: "$(circle-slash) Toggle Completions", command: "codellama.toggle" },
      { label: "$(output) Show Log", command: "codellama.showLog" },
      { label: "$(debug-restart) Restart Server", command: "codellama.restartServer" },
    ]);
  }

  /** Ask the server for its status; unless `force`, a notification that came meanwhile wins. */
  private async refreshStatus(force = false): Promise<void> {
    try {
      const result: unknown = await this.executeServerCommand("codellama.status");
      const status = parseStatus(result);
      if (status && (force || this.state === "starting" || this.lastStatus === null)) this.setStatus(status);
    } catch (err) {
      this.log.warn(`codellama.status failed: ${String(err)}`);
    }
  }

  private async executeServerCommand(command: string, ...args: unknown[]): Promise<unknown> {
    if (!this.client || !this.client.isRunning()) throw new Error("the server is not running");
    return this.client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args });
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) {
      try {
        await client.stop(5000);
      } catch (err) {
        this.log.warn(`Stopping the server: ${String(err)}`);
      }
      await client.dispose().catch(() => undefined);
    }
  }

  async restart(): Promise<void> {
    this.log.info("Restarting the server");
    await this.stop();
    await this.start();
  }

  async onConfigurationChanged(e: vscode.ConfigurationChangeEvent): Promise<void> {
    if (!e.affectsConfiguration(SECTION)) return;
    // A key typed into settings.json: move it into SecretStorage (which then tells the server).
    if (e.affectsConfiguration(`${SECTION}.${API_KEY_SETTING}`)) await this.loadApiKey();
    if (needsRestart((section) => e.affectsConfiguration(section))) {
      await this.restart();
      return;
    }
    const settings = this.serverSettings();
    if (this.client?.isRunning()) {
      await this.client.sendNotification("workspace/didChangeConfiguration", didChangeConfigurationParams(settings));
    }
    // The server answers with codellama/status; show the switch at once all the same.
    if (settings.enabled === false) this.setStatus({ ...(this.lastStatus ?? {}), state: "disabled" });
    else if (this.state === "disabled") await this.refreshStatus(true);
  }

  async toggle(): Promise<void> {
    const enabled = this.config().get<boolean>("enabled", true);
    // The status bar item shows the result (via onConfigurationChanged).
    await this.config().update("enabled", !enabled, vscode.ConfigurationTarget.Global);
  }

  async showStats(): Promise<void> {
    try {
      const stats = await this.executeServerCommand("codellama.stats");
      this.log.info(`Stats:\n${formatStats(stats)}`);
      const s = (stats ?? {}) as {
        requests?: number;
        accepted?: number;
        cache_hits?: number;
        latency_ms?: { p50?: number | null; p95?: number | null };
      };
      const parts = [`${s.requests ?? 0} requests`, `${s.accepted ?? 0} accepted`, `${s.cache_hits ?? 0} cache hits`];
      if (typeof s.latency_ms?.p50 === "number") parts.push(`p50 ${formatLatency(s.latency_ms.p50)}`);
      if (typeof s.latency_ms?.p95 === "number") parts.push(`p95 ${formatLatency(s.latency_ms.p95)}`);
      this.acceptance = parseAcceptance(stats);
      this.render();
      const figures = this.acceptance ? acceptanceLines(this.acceptance) : [];
      if (figures.length) this.log.info(figures.join("\n"));
      const message = [`Code Llama: ${parts.join(", ")}.`, ...figures].join(" ");
      const choice = await vscode.window.showInformationMessage(message, "Show All");
      if (choice) this.log.show(true);
    } catch (err) {
      void vscode.window.showErrorMessage(`Code Llama: could not get stats: ${String(err)}`);
    }
  }

  /** A document closed: what was remembered of its suggestions goes. */
  forget(uri: string): void {
    this.shown.delete(uri);
    this.reasks.forget(uri);
  }

  showLog(): void {
    this.log.show(true);
  }

  dispose(): void {
    void this.stop();
    for (const d of this.disposables) d.dispose();
  }
}

function forwardLines(input: NodeJS.ReadableStream, write: (line: string) => void): void {
  readline
    .createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 })
    .on("line", write);
}

let instance: CodeLlamaClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const codellama = new CodeLlamaClient(context.secrets, context.workspaceState);
  instance = codellama;
  context.subscriptions.push(
    codellama,
    vscode.commands.registerCommand("codellama.toggle", () => codellama.toggle()),
    vscode.commands.registerCommand("codellama.snoozeCompletions", () => codellama.controls.menu()),
    vscode.commands.registerCommand(STATUS_MENU_COMMAND, () => codellama.statusMenu()),
    vscode.commands.registerCommand("codellama.restartServer", () => codellama.restart()),
    vscode.commands.registerCommand("codellama.showLog", () => codellama.showLog()),
    vscode.commands.registerCommand("codellama.showStats", () => codellama.showStats()),
    vscode.commands.registerCommand("codellama.setApiKey", () => codellama.setApiKey()),
    vscode.commands.registerCommand("codellama.acceptNextWord", () => codellama.acceptPart("word")),
    vscode.commands.registerCommand("codellama.acceptNextLine", () => codellama.acceptPart("line")),
    vscode.commands.registerCommand("codellama.showNextSuggestion", () => codellama.reasks.cycle(1)),
    vscode.commands.registerCommand("codellama.showPreviousSuggestion", () => codellama.reasks.cycle(-1)),
    vscode.workspace.onDidChangeConfiguration((e) => codellama.onConfigurationChanged(e)),
    vscode.workspace.onDidCloseTextDocument((doc) => codellama.forget(doc.uri.toString())),
    context.secrets.onDidChange((e) => (e.key === API_KEY_SECRET ? codellama.onApiKeyChanged() : undefined)),
  );
  await codellama.loadApiKey();
  await startWhenNeeded(codellama, context.subscriptions);
}

/**
 * Start the server once a document it completes is open (the extension activates on any
 * language, so that `codellama.languages` decides; nothing loads for the others).
 */
async function startWhenNeeded(codellama: CodeLlamaClient, subscriptions: vscode.Disposable[]): Promise<void> {
  const serves = (doc: vscode.TextDocument): boolean =>
    servesDocument(languages(vscode.workspace.getConfiguration(SECTION)), doc.languageId, doc.uri.scheme);
  if (vscode.workspace.textDocuments.some(serves)) {
    await codellama.start();
    return;
  }
  const waiting = vscode.workspace.onDidOpenTextDocument((doc) => {
    if (!serves(doc)) return;
    waiting.dispose();
    void codellama.start();
  });
  subscriptions.push(waiting);
}

export async function deactivate(): Promise<void> {
  await instance?.stop();
  instance = undefined;
}
