/*
 * tica "Leave this site quickly" (shared/templates/layout.html): the link at the top of every page,
 * or Escape pressed twice within ESCAPE_WINDOW_MS, anywhere on the page, text boxes included.
 *
 * Escape works in text boxes too: someone writing about their own life is the person most likely
 * to need to leave in a hurry, and what they typed is kept in this browser (drafts.js) if they
 * come back. A single Escape still closes menus and clears the search box as usual; held down
 * (a key repeating) it does nothing here, and nor does Escape while an input method is composing.
 *
 * Leaving: the page is hidden at once (so it is not on screen while the next site loads), the
 * current history entry is replaced rather than added to (location.replace), so Back does not
 * return to this page, and no referrer is sent to the neutral site. Pages visited before this
 * one stay in the tab's history: no browser lets a page remove those (the /support page says so).
 * Without this script the link still goes to the neutral site, as an ordinary link.
 */
(function () {
  "use strict";

  var ESCAPE_WINDOW_MS = 2000;
  var lastEscape = 0;
  var leaving = false;

  function neutralUrl() {
    var link = document.querySelector("[data-quick-exit-link]");
    return link ? link.href : null;
  }

  function leave() {
    var url = neutralUrl();
    if (!url || leaving) { return; }
    leaving = true;
    document.documentElement.classList.add("tica-leaving");
    document.title = "";
    var policy = document.createElement("meta");
    policy.name = "referrer";
    policy.content = "no-referrer";
    document.head.appendChild(policy);
    try {
      // The entry stays, but no longer names this page's address (a neutral path on this site).
      window.history.replaceState(null, "", "/");
    } catch (ignored) { /* some browsers refuse: location.replace below still replaces the entry */ }
    window.location.replace(url);
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("[data-quick-exit-link]");
    if (!link || event.defaultPrevented) { return; }
    event.preventDefault();
    leave();
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" && event.key !== "Esc") { return; }
    if (event.repeat || event.isComposing) { return; }
    var now = Date.now();
    if (now - lastEscape <= ESCAPE_WINDOW_MS) {
      lastEscape = 0;
      leave();
    } else {
      lastEscape = now;
    }
  }, true);

  // A page restored from the back-forward cache after leaving shows nothing, and leaves again.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && leaving) {
      leaving = false;
      leave();
    }
  });
})();
