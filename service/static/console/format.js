// Times and numbers as the reader's browser writes them.

const exactFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const hourFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const numberFormat = new Intl.NumberFormat();

const STEPS = [
  [60, "second"],
  [60, "minute"],
  [24, "hour"],
  [7, "day"],
  [4.35, "week"],
  [12, "month"],
  [Infinity, "year"],
];

export function exact(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : exactFormat.format(date);
}

export function hour(iso) {
  return hourFormat.format(new Date(iso));
}

/** "3 minutes ago", "yesterday": how long before now `iso` was. */
export function relative(iso, now = Date.now()) {
  const time = new Date(iso).getTime();
  if (Number.isNaN(time)) return String(iso);
  let amount = (time - now) / 1000;
  if (Math.abs(amount) < 45) return "just now";
  for (const [size, unit] of STEPS) {
    if (Math.abs(amount) < size) return relativeFormat.format(Math.round(amount), unit);
    amount /= size;
  }
  return exact(iso);
}

export function number(value) {
  return numberFormat.format(value);
}

/** "1 message", "3 messages". */
export function plural(count, word, many = `${word}s`) {
  return `${numberFormat.format(count)} ${count === 1 ? word : many}`;
}
