// carebot inbox: live updates and small conveniences on top of plain server-rendered pages.
// Everything here is progressive enhancement: the pages work without it.
// Server or user text is only ever set with textContent; the only HTML inserted is whole
// fragments parsed from the server's own (autoescaped) responses.
"use strict";

(() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  const BACKOFF_MIN = 1000;
  const BACKOFF_MAX = 15000;
  const STABLE_AFTER = 5000; // a connection open this long resets the backoff
  const TICK = 30000;
  const BOTTOM_SLACK = 48;

  // ---------- times ----------

  function parseTime(value) {
    if (!value) return null;
    let s = String(value).trim().replace(" ", "T");
    s = s.replace(/(\.\d{3})\d+/, "$1"); // Python gives microseconds
    if (/T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(s)) s += "Z"; // no offset: the server speaks UTC
    const d = new Date(s);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  const fmtTime = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
  const fmtDay = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
  const fmtDate = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric" });
  const fmtFull = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  function formatTime(d, format) {
    const now = new Date();
    if (format === "date") return fmtDate.format(d);
    if (format === "day") return d.getFullYear() === now.getFullYear() ? fmtDay.format(d) : fmtDate.format(d);
    if (sameDay(d, now)) return fmtTime.format(d);
    const yesterday = new Date(now);
    yesterday.setDate(now.getDate() - 1);
    if (sameDay(d, yesterday)) return `Yesterday ${fmtTime.format(d)}`;
    const day = d.getFullYear() === now.getFullYear() ? fmtDay.format(d) : fmtDate.format(d);
    return `${day}, ${fmtTime.format(d)}`;
  }

  // The same wording as the server's waiting times ("just now", "3 min", "1 h 5 min", "2 d 3 h").
  function formatDuration(ms) {
    const minutes = Math.max(0, Math.floor(ms / 60000));
    if (minutes < 1) return "just now";
    if (minutes < 60) return `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return `${hours} h ${minutes % 60} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  function localizeTimes(root = document) {
    for (const el of $$("[data-time]", root)) {
      const d = parseTime(el.dataset.time);
      if (!d) continue;
      el.textContent = formatTime(d, el.dataset.format);
      el.title = fmtFull.format(d);
    }
  }

  function refreshDurations(root = document) {
    const now = Date.now();
    for (const el of $$("[data-since]", root)) {
      const d = parseTime(el.dataset.since);
      if (!d) continue;
      el.textContent = formatDuration(now - d.getTime());
      if (!el.title) el.title = `Since ${fmtFull.format(d)}`;
    }
  }

  function enhance(root = document) {
    localizeTimes(root);
    refreshDurations(root);
    const canReply = Boolean($("#reply-text"));
    for (const btn of $$('[data-action="edit-draft"]', root)) btn.hidden = !canReply;
  }

  // ---------- page structure ----------

  const queueEl = $("#queue");
  const timelineEl = $("#timeline");
  const pageId = timelineEl ? Number(timelineEl.dataset.conversationId) : null;
  const baseTitle = document.title;

  // The conversation page itself, also when this page is the answer to a failed action
  // (POST /inbox/c/N/reply re-renders the page with an error): live updates re-fetch the page,
  // and a reload should not post the form again.
  const pageUrl = pageId ? `/inbox/c/${pageId}` : location.href;
  if (pageId && /^\/inbox\/c\/\d+\/[\w-]+\/?$/.test(location.pathname)) {
    history.replaceState(history.state, "", pageUrl);
  }

  // The server's HTML as last received, to skip DOM work when nothing changed.
  // Captured before enhance() rewrites times in the live DOM.
  const raw = {
    queue: queueEl ? queueEl.innerHTML : "",
    messages: $("#messages") ? $("#messages").innerHTML : "",
    case: $("#case") ? $("#case").innerHTML : "",
    composer: $("#composer") ? $("#composer").innerHTML : "",
    public: $("#public-panel") ? $("#public-panel").innerHTML : "",
  };

  function importChildren(from) {
    return Array.from(from.childNodes, (node) => document.importNode(node, true));
  }

  // ---------- scroll keeping ----------

  function scroller() {
    const el = $("#timeline-scroll");
    if (!el) return null;
    const style = getComputedStyle(el);
    const scrolls = style.overflowY === "auto" || style.overflowY === "scroll";
    return scrolls ? { el, reversed: style.flexDirection === "column-reverse" } : null;
  }

  function captureScroll() {
    const s = scroller();
    const messages = $("#messages");
    if (s) {
      const { el, reversed } = s;
      const max = el.scrollHeight - el.clientHeight;
      // In a column-reverse container scrollTop is 0 at the bottom and negative above it.
      const fromTop = reversed ? max + el.scrollTop : el.scrollTop;
      return { s, atBottom: max - fromTop <= BOTTOM_SLACK, fromTop };
    }
    if (!messages) return null;
    const rect = messages.getBoundingClientRect();
    const atBottom = rect.bottom <= window.innerHeight + BOTTOM_SLACK && rect.bottom >= 0;
    return { s: null, atBottom, height: messages.offsetHeight };
  }

  function restoreScroll(state) {
    if (!state) return;
    if (state.s) {
      const { el, reversed } = state.s;
      const max = el.scrollHeight - el.clientHeight;
      if (state.atBottom) el.scrollTop = reversed ? 0 : max;
      else el.scrollTop = reversed ? state.fromTop - max : state.fromTop;
    } else if (state.atBottom) {
      const messages = $("#messages");
      if (messages) window.scrollBy(0, messages.offsetHeight - state.height);
    }
  }

  function scrollToNewest() {
    const s = scroller();
    if (s) s.el.scrollTop = s.reversed ? 0 : s.el.scrollHeight;
    else {
      const last = $("#messages > .msg:last-child");
      if (last) last.scrollIntoView({ block: "nearest" });
    }
  }

  // ---------- notifications ----------

  let unseen = 0;
  let toastTimer = 0;
  let toastEl = null;

  function showToast(text) {
    if (!toastEl) {
      toastEl = document.createElement("button");
      toastEl.type = "button";
      toastEl.className = "toast";
      toastEl.setAttribute("role", "status");
      toastEl.addEventListener("click", () => {
        hideToast();
        scrollToNewest();
      });
      document.body.append(toastEl);
    }
    toastEl.textContent = text;
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    if (!document.hidden) toastTimer = setTimeout(hideToast, 6000);
  }

  function hideToast() {
    if (toastEl) toastEl.hidden = true;
  }

  function notify(count, text, visibleToo) {
    if (count <= 0) return;
    if (document.hidden) {
      unseen += count;
      document.title = `(${unseen}) ${baseTitle}`;
      showToast(text);
    } else if (visibleToo) {
      showToast(text);
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) return;
    unseen = 0;
    document.title = baseTitle;
    if (toastEl && !toastEl.hidden) {
      clearTimeout(toastTimer);
      toastTimer = setTimeout(hideToast, 6000);
    }
  });

  // ---------- applying fresh server HTML ----------

  function signedOut() {
    setLive(false, "Signed out — reload the page to sign in again");
    stopLive();
  }

  function applyQueue(doc) {
    const fresh = doc.getElementById("queue");
    if (!fresh) return signedOut();
    if (fresh.innerHTML === raw.queue) return;
    const waitingRows = () => $$('.queue-row[data-state="waiting_for_agent"]', queueEl);
    const before = new Set(waitingRows().map((a) => a.dataset.conversationId));
    const focused = document.activeElement && document.activeElement.closest(".queue-row");
    const focusedId = focused && queueEl.contains(focused) ? focused.dataset.conversationId : null;

    queueEl.replaceChildren(...importChildren(fresh));
    raw.queue = fresh.innerHTML;
    enhance(queueEl);

    if (focusedId) {
      const target = $$(".queue-row", queueEl).find((a) => a.dataset.conversationId === focusedId);
      if (target) target.focus({ preventScroll: true });
    }
    const added = waitingRows().filter((a) => !before.has(a.dataset.conversationId));
    notify(added.length, added.length === 1 ? "New conversation waiting" : `${added.length} new conversations waiting`, false);
  }

  function applyConversation(doc) {
    const freshMessages = doc.getElementById("messages");
    const freshCase = doc.getElementById("case");
    if (!freshMessages || !freshCase) return signedOut();

    // 1. The message list only: never the reply form.
    const messages = $("#messages");
    if (messages && freshMessages.innerHTML !== raw.messages) {
      const customerBefore = $$('.msg[data-author="customer"]', messages).length;
      const scroll = captureScroll();
      messages.replaceChildren(...importChildren(freshMessages));
      raw.messages = freshMessages.innerHTML;
      enhance(messages);
      restoreScroll(scroll);
      const added = $$('.msg[data-author="customer"]', messages).length - customerBefore;
      notify(added, "New message", scroll ? !scroll.atBottom : false);
    }

    // 2. The whole case column, keeping open history entries, its scroll and the focus.
    const caseEl = $("#case");
    if (caseEl && freshCase.innerHTML !== raw.case) {
      const open = new Set($$("details[open]", caseEl).map((d) => d.dataset.conversationId));
      const scrollTop = caseEl.scrollTop;
      const active = document.activeElement;
      const focusId = active && caseEl.contains(active) && active.id ? active.id : null;
      const next = document.importNode(freshCase, true);
      for (const d of $$("details[data-conversation-id]", next)) {
        if (open.has(d.dataset.conversationId)) d.open = true;
      }
      // What the agent was typing or choosing (a label, a colleague) survives the refresh.
      for (const field of $$("input[id], select[id], textarea[id]", caseEl)) {
        const typed = field instanceof HTMLSelectElement ? field.dataset.chosen : field.value !== field.defaultValue;
        const fresh = next.querySelector(`#${CSS.escape(field.id)}`);
        if (typed && fresh && fresh.type !== "hidden") fresh.value = field.value;
      }
      caseEl.replaceWith(next);
      raw.case = freshCase.innerHTML;
      next.scrollTop = scrollTop;
      enhance(next);
      if (focusId) {
        const target = document.getElementById(focusId);
        if (target) target.focus({ preventScroll: true });
      }
    }

    // 2b. A public conversation's panel (the post, its comments, hidden, removed, edited).
    const panel = $("#public-panel");
    const freshPanel = doc.getElementById("public-panel");
    if (panel && freshPanel && freshPanel.innerHTML !== raw.public) {
      const active = document.activeElement;
      const focusId = active && panel.contains(active) && active.id ? active.id : null;
      panel.replaceChildren(...importChildren(freshPanel));
      raw.public = freshPanel.innerHTML;
      enhance(panel);
      if (focusId) {
        const target = document.getElementById(focusId);
        if (target) target.focus({ preventScroll: true });
      }
    }

    // 3. The composer: only swapped in when there is no reply form to lose.
    const composer = $("#composer");
    const freshComposer = doc.getElementById("composer");
    if (composer && freshComposer) {
      const form = $("#reply-form", composer);
      const freshForm = freshComposer.querySelector("#reply-form");
      if (!form) {
        if (freshComposer.innerHTML !== raw.composer) {
          composer.replaceChildren(...importChildren(freshComposer));
          raw.composer = freshComposer.innerHTML;
          enhance(composer);
          setupComposer();
        }
      } else {
        let stale = $(".composer-stale", form);
        if (!freshForm && !stale) {
          stale = document.createElement("p");
          stale.className = "composer-stale";
          stale.setAttribute("role", "status");
          stale.textContent = "This conversation changed and you may no longer be able to reply. Your text is kept.";
          form.prepend(stale);
        } else if (freshForm && stale) {
          stale.remove();
        }
        if (freshForm) {
          // Keep the form (and the text), but follow a changed target or token.
          form.action = freshForm.getAttribute("action") || form.action;
          const token = freshForm.querySelector('input[name="csrf"]');
          const mine = form.querySelector('input[name="csrf"]');
          if (token && mine) mine.value = token.value;
        }
      }
    }
  }

  // ---------- fetching ----------

  let refreshing = false;
  let again = false;
  let refreshTimer = 0;

  function scheduleRefresh(wait) {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = 0;
      refresh();
    }, wait);
  }

  async function refresh() {
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    try {
      const res = await fetch(queueEl ? location.href : pageUrl, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      if (queueEl) applyQueue(doc);
      else if (timelineEl) applyConversation(doc);
    } catch (err) {
      // Network trouble: the next event or reconnect tries again.
    } finally {
      refreshing = false;
      if (again) {
        again = false;
        scheduleRefresh(0);
      }
    }
  }

  function onChanged(conversationId) {
    if (queueEl) return scheduleRefresh(150);
    if (!timelineEl) return;
    // This conversation: right away. Any other one may still touch the customer's history.
    scheduleRefresh(Number(conversationId) === pageId ? 50 : 600);
  }

  // ---------- live connection ----------

  const liveEl = (() => {
    let el = $("#live-status");
    if (!el) {
      el = document.createElement("div");
      el.id = "live-status";
      el.className = "live-status";
      el.setAttribute("role", "status");
      el.hidden = true;
      document.body.append(el);
    }
    return el;
  })();
  const liveText = liveEl.textContent.trim() || "Live updates paused — reconnecting…";

  let socket = null;
  let delay = BACKOFF_MIN;
  let retryTimer = 0;
  let stableTimer = 0;
  let wasDown = false;
  let stopped = false;

  function setLive(ok, text) {
    liveEl.textContent = text || liveText;
    liveEl.hidden = ok;
  }

  function connect() {
    if (stopped || document.visibilityState === "prerender") return;
    clearTimeout(retryTimer);
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/inbox/events`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      return retry();
    }
    socket = ws;
    ws.addEventListener("open", () => {
      setLive(true);
      stableTimer = setTimeout(() => {
        delay = BACKOFF_MIN;
      }, STABLE_AFTER);
      if (wasDown) {
        wasDown = false;
        scheduleRefresh(0); // catch up on whatever happened while we were away
      }
    });
    ws.addEventListener("message", (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (data && data.type === "changed") {
        onChanged(data.conversation_id);
        if (data.handoff) alertHandoff(data.conversation_id, data.handoff);
      }
    });
    ws.addEventListener("close", () => {
      clearTimeout(stableTimer);
      if (socket !== ws) return;
      socket = null;
      if (stopped) return;
      wasDown = true;
      setLive(false);
      retry();
    });
  }

  function retry() {
    clearTimeout(retryTimer);
    // Shortened at random by up to half (the server's retry policy, carebot/retry.py), so the
    // inboxes of every agent do not all reconnect in the same instant after a restart.
    retryTimer = setTimeout(connect, Math.round(delay * (1 - 0.5 * Math.random())));
    delay = Math.min(delay * 2, BACKOFF_MAX);
  }

  function stopLive() {
    stopped = true;
    clearTimeout(retryTimer);
    if (socket) {
      const ws = socket;
      socket = null;
      ws.close();
    }
  }

  if (queueEl || timelineEl) {
    window.addEventListener("pagehide", () => {
      // Leaving the page closes the socket; that is not an outage.
      clearTimeout(retryTimer);
      if (socket) {
        const ws = socket;
        socket = null;
        ws.close();
      }
    });
    window.addEventListener("pageshow", (event) => {
      if (event.persisted && !stopped) {
        wasDown = true;
        delay = BACKOFF_MIN;
        connect();
      }
    });
    window.addEventListener("online", () => {
      if (!socket && !stopped) {
        delay = BACKOFF_MIN;
        connect();
      }
    });
    connect();
  }

  // ---------- forms ----------

  const isMac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);

  function setupComposer() {
    const hint = $(".composer-hint");
    if (hint) {
      hint.hidden = false;
      const mod = $("[data-mod]", hint);
      if (mod && isMac) mod.textContent = "⌘";
    }
    const faq = $("#faq-search");
    if (faq) faq.hidden = false; // it needs this script: without it, it stays hidden
  }

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (!(target instanceof HTMLTextAreaElement) || target.id !== "reply-text") return;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.isComposing) {
      event.preventDefault();
      const form = target.form;
      // In public the agent chooses: reply publicly or privately (no shortcut posts for them).
      if (form && !form.dataset.submitting && !form.dataset.public) form.requestSubmit();
    }
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || event.defaultPrevented) return;
    if (form.dataset.submitting) {
      event.preventDefault(); // one click is enough
      return;
    }
    form.dataset.submitting = "1";
    // Disable after the browser has collected the form data.
    setTimeout(() => {
      const buttons = $$('button[type="submit"], button:not([type])', form);
      if (form.id) buttons.push(...$$(`button[form="${form.id}"]`));
      for (const b of buttons) b.disabled = true;
    }, 0);
  });

  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    // Back/forward cache: undo the "submitting" state.
    for (const form of $$("form[data-submitting]")) delete form.dataset.submitting;
    for (const b of $$("button:disabled")) b.disabled = false;
  });

  document.addEventListener("click", (event) => {
    const btn = event.target instanceof Element ? event.target.closest('[data-action="edit-draft"]') : null;
    if (!btn) return;
    const draft = $("#draft");
    const text = $("#reply-text");
    if (!draft || !text) return;
    const body = draft.textContent;
    text.value = text.value.trim() ? `${text.value.replace(/\s+$/, "")}\n\n${body}` : body;
    text.focus();
    text.setSelectionRange(text.value.length, text.value.length);
  });

  // ---------- FAQ answers for the reply ----------
  // Type words in the search box, click an answer: it goes into the reply at the cursor,
  // to be edited before sending. The answers come from GET /inbox/faq?q=words (JSON).

  const FAQ_WAIT = 200; // ms of quiet typing before searching
  let faqTimer = 0;
  let faqSeq = 0;

  function faqItem(hit) {
    const li = document.createElement("li");
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "faq-hit";
    btn.dataset.intent = hit.intent;
    btn.dataset.answer = hit.answer;
    btn.title = "Insert this answer into your reply";
    const title = document.createElement("span");
    title.className = "faq-title";
    title.textContent = hit.title;
    if (hit.language && customerLanguage()) {
      // The answer's language: the customer's where the intent has it, else the default's.
      const tag = document.createElement("span");
      tag.className = "faq-language msg-language";
      tag.dataset.language = hit.language;
      tag.textContent = hit.language;
      tag.title = hit.language === customerLanguage() ? "In the customer's language" : "Not written in the customer's language";
      title.append(" ", tag);
    }
    const answer = document.createElement("span");
    answer.className = "faq-answer";
    answer.textContent = hit.answer;
    btn.append(title, answer);
    li.append(btn);
    return li;
  }

  /** The customer's language, as the conversation's header badge names it ("" when none). */
  function customerLanguage() {
    const badge = $("#conv-language");
    return badge ? badge.dataset.language || "" : "";
  }

  async function faqSearch(words) {
    const seq = ++faqSeq;
    const results = $("#faq-results");
    const status = $("#faq-status");
    if (!results || !status) return;
    if (!words.trim()) {
      results.replaceChildren();
      status.textContent = "";
      return;
    }
    let text;
    try {
      const language = customerLanguage();
      const asked = `/inbox/faq?q=${encodeURIComponent(words)}` + (language ? `&language=${encodeURIComponent(language)}` : "");
      const res = await fetch(asked, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      if (seq !== faqSeq) return; // a newer search is under way
      if (res.status === 401) text = "Signed out — reload the page to sign in again.";
      else if (!res.ok) text = `The search failed (HTTP ${res.status}): try again.`;
      else {
        const data = await res.json();
        if (seq !== faqSeq) return;
        results.replaceChildren(...data.hits.map(faqItem));
        const n = data.hits.length;
        text = n ? `${n} answer${n === 1 ? "" : "s"}: click one to insert it into your reply.` : "No answer matches these words.";
      }
    } catch (err) {
      if (seq !== faqSeq) return;
      text = "The search failed (no connection): try again.";
    }
    status.textContent = text;
  }

  function insertIntoReply(answer) {
    const box = $("#reply-text");
    if (!box) return;
    // Where the agent left the cursor; at the end if they have not been in the reply yet.
    const touched = box.dataset.touched === "1";
    const start = touched ? box.selectionStart : box.value.length;
    const end = touched ? box.selectionEnd : box.value.length;
    const before = box.value.slice(0, start);
    const gap = before && !/\s$/.test(before) ? " " : "";
    box.setRangeText(gap + answer, start, end, "end");
    box.dataset.touched = "1";
    box.focus();
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }

  document.addEventListener("focusin", (event) => {
    if (event.target instanceof HTMLTextAreaElement && event.target.id === "reply-text") {
      event.target.dataset.touched = "1";
    }
  });

  document.addEventListener("input", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLInputElement) || box.id !== "faq-words") return;
    clearTimeout(faqTimer);
    faqTimer = setTimeout(() => faqSearch(box.value), FAQ_WAIT);
  });

  // Capture: before the page's submit handler, which would mark the form as submitting.
  document.addEventListener(
    "submit",
    (event) => {
      if (!(event.target instanceof HTMLFormElement) || event.target.id !== "faq-form") return;
      event.preventDefault();
      clearTimeout(faqTimer);
      const box = $("#faq-words");
      if (box) faqSearch(box.value);
    },
    true,
  );

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (!(target instanceof HTMLElement) || !target.closest("#faq-search")) return;
    const hits = $$(".faq-hit");
    const at = hits.indexOf(target);
    if (event.key === "Escape" && target.id === "faq-words" && target.value) {
      event.preventDefault();
      target.value = "";
      faqSearch("");
    } else if (event.key === "ArrowDown" && hits.length) {
      event.preventDefault();
      hits[Math.min(at + 1, hits.length - 1)].focus();
    } else if (event.key === "ArrowUp" && at >= 0) {
      event.preventDefault();
      if (at === 0) $("#faq-words").focus();
      else hits[at - 1].focus();
    }
  });

  document.addEventListener("click", (event) => {
    const hit = event.target instanceof Element ? event.target.closest(".faq-hit") : null;
    if (hit) insertIntoReply(hit.dataset.answer || "");
  });

  // ---------- notifications of new handoffs ----------
  // Opt-in: "Turn on notifications" asks the browser's permission and remembers the choice in
  // this browser. Then each new handoff in the agent's teams (every team for an agent in none;
  // the server says which, as handoff.for_me) plays a short chime (WebAudio: no sound file)
  // and, with permission, shows a system notification. Each handoff alerts once per tab.

  const NOTIFY_KEY = "carebot-notify";
  const notifyButton = $("#notify-button");
  const alerted = new Set();
  let audio = null;

  function notifyOn() {
    try {
      return localStorage.getItem(NOTIFY_KEY) === "on";
    } catch (err) {
      return false;
    }
  }

  function showNotifyState() {
    if (!notifyButton) return;
    const on = notifyOn();
    notifyButton.hidden = false;
    notifyButton.setAttribute("aria-pressed", on ? "true" : "false");
    notifyButton.textContent = on ? "Notifications on" : "Turn on notifications";
    const denied = "Notification" in window && Notification.permission === "denied";
    notifyButton.title = on
      ? `New handoffs in your teams chime${denied ? " (the browser blocks pop-ups for this site)" : " and pop up"}. Click to turn off.`
      : "Chime and pop up for new handoffs in your teams";
  }

  function chime() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      if (audio.state === "suspended") audio.resume();
      const now = audio.currentTime;
      for (const [i, freq] of [880, 1318.5].entries()) {
        const osc = audio.createOscillator();
        const gain = audio.createGain();
        osc.type = "sine";
        osc.frequency.value = freq;
        const start = now + i * 0.12;
        gain.gain.setValueAtTime(0.0001, start);
        gain.gain.exponentialRampToValueAtTime(0.2, start + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.3);
        osc.connect(gain).connect(audio.destination);
        osc.start(start);
        osc.stop(start + 0.32);
      }
    } catch (err) {
      return false; // no audio here: the pop-up (and the queue) still say it
    }
    return true;
  }

  function alertHandoff(conversationId, handoff) {
    if (!notifyOn() || !handoff.for_me || alerted.has(handoff.id)) return;
    alerted.add(handoff.id);
    const played = chime();
    let popped = false;
    if ("Notification" in window && Notification.permission === "granted") {
      const team = handoff.team_label ? ` for ${handoff.team_label}` : "";
      const note = new Notification(`New conversation waiting${team}`, {
        body: `Conversation #${conversationId}: click to open it.`,
        tag: `carebot-handoff-${handoff.id}`,
      });
      note.addEventListener("click", () => {
        window.focus();
        location.href = `/inbox/c/${conversationId}`;
      });
      popped = true;
    }
    if (notifyButton) {
      // For whoever checks what happened (tests, curious agents): the last alert's handoff.
      notifyButton.dataset.alerts = String(Number(notifyButton.dataset.alerts || 0) + 1);
      notifyButton.dataset.lastAlert = `${handoff.id}:${played ? "sound" : "silent"}${popped ? "+popup" : ""}`;
    }
  }

  if (notifyButton && (queueEl || timelineEl)) {
    showNotifyState();
    notifyButton.addEventListener("click", async () => {
      if (notifyOn()) {
        localStorage.setItem(NOTIFY_KEY, "off");
        return showNotifyState();
      }
      if ("Notification" in window && Notification.permission === "default") {
        try {
          await Notification.requestPermission();
        } catch (err) {
          // an old browser without the promise form: the chime alone still works
        }
      }
      try {
        localStorage.setItem(NOTIFY_KEY, "on");
      } catch (err) {
        notifyButton.title = "This browser keeps no settings for this site: notifications cannot be turned on.";
        return;
      }
      chime(); // the click lets the page play sound from now on, and says what it sounds like
      showNotifyState();
    });
  }

  // The label and visibility filters apply as soon as they are chosen.
  document.addEventListener("change", (event) => {
    const target = event.target;
    const filters = ["label-filter", "visibility-filter"];
    if (target instanceof HTMLSelectElement && filters.includes(target.id) && target.form) {
      target.form.requestSubmit();
    }
    if (target instanceof HTMLSelectElement && target.closest("#case")) target.dataset.chosen = "1";
  });

  // ---------- start ----------

  enhance(document);
  setupComposer();
  setInterval(() => {
    localizeTimes(document);
    refreshDurations(document);
  }, TICK);
})();
