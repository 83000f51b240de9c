import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Bounds, charLength, optionalText, requiredText, requireStorable } from "../../src/domain/bounds.js";
import { AppError } from "../../src/lib/errors.js";

/** The error a call throws, checked to be the client-safe BAD_USER_INPUT naming `field`. */
function badInputOf(call: () => unknown, field: string): string {
  try {
    call();
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    const appError = error as AppError;
    expect(appError.code).toBe("BAD_USER_INPUT");
    expect(appError.field).toBe(field);
    expect(appError.message.startsWith(`${field}: `)).toBe(true);
    return appError.message.slice(field.length + 2);
  }
  throw new Error(`${field}: accepted`);
}

const NUL = "must not contain the NUL character (U+0000)";
const LONE_SURROGATE = "must be well-formed Unicode (it has a lone surrogate, e.g. an unpaired \\ud800 escape)";
/** A code point that is two UTF-16 units: a string of n of them has length 2n in JavaScript. */
const ASTRAL = "😀";

describe("Bounds", () => {
  it("should be the product's bounds, shared by GraphQL, the assistant's tools and MCP", () => {
    expect(Bounds).toEqual({
      taskTitle: { min: 1, max: 200 },
      taskDescription: { max: 1000 },
      conversationTitle: { max: 200 },
      messageContent: { min: 1, max: 5000 },
      clientMessageId: { min: 1, max: 100 },
      approvalReason: { max: 1000 },
      toolCallId: { max: 200 },
      decisions: { max: 1000 },
      taskLabels: { max: 20 },
      taskLabel: { min: 1, max: 40 },
      recurrence: { max: 200 },
      nextOccurrences: { min: 1, max: 50 },
    });
  });

  const required = [
    ["taskTitle", Bounds.taskTitle],
    ["messageContent", Bounds.messageContent],
    ["clientMessageId", Bounds.clientMessageId],
  ] as const;

  it.for(required)("should accept a required %s of exactly max characters and refuse max + 1", ([, bounds]) => {
    expect(requiredText("f", "a".repeat(bounds.max), bounds)).toBe("a".repeat(bounds.max));
    expect(badInputOf(() => requiredText("f", "a".repeat(bounds.max + 1), bounds), "f")).toBe(
      `must be at most ${bounds.max} characters (got ${bounds.max + 1})`,
    );
  });

  it.for(required)("should refuse an empty or blank required %s as empty", ([, bounds]) => {
    for (const value of ["", " ", "\t\n\r ", "\u00a0\u3000\ufeff"]) {
      expect(badInputOf(() => requiredText("f", value, bounds), "f")).toBe("must not be empty");
    }
    expect(requiredText("f", "x", bounds)).toBe("x");
  });

  const optional = [
    ["taskDescription", Bounds.taskDescription],
    ["conversationTitle", Bounds.conversationTitle],
  ] as const;

  it.for(optional)("should accept an optional %s of exactly max characters and refuse max + 1", ([, bounds]) => {
    expect(optionalText("f", "a".repeat(bounds.max), bounds)).toBe("a".repeat(bounds.max));
    expect(badInputOf(() => optionalText("f", "a".repeat(bounds.max + 1), bounds), "f")).toBe(
      `must be at most ${bounds.max} characters (got ${bounds.max + 1})`,
    );
  });

  it.for(optional)("should read null, empty and blank as no %s (null)", ([, bounds]) => {
    for (const value of [null, "", "   ", "\n\t", "\u00a0\u3000"]) expect(optionalText("f", value, bounds)).toBeNull();
  });
});

describe("charLength", () => {
  it("should count code points, as Postgres does, not UTF-16 units or graphemes", () => {
    expect(charLength("")).toBe(0);
    expect(charLength("abc")).toBe(3);
    expect(charLength("é")).toBe(1);
    expect(charLength(ASTRAL)).toBe(1);
    expect(ASTRAL.length).toBe(2);
    // e + combining acute accent: one grapheme, two code points.
    expect(charLength("e\u0301")).toBe(2);
    // A family emoji: three people joined by two zero-width joiners.
    expect(charLength("👩‍👩‍👧")).toBe(5);
    // A lone surrogate is one (it is refused before any length check).
    expect(charLength("\ud800")).toBe(1);
  });

  it("should count UTF-16 units less one per surrogate pair, for any string", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (value) => {
        const pairs = value.match(/[\ud800-\udbff][\udc00-\udfff]/g)?.length ?? 0;
        expect(charLength(value)).toBe(value.length - pairs);
      }),
    );
  });
});

