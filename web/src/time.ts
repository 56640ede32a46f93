// Time-zone arithmetic with Intl only (no date library): the API speaks UTC instants and
// IANA zone names; people see wall-clock times in their own zone.

export interface Ymd {
  year: number;
  month: number; // 1-12
  day: number;
}

const partsCache = new Map<string, Intl.DateTimeFormat>();

function partsFormat(timeZone: string): Intl.DateTimeFormat {
  let format = partsCache.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      weekday: "short",
    });
    partsCache.set(timeZone, format);
  }
  return format;
}

export interface ZonedParts extends Ymd {
  hour: number;
  minute: number;
  second: number;
  weekday: number; // 0 = Monday ... 6 = Sunday
}

const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

export function zonedParts(date: Date, timeZone: string): ZonedParts {
  const out: Record<string, string> = {};
  for (const p of partsFormat(timeZone).formatToParts(date)) out[p.type] = p.value;
  return {
    year: Number(out.year),
    month: Number(out.month),
    day: Number(out.day),
    hour: Number(out.hour) % 24,
    minute: Number(out.minute),
    second: Number(out.second),
    weekday: WEEKDAYS.indexOf(out.weekday ?? "Mon"),
  };
}

/** Offset of the zone from UTC at an instant, in minutes (positive east of Greenwich). */
export function offsetMinutes(date: Date, timeZone: string): number {
  const p = zonedParts(date, timeZone);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return Math.round((asUtc - Math.floor(date.getTime() / 1000) * 1000) / 60000);
}

/** The instant a wall-clock time in a zone stands for (the earlier one in a DST overlap). */
export function zonedToDate(d: Ymd, hour: number, minute: number, timeZone: string): Date {
  const guess = Date.UTC(d.year, d.month - 1, d.day, hour, minute);
  let result = guess - offsetMinutes(new Date(guess), timeZone) * 60000;
  const corrected = guess - offsetMinutes(new Date(result), timeZone) * 60000;
  if (corrected !== result) result = corrected;
  return new Date(result);
}

export function addDays(d: Ymd, days: number): Ymd {
  const t = new Date(Date.UTC(d.year, d.month - 1, d.day + days));
  return { year: t.getUTCFullYear(), month: t.getUTCMonth() + 1, day: t.getUTCDate() };
}

export function ymdOf(date: Date, timeZone: string): Ymd {
  const p = zonedParts(date, timeZone);
  return { year: p.year, month: p.month, day: p.day };
}

export function ymdKey(d: Ymd): string {
  return `${d.year}-${String(d.month).padStart(2, "0")}-${String(d.day).padStart(2, "0")}`;
}

export function parseYmd(value: string): Ymd | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  return m ? { year: Number(m[1]), month: Number(m[2]), day: Number(m[3]) } : null;
}

/** Monday of the week holding `date`, in the zone. */
export function mondayOf(date: Date, timeZone: string): Ymd {
  const p = zonedParts(date, timeZone);
  return addDays({ year: p.year, month: p.month, day: p.day }, -p.weekday);
}

/** ISO 8601 with the zone's offset at that instant (what the API asks for in requests). */
export function isoInZone(date: Date, timeZone: string): string {
  const p = zonedParts(date, timeZone);
  const off = offsetMinutes(date, timeZone);
  const sign = off < 0 ? "-" : "+";
  const abs = Math.abs(off);
  const pad = (n: number) => String(n).padStart(2, "0");
  return (
    `${p.year}-${pad(p.month)}-${pad(p.day)}T${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}` +
    `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
  );
}

const formats = new Map<string, Intl.DateTimeFormat>();

function fmt(timeZone: string, key: string, options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const id = `${timeZone}|${key}`;
  let f = formats.get(id);
  if (!f) {
    f = new Intl.DateTimeFormat(undefined, { timeZone, ...options });
    formats.set(id, f);
  }
  return f;
}

export function timeLabel(date: Date, timeZone: string): string {
  return fmt(timeZone, "t", { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(date);
}

export function dayLabel(date: Date, timeZone: string): string {
  return fmt(timeZone, "d", { weekday: "short", day: "numeric", month: "short" }).format(date);
}

export function longDayLabel(date: Date, timeZone: string): string {
  return fmt(timeZone, "D", { weekday: "long", day: "numeric", month: "long" }).format(date);
}

export function dateTimeLabel(date: Date, timeZone: string): string {
  return `${dayLabel(date, timeZone)}, ${timeLabel(date, timeZone)}`;
}

export function rangeLabel(start: Date, end: Date, timeZone: string): string {
  return `${timeLabel(start, timeZone)}–${timeLabel(end, timeZone)}`;
}

export function browserTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

export function minutesBetween(start: Date, end: Date): number {
  return Math.round((end.getTime() - start.getTime()) / 60000);
}
