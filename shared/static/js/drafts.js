/*
 * tica drafts: what a member types into a writing form is kept in this browser until it is posted.
 * A progressive enhancement: every form works without it.
 *
 * A form marked data-draft="reply-42" (one key per topic and form: reply-<topic>, new-topic,
 * edit-<post>) and data-draft-member="7" keeps its text fields, choices and checkboxes in
 * localStorage under tica:draft:<member>:<form>, so a draft is never shown to another member on
 * the same browser. It is saved as the member types and when the page is left, restored when the
 * page is opened again (a reload, a rejected post, a link followed from the live banner), and
 * removed:
 *  - after a successful post: the server's answer sets the cookie tica_draft_sent=<member>.<form>
 *    (no text in it), read and expired here on the page the post leads to;
 *  - when the member logs out (a form posting to /logout on a page with this script);
 *  - when the member discards it ("Discard it" on the notice shown after restoring);
 *  - after DRAFT_MAX_AGE_MS without a change.
 * A form the server sends back with errors (data-draft-rejected) shows what was submitted, which
 * wins over the stored draft; the page's address is then set to the form's page
 * (data-draft-page), so reloading it asks for that page rather than posting the form again.
 * The server's own starting text (a quote, the post being edited) gives way to a stored draft;
 * on a form marked data-draft-prefill="append" (the reply form, where ?quote= starts it) the
 * starting text is added after the draft instead.
 */
