// Server-Sent Events parsed as the HTML standard describes them, for a stream read with
// fetch (EventSource cannot send an Authorization header).

export class SseParser {
  constructor(lastEventId = "") {
    this.buffer = "";
    this.lastEventId = lastEventId;
    this.type = "";
    this.data = [];
    this.seen = 0;
  }

  /** The events that `text` completes, in order; comments count as signs of life. */
  push(text) {
    this.buffer += text;
    const events = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (match === null) break;
      // A lone CR at the end may be the first half of a CRLF still on its way.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    return null;
  }

  dispatch() {
    const { type, data } = this;
    this.type = "";
    this.data = [];
    if (data.length === 0) return null;
    this.seen += 1;
    return { type: type || "message", data: data.join("\n"), id: this.lastEventId };
  }
}