describe("requiredText and optionalText lengths", () => {
  it("should count code points, so 200 astral characters (400 UTF-16 units) fit a 200-character title", () => {
    const title = ASTRAL.repeat(200);
    expect(title.length).toBe(400);
    expect(requiredText("input.title", title, Bounds.taskTitle)).toBe(title);
    expect(badInputOf(() => requiredText("input.title", ASTRAL.repeat(201), Bounds.taskTitle), "input.title")).toBe(
      "must be at most 200 characters (got 201)",
    );
    expect(optionalText("input.title", ASTRAL.repeat(200), Bounds.conversationTitle)).toBe(ASTRAL.repeat(200));
    expect(badInputOf(() => optionalText("input.title", ASTRAL.repeat(201), Bounds.conversationTitle), "input.title")).toBe(
      "must be at most 200 characters (got 201)",
    );
  });

  it("should count combining marks as characters of their own", () => {
    expect(requiredText("t", "e\u0301".repeat(100), Bounds.taskTitle)).toBe("e\u0301".repeat(100));
    expect(badInputOf(() => requiredText("t", `${"e\u0301".repeat(100)}e`, Bounds.taskTitle), "t")).toBe("must be at most 200 characters (got 201)");
  });

  it("should trim before counting and return the trimmed text", () => {
    const padded = `  \t${"a".repeat(200)}\n\u00a0`;
    expect(requiredText("t", padded, Bounds.taskTitle)).toBe("a".repeat(200));
    expect(optionalText("d", `  ${"b".repeat(1000)}  `, Bounds.taskDescription)).toBe("b".repeat(1000));
    expect(requiredText("t", "  Buy milk  ", Bounds.taskTitle)).toBe("Buy milk");
    // Inner whitespace is kept and counted.
    expect(requiredText("t", " a  b ", Bounds.taskTitle)).toBe("a  b");
  });

  it("should count characters that are not whitespace to trim, such as a zero-width space", () => {
    expect(requiredText("t", "\u200b", Bounds.taskTitle)).toBe("\u200b");
    expect(badInputOf(() => requiredText("t", `${"a".repeat(200)}\u200b`, Bounds.taskTitle), "t")).toBe("must be at most 200 characters (got 201)");
  });
});

describe("requireStorable", () => {
  it("should refuse a NUL character anywhere, naming the field", () => {
    for (const value of ["\u0000", "a\u0000", "\u0000a", "a\u0000b", " \u0000 "]) {
      expect(badInputOf(() => requireStorable("input.title", value), "input.title")).toBe(NUL);
    }
  });

  it("should refuse a lone high or low surrogate anywhere, and a pair in the wrong order", () => {
    for (const value of ["\ud800", "\udfff", "a\ud83d", "\ude00a", "a\ud83db", "\ude00\ud83d", `${ASTRAL}\ud83d`]) {
      expect(badInputOf(() => requireStorable("input.content", value), "input.content")).toBe(LONE_SURROGATE);
    }
  });

  it("should accept surrogate pairs, other control characters and noncharacters", () => {
    for (const value of ["", ASTRAL, "\ud83d\ude00", "\u{10ffff}", "\u0001\u0008\u001f\u007f", "\ufffe\uffff", "\ufeff", "a\r\nb"]) {
      expect(() => requireStorable("f", value)).not.toThrow();
    }
  });

  it("should be checked by requiredText and optionalText before trimming or counting", () => {
    // NUL and lone surrogates are not whitespace, so a blank-looking or over-long value still says what is wrong with it.
    expect(badInputOf(() => requiredText("t", " \u0000 ", Bounds.taskTitle), "t")).toBe(NUL);
    expect(badInputOf(() => requiredText("t", "a".repeat(300) + "\u0000", Bounds.taskTitle), "t")).toBe(NUL);
    expect(badInputOf(() => requiredText("t", "\ud800".repeat(300), Bounds.taskTitle), "t")).toBe(LONE_SURROGATE);
    expect(badInputOf(() => optionalText("d", "\u0000", Bounds.taskDescription), "d")).toBe(NUL);
    expect(badInputOf(() => optionalText("d", "ok\udc00", Bounds.taskDescription), "d")).toBe(LONE_SURROGATE);
  });

  it("should accept exactly the strings without NUL that survive a round trip through UTF-8", () => {
    // Pieces that make lone surrogates, valid pairs (when a high one meets a low one) and NULs next to text.
    const unit = fc.oneof(
      fc.constantFrom("\u0000", "\ud83d", "\ude00", "\udbff", "\udc00", ASTRAL, "a", " "),
      fc.string({ unit: "binary", maxLength: 1 }),
    );
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 12 }), (value) => {
        const storable = !value.includes("\u0000") && Buffer.from(value, "utf8").toString("utf8") === value;
        let accepted = true;
        try {
          requireStorable("f", value);
        } catch (error) {
          expect(error).toBeInstanceOf(AppError);
          accepted = false;
        }
        expect(accepted).toBe(storable);
      }),
    );
  });
});
