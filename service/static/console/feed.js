// The namespace's change feed (GET /api/events), read with fetch and a stream reader so
// that the token stays in a header. After a drop it reconnects with Last-Event-ID set to
// the last event it saw, so that it misses nothing and sees nothing twice.

import { ApiError, isAbort, pause, sleep } from "./api.js";
import { SseParser } from "./sse.js";

// The service sends a comment at least every events_heartbeat seconds (15 by default):
// a connection silent for this long is taken for dead and opened again.
const SILENCE_MS = 45000;

export class Feed {
  /**
   * onEvent({type, data, id}): an event, its data parsed as JSON.
   * onState(state, detail): "connecting", "live", "reconnecting", "unavailable"
   *   (Redis), "unsupported" (the service has no feed), "refused" (403), "stopped".
   */
  constructor({ api, onEvent, onState, path = "api/events" }) {
    this.api = api;
    this.onEvent = onEvent;
    this.onState = onState;
    this.path = path;
    this.lastEventId = "";
    this.stopped = true;
    this.stopper = null;
    this.controller = null;
  }

  /** Starts reading; the promise it returns settles once the stream is open (or gave up). */
  start() {
    this.stopped = false;
    this.stopper = new AbortController();
    const connected = new Promise((resolve) => {
      this.resolveConnected = resolve;
    });
    this.run();
    return connected;
  }

  stop() {
    this.giveUp("stopped", "");
  }

  async run() {
    for (let attempt = 0; !this.stopped; ) {
      let retryAfter = null;
      try {
        await this.read();
        // The service closed the stream (a restart, or a reader too slow to keep up):
        // resume at once, from the last event seen.
        attempt = 0;
        if (!this.stopped) this.onState("reconnecting", "The feed closed; resuming.");
      } catch (error) {
        if (this.stopped) return;
        if (error instanceof ApiError) {
          if (error.status === 401) return this.giveUp("stopped", error.detail);
          if (error.status === 404) return this.giveUp("unsupported", error.detail);
          if (error.status === 403) return this.giveUp("refused", error.detail);
          retryAfter = error.retryAfter;
          this.onState(error.status === 503 ? "unavailable" : "reconnecting", error.detail);
        } else {
          // A dropped connection, or the watchdog's abort of a silent one.
          this.onState("reconnecting", isAbort(error) ? "The feed went silent." : String(error?.message || error));
        }
        attempt += 1;
      }
      try {
        await sleep(attempt === 0 ? 250 : pause(attempt - 1, retryAfter), this.stopper.signal);
      } catch {
        return;
      }
    }
  }

  giveUp(state, detail) {
    if (this.stopped && state !== "stopped") return;
    this.stopped = true;
    this.stopper?.abort();
    this.controller?.abort();
    this.resolveConnected?.(false);
    this.onState(state, detail);
  }

  async read() {
    const controller = new AbortController();
    this.controller = controller;
    const headers = { Accept: "text/event-stream" };
    if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
    this.onState("connecting");
    const response = await this.api.send("GET", this.path, { headers, signal: controller.signal });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser(this.lastEventId);
    let watchdog = null;
    const quiet = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => controller.abort(new DOMException("silent feed", "AbortError")), SILENCE_MS);
    };
    quiet();
    this.onState("live");
    this.resolveConnected?.(true);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        quiet();
        for (const event of parser.push(value)) {
          this.lastEventId = event.id || this.lastEventId;
          let data = null;
          try {
            data = JSON.parse(event.data);
          } catch {
            continue; // not ours to read
          }
          this.onEvent({ type: event.type, data, id: event.id });
        }
      }
    } finally {
      clearTimeout(watchdog);
      reader.cancel().catch(() => {});
    }
  }
}