(function () {
  "use strict";

  var PREFIX = "tica:draft:";
  var SENT_COOKIE = "tica_draft_sent";
  var SAVE_DELAY_MS = 300;
  var DRAFT_MAX_AGE_MS = 30 * 24 * 3600 * 1000;

  var leaving = false; /* logging out: nothing is saved again */
  var storage;
  try {
    storage = window.localStorage;
    storage.getItem(PREFIX); /* throws where storage is refused */
  } catch (e) {
    return;
  }
  if (!storage || !document.querySelectorAll || !window.JSON) {
    return;
  }

  function read(key) {
    try {
      var draft = JSON.parse(storage.getItem(key) || "null");
      if (!draft || typeof draft.fields !== "object" || Date.now() - (draft.saved_at || 0) > DRAFT_MAX_AGE_MS) {
        return null;
      }
      return draft;
    } catch (e) {
      return null;
    }
  }

  function forget(key) {
    try {
      storage.removeItem(key);
    } catch (e) {
      /* nothing to forget */
    }
  }

  function forgetMember(member) {
    var prefix = PREFIX + member + ":";
    var keys = [];
    for (var i = 0; i < storage.length; i++) {
      var key = storage.key(i);
      if (key && key.indexOf(prefix) === 0) {
        keys.push(key);
      }
    }
    keys.forEach(forget);
  }

  /* The controls a draft holds: typed text, selects, radios and checkboxes (never hidden fields, tokens or files). */
  function controls(form) {
    var found = [];
    for (var i = 0; i < form.elements.length; i++) {
      var element = form.elements[i];
      var type = (element.type || "").toLowerCase();
      if (!element.name || /^(hidden|submit|button|reset|file|password|image)$/.test(type)) {
        continue;
      }
      if (element.tagName === "TEXTAREA" || element.tagName === "SELECT" || element.tagName === "INPUT") {
        found.push(element);
      }
    }
    return found;
  }

  function nameOf(element) {
    return element.type === "checkbox" || element.type === "radio" ? element.name + "=" + element.value : element.name;
  }

  function valueOf(element) {
    return element.type === "checkbox" || element.type === "radio" ? element.checked : element.value;
  }

  function setValue(element, value) {
    if (element.type === "checkbox" || element.type === "radio") {
      element.checked = value === true;
    } else {
      element.value = String(value);
    }
  }

  function isText(element) {
    return element.tagName === "TEXTAREA" || (element.tagName === "INPUT" && element.type !== "checkbox" && element.type !== "radio");
  }

  function snapshot(form) {
    var fields = {};
    var typed = false;
    controls(form).forEach(function (element) {
      fields[nameOf(element)] = valueOf(element);
      if (isText(element) && element.value.trim() !== "") {
        typed = true;
      }
    });
    return { fields: fields, typed: typed };
  }

  function save(form, key) {
    if (leaving) {
      return;
    }
    var now = snapshot(form);
    try {
      if (now.typed) {
        storage.setItem(key, JSON.stringify({ saved_at: Date.now(), fields: now.fields }));
      } else {
        forget(key); /* nothing typed: nothing to keep */
      }
    } catch (e) {
      /* storage full or refused: the form still works */
    }
  }

  function notice(form, onDiscard) {
    var box = document.createElement("div");
    box.className = "nhsuk-inset-text tica-draft-notice";
    box.setAttribute("role", "status");
    var paragraph = document.createElement("p");
    paragraph.appendChild(document.createTextNode("We kept what you were writing here before. "));
    var discard = document.createElement("button");
    discard.type = "button";
    discard.className = "tica-link-button";
    discard.textContent = "Discard it";
    discard.addEventListener("click", function () {
      onDiscard();
      box.parentNode.removeChild(box);
      var first = controls(form).filter(isText)[0];
      if (first) {
        first.focus();
      }
    });
    paragraph.appendChild(discard);
    box.appendChild(paragraph);
    form.insertBefore(box, form.firstChild);
  }

  /* Put a stored draft back into the form; true when something the member typed was restored. */
  function restore(form, key) {
    var draft = read(key);
    if (!draft) {
      forget(key);
      return;
    }
    var append = form.getAttribute("data-draft-prefill") === "append";
    var original = [];
    var restored = false;
    controls(form).forEach(function (element) {
      var name = nameOf(element);
      if (!Object.prototype.hasOwnProperty.call(draft.fields, name)) {
        return;
      }
      var stored = draft.fields[name];
      var current = valueOf(element);
      if (stored === current) {
        return;
      }
      original.push([element, current]);
      if (append && element.tagName === "TEXTAREA" && current.trim() !== "" && stored.indexOf(current) === -1) {
        stored = stored.replace(/\s+$/, "") + "\n\n" + current;
      }
      setValue(element, stored);
      if (isText(element) && String(stored).trim() !== "") {
        restored = true;
      }
    });
    if (restored) {
      notice(form, function () {
        original.forEach(function (pair) {
          setValue(pair[0], pair[1]);
        });
        forget(key);
      });
    }
  }

  function readSentCookie() {
    var parts = document.cookie ? document.cookie.split(/;\s*/) : [];
    for (var i = 0; i < parts.length; i++) {
      if (parts[i].indexOf(SENT_COOKIE + "=") === 0) {
        document.cookie = SENT_COOKIE + "=; Max-Age=0; Path=/; SameSite=Lax";
        var value = decodeURIComponent(parts[i].slice(SENT_COOKIE.length + 1));
        var dot = value.indexOf(".");
        return dot > 0 ? PREFIX + value.slice(0, dot) + ":" + value.slice(dot + 1) : null;
      }
    }
    return null;
  }

  function follow(form) {
    var member = form.getAttribute("data-draft-member");
    var name = form.getAttribute("data-draft");
    if (!member || !name) {
      return;
    }
    var key = PREFIX + member + ":" + name;
    if (form.hasAttribute("data-draft-rejected")) {
      save(form, key); /* what was submitted is the draft now */
      var page = form.getAttribute("data-draft-page");
      if (page && window.history && window.history.replaceState) {
        /* The address was the form's action: make reloading ask for the form's page, not post again. */
        window.history.replaceState(null, "", page);
      }
    } else {
      restore(form, key);
    }
    var timer = null;
    function later() {
      if (timer === null) {
        timer = window.setTimeout(function () {
          timer = null;
          save(form, key);
        }, SAVE_DELAY_MS);
      }
    }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    form.addEventListener("submit", function () {
      save(form, key); /* kept until the server says it was posted */
    });
    window.addEventListener("pagehide", function () {
      save(form, key);
    });
  }

  function start() {
    var sent = readSentCookie();
    if (sent) {
      forget(sent);
    }
    var forms = document.querySelectorAll("form[data-draft]");
    var member = null;
    for (var i = 0; i < forms.length; i++) {
      member = member || forms[i].getAttribute("data-draft-member");
      follow(forms[i]);
    }
    var marked = document.querySelector("[data-draft-member]");
    member = member || (marked && marked.getAttribute("data-draft-member"));
    if (member) {
      document.addEventListener(
        "submit",
        function (event) {
          var form = event.target;
          var action = form && form.getAttribute ? form.getAttribute("action") || "" : "";
          if (/^\/logout(\?|$)/.test(action)) {
            leaving = true;
            forgetMember(member);
          }
        },
        true
      );
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
