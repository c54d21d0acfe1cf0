import { strict as assert } from "node:assert";
import { test } from "node:test";
import {
  clock,
  describeSnooze,
  fromServer,
  isActive,
  parseMinutes,
  remainingMs,
  restoredSnooze,
  serverRequest,
  snoozeChoices,
  snoozeFor,
  storedSnooze,
} from "../src/snooze";

const NOW = new Date(2030, 0, 2, 14, 0).getTime();

test("the menu offers 5 min, 30 min, until restart and a number of minutes; resume while snoozed", () => {
  const minutes = (choices: ReturnType<typeof snoozeChoices>) => choices.map((c) => c.minutes);
  assert.deepEqual(minutes(snoozeChoices(null, NOW)), [5, 30, null, "ask"]);
  const snoozed = snoozeChoices({ until: NOW + 60_000 }, NOW);
  assert.deepEqual(minutes(snoozed), [0, 5, 30, null, "ask"]);
  assert.equal(snoozed[0]?.description, "until 14:01");
  assert.deepEqual(minutes(snoozeChoices({ until: NOW - 1 }, NOW)), [5, 30, null, "ask"]);
});

test("a snooze ends at its time; until restart it does not", () => {
  const five = snoozeFor(5, NOW);
  assert.deepEqual(five, { until: NOW + 300_000 });
  assert.equal(isActive(five, NOW + 299_999), true);
  assert.equal(isActive(five, NOW + 300_000), false);
  assert.equal(remainingMs(five, NOW + 100_000), 200_000);
  assert.deepEqual(snoozeFor(null, NOW), { untilRestart: true });
  assert.equal(isActive({ untilRestart: true }, NOW + 1e12), true);
  assert.equal(remainingMs({ untilRestart: true }, NOW), null);
  assert.equal(snoozeFor(0, NOW), null);
  assert.equal(isActive(null, NOW), false);
});

test("the server is told what is left", () => {
  assert.deepEqual(serverRequest({ until: NOW + 90_000 }, NOW), { minutes: 1.5 });
  assert.deepEqual(serverRequest({ untilRestart: true }, NOW), { minutes: null });
  assert.deepEqual(serverRequest(null, NOW), { minutes: 0 });
  assert.deepEqual(serverRequest({ until: NOW - 5 }, NOW), { minutes: 0 });
});

test("only a timed snooze is kept for the workspace, and only while it lasts", () => {
  assert.equal(storedSnooze({ until: NOW + 5 }), NOW + 5);
  assert.equal(storedSnooze({ untilRestart: true }), undefined);
  assert.equal(storedSnooze(null), undefined);
  assert.deepEqual(restoredSnooze(NOW + 5, NOW), { until: NOW + 5 });
  assert.equal(restoredSnooze(NOW - 5, NOW), null);
  assert.equal(restoredSnooze("soon", NOW), null);
  assert.equal(restoredSnooze(undefined, NOW), null);
});

test("minutes typed, times shown, the server's snooze read", () => {
  assert.equal(parseMinutes(" 10 "), 10);
  assert.equal(parseMinutes("0,5"), 0.5);
  assert.equal(parseMinutes("0"), null);
  assert.equal(parseMinutes("soon"), null);
  assert.equal(clock(new Date(2030, 0, 2, 9, 7).getTime()), "09:07");
  assert.equal(describeSnooze({ untilRestart: true }), "until restart");
  assert.deepEqual(fromServer(true, 100), { until: 100_000 });
  assert.deepEqual(fromServer(true, null), { untilRestart: true });
  assert.equal(fromServer(false, 100), null);
});
