// The sidebar: channel tabs, filters, search, and the list of sessions, most recently
// active first, with the next page read on `next_cursor` as the end scrolls into view,
// and kept current by the change feed without a reload.

import { ApiError, isAbort } from "./api.js";
import { $, el, highlighted, timeEl } from "./dom.js";
import * as format from "./format.js";

const PAGE = 50;
const SEARCH_PAGE = 20;
// A burst of events costs one read of the total, this long after the last of them.
const TOTAL_DELAY_MS = 800;

export const EMPTY_FILTERS = Object.freeze({
  channel: "", active: "", archived: "", pinned: "", tag: "", user: "", unread: false,
});

function itemPath(id) {
  return `#/session/${encodeURIComponent(id)}`;
}

export class SessionList {
  constructor(ctx) {
    this.ctx = ctx;
    this.region = $("#list-region");
    this.tabs = $("#channel-tabs");
    this.totalLabel = $("#sessions-total");
    this.filtersBox = $("#filters");
    this.filtersForm = $("#filters-form");
    this.filtersSummary = $("#filters-summary");
    this.filtersNote = $("#filters-note");
    this.searchForm = $("#search-form");
    this.searchInput = $("#search-input");
    this.filters = { ...EMPTY_FILTERS };
    this.items = [];
    this.nodes = new Map();
    this.nextCursor = null;
    this.total = null;
    this.loading = false;
    this.ready = false;
    this.pending = [];
    this.channelsSeen = new Set();
    this.counts = null;
    this.selected = null;
    this.controller = null;
    this.search = null;
    this.totalTimer = null;

    this.list = el("ul", { class: "sessions", "aria-label": "Sessions, most recent first" });
    this.list.addEventListener("keydown", (event) => this.keys(event));
    this.status = el("div", { class: "list-status" });
    this.more = el("button", { type: "button", class: "more", onclick: () => this.loadMore() }, "Load more sessions");
    this.sentinel = el("div", { class: "sentinel", "aria-hidden": "true" });
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) this.loadMore();
    }, { root: this.region, rootMargin: "0px 0px 300px 0px" });
    this.observer.observe(this.sentinel);

    this.setUpFilters();
    this.searchForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const query = this.searchInput.value.trim();
      if (query) this.runSearch(query);
      else this.endSearch();
    });
    this.searchInput.addEventListener("search", () => {
      if (!this.searchInput.value && this.search) this.endSearch();
    });
  }

  // --- filters and tabs -----------------------------------------------------------------

  /** Shows the filters the service has (called again when the console learns more). */
  showFilterFields() {
    const { caps, me } = this.ctx;
    for (const field of this.filtersForm.querySelectorAll("[data-filter]")) {
      const name = field.dataset.filter;
      field.hidden = !(caps.filters.has(name) && (name !== "unread" || (caps.reader && me.name)));
    }
    if (!this.search) this.setUpFiltersVisibility();
    this.filtersNote.textContent = caps.filters.has("archived")
      ? "Archived sessions are left out unless you ask for them."
      : "";
  }

  setUpFilters() {
    this.showFilterFields();
    this.filtersForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.applyFilters();
    });
    this.filtersForm.addEventListener("change", (event) => {
      if (event.target.tagName === "SELECT" || event.target.type === "checkbox") this.applyFilters();
    });
    this.filtersForm.addEventListener("reset", () => setTimeout(() => this.applyFilters(), 0));
  }

  applyFilters() {
    const data = new FormData(this.filtersForm);
    const next = { ...this.filters };
    for (const name of ["active", "archived", "pinned", "tag", "user"]) next[name] = String(data.get(name) || "").trim();
    next.unread = data.get("unread") === "true";
    this.setFilters(next);
  }

  /** Filters as the list reads them; the form and the tabs follow. */
  setFilters(next) {
    this.filters = { ...next };
    for (const name of ["active", "archived", "pinned", "tag", "user"]) {
      const input = this.filtersForm.elements[name];
      if (input && input.value !== this.filters[name]) input.value = this.filters[name];
    }
    this.filtersForm.elements.unread.checked = this.filters.unread;
    const used = ["active", "archived", "pinned", "tag", "user", "unread"].filter((name) => this.filters[name]).length;
    this.filtersSummary.textContent = used ? `(${used} in use)` : "";
    if (used) this.filtersBox.open = true;
    this.renderTabs();
    if (this.search) this.endSearch(false);
    this.reload();
  }

  filterByTag(tag) {
    this.setFilters({ ...this.filters, tag });
    $("#sessions-heading").focus();
  }

  query(extra) {
    const { filters, ctx } = this;
    const query = { limit: PAGE, ...extra };
    if (filters.channel) query.channel = filters.channel;
    for (const name of ["active", "archived", "pinned", "tag", "user"]) {
      if (filters[name] && ctx.caps.filters.has(name)) query[name] = filters[name];
    }
    if (ctx.caps.reader && ctx.me.name) query.reader = ctx.me.name;
    if (filters.unread && ctx.caps.filters.has("unread")) query.unread = "true";
    return query;
  }

  /** Whether `item` belongs in the list under the filters, as the service decides it. */
  matches(item) {
    const { filters } = this;
    if (filters.channel && item.channel !== filters.channel) return false;
    if (filters.active && String(Boolean(item.active)) !== filters.active) return false;
    const archived = Boolean(item.archived);
    if (filters.archived === "" && archived && this.ctx.caps.filters.has("archived")) return false;
    if (filters.archived === "true" && !archived) return false;
    if (filters.pinned && String(Boolean(item.pinned)) !== filters.pinned) return false;
    if (filters.tag && !(item.tags || []).includes(filters.tag)) return false;
    if (filters.user && item.user !== filters.user) return false;
    if (filters.unread && !(item.unread_count > 0)) return false;
    return true;
  }

  setCounts(counts) {
    this.counts = counts;
    this.renderTabs();
  }

  renderTabs() {
    const counts = this.counts;
    const names = new Set(this.channelsSeen);
    if (counts?.channels) Object.keys(counts.channels).forEach((name) => names.add(name));
    if (this.filters.channel) names.add(this.filters.channel);
    const tabs = [{ name: "", label: "All", count: counts?.total }];
    for (const name of [...names].sort()) tabs.push({ name, label: name, count: counts?.channels?.[name]?.total });
    const focused = this.tabs.contains(document.activeElement);
    this.tabs.replaceChildren(...tabs.map((tab) => {
      const selected = tab.name === this.filters.channel;
      const button = el("button", {
        type: "button",
        role: "tab",
        id: `tab-${tab.name || "all"}`,
        class: "tab",
        "aria-selected": String(selected),
        "aria-controls": "list-region",
        tabindex: selected ? "0" : "-1",
        onclick: () => this.setFilters({ ...this.filters, channel: tab.name }),
        onkeydown: (event) => this.tabKeys(event),
      }, el("span", { class: "tab-label" }, tab.label));
      button.dataset.channel = tab.name;
      if (tab.count !== undefined) button.append(" ", el("span", { class: "count" }, format.number(tab.count)));
      return button;
    }));
    this.region.setAttribute("role", "tabpanel");
    this.region.setAttribute("aria-labelledby", `tab-${this.filters.channel || "all"}`);
    if (focused) this.tabs.querySelector('[aria-selected="true"]')?.focus();
  }

  tabKeys(event) {
    const tabs = [...this.tabs.querySelectorAll('[role="tab"]')];
    const at = tabs.indexOf(event.currentTarget);
    const moves = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const next = tabs[(moves[event.key] + tabs.length) % tabs.length];
    next.focus();
    next.click();
  }

  // --- the list ----------------------------------------------------------------------------

  /** Reads the first page again (filters changed, a reset, a sign-in). */
  async reload() {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.ready = false;
    this.loading = true;
    this.items = [];
    this.nextCursor = null;
    this.showStatus("loading");
    try {
      const page = await this.ctx.api.read("api/sessions", { query: this.query(), signal: controller.signal });
      if (controller.signal.aborted) return;
      this.setTotal(page);
      this.items = page.sessions;
      this.nextCursor = page.next_cursor;
      if (page.sessions.length) this.ctx.learn(page.sessions[0]);
    } catch (error) {
      if (isAbort(error) || controller.signal.aborted) return;
      this.loading = false;
      this.showError(error);
      return;
    }
    this.loading = false;
    this.ready = true;
    // Events that came while the page was read apply on top of it, in their order.
    const pending = this.pending;
    this.pending = [];
    this.render();
    for (const [kind, value] of pending) kind === "upsert" ? this.upsert(value) : this.remove(value);
  }

  async loadMore() {
    if (!this.ready || this.loading || !this.nextCursor || this.search) return;
    const controller = this.controller;
    this.loading = true;
    this.more.disabled = true;
    this.more.textContent = "Loading…";
    try {
      const page = await this.ctx.api.read("api/sessions", {
        query: this.query({ cursor: this.nextCursor }),
        signal: controller?.signal,
      });
      if (controller !== this.controller) return;
      const known = new Set(this.items.map((item) => item.id));
      this.items.push(...page.sessions.filter((item) => !known.has(item.id)));
      this.nextCursor = page.next_cursor;
      this.setTotal(page);
    } catch (error) {
      if (!isAbort(error)) this.ctx.announce(error instanceof ApiError ? error.detail : String(error));
    } finally {
      if (controller === this.controller) {
        this.loading = false;
        this.more.disabled = false;
        this.more.textContent = "Load more sessions";
        this.render();
      }
    }
  }

  /** A page's total; where filters combine, the service may give only a bound. */
  setTotal(page) {
    this.total = page.total;
    this.totalExact = page.total_exact !== false;
  }

  showTotal() {
    if (this.total === null) this.totalLabel.textContent = "";
    else this.totalLabel.textContent = this.totalExact ? `(${format.number(this.total)})` : `(up to ${format.number(this.total)})`;
  }

  showStatus(kind) {
    if (this.search) return;
    this.region.setAttribute("aria-busy", String(kind === "loading"));
    if (kind === "loading") {
      this.region.replaceChildren(el("p", { class: "state" }, "Loading sessions…"));
    }
  }

  showError(error) {
    const detail = error instanceof ApiError ? error.detail : String(error?.message || error);
    this.region.setAttribute("aria-busy", "false");
    this.region.replaceChildren(el("div", { class: "state error" },
      el("p", null, `The sessions could not be read: ${detail}`),
      el("button", { type: "button", onclick: () => this.reload() }, "Try again")));
  }

  filtered() {
    return Object.entries(this.filters).some(([name, value]) => name !== "channel" && value);
  }

  render() {
    if (this.search) return;
    this.region.setAttribute("aria-busy", "false");
    this.showTotal();
    for (const item of this.items) this.channelsSeen.add(item.channel);
    if (!this.counts) this.renderTabs();
    if (this.items.length === 0) {
      const where = this.filters.channel ? ` on ${this.filters.channel}` : "";
      const message = this.filtered() || this.filters.channel
        ? [el("p", null, `No sessions${where} match these filters.`),
          el("button", { type: "button", onclick: () => this.setFilters({ ...EMPTY_FILTERS }) }, "Show every session")]
        : [el("p", null, "No sessions yet."),
          el("p", { class: "muted" }, "Send a message through the API (POST /api/sessions/{id}/messages) and it appears here at once.")];
      this.region.replaceChildren(el("div", { class: "state empty" }, message));
      this.nodes.clear();
      return;
    }
    const focused = document.activeElement;
    const keep = new Map();
    const rows = this.items.map((item) => {
      const row = this.row(item);
      keep.set(item.id, row);
      return row;
    });
    this.nodes = keep;
    // Rows move only where their order changed, so that most keep their place and focus.
    let at = this.list.firstElementChild;
    for (const row of rows) {
      if (row === at) at = at.nextElementSibling;
      else this.list.insertBefore(row, at);
    }
    while (at) {
      const next = at.nextElementSibling;
      at.remove();
      at = next;
    }
    const end = this.nextCursor
      ? [this.more, this.sentinel]
      : [el("p", { class: "list-end muted" }, `That is every session${this.filtered() || this.filters.channel ? " that matches" : ""}.`)];
    if (this.list.parentNode !== this.region || this.region.children.length !== 1 + end.length) {
      this.region.replaceChildren(this.list, ...end);
    } else {
      [...this.region.children].slice(1).forEach((node) => node.remove());
      this.region.append(...end);
    }
    if (this.nextCursor) this.observer.observe(this.sentinel);
    if (focused instanceof HTMLElement && focused !== document.activeElement && focused.isConnected) {
      focused.focus({ preventScroll: true });
    }
  }

  row(item) {
    const previous = this.nodes.get(item.id);
    const key = JSON.stringify(item) + (this.selected === item.id ? "*" : "");
    if (previous && previous.dataset.key === key) return previous;
    const flags = [];
    if (item.pinned) flags.push(el("span", { class: "flag pinned", title: "Pinned" }, "Pinned"));
    if (item.archived) flags.push(el("span", { class: "flag archived" }, "Archived"));
    if (item.unread_count > 0) flags.push(el("span", { class: "flag unread" }, `${format.number(item.unread_count)} unread`));
    const link = el("a", {
      href: itemPath(item.id),
      class: "item",
      "aria-current": this.selected === item.id ? "page" : null,
    },
    el("span", { class: "item-top" },
      el("span", { class: "item-title" }, item.title || "(untitled)"),
      flags),
    el("span", { class: "item-meta" },
      el("span", { class: ["dot", item.active ? "on" : "off"], title: item.active ? "Active" : "Inactive" }),
      el("span", { class: "visually-hidden" }, item.active ? "Active, " : "Inactive, "),
      el("span", { class: "channel" }, item.channel),
      el("span", { class: "count" }, format.plural(item.message_count, "message")),
      timeEl(item.updated_at, format)),
    el("span", { class: "item-id" }, item.id),
    item.tags?.length ? el("span", { class: "item-tags" }, item.tags.map((tag) => el("span", { class: "tag" }, tag))) : null);
    const row = el("li", { class: "row" }, link);
    row.dataset.id = item.id;
    row.dataset.key = key;
    if (previous && previous.dataset.key !== key && previous.dataset.updatedAt !== item.updated_at) {
      row.classList.add("changed");
    }
    row.dataset.updatedAt = item.updated_at;
    return row;
  }

  keys(event) {
    const links = [...this.list.querySelectorAll("a.item")];
    const at = links.indexOf(document.activeElement);
    if (at === -1) return;
    const moves = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: links.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    links[Math.max(0, Math.min(links.length - 1, moves[event.key]))].focus();
  }

  select(id) {
    this.selected = id;
    if (this.ready) this.render();
    for (const link of this.region.querySelectorAll("a.item, a.result")) {
      const current = link.closest("[data-id]")?.dataset.id === id;
      if (current) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  // --- live --------------------------------------------------------------------------------

  /** A session created or changed: where it belongs now, at the top if it was just active. */
  upsert(item) {
    this.ctx.learn(item);
    if (!this.ready) {
      this.pending.push(["upsert", item]);
      return;
    }
    this.channelsSeen.add(item.channel);
    const at = this.items.findIndex((known) => known.id === item.id);
    if (at !== -1) this.items.splice(at, 1);
    if (this.matches(item)) {
      const before = this.items.findIndex((known) => known.updated_at < item.updated_at ||
        (known.updated_at === item.updated_at && known.id < item.id));
      if (before !== -1) this.items.splice(before, 0, item);
      // Past the last row read: the page that holds it comes with the cursor.
      else if (!this.nextCursor) this.items.push(item);
    }
    if (at === -1 || !this.matches(item)) this.refreshTotal();
    this.render();
  }

  remove(id) {
    if (!this.ready) {
      this.pending.push(["remove", id]);
      return;
    }
    const at = this.items.findIndex((known) => known.id === id);
    if (at !== -1) this.items.splice(at, 1);
    this.refreshTotal();
    this.render();
  }

  /** The total under the filters, read again once a burst of events is over. */
  refreshTotal() {
    clearTimeout(this.totalTimer);
    this.totalTimer = setTimeout(async () => {
      try {
        const page = await this.ctx.api.read("api/sessions", { query: this.query({ limit: 1 }), signal: this.controller?.signal });
        this.setTotal(page);
        this.showTotal();
      } catch {
        // The next event or reload reads it again.
      }
    }, TOTAL_DELAY_MS);
  }

  // --- search ------------------------------------------------------------------------------

  async runSearch(query) {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.search = { query, hits: [], cursor: null, complete: true };
    this.tabs.hidden = true;
    this.filtersBox.hidden = true;
    this.region.removeAttribute("role");
    this.region.setAttribute("aria-busy", "true");
    this.region.replaceChildren(el("p", { class: "state" }, `Searching for “${query}”…`));
    await this.searchStep(controller);
  }

  async searchStep(controller) {
    const search = this.search;
    try {
      const page = await this.ctx.api.read("api/sessions/search", {
        query: { q: search.query, limit: SEARCH_PAGE, cursor: search.cursor },
        signal: controller.signal,
      });
      if (this.search !== search) return;
      const known = new Set(search.hits.map((hit) => hit.id));
      search.hits.push(...page.sessions.filter((hit) => !known.has(hit.id)));
      search.complete = page.complete !== false;
      search.cursor = page.next_cursor || null;
    } catch (error) {
      if (isAbort(error) || this.search !== search) return;
      this.region.setAttribute("aria-busy", "false");
      this.region.replaceChildren(el("div", { class: "state error" },
        el("p", null, `The search failed: ${error instanceof ApiError ? error.detail : error}`),
        el("button", { type: "button", onclick: () => this.runSearch(search.query) }, "Try again")));
      return;
    }
    this.renderSearch();
  }

  renderSearch() {
    const search = this.search;
    const back = el("button", { type: "button", class: "link-button", onclick: () => this.endSearch() }, "Back to the list");
    const hits = search.hits.map((hit) => {
      const row = el("li", { class: "row" },
        el("a", { href: itemPath(hit.id), class: "result", "aria-current": this.selected === hit.id ? "page" : null },
          el("span", { class: "item-top" }, el("span", { class: "item-title" }, highlighted(hit.title || "(untitled)", search.query))),
          el("span", { class: "match" },
            hit.match_role ? el("span", { class: "match-role" }, `${hit.match_role}: `) : el("span", { class: "match-role" }, "title: "),
            highlighted(hit.match || "", search.query)),
          el("span", { class: "item-meta" },
            el("span", { class: "channel" }, hit.channel),
            hit.last_activity ? timeEl(hit.last_activity, format) : null),
          el("span", { class: "item-id" }, hit.id)));
      row.dataset.id = hit.id;
      return row;
    });
    const summary = search.complete
      ? (hits.length ? `${format.plural(hits.length, "session")} match “${search.query}”; that is every match.` : `No session matches “${search.query}”.`)
      : `${format.plural(hits.length, "session")} so far: the search stopped at its bound before looking at everything.`;
    const further = search.complete ? null : el("button", {
      type: "button",
      class: "more",
      onclick: (event) => {
        event.currentTarget.disabled = true;
        event.currentTarget.textContent = "Searching…";
        this.searchStep(this.controller);
      },
    }, "Search further");
    this.region.setAttribute("aria-busy", "false");
    this.totalLabel.textContent = "";
    this.region.replaceChildren(...[
      el("div", { class: "search-head" }, el("p", { class: "search-summary", role: "status" }, summary), back),
      hits.length ? el("ul", { class: "sessions results", "aria-label": `Search results for ${search.query}` }, hits) : null,
      further,
    ].filter(Boolean));
  }

  endSearch(reload = true) {
    this.controller?.abort();
    this.search = null;
    this.searchInput.value = "";
    this.tabs.hidden = false;
    this.setUpFiltersVisibility();
    this.list.replaceChildren();
    this.nodes.clear();
    if (reload) this.reload();
  }

  setUpFiltersVisibility() {
    const anyShown = [...this.filtersForm.querySelectorAll("[data-filter]")].some((field) => !field.hidden);
    this.filtersBox.hidden = !anyShown;
  }
}
