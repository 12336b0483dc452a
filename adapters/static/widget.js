/*
 * carebot web chat widget.
 *
 * Embedded by a brand's site with one tag:
 *   <script src="https://carebot.example.com/chat/widget.js" data-title="Northwind Goods" async></script>
 *
 * Plain ES2020, no dependencies, served as-is. Everything lives in an open shadow root on
 * <div id="carebot-widget">, so the host page's CSS cannot reach it. Message text is only ever
 * put into the page with textContent / text nodes, never parsed as HTML.
 *
 * Optional attributes on the script tag:
 *   data-title    header title (default "Chat with us")
 *   data-open     "true": start with the panel open
 *   data-welcome  a first bot line shown locally (never sent to the server, never stored).
 *                 The bot's introduction ([messages] bot_intro, "Hi, I'm ..., an automated
 *                 assistant") is not this line: the server puts it before the bot's first
 *                 message of every conversation, so it is said once per conversation, kept in
 *                 the history and seen by agents. Keep the welcome short and do not repeat it.
 *   data-welcome-<code>  the welcome line when the widget speaks the language <code> (see
 *                 data-language), e.g. data-welcome-de; without it, data-welcome
 *   data-accent   a CSS colour for --carebot-accent (the host page may also set
 *                 --carebot-accent on #carebot-widget or :root)
 *   data-prechat  "off" | "optional" | "required": this site's pre-chat form, when the server's
 *                 [webchat] prechat is "optional" (its "off" and "required" hold everywhere)
 *   data-language the widget's language (ISO 639-1, e.g. "de"), when [webchat.texts.<code>]
 *                 has it; without it, the first of the browser's languages that has texts,
 *                 else [languages] default. The server's notices to this tab use it too; the
 *                 bot's replies follow the language the customer writes in.
 *
 * An optional contact form (name, phone, e-mail) under the input: a phone number or e-mail
 * address lets the care team link the visitor to the same customer on other channels. The
 * pre-chat form is the same form before the first message, with its own texts and the fields
 * the server asks for: "optional" can be skipped; "required" must be filled in (the server
 * refuses messages before it, and the widget sends them again once it is).
 *
 * The page the visitor is on (its address without the #fragment, and its title) goes with the
 * hello and again whenever it changes (history.pushState, back/forward, a new title), so agents
 * see where the visitor is.
 *
 * The header says whether the care team is online (the server's business hours), asked again
 * whenever the panel opens and every few minutes while it is open. Every message shows its time
 * in the visitor's time zone (with the date when it is not today). "Ann is typing…" shows while
 * an agent types a reply. Every text comes from the server ([webchat.texts] in config.toml).
 *
 * Messages the server refuses: a message over the length limit is never sent; it stays in the
 * box with a notice and the counter turns red. Any other refused message (too fast,
 * unavailable) stays in the conversation marked "Not sent" with a Retry button; nothing is
 * pasted back into the box (where the visitor may have typed something else since). Notices
 * about messages share one place above the box: a new one replaces the last.
 *
 * Page API: window.carebot.open(), .close(), .send(text).
 */
