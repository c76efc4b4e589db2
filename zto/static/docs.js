// zto API guide: the Copy buttons, the contents' current section, and the column
// names the phone layout of the tables shows. navigator.clipboard exists only on https and
// localhost, so a plain-http server falls back to selecting the text and execCommand.
(function () {
  "use strict";

  // ---- the section being read, marked in the contents ---------------------------

  const links = new Map([...document.querySelectorAll(".toc a[href^='#']")].map((a) => [a.getAttribute("href").slice(1), a]));
  const sections = [...links.keys()].map((id) => document.getElementById(id)).filter(Boolean);

  function markCurrent() {
    // The current section is the last one whose top has passed a line a little below the
    // sticky top bar; at the very bottom of the page, the last one.
    const line = 120;
    let current = sections[0];
    for (const section of sections) {
      if (section.getBoundingClientRect().top <= line) current = section;
    }
    if (window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 2) current = sections[sections.length - 1];
    for (const [id, link] of links) {
      if (current && id === current.id) link.setAttribute("aria-current", "location");
      else link.removeAttribute("aria-current");
    }
  }

  if (sections.length) {
    let pending = false;
    window.addEventListener("scroll", () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; markCurrent(); });
    }, { passive: true });
    window.addEventListener("resize", markCurrent);
    markCurrent();
  }

  // ---- each cell knows its column's name, for the phone layout (one block per row) ---

  for (const table of document.querySelectorAll(".docs-body table")) {
    const names = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
    for (const row of table.querySelectorAll("tbody tr")) {
      [...row.cells].forEach((cell, i) => { if (names[i]) cell.setAttribute("data-label", names[i]); });
    }
  }

  function fallbackCopy(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    let copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    area.remove();
    return copied;
  }

  async function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch (error) {
        // permission refused: try the old way
      }
    }
    return fallbackCopy(text);
  }

  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      const copied = await copy(source.textContent);
      button.textContent = copied ? "Copied" : "Select and copy";
      if (!copied) window.getSelection().selectAllChildren(source);
      setTimeout(() => { button.textContent = "Copy"; }, 1600);
    });
  }
})();
