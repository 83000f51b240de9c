import { undoTurnForUser, type UndoOutcome } from "../domain/undo.js";
import { parseId } from "../lib/ids.js";
import { builder } from "./builder.js";
import { TaskRef } from "./task.js";
import { TaskEventRef } from "./task-event.js";
import { TurnRef } from "./turn.js";

const UndoTurnPayloadRef = builder.objectRef<UndoOutcome>("UndoTurnPayload").implement({
  description: "What undoTurn did, in one transaction.",
  fields: (t) => ({
    turn: t.field({ type: TurnRef, description: "The turn, now with undoneAt set.", resolve: (outcome) => outcome.turn }),
    reverted: t.field({
      type: [TaskEventRef],
      description: "The changes the undo made (actor UNDO), in the order it made them: newest of the turn's changes first.",
      resolve: (outcome) => outcome.reverted,
    }),
    tasks: t.field({
      type: [TaskRef],
      description: "The tasks the undo wrote, as they are now. A task the turn had created is gone, so not among them.",
      resolve: (outcome) => outcome.tasks,
    }),
  }),
});

builder.mutationField("undoTurn", (t) =>
  t.field({
    type: UndoTurnPayloadRef,
    description:
      "Reverts every task change the turn made, in one transaction, newest first: a task it created is deleted, one it changed is set back, one it deleted comes back with its id. Refused, changing nothing: CONFLICT (extensions.taskIds) when one of those tasks changed since, ALREADY_UNDONE, TURN_RUNNING; another user's turn is NOT_FOUND.",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => undoTurnForUser(ctx.db, ctx.viewer.userId, parseId(args.id, "id", "Turn")),
  }),
);
