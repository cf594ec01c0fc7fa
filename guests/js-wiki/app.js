// A standard wasi:http/proxy handler in JavaScript (componentize-js,
// StarlingMonkey's fetch event) that reads percore's shared Wikipedia
// index through `percore:host/wiki` and answers as the Rust wiki guest
// (`guests/wiki`) does, byte for byte (status, content-type, body):
//
// - `GET .../offsets/<prefix>?limit=&after=&ci=1`: `[[title, first, last], ...]`
//   (`limit` 1 to 10000, default 100; `after` pages on; `ci` ignores case);
// - `.../json`: the TechEmpower JSON message, as the demo's `/json`.
//
// It can be mounted under any route prefix: the path is read from its
// first `offsets` or `json` segment on (so the prefix must not hold such a
// segment).
import { prefix as wikiPrefix } from 'percore:host/wiki@0.2.0';

/** Default and largest number of titles `/offsets` returns. */
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 10000;
/** The segments this handler serves from. */
const ROUTES = ['offsets', 'json'];

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));

function handle(request) {
  // The request target as sent: `request.url` less its scheme and authority.
  const url = request.url;
  const slash = url.indexOf('/', url.indexOf('//') + 2);
  const target = slash < 0 ? '/' : url.slice(slash);
  const mark = target.indexOf('?');
  const path = route(mark < 0 ? target : target.slice(0, mark));
  const query = mark < 0 ? '' : target.slice(mark + 1);
  if (path === '/json') {
    // As the demo's TechEmpower guest, whatever the method.
    return json(200, JSON.stringify({ message: 'Hello, World!' }));
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    return jsonError(405, 'method not allowed: use GET or HEAD');
  }
  if (path.startsWith('/offsets/')) return offsets(path.slice('/offsets/'.length), query);
  if (path === '/offsets') return offsets('', query);
  return jsonError(404, 'not found: try /offsets/<prefix> or /json');
}

/** The path from its first segment this handler serves on. */
function route(path) {
  const segments = path.split('/');
  for (let at = 1; at < segments.length; at++) {
    if (ROUTES.includes(segments[at])) return '/' + segments.slice(at).join('/');
  }
  return path;
}

/** `GET /offsets/<prefix>`. */
function offsets(rawPrefix, query) {
  const prefix = percentDecode(rawPrefix, false);
  const raw = queryParam(query, 'limit');
  let limit = DEFAULT_LIMIT;
  if (raw !== undefined) {
    // As Rust's `u32` parse: ASCII digits, an optional leading `+`.
    limit = /^\+?[0-9]+$/.test(raw) ? Number(raw.replace('+', '')) : 0;
    if (!(limit >= 1 && limit <= MAX_LIMIT)) {
      return jsonError(400, 'limit must be a number from 1 to 10000');
    }
  }
  const after = queryParam(query, 'after');
  const ci = ['1', 'true', 'yes'].includes(queryParam(query, 'ci'));
  let pages;
  try {
    pages = wikiPrefix(prefix, after === undefined ? undefined : percentDecode(after, true), limit, ci);
  } catch (e) {
    return jsonError(400, e?.payload?.val ?? String(e));
  }
  const rows = pages.map((page) => `[${jsonString(page.title)},${page.first},${page.last}]`);
  return json(200, `[${rows.join(',')}]`);
}

/** The raw value of the first query parameter `name`, or undefined. */
function queryParam(query, name) {
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    if (key === name) return eq < 0 ? '' : pair.slice(eq + 1);
  }
  return undefined;
}

/**
 * `%XX` escapes (and `+` as a space when `plusIsSpace`) decoded; invalid
 * escapes kept; the bytes read as UTF-8 with U+FFFD for invalid sequences
 * (as percore-httpkit's `percent_decode`).
 */
function percentDecode(s, plusIsSpace) {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(bytes.length);
  const hex = (b) => (b >= 48 && b <= 57 ? b - 48 : b >= 97 && b <= 102 ? b - 87 : b >= 65 && b <= 70 ? b - 55 : -1);
  let n = 0;
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    if (b === 37 && i + 2 < bytes.length && hex(bytes[i + 1]) >= 0 && hex(bytes[i + 2]) >= 0) {
      out[n++] = (hex(bytes[i + 1]) << 4) | hex(bytes[i + 2]);
      i += 3;
    } else {
      out[n++] = plusIsSpace && b === 43 ? 32 : b;
      i += 1;
    }
  }
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(out.subarray(0, n));
}

/** A JSON string literal as percore-httpkit's `json_string` writes it. */
function jsonString(s) {
  const escaped = s.replace(/["\\\u0000-\u001f\u2028\u2029]/g, (c) => {
    switch (c) {
      case '"':
        return '\\"';
      case '\\':
        return '\\\\';
      case '\n':
        return '\\n';
      case '\r':
        return '\\r';
      case '\t':
        return '\\t';
      default:
        return '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');
    }
  });
  return `"${escaped}"`;
}

function json(status, body) {
  return new Response(body, { status, headers: { 'content-type': 'application/json' } });
}

function jsonError(status, message) {
  return json(status, `{"error":${jsonString(message)}}`);
}
