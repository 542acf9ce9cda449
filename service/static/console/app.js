// The console: sign-in, then the list, a session or the overview, kept live by the
// change feed. The token lives in this tab's sessionStorage only and travels in the
// Authorization header only.

import { Api, ApiError } from "./api.js";
import { capabilities, NO_CAPABILITIES } from "./caps.js";
import { Dialog } from "./dialog.js";
import { $ } from "./dom.js";
import { Feed } from "./feed.js";
import * as format from "./format.js";
import { SessionList } from "./list.js";
import { Overview } from "./overview.js";
import { SessionView } from "./session.js";

const TOKEN_KEY = "chatsessions.token";
const NOTICE_KEY = "chatsessions.notice";
const WRITE = "sessions:write";
const DELETE = "sessions:delete";
// Counts and the chart are read again this long after the last of a burst of events.
const COUNTS_DELAY_MS = 1000;
const BASE = new URL("../", location.href);

const FEED_STATES = {
  connecting: ["pending", "Connecting…"],
  live: ["on", "Live"],
  reconnecting: ["pending", "Reconnecting…"],
  unavailable: ["off", "Redis unavailable, retrying…"],
  unsupported: ["off", "Live updates off: this service has no change feed"],
  refused: ["off", "Live updates off: the token may not read the feed"],
  stopped: ["off", "Stopped"],
};

function signOut(notice) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (notice) sessionStorage.setItem(NOTICE_KEY, notice);
  // A fresh page: nothing of the signed-in state, the token included, stays in memory.
  location.reload();
}

async function loadCapabilities() {
  try {
    const response = await fetch(new URL("docs/openapi.json", BASE), { cache: "no-store", credentials: "omit" });
    return response.ok ? capabilities(await response.json()) : NO_CAPABILITIES;
  } catch {
    return NO_CAPABILITIES;
  }
}

/**
 * Who the token is: GET /api/whoami tells its name (the reader of "mark read"), its
 * namespace and scopes where the service has that route. Otherwise two requests that
 * the scope check refuses before anything is done tell what it may do: an id of one NUL
 * character is never a session, so with the scope they answer 422 and change nothing.
 */
async function identify(api) {
  try {
    const me = await api.read("api/whoami");
    return { name: me.name || "", namespace: me.namespace || "", scopes: new Set(me.scopes || []) };
  } catch (error) {
    if (!(error instanceof ApiError) || ![404, 405].includes(error.status)) throw error;
  }
  const scopes = new Set(["sessions:read"]);
  const probe = async (method, scope) => {
    try {
      await api.send(method, "api/sessions/%00", method === "PATCH" ? { body: {} } : {});
      scopes.add(scope);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 403) scopes.add(scope);
    }
  };
  await Promise.all([probe("PATCH", WRITE), probe("DELETE", DELETE)]);
  return { name: "", namespace: "", scopes };
}

class Console {
  constructor(token, caps) {
    this.caps = caps;
    this.banner = $("#banner");
    this.announcer = $("#announcer");
    this.api = new Api({
      base: BASE,
      token,
      onUnauthorized: (detail) => signOut(`The service refused the token (401): ${detail} Sign in again.`),
      onAvailability: (problem) => this.availability(problem),
    });
    this.dialog = new Dialog();
    this.countsTimer = null;
  }

  availability(problem) {
    if (problem === null) {
      this.banner.hidden = true;
      this.banner.textContent = "";
      return;
    }
    const text = {
      redis: "Redis unavailable, retrying… The service answers 503 until Redis is back; nothing needs doing here.",
      busy: "Too many requests for this token (429), retrying after the pause the service asks for…",
      network: "The service cannot be reached, retrying… Check that chatsessions serve is running.",
    }[problem];
    if (this.banner.textContent !== text) this.banner.textContent = text;
    this.banner.hidden = false;
  }

