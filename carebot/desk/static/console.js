// The ops console's "try it" box: a customer message decided by the live intents and, when the
// form holds an edit, by the edited ones (POST /console/try with the form's fields).
(function () {
  "use strict";
  var form = document.getElementById("try-form");
  var intentForm = document.getElementById("intent-form");
  var result = document.getElementById("try-result");
  if (!form || !intentForm || !result) return;
  var initial = new URLSearchParams(new FormData(intentForm)).toString();

  function line(title, d) {
    var box = document.createElement("div");
    box.className = "try-decision";
    var h = document.createElement("h3");
    h.textContent = title;
    var kind = document.createElement("p");
    kind.className = "try-kind try-kind-" + d.kind;
    kind.textContent = d.kind + (d.intent ? " · " + d.intent : "") +
      " · score " + d.score.toFixed(2) + " · margin " + d.margin.toFixed(2) +
      " · emotion " + d.emotion.toFixed(2);
    var reasons = document.createElement("p");
    reasons.className = "muted small";
    reasons.textContent = "reasons: " + (d.reasons.join(", ") || "-");
    var reply = document.createElement("blockquote");
    reply.className = "try-reply";
    reply.textContent = d.reply;
    var explain = document.createElement("code");
    explain.className = "try-explain";
    explain.textContent = d.explain;
    box.append(h, kind, reasons, reply, explain);
    return box;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = document.getElementById("try-text").value.trim();
    if (!text) return;
    var data = new FormData(intentForm);
    // An edit: changed since the page was shown, a new intent, or a form that came back from
    // a check (it holds what was typed, not what is live).
    var edited = new URLSearchParams(data).toString() !== initial || !data.get("original_id") ||
      intentForm.dataset.edited === "1";
    data.set("text", text);
    data.set("with_edit", edited ? "1" : "0");
    result.textContent = "Deciding…";
    fetch("/console/try", {
      method: "POST",
      body: new URLSearchParams(data),
      headers: { "X-CSRF-Token": form.dataset.csrf },
      credentials: "same-origin",
    })
      .then(function (r) { return r.json().then(function (j) { return [r.ok, j]; }); })
      .then(function (pair) {
        var ok = pair[0], j = pair[1];
        result.textContent = "";
        if (!ok) { result.textContent = j.error || "Could not try it."; return; }
        result.append(line("Live intents", j.live));
        if (j.edited) result.append(line("With this edit", j.edited));
        else if (j.edited_error) {
          var p = document.createElement("p");
          p.className = "field-note field-error";
          p.textContent = "The edit cannot be tried yet: " + j.edited_error;
          result.append(p);
        } else {
          var same = document.createElement("p");
          same.className = "muted small";
          same.textContent = "No edit yet: change the form to compare.";
          result.append(same);
        }
      })
      .catch(function () { result.textContent = "Could not reach the server."; });
  });
})();
