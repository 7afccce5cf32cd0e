/* tica: small progressive enhancements. Every page works without this file. */
// As the NHS.UK page template does: the frontend's components (started by frontend.js, a module)
// are styled for scripts only in browsers that run modules; others keep the no-script pages.
document.body.className += " js-enabled" + ("noModule" in HTMLScriptElement.prototype ? " nhsuk-frontend-supported" : "");

(function () {
  "use strict";

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)tica_csrf=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // Reaction buttons: toggle through the JSON API without reloading the page.
  // The form still posts normally if anything here fails.
  function showReactions(form, state) {
    var given = state.my_reactions || [];
    form.querySelectorAll("button[data-kind]").forEach(function (button) {
      var kind = button.getAttribute("data-kind");
      var on = given.indexOf(kind) !== -1;
      button.setAttribute("aria-pressed", on ? "true" : "false");
      button.classList.toggle("tica-reaction--given", on);
      var count = button.querySelector(".tica-reaction__count");
      if (count) { count.textContent = state.reactions[kind] ? String(state.reactions[kind]) : ""; }
    });
  }

  function react(event) {
    var button = event.submitter;
    var form = event.currentTarget;
    if (!button || !button.getAttribute("data-kind") || !window.fetch) { return; }
    event.preventDefault();
    var postId = form.getAttribute("data-post-id");
    var kind = button.getAttribute("data-kind");
    var given = button.getAttribute("aria-pressed") === "true";
    var url = "/api/posts/" + postId + "/reactions" + (given ? "/" + encodeURIComponent(kind) : "");
    var options = {
      method: given ? "DELETE" : "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken(), "Content-Type": "application/json" }
    };
    if (!given) { options.body = JSON.stringify({ kind: kind }); }
    fetch(url, options).then(function (response) {
      if (!response.ok && response.status !== 404) { throw new Error("reaction failed"); }
      return fetch("/api/posts/" + postId, { credentials: "same-origin" });
    }).then(function (response) {
      if (!response.ok) { throw new Error("reload failed"); }
      return response.json();
    }).then(function (post) {
      showReactions(form, post);
    }).catch(function () {
      // Fall back to the plain form post (form.submit() sends no button value, so add it).
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = "kind";
      input.value = kind;
      form.appendChild(input);
      form.submit();
    });
  }

  document.querySelectorAll("form.tica-reactions").forEach(function (form) {
    form.addEventListener("submit", react);
  });
})();
