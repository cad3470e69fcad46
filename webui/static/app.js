// tapsift console: progressive enhancement only (every page works without it). No inline script (CSP).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Ask before destructive actions.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (ev) => {
      if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
    });
  }
  const editor = document.getElementById("policy-text");
  if (editor) {
    // Tab inserts two spaces (YAML has no tabs).
    editor.addEventListener("keydown", (ev) => {
      if (ev.key === "Tab" && !ev.shiftKey && !ev.ctrlKey && !ev.altKey) {
        ev.preventDefault();
        const s = editor.selectionStart, e = editor.selectionEnd;
        editor.setRangeText("  ", s, e, "end");
      }
    });
    // Clicking a problem puts the cursor at its line and column.
    for (const link of document.querySelectorAll("a.jump")) {
      link.addEventListener("click", (ev) => {
        ev.preventDefault();
        const line = parseInt(link.dataset.line, 10) || 1, col = parseInt(link.dataset.col, 10) || 1;
        const lines = editor.value.split("\n");
        let pos = 0;
        for (let i = 0; i < line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
        pos += Math.max(0, Math.min(col - 1, (lines[line - 1] || "").length));
        editor.focus();
        editor.setSelectionRange(pos, pos);
        const lineHeight = parseFloat(getComputedStyle(editor).lineHeight) || 18;
        editor.scrollTop = Math.max(0, (line - 5) * lineHeight);
      });
    }
  }
  // Filters: changing a drop-down applies it.
  const filters = document.getElementById("filters");
  if (filters) {
    for (const sel of filters.querySelectorAll("select")) sel.addEventListener("change", () => filters.submit());
  }
  bulkSelection();
  autoRefresh();
  dragZoom();
});

// Bulk triage: "select all" and the count of selected hits.
function bulkSelection() {
  const table = document.getElementById("hits");
  const all = document.getElementById("select-all");
  const count = document.getElementById("selected-count");
  if (!table || !count) return;
  const boxes = () => table.querySelectorAll("tbody input[name=ids]");
  const update = () => { count.textContent = String([...boxes()].filter((b) => b.checked).length); };
  table.addEventListener("change", update);
  if (all) all.addEventListener("change", () => { for (const b of boxes()) b.checked = all.checked; update(); });
  update();
}

// Auto-refresh of the hit list: ask every refresh_s seconds how many matching hits arrived (a count, not the
// list); when some did and nothing is selected, fetch the same page and swap its rows in.
function autoRefresh() {
  const table = document.getElementById("hits");
  const box = document.getElementById("autorefresh");
  if (!table || !box) return;
  const key = "tapsift.autorefresh";
  box.checked = window.localStorage.getItem(key) === "1";
  box.addEventListener("change", () => window.localStorage.setItem(key, box.checked ? "1" : "0"));
  const every = Math.max(5, parseInt(table.dataset.refreshS, 10) || 30) * 1000;
  const note = document.getElementById("refresh-note");
  const tick = async () => {
    if (!box.checked || document.hidden) return;
    const qs = table.dataset.qs ? table.dataset.qs + "&" : "";
    try {
      const r = await fetch(`/api/v1/hits/poll?${qs}after_seq=${encodeURIComponent(table.dataset.maxSeq)}`,
                            {credentials: "same-origin", headers: {Accept: "application/json"}});
      if (!r.ok) return;
      const got = await r.json();
      if (!got.new) return;
      const selected = table.querySelectorAll("tbody input[name=ids]:checked").length;
      if (table.dataset.firstPage !== "1" || selected) {
        note.textContent = `${got.new}${got.capped ? "+" : ""} new hits match — reload to see them.`;
        note.classList.remove("hidden");
        return;
      }
      const page = await fetch(window.location.href, {credentials: "same-origin"});
      if (!page.ok) return;
      const doc = new DOMParser().parseFromString(await page.text(), "text/html");
      const fresh = doc.getElementById("hits");
      if (!fresh) return;
      table.querySelector("tbody").replaceWith(fresh.querySelector("tbody"));
      table.dataset.maxSeq = fresh.dataset.maxSeq;
      const count = doc.getElementById("hit-count");
      if (count) document.getElementById("hit-count").textContent = count.textContent;
      note.textContent = `${got.new}${got.capped ? "+" : ""} new hits added at ${new Date().toLocaleTimeString()}.`;
      note.classList.remove("hidden");
    } catch (e) { /* the next tick tries again */ }
  };
  window.setInterval(tick, every);
}

// Dashboard: drag across the time chart to zoom into that stretch (clicking a column zooms without script).
function dragZoom() {
  const svg = document.getElementById("time-chart");
  if (!svg) return;
  const cols = [...svg.querySelectorAll("a.zoom")];
  if (cols.length < 2) return;
  const ranges = cols.map((a) => {
    const u = new URL(a.getAttribute("href"), window.location.href);
    const r = a.querySelector("rect.hot");
    return {since: u.searchParams.get("since"), until: u.searchParams.get("until"),
            x: parseFloat(r.getAttribute("x")), w: parseFloat(r.getAttribute("width"))};
  });
  const toX = (ev) => {
    const pt = svg.createSVGPoint();
    pt.x = ev.clientX; pt.y = ev.clientY;
    return pt.matrixTransform(svg.getScreenCTM().inverse()).x;
  };
  const at = (x) => ranges.reduce((best, r) => (Math.abs(r.x + r.w / 2 - x) < Math.abs(best.x + best.w / 2 - x) ? r : best));
  let start = null, box = null;
  svg.addEventListener("mousedown", (ev) => {
    start = toX(ev);
    box = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    box.setAttribute("class", "zoombox"); box.setAttribute("y", "0"); box.setAttribute("height", "140");
    box.setAttribute("x", String(start)); box.setAttribute("width", "0");
    svg.appendChild(box);
    ev.preventDefault();
  });
  svg.addEventListener("mousemove", (ev) => {
    if (start === null) return;
    const x = toX(ev);
    box.setAttribute("x", String(Math.min(start, x)));
    box.setAttribute("width", String(Math.abs(x - start)));
  });
  window.addEventListener("mouseup", (ev) => {
    if (start === null) return;
    const end = toX(ev);
    box.remove();
    const a = at(Math.min(start, end)), b = at(Math.max(start, end));
    start = null;
    if (a === b) return;  // a click: the column's own link zooms
    window.location.href = `/?since=${encodeURIComponent(a.since)}&until=${encodeURIComponent(b.until)}`;
  });
}
