// Sessions active per hour over the last day, per channel, as stacked SVG bars drawn
// from one answer of GET /api/sessions/counts?hours=24. The same figures are offered as
// a table for screen readers and for anyone who wants the numbers.

import { el, svg } from "./dom.js";
import * as format from "./format.js";

// Okabe and Ito's palette, told apart with any colour vision; channels past the palette
// are summed as "other".
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C6D1F", "#332288"];
const OTHER_COLOUR = "#767676";

const WIDTH = 720;
const HEIGHT = 240;
const MARGIN = { top: 12, right: 8, bottom: 30, left: 40 };

function series(activity) {
  const channels = Object.entries(activity.channels || {})
    .map(([name, counts]) => ({ name, counts, total: counts.reduce((a, b) => a + b, 0) }))
    .sort((a, b) => b.total - a.total || a.name.localeCompare(b.name));
  const shown = channels.slice(0, PALETTE.length).map((c, i) => ({ ...c, colour: PALETTE[i] }));
  const rest = channels.slice(PALETTE.length);
  if (rest.length) {
    const counts = activity.hours.map((_, h) => rest.reduce((sum, c) => sum + (c.counts[h] || 0), 0));
    shown.push({ name: `other (${rest.length})`, counts, total: counts.reduce((a, b) => a + b, 0), colour: OTHER_COLOUR });
  }
  return shown;
}

function niceMax(value) {
  if (value <= 4) return Math.max(1, value);
  const step = 10 ** Math.floor(Math.log10(value));
  for (const factor of [1, 2, 4, 5, 10]) if (factor * step >= value) return factor * step;
  return value;
}

export function activityChart(activity) {
  const hours = activity.hours || [];
  const lines = series(activity);
  const totals = hours.map((_, h) => lines.reduce((sum, line) => sum + (line.counts[h] || 0), 0));
  const top = niceMax(Math.max(0, ...totals));
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const slot = plotWidth / Math.max(1, hours.length);
  const y = (value) => MARGIN.top + plotHeight - (value / top) * plotHeight;

  // Whole numbers only: a count has no halves.
  const ticks = Number.isInteger(top / 2) ? [0, top / 2, top] : [0, top];
  const grid = ticks.map((tick) =>
    svg("g", { class: "tick" },
      svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(tick), y2: y(tick) }),
      svg("text", { x: MARGIN.left - 6, y: y(tick) + 4, "text-anchor": "end" }, format.number(tick)),
    ),
  );
  const bars = hours.map((iso, h) => {
    let base = 0;
    const x = MARGIN.left + h * slot + slot * 0.12;
    const width = slot * 0.76;
    const segments = lines
      .filter((line) => line.counts[h] > 0)
      .map((line) => {
        const value = line.counts[h];
        const rect = svg("rect", { x, width, y: y(base + value), height: y(base) - y(base + value), fill: line.colour },
          svg("title", null, `${line.name}, ${format.hour(iso)}: ${format.plural(value, "session")}`));
        base += value;
        return rect;
      });
    const label = h % 3 === 0
      ? svg("text", { x: x + width / 2, y: HEIGHT - MARGIN.bottom + 16, "text-anchor": "middle" }, format.hour(iso))
      : null;
    return svg("g", { class: "bar" }, segments, label);
  });

  const total = totals.reduce((a, b) => a + b, 0);
  const busiest = totals.indexOf(Math.max(...totals));
  const summary = hours.length === 0
    ? "No activity figures."
    : `${format.plural(total, "session")} active in the last ${hours.length} hours` +
      (total ? `; busiest hour ${format.hour(hours[busiest])} with ${format.plural(totals[busiest], "session")}.` : ".");

  const legend = el("ul", { class: "legend", "aria-label": "Channels" },
    lines.map((line) => {
      const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
      swatch.style.background = line.colour;
      return el("li", null, swatch, `${line.name} (${format.number(line.total)})`);
    }));

  const table = el("table", { class: "data-table" },
    el("caption", null, "Sessions active per hour, by channel"),
    el("thead", null, el("tr", null, el("th", { scope: "col" }, "Hour"),
      lines.map((line) => el("th", { scope: "col" }, line.name)), el("th", { scope: "col" }, "All"))),
    el("tbody", null, hours.map((iso, h) => el("tr", null,
      el("th", { scope: "row" }, el("time", { datetime: iso }, format.hour(iso))),
      lines.map((line) => el("td", null, format.number(line.counts[h] || 0))),
      el("td", null, format.number(totals[h]))))));

  return el("figure", { class: "chart" },
    svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": summary, class: "chart-svg" },
      svg("g", { class: "grid" }, grid), bars),
    el("figcaption", null, summary),
    lines.length ? legend : el("p", { class: "muted" }, "No session was active in the last day."),
    el("details", { class: "chart-table" }, el("summary", null, "Show the figures as a table"), table));
}
