// A percore handler in JavaScript: a standard wasi:http/proxy component,
// built with componentize-js by build.sh. Each request is a `fetch` event.

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));

function handle(request) {
  const path = new URL(request.url).pathname;
  return new Response(`Hello from JavaScript! You asked for ${request.method} ${path}\n`, {
    headers: { 'content-type': 'text/plain; charset=utf-8' },
  });
}
