import { GraphQLError, responsePathAsArray } from "graphql";
import { sendMessage, type TurnResult } from "../chat/send-message.js";
import { ANSWER_CUT_ERROR } from "../chat/step-bounds.js";
import { AppError, ErrorCode } from "../lib/errors.js";
import { builder } from "./builder.js";
import { ConversationRef } from "./conversation.js";
import { parseId } from "../lib/ids.js";
import { MessageRef } from "./message.js";
import { toolResultKey } from "./loaders.js";
import { ToolCallRef, toolCallsOfMessages } from "./tool-call.js";
import { TurnRef } from "./turn.js";

const SendMessageInput = builder.inputType("SendMessageInput", {
  fields: (t) => ({
    conversationId: t.id({ description: "Omit to start a new conversation, titled from this message." }),
    content: t.string({ required: true, description: "1–5000 characters." }),
    clientMessageId: t.string({
      description:
        "An idempotency key (at most 100 characters, unique per user). Sending it again never stores the message twice: a finished turn is returned as it was, a running one is that turn (never a second), a failed one is resumed.",
    }),
    waitForReply: t.boolean({
      defaultValue: true,
      description:
        "true: answer when the turn has ended, or as soon as it pauses for the user's approval (turn.status REQUIRES_ACTION, no reply; see decideToolCalls). false: answer as soon as the message is stored, with the turn RUNNING and no reply; follow it with messageStream, messageAdded and turnUpdated. Either way the turn runs to its end (or its pause) even if the client goes away.",
    }),
  }),
});

const SendMessagePayload = builder.objectRef<TurnResult>("SendMessagePayload").implement({
  fields: (t) => ({
    conversation: t.field({ type: ConversationRef, resolve: (turn) => turn.conversation }),
    turn: t.field({ type: TurnRef, resolve: (result) => result.turn }),
    userMessage: t.field({ type: MessageRef, resolve: (turn) => turn.userMessage }),
    reply: t.field({
      type: MessageRef,
      nullable: true,
      description: "The assistant's final message for this turn.",
      resolve: (turn) => turn.reply,
    }),
    messages: t.field({
      type: [MessageRef],
      description: "Everything persisted in this turn, in seq order: the user message, each assistant step, each tool result, the reply.",
      resolve: (turn) => turn.messages,
    }),
    toolCalls: t.field({
      type: [ToolCallRef],
      description: "Every tool call of this turn, in order, with its result or error.",
      resolve: (turn) => toolCallsOfMessages(turn.messages),
    }),
  }),
});

builder.mutationField("sendMessage", (t) =>
  t.field({
    type: SendMessagePayload,
    description:
      "Sends a message to the assistant, which may call task tools before it replies; the answer streams (messageStream) and every step is stored. A turn that ends at a bound (steps, time, a repeated call, too many tool calls in one step, an answer cut at its length) returns its payload together with an error whose code says which.",
    args: { input: t.arg({ type: SendMessageInput, required: true }) },
    resolve: async (_root, { input }, ctx, info) => {
      const conversationId =
        input.conversationId === null || input.conversationId === undefined
          ? undefined
          : parseId(input.conversationId, "input.conversationId", "Conversation");
      // Not tied to the request: a client that goes away does not stop the turn.
      const turn = await sendMessage(ctx.assistant, ctx.viewer.userId, {
        conversationId,
        content: input.content,
        clientMessageId: input.clientMessageId,
        waitForReply: input.waitForReply,
      });
      if (turn.stopCode !== null) {
        // A bound's reply is the message saying so; a cut answer's reply is the answer itself.
        const message =
          turn.stopCode === ErrorCode.ASSISTANT_ANSWER_TOO_LONG
            ? ANSWER_CUT_ERROR
            : (turn.reply?.content ?? "The assistant stopped before finishing");
        const error = new AppError(turn.stopCode as ErrorCode, message, {
          extensions: { retryable: true },
        });
        // maskError turns the AppError into its coded GraphQL error, as for a thrown one.
        ctx.deferredErrors.push(
          new GraphQLError(error.message, { nodes: info.fieldNodes, path: responsePathAsArray(info.path), originalError: error }),
        );
      }
      // The turn's tool results are in hand: the messages' toolCalls need not read them back.
      for (const message of turn.messages) {
        if (message.role === "tool" && message.toolCallId) ctx.toolResults.prime(toolResultKey(message.conversationId, message.toolCallId), message);
      }
      return turn;
    },
  }),
);
