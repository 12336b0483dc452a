// carebot inbox: while the agent types a reply to a web chat customer, the customer's widget
// says so ("Ann is typing…"). One notice every few seconds at most; the widget hides it when
// they stop or when the reply arrives. Progressive enhancement: nothing breaks without it.
"use strict";

(() => {
  const EVERY_MS = 2500;
  let last = -Infinity;

  document.addEventListener("input", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLTextAreaElement) || box.id !== "reply-text") return;
    const form = box.form;
    const url = form && form.dataset.typing;
    if (!url || !box.value.trim()) return;
    const now = Date.now();
    if (now - last < EVERY_MS) return;
    last = now;
    const csrf = form.querySelector('input[name="csrf"]');
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      body: new URLSearchParams({ csrf: csrf ? csrf.value : "" }),
    }).catch(() => {
      /* the customer just sees no typing notice */
    });
  });
})();
