import { Prisma } from "../generated/prisma/client.js";

/**
 * The full-text condition over tasks.search_vector (the task_search
 * migration: the 'english' and 'simple' configurations together).
 *
 * The user's text goes to Postgres only as a bound parameter, parsed there
 * by websearch_to_tsquery, which accepts any text ("quoted phrases", OR,
 * -word) and never fails on syntax. The word being typed last also matches
 * as a prefix: it is cut off in JavaScript only when it is a plain run of
 * letters and digits (so nothing in it can be tsquery syntax), and still
 * travels as a parameter, to to_tsquery('simple', <word> || ':*').
 *
 * 'english' gives stems ("dentists" finds "dentist", "running" finds "run");
 * 'simple' gives the prefix of the word as written ("dent" finds "dentist";
 * an english prefix would be stemmed first and miss). Titles also match
 * fuzzily (pg_trgm word similarity, the default 0.6 threshold), for typos.
 */

/** A trailing plain word, not negated (-word) and not inside an open "quote". */
const LAST_WORD = /(^|[\s(])([\p{L}\p{N}]+)$/u;

export interface SearchParts {
  /** The text without its last word, for websearch_to_tsquery('english'). */
  rest: string;
  /** The last word, matched stemmed or as a prefix; null when the text does not end in a plain word. */
  last: string | null;
}

export function searchParts(text: string): SearchParts {
  const trimmed = text.trim();
  const quotes = trimmed.split('"').length - 1;
  const match = quotes % 2 === 0 ? LAST_WORD.exec(trimmed) : null;
  if (!match?.[2]) return { rest: trimmed, last: null };
  return { rest: trimmed.slice(0, trimmed.length - match[2].length), last: match[2].toLowerCase() };
}

/** The tsquery of a search text (an expression; see the module comment). */
export function searchQuery(text: string): Prisma.Sql {
  const { rest, last } = searchParts(text);
  const stemmed = Prisma.sql`websearch_to_tsquery('english', ${rest})`;
  if (last === null) return stemmed;
  // The empty tsquery of a blank `rest` is neutral under &&.
  return Prisma.sql`(${stemmed} && (websearch_to_tsquery('english', ${last}) || to_tsquery('simple', ${last} || ':*')))`;
}

export function taskSearchCondition(text: string): Prisma.Sql {
  return Prisma.sql`(tasks.search_vector @@ ${searchQuery(text)} OR ${text} <% tasks.title)`;
}
