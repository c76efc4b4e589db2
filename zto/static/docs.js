// zto API guide: the Copy buttons. navigator.clipboard exists only on https and
// localhost, so a plain-http server falls back to selecting the text and execCommand.
(function () {
  "use strict";

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