  announce(text, problem = false) {
    // Emptied first, so that the same sentence twice is read out twice.
    this.announcer.textContent = "";
    setTimeout(() => {
      this.announcer.textContent = text;
    }, 50);
    const toast = $("#toast") || document.body.appendChild(Object.assign(document.createElement("p"), { id: "toast" }));
    toast.className = problem ? "toast problem" : "toast";
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => {
      toast.hidden = true;
    }, problem ? 8000 : 4000);
  }

  async start() {
    const me = await identify(this.api);
    this.me = { ...me, canWrite: me.scopes.has(WRITE), canDelete: me.scopes.has(DELETE) };
    $("#whoami").textContent = [
      this.me.name ? `Token ${this.me.name}` : "Signed in",
      this.me.namespace ? `namespace ${this.me.namespace}` : null,
      ["sessions:read", WRITE, DELETE].filter((scope) => this.me.scopes.has(scope)).map((scope) => scope.replace("sessions:", "")).join(", "),
    ].filter(Boolean).join(" · ");
    $("#signout").addEventListener("click", () => signOut("Signed out."));
    $("#signin").hidden = true;
    $("#app").hidden = false;

    const ctx = this;
    this.list = new SessionList(ctx);
    const detail = $("#detail");
    this.overview = new Overview(ctx, detail);
    this.session = new SessionView(ctx, detail);

    this.feed = new Feed({
      api: this.api,
      onEvent: (event) => this.event(event),
      onState: (state, why) => this.feedState(state, why),
    });
    // The list is read once the feed is open, so that no change falls between the two. A
    // service without a feed answers 404 and the console goes on without live updates.
    await Promise.race([this.feed.start(), new Promise((resolve) => setTimeout(resolve, 3000))]);
    this.list.reload();
    this.route();
    window.addEventListener("hashchange", () => this.route(true));
    $("#home-link").addEventListener("click", (event) => {
      event.preventDefault();
      location.hash = "#";
    });
    document.addEventListener("keydown", (event) => {
      const typing = event.target.closest?.("input, textarea, select, [contenteditable]");
      if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !$("#dialog").open) {
        event.preventDefault();
        $("#search-input").focus();
      }
    });
    setInterval(() => {
      for (const node of document.querySelectorAll("time[data-relative]")) {
        node.textContent = format.relative(node.getAttribute("datetime"));
      }
    }, 30000);
  }

  /**
   * A session as the service answers it tells what its document may not say yet: one
   * with "pinned" comes from a service that organises sessions (SPEC §7: pin, archive,
   * tags and their filters, which go together).
   */
  learn(item) {
    if (this.organising || !item || !("pinned" in item)) return;
    this.organising = true;
    ["pinned", "archived", "tags"].forEach((name) => this.caps.patch.add(name));
    ["archived", "pinned", "tag", "user"].forEach((name) => this.caps.filters.add(name));
    this.list?.showFilterFields();
    if (this.session?.session) this.session.renderHead();
  }

  feedState(state, why) {
    const [dot, text] = FEED_STATES[state] || FEED_STATES.reconnecting;
    const live = $("#live");
    live.dataset.state = dot;
    $("#live-text").textContent = text;
    live.title = why || "";
  }

  route(navigated = false) {
    const match = /^#\/session\/(.+)$/.exec(location.hash);
    let id = null;
    try {
      id = match ? decodeURIComponent(match[1]) : null;
    } catch {
      id = null;
    }
    this.list.select(id);
    if (id === null) {
      this.session.close();
      this.overview.open().then(() => navigated && this.overview.focusTitle());
    } else {
      this.overview.close();
      // The tabs' counts come with the overview's read; a session opened first reads them too.
      if (!this.list.counts) this.overview.refresh();
      this.session.open(id).then(() => navigated && this.session.focusTitle());
    }
  }

  event({ type, data }) {
    if (type === "reset") {
      // The position asked for is gone: read everything again, then go on from here.
      this.list.reload();
      this.refreshCounts();
      if (this.session.id) this.session.open(this.session.id);
      return;
    }
    const item = data?.session;
    if (!item?.id) return;
    if (type === "session.created" || type === "session.updated") this.list.upsert(item);
    else if (type === "session.deleted") this.list.remove(item.id);
    else return;
    this.session.apply(type, data);
    this.refreshCounts();
  }

  refreshCounts() {
    clearTimeout(this.countsTimer);
    this.countsTimer = setTimeout(() => this.overview.refresh(), COUNTS_DELAY_MS);
  }
}

function fatal(error) {
  // A refused token is already on its way back to sign-in.
  if (error instanceof ApiError && error.status === 401) return;
  const banner = $("#banner");
  banner.textContent = `The console could not start: ${error instanceof ApiError ? error.detail : error}. Reload the page to try again.`;
  banner.hidden = false;
}

async function signIn(caps) {
  const form = $("#signin-form");
  const input = $("#token-input");
  const error = $("#signin-error");
  const notice = sessionStorage.getItem(NOTICE_KEY);
  sessionStorage.removeItem(NOTICE_KEY);
  if (notice) error.textContent = notice;
  $("#app").hidden = true;
  $("#signin").hidden = false;
  input.focus();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    error.textContent = "Checking the token…";
    const api = new Api({ base: BASE, token });
    try {
      await api.json("GET", "api/sessions", { query: { limit: 1 } });
    } catch (problem) {
      button.disabled = false;
      if (problem instanceof ApiError) {
        error.textContent = problem.status === 401
          ? "The service does not accept this token. Check that you pasted all of it."
          : problem.status === 503
            ? "Redis unavailable: the service cannot check the token now. Try again in a moment."
            : problem.detail;
      } else {
        error.textContent = "The service cannot be reached. Check that chatsessions serve is running.";
      }
      input.focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    input.value = "";
    error.textContent = "";
    button.disabled = false;
    try {
      await new Console(token, caps).start();
    } catch (problem) {
      fatal(problem);
      return;
    }
    $("#sessions-heading").focus();
  });
}

async function main() {
  const caps = await loadCapabilities();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) await new Console(token, caps).start();
  else await signIn(caps);
}

main().catch(fatal);
