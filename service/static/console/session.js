// One session: its header and actions, and its history, the newest page first, older
// pages read as the top scrolls into view. Messages the feed brings are added at the end.

import { ApiError, isAbort } from "./api.js";
import { el, timeEl } from "./dom.js";
import * as format from "./format.js";

const HISTORY_PAGE = 50;
// Within this many pixels of the end, a new message scrolls the history with it.
const FOLLOW_PX = 80;
const TAG = /^[A-Za-z0-9_.:-]{1,64}$/;
const MAX_TAGS = 20;

function sessionPath(id) {
  return `api/sessions/${encodeURIComponent(id)}`;
}

/** The filename a Content-Disposition header gives, else `fallback`. */
function filenameOf(header, fallback) {
  const star = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(header || "");
  if (star) {
    try {
      return decodeURIComponent(star[1]);
    } catch {
      // fall through to the plain name
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(header || "");
  return plain ? plain[1] : fallback;
}

export class SessionView {
  constructor(ctx, root) {
    this.ctx = ctx;
    this.root = root;
    this.id = null;
    this.session = null;
    this.messages = [];
    this.messageIds = new Set();
    this.cursor = null;
    this.loadingOlder = false;
    this.controller = null;
    this.observer = null;
  }

  close() {
    this.controller?.abort();
    this.observer?.disconnect();
    this.id = null;
    this.session = null;
  }

  async open(id) {
    this.close();
    const controller = new AbortController();
    this.controller = controller;
    this.id = id;
    this.messages = [];
    this.messageIds = new Set();
    this.cursor = null;
    this.root.setAttribute("aria-busy", "true");
    this.root.replaceChildren(el("p", { class: "state" }, "Loading the session…"));
    const { api } = this.ctx;
    try {
      const [session, page] = await Promise.all([
        api.read(sessionPath(id), { signal: controller.signal }),
        api.read(`${sessionPath(id)}/messages`, { query: { limit: HISTORY_PAGE }, signal: controller.signal }),
      ]);
      if (controller.signal.aborted) return;
      this.ctx.learn(session);
      this.session = session;
      this.addOlder(page);
    } catch (error) {
      if (isAbort(error) || controller.signal.aborted) return;
      this.root.setAttribute("aria-busy", "false");
      const gone = error instanceof ApiError && error.status === 404;
      this.root.replaceChildren(el("div", { class: "state error" },
        el("h2", { tabindex: "-1", class: "session-title" }, gone ? "No such session" : "The session could not be read"),
        el("p", null, gone ? `There is no session ${id} (it may have been deleted).` : (error instanceof ApiError ? error.detail : String(error))),
        el("a", { href: "#" }, "Back to the overview")));
      return;
    }
    this.root.setAttribute("aria-busy", "false");
    this.render();
    this.history.scrollTop = this.history.scrollHeight;
  }

  addOlder(page) {
    const older = page.messages.filter((message) => !this.messageIds.has(message.id));
    older.forEach((message) => this.messageIds.add(message.id));
    this.messages = [...older, ...this.messages];
    this.cursor = page.next_cursor || null;
    return older;
  }

  // --- the header ------------------------------------------------------------------------

  render() {
    const { session } = this;
    this.head = el("header", { class: "session-head" });
    this.renderHead();
    this.older = el("div", { class: "older" });
    this.list = el("ol", { class: "messages" });
    this.history = el("section", { class: "history", tabindex: "0", "aria-label": "Messages, oldest at the top" },
      this.older, this.list);
    this.renderOlder();
    this.list.replaceChildren(...this.messages.map((message) => this.messageNode(message)));
    this.root.replaceChildren(this.head, this.history);
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) this.loadOlder();
    }, { root: this.history, rootMargin: "200px 0px 0px 0px" });
    this.observer.observe(this.older);
    document.title = `${session.title || session.id} · chatsessions console`;
  }

  renderHead() {
    const { session, ctx } = this;
    const { caps, me } = ctx;
    const facts = [
      ["Id", el("code", { class: "session-id" }, session.id)],
      ["Channel", el("span", { class: "channel" }, session.channel)],
      session.user ? ["User", el("span", { class: "user" }, session.user)] : null,
      ["Messages", format.number(session.message_count)],
      session.unread_count !== undefined ? ["Unread", format.number(session.unread_count)] : null,
      ["Last activity", timeEl(session.updated_at, format)],
      ["Created", timeEl(session.created_at, format)],
      ["Status", [session.active ? "active" : "inactive", session.pinned ? ", pinned" : "", session.archived ? ", archived" : ""].join("")],
    ].filter(Boolean);
    const tags = session.tags?.length
      ? el("ul", { class: "tags", "aria-label": "Tags" }, session.tags.map((tag) => el("li", null,
        el("button", { type: "button", class: "tag", title: `List the sessions tagged ${tag}`, onclick: () => ctx.list.filterByTag(tag) }, tag))))
      : null;

    const writeReason = me.canWrite ? null : "readonly-note";
    const deleteReason = me.canDelete ? null : "readonly-note";
    const button = (label, onclick, { reason = null, danger = false } = {}) => el("button", {
      type: "button",
      class: danger ? "danger" : null,
      disabled: Boolean(reason),
      "aria-describedby": reason,
      onclick,
    }, label);
    const actions = [button("Rename", () => this.rename(), { reason: writeReason })];
    if (caps.patch.has("pinned")) actions.push(button(session.pinned ? "Unpin" : "Pin", () => this.patch({ pinned: !session.pinned }, session.pinned ? "Unpinned." : "Pinned."), { reason: writeReason }));
    if (caps.patch.has("archived")) actions.push(button(session.archived ? "Unarchive" : "Archive", () => this.patch({ archived: !session.archived }, session.archived ? "Unarchived." : "Archived."), { reason: writeReason }));
    if (caps.patch.has("tags")) actions.push(button("Edit tags", () => this.editTags(), { reason: writeReason }));
    if (caps.read && me.name) actions.push(button("Mark read", () => this.markRead(), { reason: writeReason }));
    actions.push(button("Export JSON", () => this.download("json")));
    actions.push(button("Export Markdown", () => this.download("md")));
    actions.push(button("Delete", () => this.remove(), { reason: deleteReason, danger: true }));

    const lacking = [];
    if (!me.canWrite) lacking.push("sessions:write (rename, pin, archive, tags, mark read)");
    if (!me.canDelete) lacking.push("sessions:delete (delete)");
    const note = lacking.length
      ? el("p", { id: "readonly-note", class: "readonly-note" },
        `Some actions are off: this token${me.name ? ` (${me.name})` : ""} lacks ${lacking.join(" and ")}.`)
      : null;

    const focused = this.head.contains(document.activeElement) && document.activeElement.textContent;
    this.head.replaceChildren(...[
      el("p", { class: "crumbs" }, el("a", { href: "#" }, "Overview"), " / session"),
      el("h2", { class: "session-title", tabindex: "-1" }, session.title || "(untitled)"),
      el("dl", { class: "facts" }, facts.map(([term, value]) => el("div", null, el("dt", null, term), el("dd", null, value)))),
      tags,
      el("div", { class: "actions", role: "group", "aria-label": "Session actions" }, actions),
      note,
    ].filter(Boolean));
    // A header drawn again keeps the focus on the button that was pressed (Pin is Unpin now:
    // the same place in the row).
    if (focused !== false) this.refocus(focused);
  }

  refocus(label) {
    const buttons = [...this.head.querySelectorAll(".actions button")];
    const swap = { Pin: "Unpin", Unpin: "Pin", Archive: "Unarchive", Unarchive: "Archive" };
    const target = buttons.find((b) => b.textContent === label) || buttons.find((b) => b.textContent === swap[label]);
    target?.focus({ preventScroll: true });
  }

  focusTitle() {
    this.root.querySelector(".session-title")?.focus({ preventScroll: true });
  }

  // --- the history -----------------------------------------------------------------------

  renderOlder() {
    if (this.cursor) {
      this.older.replaceChildren(el("button", { type: "button", class: "more", onclick: () => this.loadOlder() },
        this.loadingOlder ? "Loading older messages…" : "Load older messages"));
    } else {
      this.older.replaceChildren(el("p", { class: "muted history-start" },
        this.messages.length ? "The beginning of the session." : "No messages yet."));
    }
  }

  async loadOlder() {
    if (!this.cursor || this.loadingOlder || !this.session) return;
    const controller = this.controller;
    this.loadingOlder = true;
    this.renderOlder();
    try {
      const page = await this.ctx.api.read(`${sessionPath(this.id)}/messages`, {
        query: { limit: HISTORY_PAGE, before: this.cursor },
        signal: controller.signal,
      });
      if (controller !== this.controller) return;
      const older = this.addOlder(page);
      // Added above what the reader looks at: the view keeps its place.
      const from = this.history.scrollHeight - this.history.scrollTop;
      this.list.prepend(...older.map((message) => this.messageNode(message)));
      this.history.scrollTop = this.history.scrollHeight - from;
    } catch (error) {
      if (!isAbort(error)) this.ctx.announce(error instanceof ApiError ? error.detail : String(error));
    } finally {
      if (controller === this.controller) {
        this.loadingOlder = false;
        this.renderOlder();
        // Short messages may leave the top in view: the observer sees no change then.
        if (this.cursor && this.history.scrollTop < FOLLOW_PX) requestAnimationFrame(() => this.loadOlder());
      }
    }
  }

  messageNode(message) {
    const node = el("li", { class: ["message", `role-${message.role}`] },
      el("div", { class: "message-meta" },
        el("span", { class: "role" }, message.role),
        timeEl(message.timestamp, format),
        el("span", { class: "message-id" }, message.id)),
      el("p", { class: "content" }, message.content));
    node.dataset.id = message.id;
    return node;
  }

  // --- live --------------------------------------------------------------------------------

  /** A feed event about this session: its new state, and its new message if any. */
  apply(type, data) {
    if (!this.session || data?.session?.id !== this.id) return;
    if (type === "session.deleted") {
      this.observer?.disconnect();
      this.root.replaceChildren(el("div", { class: "state" },
        el("h2", { class: "session-title", tabindex: "-1" }, "This session was deleted"),
        el("p", null, `Session ${this.id} no longer exists.`),
        el("a", { href: "#" }, "Back to the overview")));
      this.session = null;
      return;
    }
    this.session = { ...this.session, ...data.session };
    this.renderHead();
    const message = data.message;
    if (message && !this.messageIds.has(message.id)) {
      const follow = this.history.scrollHeight - this.history.scrollTop - this.history.clientHeight < FOLLOW_PX;
      this.messageIds.add(message.id);
      this.messages.push(message);
      this.list.append(this.messageNode(message));
      this.renderOlder();
      if (follow) this.history.scrollTop = this.history.scrollHeight;
    }
  }

  /** The session as a write answered it. */
  changed(session) {
    if (session?.id !== this.id) return;
    this.session = { ...this.session, ...session };
    this.renderHead();
    this.ctx.list.upsert({ ...this.session });
  }

  // --- actions -----------------------------------------------------------------------------

  async patch(body, done) {
    try {
      const session = await this.ctx.api.json("PATCH", sessionPath(this.id), { body });
      this.changed(session);
      this.ctx.announce(done);
    } catch (error) {
      this.ctx.announce(error instanceof ApiError ? error.detail : String(error), true);
    }
  }

  rename() {
    const input = el("input", { id: "rename-input", type: "text", required: true, maxlength: "200", spellcheck: "false" });
    input.value = this.session.title || "";
    this.ctx.dialog.open({
      title: "Rename the session",
      body: [el("label", { for: "rename-input" }, "Title"), input,
        el("p", { class: "muted small" }, "A title set here is kept: messages never replace it.")],
      confirm: "Rename",
      focus: input,
      action: async () => {
        const title = input.value.trim();
        if (!title) throw new Error("the title cannot be empty.");
        const session = await this.ctx.api.json("PATCH", sessionPath(this.id), { body: { title } });
        this.changed(session);
        this.ctx.announce("Renamed.");
      },
    });
  }

  editTags() {
    const input = el("input", { id: "tags-input", type: "text", spellcheck: "false", "aria-describedby": "tags-help" });
    input.value = (this.session.tags || []).join(", ");
    this.ctx.dialog.open({
      title: "Edit tags",
      body: [el("label", { for: "tags-input" }, "Tags"), input,
        el("p", { id: "tags-help", class: "muted small" },
          `Separated by commas or spaces; at most ${MAX_TAGS}, each 1 to 64 letters, digits, _ - . or :. An empty field removes every tag.`)],
      confirm: "Save tags",
      focus: input,
      action: async () => {
        const tags = [...new Set(input.value.split(/[\s,]+/).filter(Boolean))];
        const bad = tags.find((tag) => !TAG.test(tag));
        if (bad !== undefined) throw new Error(`“${bad}” is not a tag: use 1 to 64 letters, digits, _ - . or :.`);
        if (tags.length > MAX_TAGS) throw new Error(`at most ${MAX_TAGS} tags.`);
        const session = await this.ctx.api.json("PATCH", sessionPath(this.id), { body: { tags } });
        this.changed(session);
        this.ctx.announce("Tags saved.");
      },
    });
  }

  async markRead() {
    try {
      await this.ctx.api.json("POST", `${sessionPath(this.id)}/read`, { body: { reader: this.ctx.me.name } });
      const session = await this.ctx.api.read(sessionPath(this.id), { query: { reader: this.ctx.me.name } });
      this.changed({ unread_count: 0, ...session });
      this.ctx.announce("Marked as read.");
    } catch (error) {
      this.ctx.announce(error instanceof ApiError ? error.detail : String(error), true);
    }
  }

  remove() {
    const { session } = this;
    const title = session.title || "(untitled)";
    this.ctx.dialog.open({
      title: `Delete “${title}”?`,
      body: [el("p", null, "Session ", el("code", null, session.id), ` on ${session.channel}, with ${format.plural(session.message_count, "message")}, is removed for good. This cannot be undone.`)],
      confirm: "Delete session",
      danger: true,
      action: async () => {
        await this.ctx.api.json("DELETE", sessionPath(session.id));
        this.ctx.list.remove(session.id);
        this.ctx.announce(`Deleted “${title}”.`);
        this.close();
        location.hash = "#";
      },
    });
  }

  async download(kind) {
    try {
      const response = await this.ctx.api.send("GET", `${sessionPath(this.id)}/export`, { query: { format: kind } });
      const blob = await response.blob();
      const name = filenameOf(response.headers.get("Content-Disposition"), `session.${kind}`);
      const url = URL.createObjectURL(blob);
      const link = el("a", { href: url, download: name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      this.ctx.announce(`Downloaded ${name}.`);
    } catch (error) {
      this.ctx.announce(error instanceof ApiError ? error.detail : String(error), true);
    }
  }
}
