// What this service can do, read from its own OpenAPI document (GET docs/openapi.json,
// which needs no token and is kept true by the service's tests). The console shows a
// control only when the route or parameter behind it exists, so a service that has no
// change feed, counts or organising yet still gets a console that works.

function resolve(document, node, depth = 0) {
  if (node && typeof node === "object" && typeof node.$ref === "string" && depth < 16) {
    const found = node.$ref
      .replace(/^#\//, "")
      .split("/")
      .reduce((at, key) => at?.[key.replace(/~1/g, "/").replace(/~0/g, "~")], document);
    return resolve(document, found, depth + 1);
  }
  return node;
}

function parameters(document, operation) {
  return new Set((operation?.parameters || []).map((p) => resolve(document, p)?.name).filter(Boolean));
}

function bodyProperties(document, operation) {
  const content = resolve(document, operation?.requestBody)?.content || {};
  const schema = resolve(document, content["application/json"]?.schema);
  const found = new Set();
  const collect = (node) => {
    const resolved = resolve(document, node);
    if (!resolved || typeof resolved !== "object") return;
    Object.keys(resolved.properties || {}).forEach((key) => found.add(key));
    for (const key of ["allOf", "anyOf", "oneOf"]) (resolved[key] || []).forEach(collect);
  };
  collect(schema);
  return found;
}

export function capabilities(document) {
  const paths = document?.paths || {};
  const listParams = parameters(document, paths["/api/sessions"]?.get);
  const countsParams = parameters(document, paths["/api/sessions/counts"]?.get);
  const patch = bodyProperties(document, paths["/api/sessions/{session_id}"]?.patch);
  return {
    feed: Boolean(paths["/api/events"]?.get),
    counts: Boolean(paths["/api/sessions/counts"]?.get),
    activity: countsParams.has("hours"),
    filters: new Set(["active", "archived", "pinned", "tag", "user", "unread"].filter((name) => listParams.has(name))),
    reader: listParams.has("reader"),
    patch,
    read: Boolean(paths["/api/sessions/{session_id}/read"]?.post),
  };
}

export const NO_CAPABILITIES = capabilities({});
