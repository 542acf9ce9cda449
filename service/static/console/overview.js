// The page shown when no session is open: the namespace's counts and the activity chart,
// read again a moment after the feed reports changes.

import { ApiError, isAbort } from "./api.js";
import { activityChart } from "./chart.js";
import { el } from "./dom.js";
import * as format from "./format.js";

const HOURS = 24;

export class Overview {
  constructor(ctx, root) {
    this.ctx = ctx;
    this.root = root;
    this.controller = null;
    this.shown = false;
    this.missing = false;
  }

  close() {
    this.shown = false;
    this.controller?.abort();
  }

  /**
   * The counts with the chart's figures, or null where the service has no counts (a 404:
   * not asked again). Asked of the service itself rather than its document, which may
   * describe the route a moment after it exists.
   */
  async counts(signal) {
    const { caps, api } = this.ctx;
    if (this.missing) return null;
    try {
      return await api.read("api/sessions/counts", { query: { hours: HOURS }, signal });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 404) {
        this.missing = true;
        return null;
      }
      // A service that counts but takes no hours: counts without the chart.
      if (error.status === 422 && !caps.activity) return api.read("api/sessions/counts", { signal });
      throw error;
    }
  }

  async open() {
    this.close();
    this.shown = true;
    document.title = "chatsessions console";
    this.root.replaceChildren(
      el("h2", { class: "overview-title", tabindex: "-1" }, "Overview"),
      el("div", { class: "overview-body", "aria-busy": "true" }, el("p", { class: "state" }, "Loading the counts…")));
    await this.refresh();
  }

  focusTitle() {
    this.root.querySelector(".overview-title")?.focus({ preventScroll: true });
  }

  async refresh() {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    let counts = null;
    let problem = null;
    try {
      counts = await this.counts(controller.signal);
    } catch (error) {
      if (isAbort(error)) return;
      problem = error instanceof ApiError ? error.detail : String(error);
    }
    if (controller !== this.controller) return;
    if (counts) this.ctx.list.setCounts(counts);
    if (this.shown) this.render(counts, problem);
  }

  render(counts, problem) {
    const body = el("div", { class: "overview-body", "aria-busy": "false" });
    if (problem) {
      body.append(el("p", { class: "state error" }, `The counts could not be read: ${problem}`));
    } else if (!counts) {
      body.append(el("p", { class: "state" },
        "This service does not count sessions yet (it has no /api/sessions/counts). Pick a session in the list to read it."));
    } else {
      const cards = [["Sessions", counts.total], ["Active now", counts.active], ["Pinned", counts.pinned], ["Archived", counts.archived]]
        .filter(([, value]) => value !== undefined)
        .map(([label, value]) => el("div", { class: "card" }, el("dt", null, label), el("dd", null, format.number(value))));
      body.append(el("dl", { class: "cards" }, cards));
      body.append(el("h3", null, "Sessions active per hour, last 24 hours"));
      if (counts.activity) body.append(activityChart(counts.activity));
      else body.append(el("p", { class: "muted" }, "This service gives no hourly figures (counts?hours=24), so there is no chart."));
      const tags = Object.entries(counts.tags || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
      if (tags.length) {
        body.append(el("h3", null, "Tags"), el("ul", { class: "tags" }, tags.map(([tag, count]) => el("li", null,
          el("button", { type: "button", class: "tag", onclick: () => this.ctx.list.filterByTag(tag) }, `${tag} (${format.number(count)})`)))));
      }
    }
    body.append(el("p", { class: "muted small" }, "Pick a session in the list to read its messages; the list follows every change as it happens."));
    this.root.querySelector(".overview-body")?.replaceWith(body);
  }
}
