import type { ToolApproval } from "../generated/prisma/client.js";
import { builder } from "./builder.js";

export const ToolApprovalStatusEnum = builder.enumType("ToolApprovalStatus", {
  description:
    "PENDING until the user decides (APPROVED, REJECTED with an optional reason) or the wait ends: EXPIRED when CHAT_APPROVAL_TTL passed, the turn was cancelled, or a newer message replaced it (reason says which).",
  values: ["PENDING", "APPROVED", "REJECTED", "EXPIRED"] as const,
});

export const ToolApprovalRef = builder.objectRef<ToolApproval>("ToolApproval").implement({
  description:
    "The user's approval of a tool call that CHAT_APPROVAL holds before it runs (decideToolCalls). A decision is bound to the call it was shown for: its id and argumentsHash.",
  fields: (t) => ({
    status: t.field({ type: ToolApprovalStatusEnum, resolve: (approval) => approval.status }),
    expiresAt: t.field({
      type: "DateTime",
      description: "When the wait ends (the database's clock): past it, the turn ends with stop code APPROVAL_EXPIRED and nothing held runs.",
      resolve: (approval) => approval.expiresAt,
    }),
    reason: t.string({
      nullable: true,
      description: "REJECTED: the reason the user gave (the model reads it). EXPIRED: why the wait ended.",
      resolve: (approval) => approval.reason,
    }),
    decidedAt: t.field({ type: "DateTime", nullable: true, resolve: (approval) => approval.decidedAt }),
    argumentsHash: t.string({
      description:
        "sha256 (hex) of the tool's name and its canonical arguments. Send it back in ToolCallDecision.argumentsHash to refuse a decision on anything but the call that was shown.",
      resolve: (approval) => approval.argumentsHash,
    }),
  }),
});
