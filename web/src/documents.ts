import { graphql } from "./graphql";

export const TaskFields = graphql(`
  fragment TaskFields on Task {
    id
    title
    description
    completed
    completedAt
    dueAt
    dueAllDay
    priority
    labels
    updatedAt
  }
`);

export const TASKS = graphql(
  `
    query Tasks($filter: TaskFilter, $orderBy: TaskOrder) {
      tasks(first: 100, filter: $filter, orderBy: $orderBy) {
        edges {
          node {
            ...TaskFields
          }
        }
      }
    }
  `,
  [TaskFields],
);

/** The viewer's time zone: due dates are entered and shown in it. */
export const VIEWER = graphql(`
  query Viewer {
    viewer {
      id
      timezone
    }
  }
`);

export const TASK_CHANGED = graphql(
  `
    subscription TaskChanged {
      taskChanged {
        kind
        taskId
        task {
          ...TaskFields
        }
      }
    }
  `,
  [TaskFields],
);

export const ADD_TASK = graphql(
  `
    mutation AddTask($input: AddTaskInput!) {
      addTask(input: $input) {
        ...TaskFields
      }
    }
  `,
  [TaskFields],
);

export const COMPLETE_TASK = graphql(
  `
    mutation CompleteTask($id: ID!) {
      completeTask(id: $id) {
        ...TaskFields
      }
    }
  `,
  [TaskFields],
);

export const UPDATE_TASK = graphql(
  `
    mutation UpdateTask($input: UpdateTaskInput!) {
      updateTask(input: $input) {
        ...TaskFields
      }
    }
  `,
  [TaskFields],
);

export const DELETE_TASK = graphql(`
  mutation DeleteTask($id: ID!) {
    deleteTask(id: $id) {
      id
    }
  }
`);

export const CONVERSATIONS = graphql(`
  query Conversations {
    conversations(first: 50) {
      edges {
        node {
          id
          title
          updatedAt
        }
      }
    }
  }
`);

/** Every change to the viewer's conversation list: the cache's updater re-reads the list (cache.ts). */
export const CONVERSATION_CHANGED = graphql(`
  subscription ConversationChanged {
    conversationChanged {
      kind
      conversationId
      conversation {
        id
        title
        updatedAt
      }
    }
  }
`);

export const CREATE_CONVERSATION = graphql(`
  mutation CreateConversation {
    createConversation {
      id
      title
      updatedAt
    }
  }
`);

export const UPDATE_CONVERSATION = graphql(`
  mutation UpdateConversation($input: UpdateConversationInput!) {
    updateConversation(input: $input) {
      id
      title
      updatedAt
    }
  }
`);

export const DELETE_CONVERSATION = graphql(`
  mutation DeleteConversation($id: ID!) {
    deleteConversation(id: $id)
  }
`);

export const MessageFields = graphql(`
  fragment MessageFields on Message {
    id
    seq
    role
    status
    content
    toolCallId
    toolCalls {
      id
      name
      arguments
      result
      error
    }
    turn {
      id
    }
  }
`);

/** A tool call as an approval card shows it: what it will do (its tasks' titles), and its approval. */
export const ApprovalCallFields = graphql(`
  fragment ApprovalCallFields on ToolCall {
    id
    name
    arguments
    approval {
      status
      expiresAt
      reason
      argumentsHash
    }
    tasks {
      id
      title
    }
  }
`);

export const TurnFields = graphql(
  `
    fragment TurnFields on Turn {
      id
      status
      stopCode
      userMessage {
        id
        content
        clientMessageId
      }
      toolCalls {
        ...ApprovalCallFields
      }
    }
  `,
  [ApprovalCallFields],
);

/** One page of a conversation, newest first: `before` pages back. */
export const MESSAGES_PAGE = graphql(
  `
    query MessagesPage($id: ID!, $before: String) {
      conversation(id: $id) {
        id
        title
        activeTurn {
          ...TurnFields
        }
        messages(last: 30, before: $before) {
          edges {
            node {
              ...MessageFields
            }
          }
          pageInfo {
            hasPreviousPage
            startCursor
          }
        }
      }
    }
  `,
  [MessageFields, TurnFields],
);

