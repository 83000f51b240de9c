import { updateUserSettings, type UserSettings } from "../domain/user-settings.js";
import { builder } from "./builder.js";

/** The signed-in user and their settings. */
interface ViewerShape extends UserSettings {
  userId: string;
}

const ViewerRef = builder.objectRef<ViewerShape>("Viewer").implement({
  description: "The signed-in user (the token's subject) and their settings.",
  fields: (t) => ({
    id: t.id({ description: "The token's subject (sub).", resolve: (viewer) => viewer.userId }),
    timezone: t.exposeString("timezone", {
      description:
        "An IANA time zone name (e.g. Europe/Berlin), UTC by default: where the assistant's today and tomorrow are, and a recurrence's local hour.",
    }),
  }),
});

const UpdateViewerInput = builder.inputType("UpdateViewerInput", {
  description: "Omitted fields stay as they are; null puts a setting back to its default.",
  fields: (t) => ({
    timezone: t.string({
      description:
        "An IANA time zone name, e.g. Europe/Berlin, or UTC. An unknown name is BAD_USER_INPUT. All-day tasks keep their calendar day: their dueAt moves to that day's start in the new zone.",
    }),
  }),
});

builder.queryFields((t) => ({
  viewer: t.field({
    type: ViewerRef,
    resolve: async (_root, _args, ctx) => ({ userId: ctx.viewer.userId, ...(await ctx.settings.load(ctx.viewer.userId)) }),
  }),
}));

builder.mutationFields((t) => ({
  updateViewer: t.field({
    type: ViewerRef,
    args: { input: t.arg({ type: UpdateViewerInput, required: true }) },
    resolve: async (_root, { input }, ctx) => ({
      userId: ctx.viewer.userId,
      ...(await updateUserSettings(ctx.db, ctx.viewer.userId, { timezone: input.timezone }, "input")),
    }),
  }),
}));
