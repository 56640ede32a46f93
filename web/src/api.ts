// The one place that calls the service: bearer token, JSON, the error envelope, and the
// contract's types (docs/api.md; GET /api/openapi.json).

import type { Auth } from "./auth";
import type { RuntimeConfig } from "./config";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export type Method = "domainWide" | "perUser" | "serviceAccount";
export type IntegrationStatus =
  | "not_configured" | "consent_pending" | "testing" | "connected" | "degraded" | "failed" | "disconnected";

export interface AccessTestSummary {
  id: string;
  status: "running" | "completed" | "failed";
  finishedAt?: string | null;
  sampled: number;
  accessible: number;
  inaccessible: number;
}

export interface Integration {
  tenantId: string;
  vendor?: "outlook365" | null;
  method?: Method | null;
  ownerEmail?: string | null;
  enabled: boolean;
  status: IntegrationStatus;
  statusReason?: string | null;
  statusSince?: string | null;
  pairingPolicy?: "registered" | "sameTenant" | null;
  accessTestSampleSize?: number | null;
  consent?: { status: string; updatedAt?: string | null; errorCode?: string | null } | null;
  lastAccessTest?: AccessTestSummary | null;
}

export interface AccessTestReport extends AccessTestSummary {
  startedAt: string;
  byReason: Record<string, number>;
  users: { userId: string; userPrincipalName?: string | null; reason: string; hint?: string | null }[];
  errorCode?: string | null;
}

export interface Permissions {
  permissions: { name: string; type: "application" | "delegated"; access: "read" | "readWrite"; purpose: string; method?: Method }[];
  dataUsage: string;
}

export interface Connection {
  connected: boolean;
  method?: Method | null;
  needsReconnect: boolean;
  reason?: string | null;
}

export interface CalendarSettings {
  timeZone: string;
  workingHours?: { daysOfWeek: string[]; startTime: string; endTime: string; timeZone: string } | null;
}

export interface MyEvent {
  start: string;
  end: string;
  showAs: string;
  subject?: string | null;
  isSession: boolean;
}

export interface Pairing {
  pairingId: string;
  mentor: string;
  mentee: string;
  mentorAddress: string;
  menteeAddress: string;
  active: boolean;
}

export interface Slot {
  start: string;
  end: string;
}

/** What a booking chose (or would choose) among any-of rooms and hosts, and why. */
export interface Assigned {
  room?: string | null;
  host?: string | null;
  hostEmail?: string | null;
  reason?: string | null;
}

/** A slot of a group's availability: who and what is free then (email addresses). */
export interface GroupSlot extends Slot {
  optional?: string[] | null;
  hosts?: string[] | null;
  rooms?: string[] | null;
  assigned?: Assigned | null;
}

export interface SessionAttendee {
  user: string;
  email?: string | null;
  type?: "required" | "optional";
  guest?: boolean | null;
  host?: boolean | null;
  response: Response;
}

export interface Room {
  email: string;
  displayName: string;
  capacity?: number | null;
  building?: string | null;
  floor?: string | null;
}

export type Response = "none" | "organizer" | "tentativelyAccepted" | "accepted" | "declined" | "notResponded";

export interface Session {
  id: string;
  status: "pending" | "booked" | "cancelled" | "failed";
  start: string;
  end: string;
  timeZone: string;
  organizer: string;
  attendees: SessionAttendee[];
  room?: { email: string; response: Response } | null;
  joinUrl?: string | null;
  source: "platform" | "outlook";
  updatedAt: string;
  pairingId?: string | null;
  failureReason?: string | null;
  pendingChange?: "create" | "reschedule" | "cancel" | null;
  onlineMeetingUnavailable?: boolean | null;
  assigned?: Assigned | null;
  /** An occurrence of a series (GET /series/{id}). */
  seriesId?: string | null;
  originalStart?: string | null;
  seriesNote?: string | null;
}

/** The error code (409) and failureReason of a slot someone became busy in (docs/product-integration.md). */
export const SLOT_TAKEN = "slot_taken";

