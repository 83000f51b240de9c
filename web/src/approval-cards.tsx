import { useEffect, useId, useState } from "react";
import { useClient } from "urql";
import type { TurnView } from "./conversation-log";
import { DECIDE_TOOL_CALLS, type ApprovalCallFields } from "./documents";
import { describeError, errorCode } from "./errors";
import type { ResultOf } from "./graphql";
import { summarise } from "./tool-chip";

type HeldCall = ResultOf<typeof ApprovalCallFields>;

const VERBS: Record<string, string> = {
  delete_task: "Delete",
  complete_task: "Complete",
  update_task: "Change",
  add_task: "Add a task",
};

/** What the call will do, in words: the verb and the titles of the tasks it names (not only their ids). */
export function describeCall(call: HeldCall): string {
  const verb = VERBS[call.name] ?? call.name;
  if (call.tasks.length > 0) return `${verb} ${call.tasks.map((task) => `“${task.title}”`).join(", ")}`;
  const args = summarise(call.arguments);
  return args === "" ? verb : `${verb}: ${args}`;
}

/** Time left until `expiresAt`, as m:ss, counting down each second; "expired" once it has passed. */
function useTimeLeft(expiresAt: string): string {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const seconds = Math.ceil((Date.parse(expiresAt) - now) / 1000);
  if (seconds <= 0) return "expired";
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")} left`;
}

/**
 * The calls a waiting turn (REQUIRES_ACTION) holds for the user, one card
 * each: what it will do, Approve, Reject with an optional reason, and the time
 * left. The cards read the turn from the cache, so they come back after a
 * reload (the conversation's activeTurn) and change live when a decision is
 * taken elsewhere (turnUpdated); the turn resumes once every call is decided.
 */
export function ApprovalCards({ turn }: { turn: TurnView }) {
  const held = turn.toolCalls.filter((call) => call.approval !== null);
  if (turn.status !== "REQUIRES_ACTION" || held.length === 0) return null;
  return (
    <div className="approvals" aria-live="polite">
      <p className="approvals-note">The assistant asks before it does this:</p>
      {held.map((call) => (
        <ApprovalCard key={call.id} turnId={turn.id} call={call} />
      ))}
    </div>
  );
}

const DECIDED: Record<string, string> = { APPROVED: "Approved", REJECTED: "Rejected", EXPIRED: "Expired" };

/** decideToolCalls for one card: the turn that comes back (and turnUpdated after it) lands in the cache, which the cards read. */
function useDecide(turnId: string, call: HeldCall) {
  const client = useClient();
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string>();
  const decide = async (approve: boolean, reason: string) => {
    setBusy(true);
    setProblem(undefined);
    const given = approve || reason.trim() === "" ? {} : { reason: reason.trim() };
    const decision = { toolCallId: call.id, approve, argumentsHash: call.approval!.argumentsHash, ...given };
    const result = await client.mutation(DECIDE_TOOL_CALLS, { turnId, decisions: [decision] }).toPromise();
    setBusy(false);
    if (!result.error) return;
    setProblem(errorCode(result.error) === "STALE_DECISION" ? "This was already decided elsewhere, or it expired." : describeError(result.error));
  };
  return { busy, problem, decide };
}

function ApprovalCard({ turnId, call }: { turnId: string; call: HeldCall }) {
  const approval = call.approval!;
  const { busy, problem, decide } = useDecide(turnId, call);
  const title = describeCall(call);
  return (
    <section
      className="approval-card"
      data-testid="approval-card"
      data-tool-call-id={call.id}
      data-status={approval.status}
      aria-label={`Approval: ${title}`}
    >
      <p className="approval-title" data-testid="approval-title">
        {title}
      </p>
      {approval.status === "PENDING" ? (
        <PendingControls expiresAt={approval.expiresAt} busy={busy} onDecide={(approve, reason) => void decide(approve, reason)} />
      ) : (
        <span className="approval-decided">{DECIDED[approval.status]}</span>
      )}
      {problem && (
        <p className="problem" role="alert">
          {problem}
        </p>
      )}
    </section>
  );
}

/** A pending card's time left, its optional reason, Approve and Reject. */
function PendingControls(props: { expiresAt: string; busy: boolean; onDecide: (approve: boolean, reason: string) => void }) {
  const [reason, setReason] = useState("");
  const timeLeft = useTimeLeft(props.expiresAt);
  const reasonId = useId();
  return (
    <>
      <span className="approval-time" data-testid="approval-time-left">
        {timeLeft}
      </span>
      <label htmlFor={reasonId} className="visually-hidden">
        Reason for rejecting (optional)
      </label>
      <input
        id={reasonId}
        data-testid="approval-reason"
        maxLength={1000}
        placeholder="Reason, if you reject (optional)"
        value={reason}
        onChange={(event) => setReason(event.target.value)}
      />
      <div className="approval-actions">
        <button type="button" data-testid="approval-approve" className="approve" disabled={props.busy} onClick={() => props.onDecide(true, reason)}>
          Approve
        </button>
        <button type="button" data-testid="approval-reject" disabled={props.busy} onClick={() => props.onDecide(false, reason)}>
          Reject
        </button>
      </div>
    </>
  );
}
