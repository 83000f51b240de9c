import { undoCheck, undoTurnForUser, type UndoCheck, type UndoOutcome } from "../domain/undo.js";
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

const UndoCheckRef = builder.objectRef<UndoCheck>("UndoCheck").implement({
  description: "Whether undoTurn would succeed now, and if not, why (read without locks: it may change the moment after).",
  fields: (t) => ({
    canUndo: t.exposeBoolean("canUndo"),
    code: t.exposeString("code", {
      nullable: true,
      description: "Why not: TURN_RUNNING, ALREADY_UNDONE, CONFLICT (see taskIds) or NOTHING_TO_UNDO (the turn changed no task); null when it can.",
    }),
    reason: t.exposeString("reason", { nullable: true, description: "The same, in words a client can show." }),
    taskIds: t.exposeIDList("taskIds", { description: "CONFLICT: the tasks changed since the turn changed them." }),
  }),
});

builder.prismaObjectField("Turn", "undoCheck", (t) =>
  t.field({
    type: UndoCheckRef,
    description: "Whether undoTurn would succeed now, for a client to enable its Undo or say why not.",
    resolve: (turn, _args, ctx) => undoCheck(ctx.db, ctx.viewer.userId, turn.id),
  }),
);

builder.mutationField("undoTurn", (t) =>
  t.field({
    type: UndoTurnPayloadRef,
    description:
      "Reverts every task change the turn made, in one transaction, newest first: a task it created is deleted, one it changed is set back, one it deleted comes back with its id. Refused, changing nothing: CONFLICT (extensions.taskIds) when one of those tasks changed since, ALREADY_UNDONE, TURN_RUNNING; another user's turn is NOT_FOUND.",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => undoTurnForUser(ctx.db, ctx.viewer.userId, parseId(args.id, "id", "Turn")),
  }),
);
