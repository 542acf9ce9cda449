// The service's /api as the console uses it: the token in the Authorization header of
// every request (never in a URL), errors as ApiError with the service's own sentence.

export class ApiError extends Error {
  constructor(status, detail, retryAfter = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

/** Waits `ms`, or rejects as soon as `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

export function isAbort(error) {
  return error?.name === "AbortError";
}

// Reads that Redis could not serve are asked again after the service's Retry-After (or
// these pauses), never faster than once a second and at least every ten seconds.
const FIRST_PAUSE_MS = 1000;
const LONGEST_PAUSE_MS = 10000;

export function pause(attempt, retryAfter) {
  const backoff = Math.min(LONGEST_PAUSE_MS, FIRST_PAUSE_MS * 2 ** attempt);
  return retryAfter ? Math.min(LONGEST_PAUSE_MS, Math.max(retryAfter * 1000, FIRST_PAUSE_MS)) : backoff;
}

export class Api {
  /**
   * base: the service's root URL (the console is at base/console/).
   * onUnauthorized(detail): the token was refused; the console signs out.
   * onAvailability(problem): a read is being retried because of `problem`
   *   ("redis", "busy" for a rate limit, or "network"), or null once a request went
   *   through again.
   */
  constructor({ base, token, onUnauthorized, onAvailability }) {
    this.base = base;
    this.token = token;
    this.onUnauthorized = onUnauthorized;
    this.onAvailability = onAvailability;
    // The reads waiting out a problem now, each with its problem: the console says so
    // while any waits, whatever other requests go through meanwhile.
    this.waiting = new Map();
  }

  report() {
    const problems = new Set(this.waiting.values());
    const worst = ["network", "redis", "busy"].find((problem) => problems.has(problem)) || null;
    this.onAvailability?.(worst);
  }

  url(path, query) {
    const url = new URL(path, this.base);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, String(value));
    }
    return url.href;
  }

  /** The response to one request, or ApiError for any status outside 2xx and 304. */
  async send(method, path, { query, body, headers, signal } = {}) {
    const init = {
      method,
      headers: { Authorization: `Bearer ${this.token}`, ...headers },
      signal,
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(this.url(path, query), init);
    if (response.ok || response.status === 304) return response;
    let detail = `The service answered ${response.status} ${response.statusText}.`;
    try {
      const answer = await response.json();
      if (typeof answer?.detail === "string") detail = answer.detail;
    } catch {
      // Not JSON: the status line says what there is to say.
    }
    const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10) || null;
    if (response.status === 401) this.onUnauthorized?.(detail);
    throw new ApiError(response.status, detail, retryAfter);
  }

  async json(method, path, options) {
    const response = await this.send(method, path, options);
    return response.status === 204 ? null : response.json();
  }

  /**
   * A GET that waits out a Redis outage or a dropped connection: asked again until it
   * goes through, `signal` aborts it, or the service refuses it for another reason.
   */
  async read(path, { query, signal } = {}) {
    const key = Symbol(path);
    try {
      for (let attempt = 0; ; attempt += 1) {
        let retryAfter = null;
        try {
          return await this.json("GET", path, { query, signal });
        } catch (error) {
          if (isAbort(error) || signal?.aborted) throw error;
          if (error instanceof ApiError) {
            if (error.status !== 503 && error.status !== 429) throw error;
            retryAfter = error.retryAfter;
            this.waiting.set(key, error.status === 503 ? "redis" : "busy");
          } else {
            // fetch rejects with a TypeError when the service cannot be reached at all.
            this.waiting.set(key, "network");
          }
          this.report();
        }
        await sleep(pause(attempt, retryAfter), signal);
      }
    } finally {
      if (this.waiting.delete(key)) this.report();
    }
  }
}