(() => {
  "use strict";

  if (window.carebot && window.carebot.__carebot) return; // the script was included twice

  const TOKEN_KEY = "carebot.token";
  const OPEN_KEY = "carebot.open"; // sessionStorage: keep the panel open across page navigations
  const CONTACT_KEY = "carebot.contact"; // localStorage: "1" once the visitor saved contact details
  const PASS_KEY = "carebot.prechat"; // localStorage: the server's pass for a filled pre-chat form
  const SKIP_KEY = "carebot.prechat.skipped"; // localStorage: "1" once the visitor skipped it
  const PAGE_URL_MAX_CHARS = 500;
  const PAGE_TITLE_MAX_CHARS = 200;
  const TYPING_TIMEOUT_MS = 15000;
  const AGENT_TYPING_TIMEOUT_MS = 6000; // agents' typing notices come every 2-3 s while they type
  const STATUS_REFRESH_MS = 2 * 60 * 1000; // while the panel is open
  const COUNT_FROM = 0.8; // the counter shows from this share of the length limit
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const CONNECTING_NOTICE_MS = 800;
  const DEFAULT_MAX_CHARS = 2000;
  const AUTHORS = new Set(["customer", "bot", "agent"]);
  // Errors the server sends, before its ack, about the message frame it is reading.
  const REJECTED_MESSAGE_CODES = new Set(["too_long", "empty", "bad_frame", "rate_limited", "prechat_required"]);
  // Every text the visitor sees, from [webchat.texts] in carebot's config.toml and its
  // [webchat.texts.<code>] tables: the server writes them into this line as it serves the file,
  // as {"default": <[languages] default>, "by_language": {<code>: {<key>: <text>}}}.
  const TEXTS = {}; // [webchat.texts] by language, written in by the server
  // The text for an error code the server sent without a message.
  const ERROR_TEXTS = {
    too_long: "too_long",
    empty: "empty",
    rate_limited: "rate_limited",
    unavailable: "unavailable",
    prechat_required: "prechat_required",
    bad_email: "contact_bad_email",
    bad_frame: "failed",
    bad_token: "expired",
  };
  const CONTACT_FIELDS = ["name", "phone", "email"];
  const CONTACT_MAX_CHARS = 200;

  // ---------------------------------------------------------------- configuration

  const script = findScript();
  const base = baseUrl(script);
  const wsUrl = socketUrl(base);
  const attr = (name) => (script && script.getAttribute(name)) || "";
  const language = widgetLanguage();
  const texts = TEXTS.by_language[language];
  const cfg = {
    title: attr("data-title").trim() || texts.title,
    open: attr("data-open").trim().toLowerCase() === "true",
    welcome: (attr(`data-welcome-${language}`) || attr("data-welcome")).trim(),
    accent: attr("data-accent").trim(),
    prechat: attr("data-prechat").trim().toLowerCase() || null,
  };

  /**
   * The language the widget speaks: the site's data-language attribute, else the first of the
   * browser's languages that has texts, else [languages] default. "de-AT" is German.
   */
  function widgetLanguage() {
    for (const tag of wantedLanguages()) {
      const code = tag.toLowerCase().split(/[-_]/)[0];
      if (Object.prototype.hasOwnProperty.call(TEXTS.by_language, code)) return code;
    }
    return TEXTS.default;
  }

  /** The site's data-language, then the browser's languages, preferred first. */
  function wantedLanguages() {
    const tags = [attr("data-language"), ...(navigator.languages || [navigator.language])];
    return tags.map((tag) => String(tag || "").trim()).filter(Boolean).slice(0, 8);
  }

  function findScript() {
    const current = document.currentScript;
    if (current && current.src) return current;
    const scripts = document.getElementsByTagName("script");
    for (let i = scripts.length - 1; i >= 0; i--) {
      const src = scripts[i].getAttribute("src");
      if (!src) continue;
      try {
        if (new URL(src, document.baseURI).pathname.endsWith("/chat/widget.js")) return scripts[i];
      } catch (_) {
        /* not a URL */
      }
    }
    return null;
  }

  /** "https://carebot.example.com/prefix/chat/widget.js?v=2" -> "https://carebot.example.com/prefix" */
  function baseUrl(tag) {
    try {
      const url = new URL(tag ? tag.src : "/chat/widget.js", document.baseURI);
      const at = url.pathname.lastIndexOf("/chat/widget.js");
      return url.origin + (at >= 0 ? url.pathname.slice(0, at) : "");
    } catch (_) {
      return location.origin;
    }
  }

  function socketUrl(httpBase) {
    const url = new URL(httpBase + "/chat/ws");
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  // ---------------------------------------------------------------- small helpers

  /** Storage that never throws (blocked storage, private mode): falls back to memory. */
  function safeStorage(kind) {
    const memory = new Map();
    let store = null;
    try {
      store = window[kind];
      const probe = "carebot.probe";
      store.setItem(probe, "1");
      store.removeItem(probe);
    } catch (_) {
      store = null;
    }
    return {
      get(key) {
        try {
          return store ? store.getItem(key) : memory.has(key) ? memory.get(key) : null;
        } catch (_) {
          return null;
        }
      },
      set(key, value) {
        try {
          if (store) store.setItem(key, value);
          else memory.set(key, value);
        } catch (_) {
          memory.set(key, value);
        }
      },
      remove(key) {
        memory.delete(key);
        try {
          if (store) store.removeItem(key);
        } catch (_) {
          /* ignore */
        }
      },
    };
  }
  const local = safeStorage("localStorage");
  const session = safeStorage("sessionStorage");

  function uuid() {
    const c = window.crypto;
    if (c && typeof c.randomUUID === "function") {
      try {
        return c.randomUUID(); // secure contexts only
      } catch (_) {
        /* fall through */
      }
    }
    const b = new Uint8Array(16);
    if (c && typeof c.getRandomValues === "function") c.getRandomValues(b);
    else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  /**
   * Creates an element. props: "text" (textContent), "class", on<event> listeners, anything
   * else as an attribute (true -> empty attribute, null/false -> left out). String children
   * become text nodes.
   */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value == null || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  const ICONS = {
    chat: ["M21 11.5a8.4 8.4 0 0 1-.9 3.8 8.5 8.5 0 0 1-7.6 4.7 8.4 8.4 0 0 1-3.8-.9L3 21l1.9-5.7a8.4 8.4 0 0 1-.9-3.8 8.5 8.5 0 0 1 4.7-7.6 8.4 8.4 0 0 1 3.8-.9h.5a8.5 8.5 0 0 1 8 8v.5z"],
    close: ["M18 6 6 18", "M6 6l12 12"],
    send: ["M22 2 11 13", "M22 2l-7 20-4-9-9-4 20-7z"],
    info: ["M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20z", "M12 16v-4", "M12 8h.01"],
    alert: ["M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20z", "M12 8v4", "M12 16h.01"],
  };

  function icon(name, extraClass) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", "carebot-icon" + (extraClass ? " " + extraClass : ""));
    for (const d of ICONS[name]) {
      const path = document.createElementNS(SVG_NS, "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    return svg;
  }

  const URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;

  /** Text with http(s) links as <a> elements; every piece goes in as a text node. */
  function linkify(text) {
    const out = [];
    let last = 0;
    for (const match of text.matchAll(URL_RE)) {
      let url = match[0];
      const trailing = /[.,;:!?)\]}]+$/.exec(url);
      if (trailing) url = url.slice(0, -trailing[0].length);
      if (!url) continue;
      let href = null;
      try {
        const parsed = new URL(url);
        if (parsed.protocol === "http:" || parsed.protocol === "https:") href = parsed.href;
      } catch (_) {
        /* not a link after all */
      }
      if (!href) continue;
      if (match.index > last) out.push(document.createTextNode(text.slice(last, match.index)));
      out.push(el("a", { href, target: "_blank", rel: "noopener noreferrer nofollow", text: url }));
      last = match.index + url.length;
    }
    if (last < text.length) out.push(document.createTextNode(text.slice(last)));
    return out;
  }

  /** "{agent} is typing" + {agent: "Ann"}: each known {name} replaced, the rest kept. */
  function fill(template, values) {
    return String(template).replace(/\{(\w*)\}/g, (match, name) =>
      Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : match,
    );
  }

  /** Characters as the server counts them (code points, so an emoji is one). */
  function charCount(text) {
    return Array.from(text.trim()).length;
  }

  function parseTime(iso) {
    if (typeof iso !== "string" || !iso) return null;
    const date = new Date(iso.replace(/(\.\d{3})\d+/, "$1")); // microseconds: not everywhere
    return Number.isNaN(date.getTime()) ? null : date;
  }

  const timeFormats = {};
  function formatter(name, options) {
    if (!timeFormats[name]) timeFormats[name] = new Intl.DateTimeFormat(undefined, options);
    return timeFormats[name];
  }

  /** 14:05 today; "18 Nov, 14:05" another day this year; with the year before that. */
  function formatTime(date) {
    const now = new Date();
    const clock = { hour: "numeric", minute: "2-digit" };
    if (date.toDateString() === now.toDateString()) return formatter("time", clock).format(date);
    if (date.getFullYear() === now.getFullYear()) {
      return formatter("day", { day: "numeric", month: "short", ...clock }).format(date);
    }
    return formatter("date", { day: "numeric", month: "short", year: "numeric", ...clock }).format(date);
  }

  // ---------------------------------------------------------------- state

  let mounted = false;
  const readyQueue = [];
  let ui = null; // the elements, once mounted

  let ws = null;
  let welcomed = false;
  let wantConnection = false;
  let backoff = BACKOFF_MIN_MS;
  let reconnectTimer = null;
  let connectingTimer = null;
  let reconnectNow = false; // after bad_token: reconnect at once, without backoff
  let badTokenRetried = false;

  /**
   * Messages not yet acknowledged, in sending order: id -> {frame, node, source, group, sent,
   * wasSent, createdAt}. sent: on the current socket; wasSent: on any socket so far.
   */
  const pending = new Map();
  let lastAcked = null; // the last acknowledged message, for an "unavailable" error after the ack
  /** Messages the server refused (too fast, unavailable), shown "Not sent": id -> entry. */
  const failed = new Map();
  let maxChars = DEFAULT_MAX_CHARS;
  let typingTimer = null;
  let statusTimer = null;
  let isOpen = false;
  let unread = 0;
  /** The contact frame waiting for its contact_saved: {frame, sent}; one at a time. */
  let contact = null;
  let savedContact = {}; // what this page saved (the form shows it again; never put in storage)
  /** The pre-chat form as the server says it is for this site and visitor. */
  let prechat = { mode: "off", fields: [], done: false };
  let prechatOpen = false; // the contact form is showing as the pre-chat form
  let lastPage = null; // the page the server was last told of: {url, title}

  // ---------------------------------------------------------------- DOM

  function mount() {
    const host = el("div", { id: "carebot-widget" });
    if (cfg.accent && window.CSS && CSS.supports("color", cfg.accent)) {
      host.style.setProperty("--carebot-accent", cfg.accent);
    }
    const shadow = host.attachShadow({ mode: "open" });

    // Hidden until widget.css arrives (it reveals .carebot-root), so nothing unstyled flashes.
    const root = el("div", { class: "carebot-root" });
    root.style.visibility = "hidden";
    const stylesheet = el("link", { rel: "stylesheet", href: base + "/chat/widget.css" });
    stylesheet.addEventListener("error", () => {
      console.warn("carebot: could not load " + base + "/chat/widget.css");
    });

    const launcherBadge = el("span", { class: "carebot-badge", hidden: true, "aria-hidden": "true" });
    const launcher = el(
      "button",
      {
        type: "button",
        id: "carebot-launcher",
        class: "carebot-launcher",
        "aria-label": texts.open_chat,
        "aria-controls": "carebot-panel",
        "aria-expanded": "false",
      },
      icon("chat"),
      launcherBadge,
    );

    const title = el("h2", { id: "carebot-title", class: "carebot-title", text: cfg.title });
    const closeButton = el("button", {
      type: "button",
      id: "carebot-close",
      class: "carebot-close",
      "aria-label": texts.close_chat,
      title: texts.close_chat,
    });
    closeButton.append(icon("close"));
    // Whether the team is online: filled in from the server's status.
    const subtitle = el("p", { id: "carebot-subtitle", class: "carebot-subtitle", hidden: true });
    const header = el(
      "header",
      { class: "carebot-header" },
      el("div", { class: "carebot-avatar", "aria-hidden": "true" }, icon("chat")),
      el("div", { class: "carebot-heading" }, title, subtitle),
      closeButton,
    );

    const messages = el("div", {
      id: "carebot-messages",
      class: "carebot-messages",
      role: "log",
      "aria-live": "polite",
      "aria-relevant": "additions",
      "aria-label": texts.conversation,
      tabindex: "0",
    });

    const typingSr = el("span", { class: "carebot-sr-only", text: texts.typing });
    const typingText = el("span", { id: "carebot-typing-text", class: "carebot-typing-text", hidden: true });
    const typing = el(
      "div",
      { id: "carebot-typing", class: "carebot-typing", hidden: true },
      el(
        "span",
        { class: "carebot-dots", "aria-hidden": "true" },
        el("span", { class: "carebot-dot" }),
        el("span", { class: "carebot-dot" }),
        el("span", { class: "carebot-dot" }),
      ),
      typingSr,
      typingText,
    );

    const status = el("div", { id: "carebot-status", class: "carebot-status", role: "status", hidden: true });
    // The one notice about the messages (too long, too fast, not taken): each replaces the last.
    const alertText = el("span", { class: "carebot-error-text" });
    const alert = el(
      "div",
      { id: "carebot-alert", class: "carebot-error carebot-alert", role: "alert", hidden: true },
      icon("alert", "carebot-error-icon"),
      alertText,
    );

    const input = el("textarea", {
      id: "carebot-input",
      class: "carebot-input",
      rows: "1",
      placeholder: texts.placeholder,
      "aria-describedby": "carebot-count carebot-alert",
      autocomplete: "off",
      enterkeyhint: "send",
    });
    const count = el("span", { id: "carebot-count", class: "carebot-count", hidden: true });
    const sendButton = el("button", {
      type: "submit",
      id: "carebot-send",
      class: "carebot-send",
      "aria-label": texts.send,
      title: texts.send,
    });
    sendButton.append(icon("send"));
    const form = el(
      "form",
      { id: "carebot-form", class: "carebot-form", novalidate: true, "data-empty": "true" },
      el("label", { for: "carebot-input", class: "carebot-sr-only", text: texts.your_message }),
      el("div", { class: "carebot-field" }, input, count),
      sendButton,
    );

    // The optional contact form, between the conversation and the composer; its link is under
    // the input.
    const contactInputs = {
      name: el("input", {
        id: "carebot-contact-name",
        class: "carebot-contact-input",
        type: "text",
        name: "name",
        autocomplete: "name",
        maxlength: String(CONTACT_MAX_CHARS),
      }),
      phone: el("input", {
        id: "carebot-contact-phone",
        class: "carebot-contact-input",
        type: "tel",
        name: "phone",
        autocomplete: "tel",
        maxlength: String(CONTACT_MAX_CHARS),
        placeholder: texts.contact_phone_example,
      }),
      email: el("input", {
        id: "carebot-contact-email",
        class: "carebot-contact-input",
        type: "email",
        name: "email",
        autocomplete: "email",
        maxlength: String(CONTACT_MAX_CHARS),
        placeholder: texts.contact_email_example,
        spellcheck: "false",
        autocapitalize: "off",
      }),
    };
    const contactField = (key, label) =>
      el(
        "div",
        { class: "carebot-contact-field", "data-field": key },
        el("label", { for: `carebot-contact-${key}`, class: "carebot-contact-label", text: label }),
        contactInputs[key],
      );
    const contactFields = {
      name: contactField("name", texts.contact_name),
      phone: contactField("phone", texts.contact_phone),
      email: contactField("email", texts.contact_email),
    };
    const contactTitle = el("h3", { id: "carebot-contact-title", class: "carebot-contact-title", text: texts.contact_title });
    const contactIntro = el("p", {
      id: "carebot-contact-intro",
      class: "carebot-contact-intro",
      text: texts.contact_intro,
    });
    const contactError = el("p", { id: "carebot-contact-error", class: "carebot-contact-error", role: "alert" });
    const contactCancel = el("button", {
      type: "button",
      id: "carebot-contact-cancel",
      class: "carebot-contact-cancel",
      text: texts.contact_cancel,
    });
    const contactSave = el("button", {
      type: "submit",
      id: "carebot-contact-save",
      class: "carebot-contact-save",
      text: texts.contact_save,
    });
    const contactForm = el(
      "form",
      {
        id: "carebot-contact",
        class: "carebot-contact",
        novalidate: true,
        hidden: true,
        "aria-labelledby": "carebot-contact-title",
        "aria-describedby": "carebot-contact-intro",
      },
      contactTitle,
      contactIntro,
      contactFields.name,
      contactFields.phone,
      contactFields.email,
      contactError,
      el("div", { class: "carebot-contact-actions" }, contactCancel, contactSave),
    );
    const contactNote = el("p", { id: "carebot-contact-note", class: "carebot-contact-note", role: "status" });
    const contactToggle = el("button", {
      type: "button",
      id: "carebot-contact-toggle",
      class: "carebot-contact-toggle",
      "aria-controls": "carebot-contact",
      "aria-expanded": "false",
      text: local.get(CONTACT_KEY) === "1" ? texts.contact_update : texts.contact_leave,
    });
    const footer = el("div", { class: "carebot-footer" }, contactNote, contactToggle);

    const panel = el(
      "section",
      { id: "carebot-panel", class: "carebot-panel", role: "dialog", "aria-labelledby": "carebot-title", hidden: true },
      header,
      messages,
      typing,
      status,
      alert,
      contactForm,
      form,
      footer,
    );

    root.append(panel, launcher);
    shadow.append(stylesheet, root);
    document.body.append(host);

    ui = {
      host,
      shadow,
      root,
      launcher,
      launcherBadge,
      panel,
      closeButton,
      subtitle,
      messages,
      typing,
      typingSr,
      typingText,
      status,
      alert,
      alertText,
      form,
      input,
      count,
      contactForm,
      contactInputs,
      contactFields,
      contactTitle,
      contactIntro,
      contactError,
      contactCancel,
      contactSave,
      contactNote,
      contactToggle,
      footer,
    };

    launcher.addEventListener("click", () => open({ focus: true }));
    // Warm the connection up while the visitor reaches for the button.
    launcher.addEventListener("pointerenter", () => connect(), { once: true });
    closeButton.addEventListener("click", () => close());
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        close();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitInput();
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        submitInput();
      }
    });
    input.addEventListener("input", inputChanged);
    contactToggle.addEventListener("click", () => {
      if (contactForm.hidden) openContact();
      else cancelContact();
    });
    contactCancel.addEventListener("click", () => (prechatOpen ? skipPrechat() : cancelContact()));
    contactForm.addEventListener("submit", (event) => {
      event.preventDefault();
      submitContact();
    });
    contactForm.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        if (prechatOpen) return; // the panel closes; the pre-chat form stays for next time
        event.stopPropagation(); // closes the form, not the panel
        cancelContact();
      }
    });
    for (const field of Object.values(contactInputs)) {
      field.addEventListener("input", () => field.removeAttribute("aria-invalid"));
    }

    watchPage();
    window.addEventListener("online", reconnectSoon);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") reconnectSoon();
    });

    renderWelcomeLine();
    mounted = true;
    for (const fn of readyQueue.splice(0)) fn();

    if (cfg.open || session.get(OPEN_KEY) === "1") open({ focus: false });
    else if (local.get(TOKEN_KEY)) connect(); // a returning visitor: receive agent replies, show unread
  }

  function whenReady(fn) {
    if (mounted) return fn();
    readyQueue.push(fn);
    return undefined;
  }

  function nearBottom() {
    const list = ui.messages;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function scrollToBottom() {
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  /** Appends a node to the message list, keeping the view at the bottom if it was there. */
  function appendToList(node, force) {
    const stick = force || nearBottom();
    ui.messages.append(node);
    if (stick) scrollToBottom();
  }

  function renderWelcomeLine() {
    if (!cfg.welcome) return;
    const node = renderMessage({ author: "bot", text: cfg.welcome });
    node.setAttribute("data-local", "true");
    ui.messages.append(node);
  }

  /** One message -> a .carebot-msg element. Text only ever goes in as text nodes. */
  function renderMessage(message, options = {}) {
    const author = AUTHORS.has(message.author) ? message.author : "bot";
    const text = typeof message.text === "string" ? message.text : String(message.text ?? "");
    const node = el("div", {
      class: message.handoff ? "carebot-msg carebot-notice" : "carebot-msg",
      "data-author": author,
      "data-id": options.id || null,
      "data-pending": options.pending ? "true" : null,
    });
    const pieces = author === "customer" ? [text] : linkify(text);
    const meta = el("div", { class: "carebot-meta" });
    setTime(meta, message.at);

    if (message.handoff) {
      node.append(icon("info", "carebot-notice-icon"), el("span", { class: "carebot-text" }, ...pieces), meta);
    } else {
      if (author === "agent") {
        const name = typeof message.agent === "string" ? message.agent.trim() : "";
        const label = !name ? texts.care_team : name.includes("·") ? name : `${name} · ${texts.care_team}`;
        node.append(el("div", { class: "carebot-label", text: label }));
      }
      node.append(el("div", { class: "carebot-text" }, ...pieces), meta);
    }

    const choices = Array.isArray(message.choices) ? message.choices : [];
    const usable = choices.filter((c) => c && c.label != null && String(c.label).trim());
    if (usable.length) {
      const group = el("div", { class: "carebot-choices", role: "group", "aria-label": texts.suggested_replies });
      for (const choice of usable) {
        const label = String(choice.label);
        const button = el("button", {
          type: "button",
          class: "carebot-choice",
          "data-choice-id": choice.id == null ? null : String(choice.id),
          text: label,
        });
        button.addEventListener("click", () => choose(group, button, label));
        group.append(button);
      }
      node.append(group);
    }
    return node;
  }

  /** The message's time under it (nothing for a line without one, like the local welcome). */
  function setTime(meta, iso) {
    const date = parseTime(iso);
    let time = meta.querySelector(".carebot-time");
    if (!date) {
      if (time) time.remove();
      meta.hidden = !meta.firstChild;
      return;
    }
    if (!time) {
      time = el("time", { class: "carebot-time" });
      meta.prepend(time);
    }
    time.dateTime = date.toISOString();
    time.textContent = formatTime(date);
    time.title = date.toLocaleString();
    meta.hidden = false;
  }

  /** "Not sent · Retry" under a refused message (or nothing, once it is sent again). */
  function setNotSent(entry, notSent) {
    const node = entry.node;
    if (!node) return;
    const meta = node.querySelector(":scope > .carebot-meta");
    for (const old of meta.querySelectorAll(".carebot-not-sent, .carebot-retry")) old.remove();
    if (!notSent) {
      node.removeAttribute("data-failed");
      return;
    }
    node.setAttribute("data-failed", "true");
    node.removeAttribute("data-pending");
    const retryButton = el("button", { type: "button", class: "carebot-retry", text: texts.retry });
    retryButton.addEventListener("click", () => retry(entry.frame.id));
    meta.append(el("span", { class: "carebot-not-sent", text: texts.not_sent }), retryButton);
  }

  function setChoicesDisabled(group, disabled) {
    for (const button of group.querySelectorAll(".carebot-choice")) {
      button.disabled = disabled;
      if (!disabled) button.removeAttribute("aria-pressed");
    }
  }

  /** In a re-rendered history, choices the customer already answered are disabled. */
  function disableAnsweredChoices() {
    let answered = false;
    const nodes = ui.messages.querySelectorAll(".carebot-msg");
    for (let i = nodes.length - 1; i >= 0; i--) {
      const node = nodes[i];
      if (node.getAttribute("data-author") === "customer") answered = true;
      else if (answered) for (const group of node.querySelectorAll(".carebot-choices")) setChoicesDisabled(group, true);
    }
  }

  /** The one notice above the box; ``kind`` says what it is about (a code, or "too_long"). */
  function showAlert(kind, text) {
    const again = !ui.alert.hidden && ui.alert.getAttribute("data-kind") === kind;
    ui.alert.setAttribute("data-kind", kind);
    ui.alert.setAttribute("data-repeat", again ? String(Number(ui.alert.getAttribute("data-repeat") || "1") + 1) : "1");
    ui.alertText.textContent = text;
    ui.alert.hidden = false;
  }

  /** Hides the notice if it is about one of ``kinds`` (any notice without them). */
  function clearAlert(...kinds) {
    if (ui.alert.hidden) return;
    if (kinds.length && !kinds.includes(ui.alert.getAttribute("data-kind"))) return;
    ui.alert.hidden = true;
    ui.alertText.textContent = "";
    ui.alert.removeAttribute("data-kind");
    ui.alert.removeAttribute("data-repeat");
  }

  function applyStatus(status) {
    if (!status || typeof status !== "object" || typeof status.text !== "string" || !status.text.trim()) {
      ui.subtitle.hidden = true;
      return;
    }
    ui.subtitle.textContent = status.text;
    ui.subtitle.setAttribute("data-online", status.online ? "true" : "false");
    ui.subtitle.hidden = false;
  }

  /** Asks the server whether the team is online; the answer comes as a status frame. */
  function refreshStatus() {
    if (welcomed) rawSend({ type: "status" });
  }

  function setStatus(text) {
    ui.status.textContent = text;
    ui.status.hidden = !text;
  }

  /** The typing dots; with an agent's name, "Ann is typing…" beside them. */
  function showTyping(agent) {
    const stick = nearBottom();
    const name = typeof agent === "string" ? agent.trim() : "";
    ui.typingText.textContent = name ? fill(texts.agent_typing, { agent: name }) : "";
    ui.typingText.hidden = !name;
    ui.typingSr.hidden = Boolean(name);
    ui.typing.hidden = false;
    if (stick) scrollToBottom();
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, name ? AGENT_TYPING_TIMEOUT_MS : TYPING_TIMEOUT_MS);
  }

  function hideTyping() {
    clearTimeout(typingTimer);
    typingTimer = null;
    if (ui) ui.typing.hidden = true;
  }

  function updateBadge() {
    ui.launcherBadge.hidden = unread === 0;
    ui.launcherBadge.textContent = unread > 9 ? "9+" : String(unread);
    const label = unread === 0 ? texts.open_chat : unread === 1 ? texts.unread_one : fill(texts.unread_many, { count: unread });
    ui.launcher.setAttribute("aria-label", label);
  }

  function autosize() {
    const input = ui.input;
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 132) + "px";
  }

  function inputChanged() {
    autosize();
    const length = charCount(ui.input.value);
    const over = length > maxChars;
    ui.form.setAttribute("data-empty", ui.input.value.trim() ? "false" : "true");
    const near = length >= Math.floor(maxChars * COUNT_FROM);
    ui.count.hidden = !near;
    ui.count.textContent = near ? `${length.toLocaleString()} / ${maxChars.toLocaleString()}` : "";
    ui.count.setAttribute("data-over", over ? "true" : "false");
    if (over) ui.input.setAttribute("aria-invalid", "true");
    else ui.input.removeAttribute("aria-invalid");
    // A notice about the length follows the text: updated while too long, gone once it fits.
    if (ui.alert.getAttribute("data-kind") === "too_long" && !ui.alert.hidden) {
      if (over) showAlert("too_long", tooLongText(length));
      else clearAlert("too_long");
    }
  }

  function tooLongText(length) {
    return fill(texts.too_long, { length: length.toLocaleString(), limit: maxChars.toLocaleString() });
  }

  /** Puts a refused text back into the box, but only into an empty box: never over what the
   * visitor typed since. Returns whether it did. */
  function putBack(text) {
    if (ui.input.value.trim()) return false;
    ui.input.value = text;
    inputChanged();
    return true;
  }

  // ---------------------------------------------------------------- open / close

  function open(options = {}) {
    return whenReady(() => {
      if (!isOpen) {
        isOpen = true;
        ui.panel.hidden = false;
        ui.launcher.hidden = true;
        ui.launcher.setAttribute("aria-expanded", "true");
        ui.root.classList.add("carebot-is-open");
        unread = 0;
        updateBadge();
        session.set(OPEN_KEY, "1");
        scrollToBottom();
        autosize();
        refreshStatus(); // (a connection that is not welcomed yet gets it with the welcome)
        clearInterval(statusTimer);
        statusTimer = setInterval(refreshStatus, STATUS_REFRESH_MS);
      }
      connect();
      if (options.focus) focusComposer();
    });
  }

  /** The message box, or the pre-chat form's first field while it shows. */
  function focusComposer() {
    if (prechatOpen) firstPrechatInput().focus({ preventScroll: true });
    else ui.input.focus({ preventScroll: true });
  }

  function close() {
    return whenReady(() => {
      if (!isOpen) return;
      const hadFocus = ui.shadow.activeElement != null;
      isOpen = false;
      clearInterval(statusTimer);
      statusTimer = null;
      ui.panel.hidden = true;
      ui.launcher.hidden = false;
      ui.launcher.setAttribute("aria-expanded", "false");
      ui.root.classList.remove("carebot-is-open");
      session.remove(OPEN_KEY);
      if (hadFocus) ui.launcher.focus({ preventScroll: true });
    });
  }

  // ---------------------------------------------------------------- sending

  function submitInput() {
    const text = ui.input.value;
    if (!text.trim()) return;
    if (sendText(text, "input")) {
      ui.input.value = "";
      inputChanged();
    }
    ui.input.focus({ preventScroll: true }); // a text that was too long stays here to edit
  }

  function choose(group, button, label) {
    setChoicesDisabled(group, true);
    button.setAttribute("aria-pressed", "true");
    if (!sendText(label, "choice", group)) setChoicesDisabled(group, false);
  }

  /** Renders the customer's bubble at once and sends (or queues) the frame. Returns the id, or
   * null when the text is too long (a notice says so; the text is not sent). */
  function sendText(raw, source, group) {
    const text = String(raw ?? "").trim();
    if (!text) return null;
    const length = charCount(text);
    if (length > maxChars) {
      if (source === "api") putBack(text);
      showAlert("too_long", tooLongText(length));
      return null;
    }
    const id = uuid();
    const frame = { type: "message", id, text };
    const node = renderMessage({ author: "customer", text, at: new Date().toISOString() }, { id, pending: true });
    const entry = { frame, node, source, group: group || null, sent: false, wasSent: false, createdAt: Date.now() };
    pending.set(id, entry);
    appendToList(node, true);
    send(entry);
    return id;
  }

  function send(entry) {
    if (welcomed && ws && ws.readyState === WebSocket.OPEN) transmit(entry);
    else connect(); // queued: sent after the next welcome, with the same id
  }

  /** Sends a message the server refused again, with the same id (it is handled once). */
  function retry(id) {
    const entry = failed.get(id);
    if (!entry) return;
    const length = charCount(entry.frame.text);
    if (length > maxChars) {
      // Cannot go as it is (the limit changed): to the box to shorten, if the box is free.
      showAlert("too_long", tooLongText(length));
      if (putBack(entry.frame.text)) {
        failed.delete(id);
        entry.node.remove();
      }
      return;
    }
    failed.delete(id);
    setNotSent(entry, false);
    entry.node.setAttribute("data-pending", "true");
    setTime(entry.node.querySelector(":scope > .carebot-meta"), new Date().toISOString());
    appendToList(entry.node, true); // to the end: where it is sent now
    entry.createdAt = Date.now();
    pending.set(id, entry);
    send(entry);
    ui.input.focus({ preventScroll: true });
  }

  /** The server refused it: it stays in the conversation, "Not sent", with a Retry button. */
  function markNotSent(entry) {
    pending.delete(entry.frame.id);
    entry.sent = false;
    failed.set(entry.frame.id, entry);
    setNotSent(entry, true);
  }

  function transmit(entry) {
    if (!rawSend(entry.frame)) return;
    entry.sent = true;
    entry.wasSent = true;
    showTyping();
  }

  function rawSend(frame) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch (_) {
      return false;
    }
  }

  // ---------------------------------------------------------------- contact details

  function openContact() {
    if (ui.contactForm.hidden) {
      ui.contactForm.hidden = false;
      ui.contactToggle.setAttribute("aria-expanded", "true");
      ui.contactNote.textContent = "";
    }
    ui.contactInputs.name.focus({ preventScroll: true });
  }

  /** Closes the form, back to what was saved; focus goes back to the link if it was inside. */
  function cancelContact() {
    if (ui.contactForm.hidden) return;
    const hadFocus = ui.contactForm.contains(ui.shadow.activeElement);
    ui.contactForm.hidden = true;
    ui.contactToggle.setAttribute("aria-expanded", "false");
    if (!contact) fillContact(savedContact);
    setContactError("");
    if (hadFocus) ui.contactToggle.focus({ preventScroll: true });
  }

  function fillContact(values) {
    for (const key of CONTACT_FIELDS) {
      ui.contactInputs[key].value = values[key] || "";
      ui.contactInputs[key].removeAttribute("aria-invalid");
    }
  }

  function setContactError(text, field) {
    ui.contactError.textContent = text;
    if (field) {
      field.setAttribute("aria-invalid", "true");
      field.focus({ preventScroll: true });
    }
    if (text) ui.contactForm.scrollTop = ui.contactForm.scrollHeight; // the error, by the buttons
  }

  function setContactBusy(busy) {
    // aria-disabled rather than disabled: the button keeps the focus (Escape still works).
    ui.contactSave.setAttribute("aria-disabled", busy ? "true" : "false");
    ui.contactSave.textContent = busy ? texts.contact_saving : texts.contact_save;
    if (busy) ui.contactForm.setAttribute("aria-busy", "true");
    else ui.contactForm.removeAttribute("aria-busy");
  }

  function submitContact() {
    if (contact) return; // the answer to the last one is on its way
    const values = {};
    const asked = prechatOpen ? prechat.fields : CONTACT_FIELDS;
    for (const key of asked) {
      ui.contactInputs[key].removeAttribute("aria-invalid");
      const value = ui.contactInputs[key].value.trim();
      if (value) values[key] = value;
    }
    const empty = asked.find((key) => !values[key]);
    if (prechatOpen && prechat.mode === "required" && empty) {
      setContactError(texts.prechat_missing, ui.contactInputs[empty]);
      return;
    }
    if (!Object.keys(values).length) {
      setContactError(texts.contact_missing, ui.contactInputs[asked[0]]);
      return;
    }
    if (values.email && !ui.contactInputs.email.validity.valid) {
      setContactError(texts.contact_bad_email, ui.contactInputs.email);
      return;
    }
    setContactError("");
    contact = { frame: { type: "contact", ...values }, sent: false };
    setContactBusy(true);
    if (welcomed && ws && ws.readyState === WebSocket.OPEN) transmitContact();
    else connect(); // queued: sent after the next welcome
  }

  function transmitContact() {
    if (contact && !contact.sent && rawSend(contact.frame)) contact.sent = true;
  }

  function onContactSaved(frame) {
    if (!contact) return;
    const { type: _type, ...values } = contact.frame;
    contact = null;
    savedContact = { ...savedContact, ...values }; // the server keeps what was not given again
    setContactBusy(false);
    local.set(CONTACT_KEY, "1");
    ui.contactToggle.textContent = texts.contact_update;
    if (typeof frame.pass === "string" && frame.pass) {
      local.set(PASS_KEY, frame.pass);
      prechat.done = true;
    }
    const wasPrechat = prechatOpen;
    if (wasPrechat) leavePrechat();
    cancelContact();
    fillContact(savedContact);
    ui.contactNote.textContent = texts.contact_saved;
    if (prechat.done) retryAfterPrechat();
    if (wasPrechat && isOpen) ui.input.focus({ preventScroll: true });
  }

  // ---------------------------------------------------------------- pre-chat form

  /** Whether the pre-chat form shows now (after a welcome): required and not filled in; or
   * optional, not filled in nor skipped, before the first message. */
  function prechatWanted(history) {
    if (prechat.done || prechat.mode === "off") return false;
    if (prechat.mode === "required") return true;
    return local.get(SKIP_KEY) !== "1" && !history.length && !pending.size && !failed.size;
  }

  function firstPrechatInput() {
    return ui.contactInputs[prechat.fields[0]] || ui.contactInputs.name;
  }

  /** The contact form as the pre-chat form, in place of the message box. */
  function enterPrechat() {
    prechatOpen = true;
    const form = ui.contactForm;
    form.setAttribute("data-prechat", prechat.mode);
    ui.contactTitle.textContent = texts.prechat_title;
    ui.contactIntro.textContent = texts.prechat_intro;
    ui.contactSave.textContent = texts.prechat_start;
    ui.contactCancel.textContent = texts.prechat_skip;
    ui.contactCancel.hidden = prechat.mode === "required";
    for (const key of CONTACT_FIELDS) {
      const asked = prechat.fields.includes(key);
      ui.contactFields[key].hidden = !asked;
      if (asked && prechat.mode === "required") ui.contactInputs[key].setAttribute("aria-required", "true");
    }
    fillContact(savedContact);
    form.hidden = false;
    ui.form.hidden = true;
    ui.footer.hidden = true;
  }

  /** Back to the message box; the contact form is itself again (under the box, closed). */
  function leavePrechat() {
    if (!prechatOpen) return;
    const hadFocus = ui.contactForm.contains(ui.shadow.activeElement);
    prechatOpen = false;
    const form = ui.contactForm;
    form.removeAttribute("data-prechat");
    form.hidden = true;
    ui.contactTitle.textContent = texts.contact_title;
    ui.contactIntro.textContent = texts.contact_intro;
    ui.contactSave.textContent = texts.contact_save;
    ui.contactCancel.textContent = texts.contact_cancel;
    ui.contactCancel.hidden = false;
    for (const key of CONTACT_FIELDS) {
      ui.contactFields[key].hidden = false;
      ui.contactInputs[key].removeAttribute("aria-required");
    }
    setContactError("");
    ui.contactToggle.setAttribute("aria-expanded", "false");
    ui.form.hidden = false;
    ui.footer.hidden = false;
    autosize();
    if (hadFocus) ui.input.focus({ preventScroll: true });
  }

  function skipPrechat() {
    if (prechat.mode === "required") return;
    local.set(SKIP_KEY, "1");
    leavePrechat();
    ui.input.focus({ preventScroll: true });
  }

  /** Messages the server refused before the form was filled in go again now. */
  function retryAfterPrechat() {
    clearAlert("prechat_required");
    for (const [id, entry] of [...failed]) {
      if (!entry.awaitingPrechat) continue;
      entry.awaitingPrechat = false;
      retry(id);
    }
  }

  // ---------------------------------------------------------------- the page

  /** The page as agents see it: its address without the #fragment (without the query too when
   * it is very long), and its title. */
  function currentPage() {
    let url = location.href.split("#")[0];
    if (url.length > PAGE_URL_MAX_CHARS) url = url.split("?")[0];
    const title = String(document.title || "").replace(/\s+/g, " ").trim();
    return { url: url.slice(0, PAGE_URL_MAX_CHARS), title: title.slice(0, PAGE_TITLE_MAX_CHARS) };
  }

  /** Tells the server about a new page (a single-page site moved on, or the title changed). */
  function pageChanged() {
    if (!welcomed) return; // the next hello carries it
    const page = currentPage();
    if (lastPage && page.url === lastPage.url && page.title === lastPage.title) return;
    if (rawSend({ type: "page", ...page })) lastPage = page;
  }

  function watchPage() {
    let queued = false;
    const soon = () => {
      if (queued) return;
      queued = true;
      setTimeout(() => {
        queued = false;
        pageChanged();
      }, 0);
    };
    for (const name of ["pushState", "replaceState"]) {
      const original = history[name];
      if (typeof original !== "function") continue;
      history[name] = function (...args) {
        const result = original.apply(this, args);
        soon();
        return result;
      };
    }
    window.addEventListener("popstate", soon);
    if (typeof MutationObserver === "function" && document.head) {
      new MutationObserver(soon).observe(document.head, { childList: true, subtree: true, characterData: true });
    }
  }

  /** The server refused the details: show why, with what was typed still in the form. */
  function onContactError(frame) {
    const { type: _type, ...values } = contact.frame;
    contact = null;
    setContactBusy(false);
    if (ui.contactForm.hidden && !prechatOpen) {
      fillContact(values); // cancelled while saving: bring it back
      ui.contactForm.hidden = false;
      ui.contactToggle.setAttribute("aria-expanded", "true");
      ui.contactNote.textContent = "";
    }
    const text = typeof frame.message === "string" && frame.message.trim() ? frame.message : texts.contact_failed;
    setContactError(text);
  }

  // ---------------------------------------------------------------- connection

  function connect() {
    if (!mounted) return;
    wantConnection = true;
    if (ws && (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN)) return;
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (!connectingTimer && !welcomed && ui.status.hidden) {
      connectingTimer = setTimeout(() => {
        connectingTimer = null;
        if (!welcomed && ui.status.hidden) setStatus(texts.connecting);
      }, CONNECTING_NOTICE_MS);
    }
    let socket;
    try {
      socket = new WebSocket(wsUrl);
    } catch (error) {
      console.warn("carebot: cannot open " + wsUrl, error);
      scheduleReconnect();
      return;
    }
    ws = socket;
    welcomed = false;
    socket.addEventListener("open", () => {
      if (ws !== socket) return;
      lastPage = currentPage();
      rawSend({
        type: "hello",
        token: local.get(TOKEN_KEY) || null,
        prechat: cfg.prechat,
        pass: local.get(PASS_KEY) || null,
        page: lastPage,
        language, // the widget's, for the server's notices to this tab
        languages: wantedLanguages(), // for the bot, until the customer's own words tell
      });
    });
    socket.addEventListener("message", (event) => {
      if (ws === socket) onFrame(event.data);
    });
    socket.addEventListener("close", () => {
      if (ws !== socket) return;
      ws = null;
      welcomed = false;
      onClosed();
    });
  }

  function onClosed() {
    hideTyping();
    for (const entry of pending.values()) entry.sent = false; // resend after the next welcome
    if (contact) contact.sent = false;
    if (reconnectNow) {
      reconnectNow = false;
      connect();
      return;
    }
    clearTimeout(connectingTimer);
    connectingTimer = null;
    setStatus(texts.reconnecting);
    scheduleReconnect();
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    // 0.5 s doubling to 10 s, with a little jitter so a restarted server is not hit by every
    // widget at the same instant.
    const delay = Math.round(backoff * (0.9 + Math.random() * 0.2));
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      connect();
    }, delay);
  }

  /** Back online or back in the tab: try again now rather than at the end of the backoff. */
  function reconnectSoon() {
    if (!wantConnection || ws) return;
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    backoff = BACKOFF_MIN_MS;
    connect();
  }

  function onFrame(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch (_) {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    switch (frame.type) {
      case "welcome":
        onWelcome(frame);
        break;
      case "ack":
        onAck(frame.id, frame.at);
        break;
      case "message":
        onServerMessage(frame);
        break;
      case "typing":
        if (frame.on) showTyping(frame.agent);
        else hideTyping();
        break;
      case "status":
        applyStatus(frame.status);
        break;
      case "contact_saved":
        onContactSaved(frame);
        break;
      case "error":
        onError(frame);
        break;
      default:
        break; // newer server, older widget: ignore what we do not know
    }
  }

  function onWelcome(frame) {
    welcomed = true;
    backoff = BACKOFF_MIN_MS;
    badTokenRetried = false;
    clearTimeout(connectingTimer);
    connectingTimer = null;
    setStatus("");
    if (typeof frame.token === "string" && frame.token) local.set(TOKEN_KEY, frame.token);
    if (Number.isInteger(frame.max_chars) && frame.max_chars > 0) maxChars = frame.max_chars;
    inputChanged();
    applyStatus(frame.status);
    const given = frame.prechat && typeof frame.prechat === "object" ? frame.prechat : {};
    prechat = {
      mode: ["optional", "required"].includes(given.mode) ? given.mode : "off",
      fields: (Array.isArray(given.fields) ? given.fields : []).filter((f) => CONTACT_FIELDS.includes(f)),
      done: given.done === true,
    };
    if (!prechat.fields.length) prechat.mode = "off";

    // The server's history is the conversation: render it afresh (a reload or reconnect shows
    // the same thing), then the messages still waiting for an ack.
    const history = Array.isArray(frame.history) ? frame.history : [];
    const list = ui.messages;
    list.setAttribute("aria-busy", "true");
    list.replaceChildren();
    renderWelcomeLine();
    for (const message of history) {
      if (message && typeof message === "object") {
        list.append(renderMessage(message, { id: message.id == null ? null : String(message.id) }));
      }
    }
    disableAnsweredChoices();
    for (const [id, entry] of [...failed]) {
      if (storedAlready(entry, history)) {
        // Refused as unavailable but stored: the history shows it; sent again below, so that
        // it is answered (the server handles it once).
        failed.delete(id);
        entry.node = null;
        pending.set(id, entry);
      } else {
        setNotSent(entry, true);
        list.append(entry.node);
      }
    }
    for (const entry of pending.values()) {
      if (entry.node === null) continue;
      if (entry.wasSent && storedAlready(entry, history)) {
        // Sent before the connection dropped and the server has it: keep the history's copy.
        // The frame is still resent below; the server deduplicates it by id.
        entry.node = null;
      } else {
        list.append(entry.node);
      }
    }
    list.removeAttribute("aria-busy");
    scrollToBottom();
    hideTyping();
    if (prechatWanted(history)) {
      if (!prechatOpen) enterPrechat();
    } else {
      leavePrechat();
    }

    for (const [id, entry] of [...pending]) {
      if (entry.node === null) {
        rawSend(entry.frame);
        pending.delete(id);
      } else {
        transmit(entry);
      }
    }
    transmitContact();
  }

  /** Whether history holds a message sent before a disconnect (by id, else by text and time). */
  function storedAlready(entry, history) {
    const id = entry.frame.id;
    return history.some((message) => {
      if (!message || message.author !== "customer") return false;
      if (message.id != null) return message.id === id;
      if (message.text !== entry.frame.text) return false;
      const at = Date.parse(message.at);
      return Number.isNaN(at) || at >= entry.createdAt - 2 * 60 * 1000; // allows for clock skew
    });
  }

  function onAck(id, at) {
    const entry = pending.get(id);
    if (!entry) return;
    pending.delete(id);
    if (entry.node) {
      entry.node.removeAttribute("data-pending");
      if (at) setTime(entry.node.querySelector(":scope > .carebot-meta"), at); // the server's time
    }
    lastAcked = entry;
    clearAlert("rate_limited", "unavailable", "bad_frame", "empty"); // sending works again
  }

  function onServerMessage(frame) {
    if (frame.id != null && pending.has(frame.id)) {
      onAck(frame.id); // our own message, echoed with its id
      return;
    }
    if (frame.id != null && ui.messages.querySelector(`[data-id="${CSS.escape(String(frame.id))}"]`)) return;
    const author = AUTHORS.has(frame.author) ? frame.author : "bot";
    if (author !== "customer") hideTyping();
    // The id lets a message that reaches this tab twice (from two workers) show once.
    const id = frame.id == null ? null : String(frame.id);
    appendToList(renderMessage(frame, { id }), author === "customer");
    if (!isOpen && author !== "customer") {
      unread += 1;
      updateBadge();
    }
  }

  function onError(frame) {
    const code = typeof frame.code === "string" ? frame.code : "";
    // Errors about messages carry their id; one without, while the contact frame waits for its
    // answer, is about the contact frame.
    if (contact && contact.sent && frame.id == null && code !== "bad_token") {
      onContactError(frame);
      return;
    }
    hideTyping();
    const text =
      typeof frame.message === "string" && frame.message.trim()
        ? frame.message
        : texts[ERROR_TEXTS[code] || "failed"];

    if (code === "bad_token") {
      // The stored token is forged, altered or expired: start a fresh conversation, once.
      local.remove(TOKEN_KEY);
      local.remove(CONTACT_KEY); // a new visitor: the details went with the old one
      local.remove(PASS_KEY);
      local.remove(SKIP_KEY);
      ui.contactToggle.textContent = texts.contact_leave;
      if (!badTokenRetried) {
        badTokenRetried = true;
        reconnectNow = true;
        if (ws) ws.close();
        else connect();
        return;
      }
      showAlert(code, text);
      return;
    }

    // Which of our messages the error is about: by id if the server says, else the oldest one
    // on the wire (the server reads frames in order and answers each with an ack or an error).
    let refused = null;
    if (frame.id != null && pending.has(frame.id)) refused = pending.get(frame.id);
    else if (REJECTED_MESSAGE_CODES.has(code)) refused = [...pending.values()].find((entry) => entry.sent) || null;

    if (code === "too_long" && Number.isInteger(frame.max_chars) && frame.max_chars > 0) {
      maxChars = frame.max_chars; // the limit changed since the welcome
    }
    if (refused && code === "prechat_required") {
      markNotSent(refused);
      refused.awaitingPrechat = true; // sent again once the form is filled in
      prechat = { ...prechat, mode: "required", done: false };
      if (!prechatOpen) enterPrechat();
      focusComposer();
    } else if (refused) {
      giveBack(refused, code);
    } else if (code === "unavailable" && lastAcked && lastAcked.node && lastAcked.node.isConnected) {
      // Acknowledged, then the server could not take it: "Not sent", to retry.
      markNotSent(lastAcked);
      lastAcked = null;
    }
    if (code === "too_long" && refused) showAlert(code, tooLongText(charCount(refused.frame.text)));
    else showAlert(code || "error", text);
  }

  /** A refused message: choices can be tapped again; a text that cannot be sent as it is (too
   * long, empty) goes back into the box if the box is empty; any other stays "Not sent". */
  function giveBack(entry, code) {
    if (entry.source === "choice" && entry.group) {
      pending.delete(entry.frame.id);
      if (entry.node) entry.node.remove();
      setChoicesDisabled(entry.group, false);
    } else if ((code === "too_long" || code === "empty") && !ui.input.value.trim()) {
      pending.delete(entry.frame.id);
      if (entry.node) entry.node.remove();
      putBack(entry.frame.text);
    } else if (entry.node) {
      markNotSent(entry);
    } else {
      pending.delete(entry.frame.id); // its history copy is on screen: nothing to retry from
    }
  }

  // ---------------------------------------------------------------- API

  window.carebot = Object.freeze({
    __carebot: true,
    open: () => open({ focus: true }),
    close: () => close(),
    /** Sends text as the customer (opening the panel). Returns the message id, or null. */
    send: (text) =>
      whenReady(() => {
        open({ focus: false });
        return sendText(text, "api");
      }),
  });

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
