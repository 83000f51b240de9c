import { useCallback, useEffect, useState } from "react";
import { Provider } from "urql";
import { initialToken, saveToken, subjectOf } from "./auth";
import { createClients, type Clients } from "./client";
import { Chat } from "./chat";
import { ConnectionStatus } from "./connection-status";
import { Conversations } from "./conversations";
import { TasksPane } from "./tasks-pane";
import { TokenForm } from "./token-form";

export function App() {
  const [auth, setAuth] = useState(initialToken);
  // The token the server refused, if any: a late answer to an older token's request cannot mark a newer one.
  const [refusedToken, setRefusedToken] = useState<string>();
  const [conversationId, setConversationId] = useState<string | null>(null);

  const [clients, setClients] = useState<Clients>();
  // One client pair per token, closed when the token changes or the app unmounts.
  useEffect(() => {
    if (!auth) return setClients(undefined);
    const created = createClients(auth.token, () => setRefusedToken(auth.token));
    setClients(created);
    return () => created.dispose();
  }, [auth]);

  const applyToken = useCallback((token: string) => {
    saveToken(token);
    setConversationId(null);
    setAuth({ token, source: "saved" });
  }, []);

  const refused = auth !== undefined && refusedToken === auth.token;
  const who = auth ? subjectOf(auth.token) : undefined;
  const needsToken = !clients || refused;

  return (
    <div className="app">
      <header className="top">
        <h1>Todo assistant</h1>
        {clients && <ConnectionStatus store={clients.connection} />}
        <TokenForm
          onSave={applyToken}
          prominent={needsToken}
          status={
            refused
              ? "The server refused this token (UNAUTHENTICATED): enter a valid JWT."
              : !auth
                ? "Enter a JWT to sign in (npm run token -- --sub you)."
                : `Signed in as ${who ?? "unknown"}${auth.source === "dev" ? " (dev token)" : ""}.`
          }
        />
      </header>
      {clients && !refused && (
        <Provider value={clients.client}>
          <main className="layout">
            <Conversations selected={conversationId} onSelect={setConversationId} connection={clients.connection} />
            <Chat conversationId={conversationId} onConversation={setConversationId} connection={clients.connection} />
            <TasksPane connection={clients.connection} />
          </main>
        </Provider>
      )}
    </div>
  );
}
