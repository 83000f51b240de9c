import { builder } from "./builder.js";
import "./scalars.js";
import "./root.js";
import "./node.js";
import "./task.js";
import "./conversation.js";
import "./message.js";
import "./tool-approval.js";
import "./tool-call.js";
import "./turn.js";
import "./decide-tool-calls.js";
import "./task-event.js";
import "./undo-turn.js";
import "./chat.js";
import "./subscriptions.js";
import "./message-stream.js";
import "./turn-updated.js";

export const schema = builder.toSchema({ sortSchema: true });
