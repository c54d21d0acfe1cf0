import { strict as assert } from "node:assert";
import { test } from "node:test";
import { editorOptionsParams, SentOptions } from "../src/editorOptions";

test("the document's indentation as LSP FormattingOptions", () => {
  assert.deepEqual(editorOptionsParams("file:///a.py", { tabSize: 2, insertSpaces: true }), {
    textDocument: { uri: "file:///a.py" },
    options: { tabSize: 2, insertSpaces: true },
  });
  assert.equal(editorOptionsParams("file:///a.py", { tabSize: "auto", insertSpaces: true }), null);
  assert.equal(editorOptionsParams("file:///a.py", { tabSize: 4 }), null);
  assert.equal(editorOptionsParams("file:///a.py", { tabSize: 0, insertSpaces: false }), null);
});

test("each change is sent once per document, again after a close or a restart", () => {
  const sent = new SentOptions();
  const four = { tabSize: 4, insertSpaces: true };
  assert.notEqual(sent.changed("file:///a.py", four), null);
  assert.equal(sent.changed("file:///a.py", four), null);
  assert.notEqual(sent.changed("file:///b.py", four), null);
  assert.deepEqual(sent.changed("file:///a.py", { tabSize: 4, insertSpaces: false })?.options, {
    tabSize: 4,
    insertSpaces: false,
  });
  sent.forget("file:///a.py");
  assert.notEqual(sent.changed("file:///a.py", { tabSize: 4, insertSpaces: false }), null);
  sent.forget();
  assert.notEqual(sent.changed("file:///b.py", four), null);
});
