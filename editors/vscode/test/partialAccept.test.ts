import { strict as assert } from "node:assert";
import { test } from "node:test";
import { acceptedLength, partialAcceptParams, type ShownItem } from "../src/partialAccept";

const item: ShownItem = {
  insertText: "for line in handle:",
  startOffset: 80,
  command: { title: "codellama: accepted", command: "codellama.accepted", arguments: [{ uri: "u" }] },
};

test("a word or a line of the item: its length from the item's start", () => {
  assert.equal(acceptedLength(item, "for"), 3);
  assert.equal(acceptedLength(item, "for line"), 8);
});

test("nothing, all of it, or other text is not a partial accept", () => {
  assert.equal(acceptedLength(item, ""), null);
  assert.equal(acceptedLength(item, "for line in handle:"), null);
  assert.equal(acceptedLength(item, "while"), null);
});

test("the notification carries the item's command for the server", () => {
  assert.deepEqual(partialAcceptParams(item, 3), {
    item: { insertText: "for line in handle:", command: item.command },
    acceptedLength: 3,
  });
});
