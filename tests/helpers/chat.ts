import { createCohereModel } from "../../src/chat/cohere.js";
import type { AssistantDeps } from "../../src/chat/turn-run.js";
import type { Db } from "../../src/db/client.js";
import type { Message } from "../../src/generated/prisma/client.js";
import { createLogger, type Logger } from "../../src/lib/logger.js";
import { parseId } from "../../src/lib/ids.js";
import { startFakeCohere, type FakeCohere } from "./fake-cohere.js";
import { startTestServer, testAssistant, type GraphQLResponse, type TestServer, type TestUser } from "./server.js";

/** Shared documents, views and setup of the chat tests: sendMessage against a fake Cohere. */

export const SEND = /* GraphQL */ `
  mutation Send($input: SendMessageInput!) {
    sendMessage(input: $input) {
      conversation {
        id
        title
      }
      userMessage {
        id
        role
        content
        seq
      }
      reply {
        id
        role
        content
        seq
        toolCalls {
          id
        }
        toolCallId
      }
      messages {
        id
        role
        content
        seq
        toolCallId
        toolCalls {
          id
          name
          arguments
          result
          error
        }
      }
      toolCalls {
        id
        name
        arguments
        result
        error
      }
    }
  }
`;

export interface ToolCallView {
  id: string;
  name: string;
  arguments: unknown;
  result: Record<string, any> | null;
  error: string | null;
}

export interface MessageView {
  id: string;
  role: "USER" | "ASSISTANT" | "TOOL";
  content: string;
  seq: number;
  toolCallId: string | null;
  toolCalls: ToolCallView[];
}

/** The sendMessage payload as SEND selects it. */
export interface SendPayload {
  conversation: { id: string; title: string | null };
  userMessage: { id: string; role: string; content: string; seq: number };
  reply: { id: string; role: string; content: string; seq: number; toolCalls: unknown[]; toolCallId: string | null } | null;
  messages: MessageView[];
  toolCalls: ToolCallView[];
}

export type SendResponse = GraphQLResponse<{ sendMessage: SendPayload } | null>;

/** Sends SEND as `user`, to `server` when given (else the server the user was made on). */
export function sendMessage(user: TestUser, input: Record<string, unknown>, server?: TestServer): Promise<SendResponse> {
  const response = server === undefined ? user.gql(SEND, { input }) : server.request(SEND, { input }, user.token);
  return response as Promise<SendResponse>;
}

/** The API key the chat tests give the SDK unless they need one of their own. */
export const TEST_COHERE_KEY = "test-key";

/** Test assistant settings whose model is the real cohere-ai SDK pointed at `fake`. */
export function cohereAssistant(fake: FakeCohere, overrides: Partial<AssistantDeps> = {}, apiKey = TEST_COHERE_KEY): AssistantDeps {
  return testAssistant({ model: createCohereModel({ apiKey, baseUrl: fake.baseUrl }), ...overrides });
}

export interface ChatRig {
  fake: FakeCohere;
  server: TestServer;
  /** The assistant settings the server runs with. */
  deps: AssistantDeps;
}

/**
 * A fake Cohere and an API server whose assistant talks to it through the real
 * SDK. The caller closes both (the server first); if the server does not
 * start, the fake is closed here.
 */
export async function startChatRig(
  options: { apiKey?: string; db?: Db; logger?: Logger; assistant?: Partial<AssistantDeps> } = {},
): Promise<ChatRig> {
  const fake = await startFakeCohere();
  try {
    const logger = options.logger ?? createLogger("silent");
    const deps = cohereAssistant(fake, { logger, ...options.assistant }, options.apiKey);
    const server = await startTestServer({ db: options.db, logger, assistant: deps });
    return { fake, server, deps };
  } catch (error) {
    await fake.close();
    throw error;
  }
}

/** The persisted messages of a conversation, by its global id, in seq order. */
export function messagesIn(db: Db, conversationGlobalId: string): Promise<Message[]> {
  return db.message.findMany({
    where: { conversationId: parseId(conversationGlobalId, "id", "Conversation") },
    orderBy: { seq: "asc" },
  });
}
