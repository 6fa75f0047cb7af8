/**
 * The dashboard's event schema: one entry per event type, with the data it carries.
 * Fields are optional where publishers differ; the views fall back to the raw data.
 */
export interface Feeds {
  hotspot_detected: { id?: string; area?: string; zone?: string; score?: number; [key: string]: unknown };
  alert_raised: { id?: string; severity?: "info" | "warning" | "critical" | string; message?: string; [key: string]: unknown };
  /**
   * Recommendations live in a keyed room (key = the recommendation id): the hub
   * keeps only each id's latest event, so an update carries the whole record
   * (title and detail too), not just what changed.
   */
  recommendation_created: { id: string; title?: string; detail?: string; status?: "open" | string; [key: string]: unknown };
  recommendation_updated: { id: string; title?: string; detail?: string; status: Decision | string; [key: string]: unknown };
  /** Published with `delete: true` (its data may be absent): the recommendation is gone. */
  recommendation_deleted: { id?: string; [key: string]: unknown } | undefined;
}

/** A recommendation's status: `open` until decided. */
export type RecommendationStatus = "open" | Decision;
export type Decision = "approved" | "rejected";

export const ROOMS = {
  hotspots: "hotspots",
  alerts: "alerts",
  recommendations: "recommendations",
} as const;

/** One-line text for an event's data, whatever its shape. */
export function summarize(data: unknown): string {
  if (data === null || typeof data !== "object") return String(data);
  const d = data as Record<string, unknown>;
  for (const key of ["message", "title", "area", "zone", "name", "id"]) {
    if (typeof d[key] === "string" && d[key] !== "") return d[key] as string;
  }
  return JSON.stringify(data);
}

/** `2026-01-01T12:34:56.789Z` -> local `12:34:56`. */
export function timeOf(ts: string | undefined): string {
  if (!ts) return "";
  const date = new Date(ts);
  return Number.isNaN(date.getTime()) ? ts : date.toLocaleTimeString(undefined, { hour12: false });
}
