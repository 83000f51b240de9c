import { brandWithType } from "@pothos/core";
import { getConversation } from "../domain/conversations.js";
import { getMessage } from "../domain/messages.js";
import { getTask } from "../domain/tasks.js";
import { getTurn } from "../domain/conversation-log.js";
import { getTaskEvent } from "../domain/task-events.js";
import { builder } from "./builder.js";
import { ConversationRef } from "./conversation.js";
import { MessageRef } from "./message.js";
import { TaskRef } from "./task.js";
import { TaskEventRef } from "./task-event.js";
import { TurnRef } from "./turn.js";
import { NODE_TYPENAMES, parseGlobalId, type NodeTypename } from "../lib/ids.js";

const types = {
  Task: { ref: TaskRef, load: getTask },
  Conversation: { ref: ConversationRef, load: getConversation },
  Message: { ref: MessageRef, load: getMessage },
  Turn: { ref: TurnRef, load: getTurn },
  TaskEvent: { ref: TaskEventRef, load: getTaskEvent },
} satisfies Record<NodeTypename, unknown>;

builder.queryField("node", (t) =>
  t.field({
    type: builder.nodeInterfaceRef(),
    nullable: true,
    description: "Any Task, Conversation, Message, Turn or TaskEvent of the viewer by its global ID. Others' are NOT_FOUND.",
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const { typename, id } = parseGlobalId(args.id, "id", NODE_TYPENAMES);
      const type = types[typename];
      const row = await type.load(ctx.db, ctx.viewer.userId, id);
      // Lets the Node interface resolve the row's concrete type.
      brandWithType(row, type.ref);
      return row;
    },
  }),
);
