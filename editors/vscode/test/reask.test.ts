import { strict as assert } from "node:assert";
import { test } from "node:test";
import { grownAt, HIDE, type Place, Reasks, SHOW_NEXT, SHOW_PREVIOUS, TRIGGER } from "../src/reask";

/** VS Code's InlineCompletionTriggerKind values. */
const INVOKE = 0;
const AUTOMATIC = 1;
const NOT_CANCELLED = { isCancellationRequested: false };

const HERE: Place = { uri: "file:///w/count.py", version: 3, line: 5, character: 9 };

/** A fake editor: where the cursor is, the commands run, the server's direct answers. */
class Editor {
  cursorAt: Place | undefined = HERE;
  commands: string[] = [];
  direct: number[] = [];
  directAnswers: number[] = [];
  /** Run when a command is: VS Code's trigger calls the provider. */
  onCommand: (command: string) => Promise<void> = async () => undefined;

  host() {
    return {
      cursor: () => this.cursorAt,
      run: async (command: string) => {
        this.commands.push(command);
        await this.onCommand(command);
      },
      askInvoked: async (place: Place) => {
        assert.deepEqual(place, HERE);
        const items = this.directAnswers.shift() ?? 0;
        this.direct.push(items);
        return items;
      },
    };
  }
}

/** A fake server: answers with `items[n]` items at the n-th request; records the kinds sent. */
function server(...answers: number[]) {
  const sent: number[] = [];
  const ask = async (kind: number) => {
    sent.push(kind);
    return answers.shift() ?? 0;
  };
  return { sent, ask };
}

function reasks(editor: Editor) {
  return new Reasks<number, number>({ invoke: INVOKE, automatic: AUTOMATIC }, editor.host(), (n) => n);
}

test("typing: asked as it comes, once", async () => {
  const r = reasks(new Editor());
  const s = server(1);
  assert.equal(await r.provide(HERE, AUTOMATIC, s.ask, NOT_CANCELLED), 1);
  assert.deepEqual(s.sent, [AUTOMATIC]);
  assert.equal(r.shownAt(HERE), true);
  assert.equal(r.shownAt({ ...HERE, version: 4 }), false);
});

test("invoked with nothing on screen: the first candidate at once", async () => {
  const r = reasks(new Editor());
  const s = server(1, 3);
  assert.equal(await r.provide(HERE, INVOKE, s.ask, NOT_CANCELLED), 1);
  assert.deepEqual(s.sent, [INVOKE]);
});

test("invoked where a suggestion is on screen (cycling): asked again for the others", async () => {
  const r = reasks(new Editor());
  const typing = server(1);
  await r.provide(HERE, AUTOMATIC, typing.ask, NOT_CANCELLED);
  const cycling = server(1, 3);
  assert.equal(await r.provide(HERE, INVOKE, cycling.ask, NOT_CANCELLED), 3);
  assert.deepEqual(cycling.sent, [INVOKE, INVOKE]);
  // The server had them all at once (an earlier invoke at this place): asked once.
  const again = server(3);
  assert.equal(await r.provide(HERE, INVOKE, again.ask, NOT_CANCELLED), 3);
  assert.deepEqual(again.sent, [INVOKE]);
  // Elsewhere (the document changed) nothing is on screen: the first at once.
  const moved = { ...HERE, version: 4, character: 10 };
  const there = server(1, 3);
  assert.equal(await r.provide(moved, INVOKE, there.ask, NOT_CANCELLED), 1);
});

test("a cancelled answer is not taken for what is on screen", async () => {
  const r = reasks(new Editor());
  await r.provide(HERE, AUTOMATIC, server(1).ask, { isCancellationRequested: true });
  assert.equal(r.shownAt(HERE), false);
});

test("grown, cursor still there: hidden, then asked again as Automatic", async () => {
  const editor = new Editor();
  const r = reasks(editor);
  await r.provide(HERE, AUTOMATIC, server(1).ask, NOT_CANCELLED);
  const reask = server(1);
  editor.onCommand = async (command) => {
    if (command === TRIGGER) await r.provide(HERE, INVOKE, reask.ask, NOT_CANCELLED); // VS Code asks
  };
  const params = { textDocument: { uri: HERE.uri }, position: { line: HERE.line, character: HERE.character } };
  assert.equal(await r.grown(params), true);
  assert.deepEqual(editor.commands, [HIDE, TRIGGER]);
  assert.deepEqual(reask.sent, [AUTOMATIC]);
  // The re-ask is used up: the user's own invoke goes as Invoked.
  const user = server(3);
  await r.provide(HERE, INVOKE, user.ask, NOT_CANCELLED);
  assert.deepEqual(user.sent, [INVOKE]);
});

