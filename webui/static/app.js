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
});
