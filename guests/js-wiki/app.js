// A standard wasi:http/proxy handler in JavaScript (componentize-js,
// StarlingMonkey's fetch event) that reads percore's shared Wikipedia
// index through `percore:host/wiki`:
//
// - `.../json`: the TechEmpower JSON message;
// - `.../lookup/<title>`: the page with that title, normalised, as JSON
//   (`{"title", "first", "last"}`), or 404.
import { lookupNormalized } from 'percore:host/wiki@0.2.0';

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));

function handle(request) {
  const url = new URL(request.url);
  if (url.pathname.endsWith('/json')) {
    return json(200, { message: 'Hello, World!' });
  }
  const at = url.pathname.indexOf('/lookup/');
  if (at >= 0) {
    const title = decodeURIComponent(url.pathname.slice(at + '/lookup/'.length));
    const page = lookupNormalized(title);
    if (!page) return json(404, { error: 'no such page' });
    return json(200, { title: page.title, first: Number(page.first), last: Number(page.last) });
  }
  return new Response('not found\n', { status: 404 });
}

function json(status, value) {
  return new Response(JSON.stringify(value), {
    status,
    headers: { 'content-type': 'application/json' },
  });
}