test("grown after typing part of it: asked again; elsewhere, or nothing shown: not", async () => {
  const editor = new Editor();
  const r = reasks(editor);
  const at = (line: number, character: number) => ({ textDocument: { uri: HERE.uri }, position: { line, character } });
  // Nothing shown yet in that document.
  assert.equal(await r.grown(at(HERE.line, HERE.character)), false);
  await r.provide(HERE, AUTOMATIC, server(1).ask, NOT_CANCELLED);
  // Typed through two characters: still on the line, after the place.
  editor.cursorAt = { ...HERE, version: 5, character: HERE.character + 2 };
  assert.equal(await r.grown(at(HERE.line, HERE.character)), true);
  editor.commands = [];
  // Before the place, on another line, in another document, no editor: nothing.
  editor.cursorAt = { ...HERE, character: HERE.character - 1 };
  assert.equal(await r.grown(at(HERE.line, HERE.character)), false);
  editor.cursorAt = { ...HERE, line: HERE.line + 1, character: 20 };
  assert.equal(await r.grown(at(HERE.line, HERE.character)), false);
  editor.cursorAt = { ...HERE, uri: "file:///w/other.py" };
  assert.equal(await r.grown(at(HERE.line, HERE.character)), false);
  editor.cursorAt = undefined;
  assert.equal(await r.grown(at(HERE.line, HERE.character)), false);
  assert.equal(await r.grown({ textDocument: { uri: HERE.uri } }), false);
  assert.equal(await r.grown(null), false);
  assert.deepEqual(editor.commands, []);
  // The last answer there was empty (the user typed something else): nothing grows.
  editor.cursorAt = HERE;
  await r.provide(HERE, AUTOMATIC, server(0).ask, NOT_CANCELLED);
  assert.equal(await r.grown(at(HERE.line, HERE.character)), false);
});

test("cycling after typing: VS Code asks again itself", async () => {
  const editor = new Editor();
  const r = reasks(editor);
  await r.provide(HERE, AUTOMATIC, server(1).ask, NOT_CANCELLED);
  await r.cycle(1);
  await r.cycle(-1);
  assert.deepEqual(editor.commands, [SHOW_NEXT, SHOW_PREVIOUS]);
  assert.deepEqual(editor.direct, []);
});

test("cycling where VS Code asked explicitly and got one item: the others first, then VS Code asks", async () => {
  const editor = new Editor();
  const r = reasks(editor);
  await r.provide(HERE, INVOKE, server(1).ask, NOT_CANCELLED); // Trigger Inline Suggestion: the first
  const vscodeAsks = server(3);
  editor.onCommand = async (command) => {
    if (command === TRIGGER) await r.provide(HERE, INVOKE, vscodeAsks.ask, NOT_CANCELLED);
  };
  editor.directAnswers = [3];
  await r.cycle(1);
  assert.deepEqual(editor.direct, [3]);
  assert.deepEqual(editor.commands, [HIDE, TRIGGER, SHOW_NEXT]);
  assert.deepEqual(vscodeAsks.sent, [INVOKE]);
  // Now VS Code has them all: it moves by itself.
  editor.commands = [];
  await r.cycle(-1);
  assert.deepEqual(editor.commands, [SHOW_PREVIOUS]);
});

test("cycling after a re-ask: the first direct ask starts the others, the second gets them", async () => {
  const editor = new Editor();
  const r = reasks(editor);
  editor.onCommand = async (command) => {
    if (command === TRIGGER) await r.provide(HERE, INVOKE, server(1).ask, NOT_CANCELLED);
  };
  await r.provide(HERE, AUTOMATIC, server(1).ask, NOT_CANCELLED);
  await r.grown({ textDocument: { uri: HERE.uri }, position: { line: HERE.line, character: HERE.character } });
  editor.commands = [];
  editor.onCommand = async () => undefined;
  editor.directAnswers = [1, 1];
  await r.cycle(1); // candidates: 1 (the server has no others): VS Code just moves
  assert.deepEqual(editor.direct, [1, 1]);
  assert.deepEqual(editor.commands, [SHOW_NEXT]);
});

test("the notification's fields", () => {
  assert.deepEqual(grownAt({ textDocument: { uri: "u" }, position: { line: 1, character: 2 } }), {
    uri: "u",
    line: 1,
    character: 2,
  });
  assert.equal(grownAt({ textDocument: { uri: 1 }, position: { line: 1, character: 2 } }), null);
  assert.equal(grownAt("u"), null);
});