export const TURN = graphql(
  `
    query Turn($id: ID!) {
      node(id: $id) {
        ... on Turn {
          ...TurnFields
        }
      }
    }
  `,
  [TurnFields],
);

/** Settled messages after `afterSeq`, then every new one: no gap, no duplicate. */
export const MESSAGE_ADDED = graphql(
  `
    subscription MessageAdded($conversationId: ID!, $afterSeq: Int!) {
      messageAdded(conversationId: $conversationId, afterSeq: $afterSeq) {
        ...MessageFields
      }
    }
  `,
  [MessageFields],
);

/**
 * Answers as they are written: offsets run end to end; joining gives the text
 * so far at offset 0. Only the fields that never change are selected: the cache
 * writes whatever an event selects, and a late event must not put a settled
 * answer back to STREAMING. The settled status, text and tool calls come from
 * messageAdded; the streamed text is written by the cache's updater.
 */
export const MESSAGE_STREAM = graphql(`
  subscription MessageStream($conversationId: ID!) {
    messageStream(conversationId: $conversationId) {
      offset
      delta
      message {
        id
        seq
        role
        toolCallId
      }
    }
  }
`);

/** The text of an answer as it streams in, written to the cache by the messageStream updater. */
export const StreamedText = graphql(`
  fragment StreamedText on Message {
    id
    content
  }
`);

export const SEND_MESSAGE = graphql(
  `
    mutation SendMessage($input: SendMessageInput!) {
      sendMessage(input: $input) {
        conversation {
          id
          title
          updatedAt
        }
        userMessage {
          ...MessageFields
        }
        turn {
          ...TurnFields
        }
      }
    }
  `,
  [MessageFields, TurnFields],
);

/** Every status change of the conversation's turns, and every decision on a held call, from any tab or server. */
export const TURN_UPDATED = graphql(
  `
    subscription TurnUpdated($conversationId: ID!) {
      turnUpdated(conversationId: $conversationId) {
        ...TurnFields
      }
    }
  `,
  [TurnFields],
);

export const DECIDE_TOOL_CALLS = graphql(
  `
    mutation DecideToolCalls($turnId: ID!, $decisions: [ToolCallDecision!]!) {
      decideToolCalls(turnId: $turnId, decisions: $decisions) {
        ...TurnFields
      }
    }
  `,
  [TurnFields],
);

export const CANCEL_TURN = graphql(
  `
    mutation CancelTurn($id: ID!) {
      cancelTurn(id: $id) {
        ...TurnFields
      }
    }
  `,
  [TurnFields],
);

/** One recorded change to a task, as the chat's change list and a task's history show it. */
export const TaskEventFields = graphql(`
  fragment TaskEventFields on TaskEvent {
    id
    at
    kind
    actor
    taskId
    before
    after
  }
`);

/** What a turn changed, and whether it can be undone now (and if not, why). */
export const TURN_CHANGES = graphql(
  `
    query TurnChanges($id: ID!) {
      node(id: $id) {
        ... on Turn {
          id
          status
          undoneAt
          taskEvents {
            ...TaskEventFields
          }
          undoCheck {
            canUndo
            code
            reason
          }
        }
      }
    }
  `,
  [TaskEventFields],
);

export const UNDO_TURN = graphql(`
  mutation UndoTurn($id: ID!) {
    undoTurn(id: $id) {
      turn {
        id
        undoneAt
      }
    }
  }
`);

export const TASK_HISTORY = graphql(
  `
    query TaskHistory($id: ID!) {
      task(id: $id) {
        id
        history(first: 20) {
          edges {
            node {
              ...TaskEventFields
            }
          }
        }
      }
    }
  `,
  [TaskEventFields],
);
