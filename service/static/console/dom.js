// Building the page from data. Every string given here becomes a text node or an
// attribute value, never markup: a title such as <img src=x onerror=…> is shown as those
// characters. Nothing in the console sets innerHTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function apply(node, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) {
      // Only functions: an "on…" attribute would be an inline script.
      if (typeof value !== "function") throw new TypeError(`${key} must be a function`);
      node.addEventListener(key.slice(2), value);
    }
    else if (key === "text") node.textContent = String(value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  return node;
}

/** An HTML element: el("button", {type: "button", onclick}, "Save"). */
export function el(tag, props, ...children) {
  return append(apply(document.createElement(tag), props), children);
}

/** An SVG element, for the chart. */
export function svg(tag, props, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), props), children);
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

/** A <time> element showing `iso` relative to now, with the exact time on hover. */
export function timeEl(iso, format) {
  const node = el("time", { datetime: iso, title: format.exact(iso) }, format.relative(iso));
  node.dataset.relative = "";
  return node;
}

/** `text` with every case-insensitive occurrence of the words of `query` in <mark>. */
export function highlighted(text, query) {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  const lower = text.toLowerCase();
  const parts = [];
  let position = 0;
  while (position < text.length && words.length) {
    let best = -1;
    let length = 0;
    for (const word of words) {
      const found = lower.indexOf(word, position);
      if (found !== -1 && (best === -1 || found < best)) [best, length] = [found, word.length];
    }
    if (best === -1) break;
    parts.push(text.slice(position, best), el("mark", null, text.slice(best, best + length)));
    position = best + length;
  }
  parts.push(text.slice(position));
  return parts;
}
