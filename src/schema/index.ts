import { builder } from "./builder.js";
import "./scalars.js";
import "./root.js";
import "./node.js";
import "./task.js";
import "./conversation.js";
import "./message.js";

export const schema = builder.toSchema({ sortSchema: true });
