import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AppError } from "../../src/lib/errors.js";
import { isUuid, isValidCursor, parseGlobalId, parseId, toGlobalId, type NodeTypename } from "../../src/lib/ids.js";

const TYPENAMES: readonly NodeTypename[] = ["Task", "Conversation", "Message", "Turn"];
const UUID = "0b6f9a52-3c1d-4e8f-9a7b-2d4c6e8f0a1b";
const NOT_VALID = "is not a valid ID";
const base64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

/** The reason of the BAD_USER_INPUT a parse throws, checked to name `field` and nothing of the input. */
function refusal(value: string, field: string, expected: readonly NodeTypename[]): string {
  try {
    parseGlobalId(value, field, expected);
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    const appError = error as AppError;
    expect(appError.code).toBe("BAD_USER_INPUT");
    expect(appError.field).toBe(field);
    expect(appError.extensions).toEqual({});
    expect(appError.message.startsWith(`${field}: `)).toBe(true);
    return appError.message.slice(field.length + 2);
  }
  throw new Error(`accepted ${JSON.stringify(value)}`);
}

describe("global ids", () => {
  it("should encode a typename and a uuid as base64 of typename:uuid", () => {
    expect(toGlobalId("Task", UUID)).toBe(base64(`Task:${UUID}`));
    expect(Buffer.from(toGlobalId("Turn", UUID), "base64").toString()).toBe(`Turn:${UUID}`);
  });

  it.for(TYPENAMES)("should round-trip any %s uuid", (typename) => {
    fc.assert(
      fc.property(fc.uuid(), (id) => {
        const global = toGlobalId(typename, id);
        expect(parseGlobalId(global, "id", [typename])).toEqual({ typename, id });
        expect(parseId(global, "id", typename)).toBe(id);
      }),
    );
  });

  it("should keep the uuid as it was written, upper case included", () => {
    const upper = UUID.toUpperCase();
    expect(parseId(toGlobalId("Task", upper), "id", "Task")).toBe(upper);
  });

  it("should give each of several expected typenames back as itself", () => {
    const expected: NodeTypename[] = ["Task", "Conversation"];
    expect(parseGlobalId(toGlobalId("Task", UUID), "id", expected)).toEqual({ typename: "Task", id: UUID });
    expect(parseGlobalId(toGlobalId("Conversation", UUID), "id", expected)).toEqual({ typename: "Conversation", id: UUID });
  });

  it("should give one uuid a different id per typename", () => {
    expect(new Set(TYPENAMES.map((typename) => toGlobalId(typename, UUID))).size).toBe(TYPENAMES.length);
  });
});

describe("refused ids", () => {
  const garbage: [string, string][] = [
    ["empty", ""],
    ["a bare uuid", UUID],
    ["not base64", "not an id"],
    ["base64 without its padding", base64(`Task:${UUID}`).replace(/=+$/, "")],
    ["outside the base64 alphabet", `-${toGlobalId("Task", UUID).slice(1)}`],
    ["cut short", toGlobalId("Task", UUID).slice(0, -4)],
    ["surrounded by spaces", ` ${toGlobalId("Task", UUID)} `],
    ["with a newline after it", `${toGlobalId("Task", UUID)}\n`],
    ["no separator", base64(`Task${UUID}`)],
    ["no typename", base64(`:${UUID}`)],
    ["no id", base64("Task:")],
    ["an integer id", base64("Task:42")],
    ["a uuid without dashes", base64(`Task:${UUID.replaceAll("-", "")}`)],
    ["a uuid with something after it", base64(`Task:${UUID}:1`)],
    ["a uuid with a space before it", base64(`Task: ${UUID}`)],
    ["a typename that is not a name", base64(`1Task:${UUID}`)],
    ["bytes that are not UTF-8", Buffer.from([0xff, 0xfe, 0x3a, 0x41]).toString("base64")],
    ["a NUL", base64(`Task:${UUID}\u0000`)],
    ["very long", "A".repeat(100_000)],
  ];

  it.for(garbage)("should refuse an id that is %s with BAD_USER_INPUT naming the field", ([, value]) => {
    expect(refusal(value, "input.id", ["Task"])).toBe(NOT_VALID);
  });

  it("should refuse another type's id as not that type's", () => {
    expect(refusal(toGlobalId("Conversation", UUID), "id", ["Task"])).toBe("must be a Task ID");
    expect(refusal(toGlobalId("Task", UUID), "conversationId", ["Conversation"])).toBe("must be a Conversation ID");
    expect(refusal(toGlobalId("Turn", UUID), "id", ["Task", "Conversation"])).toBe("must be an ID of Task, Conversation");
  });

  it("should refuse a typename this API does not have, and one spelt in another case, as a foreign type", () => {
    for (const typename of ["User", "Query", "task", "TASK", "Tasks"]) {
      expect(refusal(base64(`${typename}:${UUID}`), "id", ["Task"])).toBe("must be a Task ID");
    }
  });

  it("should refuse any string that is not one of ours the same way: BAD_USER_INPUT on the field, one of two fixed reasons", () => {
    const ours = new Set(TYPENAMES.map((typename) => toGlobalId(typename, UUID)));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: "binary" }),
          fc.base64String(),
          fc.string().map(base64),
          fc.tuple(fc.string({ maxLength: 12 }), fc.string()).map(([typename, id]) => base64(`${typename}:${id}`)),
        ),
        (value) => {
          fc.pre(!ours.has(value));
          expect([NOT_VALID, "must be a Task ID"]).toContain(refusal(value, "id", ["Task"]));
        },
      ),
    );
  });
});

describe("isUuid", () => {
  it("should accept a uuid in either case, and the nil uuid", () => {
    for (const value of [UUID, UUID.toUpperCase(), randomUUID(), "00000000-0000-0000-0000-000000000000"]) expect(isUuid(value)).toBe(true);
  });

  it("should refuse anything else", () => {
    for (const value of [
      "",
      UUID.replaceAll("-", ""),
      `{${UUID}}`,
      `${UUID}\n`,
      ` ${UUID}`,
      `${UUID}0`,
      UUID.replace("b", "g"),
      UUID.slice(1),
      `urn:uuid:${UUID}`,
    ]) {
      expect(isUuid(value)).toBe(false);
    }
    for (const value of [undefined, null, 42, {}, [UUID]]) expect(isUuid(value)).toBe(false);
  });
});

describe("isValidCursor", () => {
  it("should accept the cursor a connection hands out: base64 of GPC:S: and a row's uuid", () => {
    expect(isValidCursor(base64(`GPC:S:${UUID}`))).toBe(true);
    expect(isValidCursor(base64(`GPC:S:${randomUUID()}`))).toBe(true);
  });

  it("should refuse every other cursor without throwing", () => {
    for (const cursor of [
      "",
      "garbage",
      `GPC:S:${UUID}`,
      base64(`GPC:S:${UUID}`).slice(0, -1),
      base64(`GPC:S:not-a-uuid`),
      base64(`GPC:N:42`),
      base64(`GPC:${UUID}`),
      base64(`XYZ:S:${UUID}`),
      base64(`GPC:T:["S:${UUID}"]`),
      base64(`GPC:J:["${UUID}"]`),
      base64(`GPC:S:${UUID}\n`),
      toGlobalId("Task", UUID),
    ]) {
      expect(isValidCursor(cursor)).toBe(false);
    }
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (cursor) => {
        expect(isValidCursor(cursor)).toBe(false);
      }),
    );
  });
});