/** A fresh Idempotency-Key (a random UUID). */
export function newIdempotencyKey(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * One user action's Idempotency-Key: the same key while the user re-submits the same change
 * (a retry after a network error replays instead of booking twice), a new one when the
 * change itself differs (the service would refuse a reused key with another body).
 */
export class WriteIntent {
  private key = newIdempotencyKey();
  private sent: string | null = null;

  keyFor(body: unknown): string {
    const text = JSON.stringify(body ?? null);
    if (this.sent !== null && this.sent !== text) this.key = newIdempotencyKey();
    this.sent = text;
    return this.key;
  }
}

export type DayName = "monday" | "tuesday" | "wednesday" | "thursday" | "friday" | "saturday" | "sunday";

export interface RuleWindow {
  start: string;
  end: string;
  endsNextDay?: boolean;
}

export interface RuleOverride {
  date: string;
  mode: "off" | "replace" | "add";
  windows?: RuleWindow[];
}

/** Offered hours as PUT takes them (docs/offered-hours.md). */
export interface RulesBody {
  timeZone: string;
  weekly: (RuleWindow & { day: DayName })[];
  overrides: RuleOverride[];
  minNoticeMinutes: number;
  bufferBeforeMinutes: number;
  bufferAfterMinutes: number;
  maxPerDay: number | null;
  maxPerWeek: number | null;
  withinWorkingHours: boolean;
}

/** Offered hours as GET answers them: absent fields when source is "none". */
export interface AvailabilityRules extends Partial<RulesBody> {
  source: "own" | "default" | "none";
  etag?: string | null;
  updatedAt?: string | null;
}

export interface OfferedPreview {
  source: "own" | "default" | "none";
  timeZone?: string | null;
  offered: Slot[];
  slots?: Slot[] | null;
}

type Listener = (error: ApiError) => void;

export class Api {
  private listeners: Listener[] = [];

  constructor(
    private readonly config: RuntimeConfig,
    private readonly auth: Auth,
  ) {}

  /** Called for every failed call (the shell uses it for 401 and reconnect banners). */
  onError(listener: Listener): void {
    this.listeners.push(listener);
  }

  async call<T>(
    method: string,
    path: string,
    body?: unknown,
    options: { anonymous?: boolean; headers?: Record<string, string>; idempotencyKey?: string } = {},
  ): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
    if (!options.anonymous) headers.Authorization = `Bearer ${await this.auth.token()}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (options.idempotencyKey) headers["Idempotency-Key"] = options.idempotencyKey;
    const url = `${this.config.apiBaseUrl}${path}`;
    for (let attempt = 0; ; attempt += 1) {
      let response: globalThis.Response;
      try {
        response = await fetch(url, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          credentials: "omit",
          cache: "no-store",
        });
      } catch {
        throw this.fail(new ApiError(0, "network_error", "The service cannot be reached. Check your connection and try again."));
      }
      const retryable = (response.status === 429 || response.status === 503) && method === "GET" && attempt < 2;
      if (retryable) {
        const wait = Math.min(Number(response.headers.get("Retry-After") ?? "1") || 1, 5);
        await new Promise((resolve) => setTimeout(resolve, wait * 1000));
        continue;
      }
      const text = await response.text();
      const parsed: unknown = text ? safeJson(text) : undefined;
      if (response.ok) return parsed as T;
      const envelope = (parsed as { error?: { code?: string; message?: string; details?: Record<string, unknown> } })?.error;
      throw this.fail(
        new ApiError(
          response.status,
          envelope?.code ?? `http_${response.status}`,
          envelope?.message ?? `The service answered ${response.status}.`,
          envelope?.details,
        ),
      );
    }
  }

  get<T>(path: string, options?: { anonymous?: boolean }): Promise<T> {
    return this.call<T>("GET", path, undefined, options);
  }

  private fail(error: ApiError): ApiError {
    for (const listener of this.listeners) listener(error);
    return error;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function query(params: Record<string, string>): string {
  return `?${new URLSearchParams(params).toString()}`;
}
