// Scenario time: Go-style durations (host/core/src/scenario/duration.rs) and RFC 3339 instants.
// Instants and durations are BigInt nanoseconds, so `after:` arithmetic is exact.

const NANOS_PER_UNIT = new Map([
  ['ns', 1],
  ['us', 1e3],
  ['µs', 1e3],
  ['μs', 1e3],
  ['ms', 1e6],
  ['s', 1e9],
  ['m', 60e9],
  ['h', 3600e9],
]);
const U64_MAX = 18446744073709551615;

/** Parses a Go duration (`90s`, `1h30m`, `1.5h`, `250ms`; `0`) into BigInt nanoseconds, with
 * the Rust host's arithmetic (a sum of doubles, rounded). Throws on malformed text. */
export function parseDuration(text) {
  const invalid = (why) =>
    new Error(`invalid duration ${JSON.stringify(text)}: ${why} (examples: 90s, 16m, 1h30m, 250ms)`);
  if (text === '0') return 0n;
  if (text === '') throw invalid('empty');
  let rest = text;
  let total = 0;
  while (rest !== '') {
    const numberLen = rest.search(/[^0-9.]/);
    if (numberLen < 0) throw invalid('missing unit');
    const number = rest.slice(0, numberLen);
    const tail = rest.slice(numberLen);
    if (number === '' || number === '.') throw invalid('expected a number');
    if (!/^(\d+\.?\d*|\.\d+)$/.test(number)) throw invalid('bad number');
    const value = Number(number);
    let unitLen = tail.search(/[0-9.]/);
    if (unitLen < 0) unitLen = tail.length;
    const unit = tail.slice(0, unitLen);
    const perUnit = NANOS_PER_UNIT.get(unit);
    if (perUnit === undefined) throw invalid(`unknown unit ${JSON.stringify(unit)}`);
    total += value * perUnit;
    rest = tail.slice(unitLen);
  }
  if (total > U64_MAX) throw invalid('too large');
  // f64::round rounds halves away from zero; for the non-negative total here that is
  // Math.round.
  return BigInt(Math.round(total));
}

/** Milliseconds as a compact duration (`1h30m`, `1500ms`), as the Rust host prints them. */
export function formatMillis(millis) {
  const ms = BigInt(millis);
  if (ms === 0n) return '0s';
  if (ms % 1000n !== 0n) return `${ms}ms`;
  const seconds = ms / 1000n;
  const parts = [
    [seconds / 3600n, 'h'],
    [(seconds / 60n) % 60n, 'm'],
    [seconds % 60n, 's'],
  ];
  return parts
    .filter(([v]) => v > 0n)
    .map(([v, u]) => `${v}${u}`)
    .join('');
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Parses an RFC 3339 time into BigInt nanoseconds since the Unix epoch. Throws if invalid. */
export function parseTime(text) {
  const invalid = () =>
    new Error(`invalid time ${JSON.stringify(text)}; expected RFC 3339, e.g. 2026-01-01T00:00:00Z`);
  const m = typeof text === 'string' ? RFC3339.exec(text) : null;
  if (!m) throw invalid();
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || s > 60) throw invalid();
  let offsetMinutes = 0;
  if (m[9]) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) throw invalid();
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const fraction = BigInt(((m[7] ?? '') + '000000000').slice(0, 9));
  const utc = new Date(0);
  utc.setUTCFullYear(y, mo - 1, d);
  utc.setUTCHours(h, mi, s, 0);
  const seconds = BigInt(utc.getTime() / 1000) - BigInt(offsetMinutes * 60);
  return seconds * 1_000_000_000n + fraction;
}

/** Floor division of BigInts. */
function floorDiv(a, b) {
  const q = a / b;
  return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? q - 1n : q;
}

/** Nanoseconds since the epoch -> milliseconds since the epoch (chrono's `timestamp_millis`). */
export function epochMillis(nanos) {
  return floorDiv(nanos, 1_000_000n);
}

/** Nanoseconds since the epoch -> `2026-01-01T00:00:00Z` (whole seconds, UTC). */
export function formatTime(nanos) {
  const seconds = floorDiv(nanos, 1_000_000_000n);
  return new Date(Number(seconds) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
