// The search box of the wiki demo, on the search page and above every
// article. Typing asks /offsets/<prefix> for titles; the arrow keys move
// through the suggestions; Enter or a click opens /read/<title>, an
// ordinary page load, so that the browser's back and forward buttons and
// the address bar (a URL to share) work as on any site.
"use strict";
(function () {
  const q = document.getElementById("q");
  const list = document.getElementById("suggestions");
  const form = document.getElementById("search");
  if (!q || !list) return;
  let latest = 0;
  let selected = -1;
  let timer;

  function readUrl(title) {
    return "/read/" + encodeURIComponent(title.trim().replace(/ /g, "_"));
  }

  function open(title) {
    if (title.trim()) window.location.href = readUrl(title);
  }

  function items() {
    return [...list.querySelectorAll("li")];
  }

  function select(index) {
    const all = items();
    if (all.length === 0) { selected = -1; return; }
    selected = (index + all.length) % all.length;
    all.forEach((li, i) => li.setAttribute("aria-selected", String(i === selected)));
    all[selected].scrollIntoView({ block: "nearest" });
  }

  async function suggest() {
    const prefix = q.value;
    const ticket = ++latest;
    if (prefix.trim().length === 0) { list.replaceChildren(); selected = -1; return; }
    try {
      const res = await fetch("/offsets/" + encodeURIComponent(prefix) + "?limit=12&ci=1");
      if (!res.ok) throw new Error("offsets: HTTP " + res.status);
      const rows = await res.json();
      if (ticket !== latest) return;
      selected = -1;
      list.replaceChildren(...rows.map(([title]) => {
        const li = document.createElement("li");
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        li.dataset.title = title;
        li.textContent = title;
        li.addEventListener("mousedown", (e) => { e.preventDefault(); open(title); });
        return li;
      }));
    } catch (e) {
      list.replaceChildren();
    }
  }

  q.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(suggest, 80); });
  q.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") { e.preventDefault(); select(selected + 1); }
    else if (e.key === "ArrowUp") { e.preventDefault(); select(selected - 1); }
    else if (e.key === "Escape") { list.replaceChildren(); selected = -1; }
    else if (e.key === "Enter") {
      e.preventDefault();
      const all = items();
      open(selected >= 0 && all[selected] ? all[selected].dataset.title : q.value);
    }
  });
  if (form) form.addEventListener("submit", (e) => { e.preventDefault(); open(q.value); });
})();
