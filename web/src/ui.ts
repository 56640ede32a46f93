// Shared pieces of the console's pages: context, dialogs, labels.

import type { Api, ApiError } from "./api";
import type { Auth, SignedInUser } from "./auth";
import type { RuntimeConfig } from "./config";
import { type Child, focusOn, h } from "./dom";

export interface Ctx {
  config: RuntimeConfig;
  auth: Auth;
  api: Api;
  user: SignedInUser;
  /** Show a message at the top of the next page rendered. */
  flash(kind: "error" | "info" | "success" | "warning", text: string): void;
  /** Run when the page is left (stops polling). */
  onLeave(fn: () => void): void;
  /** Re-render the current route. */
  refresh(): void;
  /** The user's IANA time zone (from their mailbox settings, else the browser's). */
  timeZone(): Promise<string>;
}

/** A modal <dialog> (native focus trap and Escape); focus returns to the opener when it closes. */
export function modal(title: string, build: (close: () => void) => Child[]): HTMLDialogElement {
  const opener = document.activeElement as HTMLElement | null;
  const titleId = `dlg-${Math.random().toString(36).slice(2, 8)}`;
  const dialog = h("dialog", { "aria-labelledby": titleId, class: "dialog" });
  const close = () => dialog.close();
  dialog.append(h("h2", { id: titleId }, title), ...build(close).filter((c): c is Node => c instanceof Node));
  dialog.addEventListener("close", () => {
    dialog.remove();
    opener?.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  const first = dialog.querySelector<HTMLElement>("input, select, textarea, button");
  first?.focus();
  return dialog;
}

export function errorText(error: unknown): string {
  if (error && typeof error === "object" && "message" in error) return String((error as ApiError).message);
  return "Something went wrong.";
}

export function pageHeading(text: string): HTMLHeadingElement {
  return h("h1", { tabindex: "-1", class: "page-title" }, text);
}

export function focusHeading(root: HTMLElement): void {
  focusOn(root.querySelector<HTMLElement>("h1, h2"));
}

export const REASONS: Record<string, string> = {
  accessible: "Reachable",
  mailbox_on_premises_or_unlicensed: "Mailbox on-premises or unlicensed",
  outside_app_scope: "Outside the app's allowed scope",
  user_not_found: "User not found",
  transient_error: "Temporary error (will be retried)",
  other: "Other problem",
};

export const METHODS: Record<string, { label: string; text: string }> = {
  domainWide: {
    label: "Domain-wide (admin consent)",
    text: "You grant consent once for the whole organisation. Every person's calendar works straight away and nobody has to sign in again.",
  },
  perUser: {
    label: "Per user",
    text: "Each person connects their own calendar by signing in with Microsoft. Use this when the organisation will not grant organisation-wide consent.",
  },
  serviceAccount: {
    label: "Service account",
    text: "One scheduling mailbox with delegate access to the calendars it manages books on everyone's behalf.",
  },
};

export const STATUS: Record<string, { label: string; tone: "ok" | "warn" | "bad" | "neutral" | "info" }> = {
  not_configured: { label: "Not set up", tone: "neutral" },
  consent_pending: { label: "Waiting for consent", tone: "info" },
  testing: { label: "Testing access", tone: "info" },
  connected: { label: "Connected", tone: "ok" },
  degraded: { label: "Connected with problems", tone: "warn" },
  failed: { label: "Failed", tone: "bad" },
  disconnected: { label: "Disconnected", tone: "neutral" },
};

export const RESPONSES: Record<string, { label: string; tone: "ok" | "warn" | "bad" | "neutral" | "info" }> = {
  accepted: { label: "Accepted", tone: "ok" },
  organizer: { label: "Organizer", tone: "ok" },
  tentativelyAccepted: { label: "Tentative", tone: "warn" },
  declined: { label: "Declined", tone: "bad" },
  notResponded: { label: "No answer yet", tone: "neutral" },
  none: { label: "No answer yet", tone: "neutral" },
};

/** Why a session failed, in words ("slot_taken" and other codes; a sentence is kept as is). */
export function failureText(reason: string | null | undefined): string {
  if (!reason) return "";
  if (reason === "slot_taken") {
    return "the time was taken before it reached Outlook: you, your partner or the room now have another meeting then";
  }
  return reason.replace(/_/g, " ");
}

/** The 409 slot_taken answer as a sentence naming who is busy (addresses the caller already knows). */
export function slotTakenText(details: Record<string, unknown> | undefined, names?: Map<string, string>): string {
  const busy = Array.isArray(details?.busy) ? (details.busy as unknown[]).map(String) : [];
  const who = busy.map((a) => names?.get(a.toLowerCase()) ?? a);
  return who.length
    ? `That time is no longer free: ${who.join(", ")} ${who.length === 1 ? "has" : "have"} something else then. Pick another time.`
    : "That time is no longer free. Pick another time.";
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
