/*
 * tica live updates: a small progressive enhancement. Every page works without it.
 *
 * It opens the /live websocket (the session cookie goes with it), subscribes to the
 * channels the page names, and:
 *  - on a topic page, swaps in new, edited, hidden and deleted posts as they happen
 *    (it fetches the page again and takes the changed posts from it, so the markup
 *    is always the server's own), or offers a link when new posts are on a later page;
 *  - on lists (a category, latest), says "N new topics" with a link to show them;
 *  - in the header, keeps the unread notification count up to date, and for staff the
 *    review queue's count (on a "review" message it asks GET /api/review/counts);
 *  - in a private conversation, adds new messages at the end as they are sent (it fetches
 *    /messages/<id>/after/<last message id>, list items the forum renders) and says so
 *    politely to screen readers.
 * It reconnects with back-off (longer each time until a subscription is answered; at
 * least 5 s after "try again later", 1013) and resumes from the last event
 * it saw. When the server says `reset` (too much was missed), or a resume fails
 * before any answer (so retrying the same id would loop), it goes on from now and
 * offers a reload rather than lose what the reader may be typing. A channel answered
 * `pending` (a topic created a moment ago) is subscribed by the server when it can
 * be; a channel refused is not asked for again. It sends nothing but subscriptions,
 * so it never needs the CSRF cookie.
 *
 * Page markup it reads (all optional):
 *   data-live-channel="topic:42"         channels to follow, space separated, on any element
 *   data-live-since="1700000000000-0"    the stream id the page was rendered at
 *   data-live-posts                      the element holding the posts;
 *     data-live-url="/t/slug/42?page=2"  ... the address of this page of the topic: what is fetched
 *                                        and where "Reload" goes (never the page's own address, which
 *                                        after a rejected form is the form's action, e.g. POST /t/42/posts)
 *     data-live-last-page="false"        ... when later posts are on another page
 *   data-live-post="7" on each post      (the post's id; the element that is swapped)
 *   data-live-topic="42" on list rows    (a topic already listed is not counted as new)
 *   id="tica-notification-count"         the header's unread count (data-live-channel="user:N")
 *   id="tica-review-count"               staff: the review queue's count (data-live-channel="review"),
 *     data-review-count, data-review-label  ... the number, and the words for screen readers, inside it
 *   id="messages"                        a conversation's list of messages
 *     data-live-channel="conversation:5" ... each child li id="message-<n>" (the last is where to go on from)
 */
(function () {
  "use strict";

  if (!("WebSocket" in window) || !window.JSON || !document.querySelectorAll) {
    return;
  }

  var RETRY_MIN_MS = 1000;
  var RETRY_MAX_MS = 30000;
  var RETRY_UNAVAILABLE_MS = 5000; /* close 1013: the server asked to come back later */
  var FAILED_RESUMES_MAX = 2; /* resumes from one id that ended before an answer, then reset */
  var REFRESH_DELAY_MS = 400;
  var CLOSE_SESSION_ENDED = 4001;
  var CLOSE_BAD_ORIGIN = 4003;
  var CLOSE_TOO_SLOW = 4008;
  var CLOSE_TRY_LATER = 1013;

  var channels = [];
  var lastEventId = null;
  var retryMs = RETRY_MIN_MS;
  var stopped = false;
  var socket = null;
  var answered = false; /* the current socket's subscription was acknowledged */
  var resumedFrom = null; /* the id the current socket resumed from */
  var failedResumes = 0;
  var changedPosts = {};
  var newPosts = 0;
  var newTopics = {};
  var refreshTimer = null;
  var liveRegion = null;
  var reviewTimer = null;
  var messagesFetching = false; /* one fetch of new messages at a time */
  var messagesAgain = false; /* another message came while fetching: fetch once more after it */

  function collectChannels() {
    var found = {};
    var elements = document.querySelectorAll("[data-live-channel]");
    for (var i = 0; i < elements.length; i++) {
      var names = (elements[i].getAttribute("data-live-channel") || "").split(/\s+/);
      for (var j = 0; j < names.length; j++) {
        if (names[j]) {
          found[names[j]] = true;
        }
      }
    }
    return Object.keys(found);
  }

  function announce(text) {
    if (!liveRegion) {
      liveRegion = document.createElement("div");
      liveRegion.className = "nhsuk-u-visually-hidden";
      liveRegion.setAttribute("role", "status");
      liveRegion.setAttribute("aria-live", "polite");
      document.body.appendChild(liveRegion);
    }
    liveRegion.textContent = "";
    window.setTimeout(function () {
      liveRegion.textContent = text;
    }, 50);
  }

  /* One banner at the top of the page: a sentence and a link. */
  function banner(key, text, linkText, href) {
    var main = document.getElementById("maincontent") || document.body;
    var box = document.getElementById("tica-live-banner");
    if (!box) {
      box = document.createElement("div");
      box.id = "tica-live-banner";
      box.className = "nhsuk-inset-text";
      box.setAttribute("role", "status");
      main.insertBefore(box, main.firstChild);
    }
    box.setAttribute("data-key", key);
    box.textContent = "";
    var paragraph = document.createElement("p");
    paragraph.appendChild(document.createTextNode(text + " "));
    var link = document.createElement("a");
    link.href = href || window.location.href;
    link.textContent = linkText;
    link.addEventListener("click", function (event) {
      if (!href) {
        event.preventDefault();
        window.location.reload();
      }
    });
    paragraph.appendChild(link);
    box.appendChild(paragraph);
  }

  function setCount(unread) {
    var badge = document.getElementById("tica-notification-count");
    if (badge) {
      badge.textContent = "";
      badge.hidden = unread === 0;
      if (unread > 0) {
        var hiddenBefore = document.createElement("span");
        hiddenBefore.className = "nhsuk-u-visually-hidden";
        hiddenBefore.textContent = ", ";
        var hiddenAfter = document.createElement("span");
        hiddenAfter.className = "nhsuk-u-visually-hidden";
        hiddenAfter.textContent = " unread";
        badge.appendChild(hiddenBefore);
        badge.appendChild(document.createTextNode(String(unread)));
        badge.appendChild(hiddenAfter);
      }
    }
    var title = document.title.replace(/^\(\d+\) /, "");
    document.title = unread > 0 ? "(" + unread + ") " + title : title;
  }

  /* --- topic pages: take changed posts from a fresh copy of this page --- */

  function postsContainer() {
    return document.querySelector("[data-live-posts]");
  }

  function onLastPage() {
    var container = postsContainer();
    return container && container.getAttribute("data-live-last-page") !== "false";
  }

  function isBusy(element) {
    /* Never swap a post the reader is working in (an open edit, a focused control). */
    return element.contains(document.activeElement) && document.activeElement !== document.body;
  }

  function applyFreshPage(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var container = postsContainer();
    var ids = Object.keys(changedPosts);
    var added = 0;
    changedPosts = {};
    for (var i = 0; i < ids.length; i++) {
      var selector = '[data-live-post="' + ids[i].replace(/[^0-9]/g, "") + '"]';
      var next = fresh.querySelector(selector);
      var current = document.querySelector(selector);
      if (current && isBusy(current)) {
        continue;
      }
      if (current && next) {
        current.parentNode.replaceChild(document.importNode(next, true), current);
      } else if (current && !next) {
        current.parentNode.removeChild(current);
      } else if (!current && next && container) {
        container.appendChild(document.importNode(next, true));
        added += 1;
      }
    }
    if (added > 0) {
      announce(added === 1 ? "A new reply was added at the end." : added + " new replies were added at the end.");
    }
  }

  /* The topic page's own address, as the page gives it; null on a page that does not say. */
  function topicUrl() {
    var container = postsContainer();
    var url = container && container.getAttribute("data-live-url");
    return url && url.charAt(0) === "/" && url.charAt(1) !== "/" ? url : null;
  }

  function refreshPosts() {
    refreshTimer = null;
    var url = topicUrl();
    if (!window.fetch || !window.DOMParser || url === null) {
      banner("changed", "This topic has changed.", "Reload to see it", url);
      return;
    }
    window
      .fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.ok ? response.text() : Promise.reject(response.status);
      })
      .then(applyFreshPage)
      .catch(function () {
        banner("changed", "This topic has changed.", "Reload to see it", url);
      });
  }

  function postChanged(event, data) {
    if (event === "post.created" && !onLastPage()) {
      newPosts += 1;
      banner("posts", newPosts === 1 ? "There is 1 new reply." : "There are " + newPosts + " new replies.",
        "Go to the latest");
      return;
    }
    changedPosts[data.post_id] = true;
    if (refreshTimer === null) {
      refreshTimer = window.setTimeout(refreshPosts, REFRESH_DELAY_MS);
    }
  }

  /* --- lists: "N new topics" --- */

  function topicCreated(data) {
    newTopics[data.topic_id] = true;
    var count = Object.keys(newTopics).length;
    banner("topics", count === 1 ? "There is 1 new topic." : "There are " + count + " new topics.",
      count === 1 ? "Show it" : "Show them");
  }

  /* --- the header's review count (staff) --- */

  function setReviewCount(counts) {
    var badge = document.getElementById("tica-review-count");
    var waiting = Number(counts && counts.waiting);
    var safeguarding = Number(counts && counts.safeguarding) || 0;
    if (!badge || !isFinite(waiting) || waiting < 0) {
      return;
    }
    var number = badge.querySelector("[data-review-count]") || badge;
    number.textContent = String(waiting);
    var label = badge.querySelector("[data-review-label]");
    if (label) {
      label.textContent = ": " + waiting + " waiting" + (safeguarding > 0 ? ", " + safeguarding + " about safeguarding" : "");
    }
    badge.hidden = waiting === 0;
    badge.classList.toggle("nhsuk-tag--red", safeguarding > 0);
    badge.classList.toggle("tica-review-count--safeguarding", safeguarding > 0);
    badge.classList.toggle("nhsuk-tag--blue", safeguarding === 0);
  }

  function refreshReviewCount() {
    reviewTimer = null;
    if (!window.fetch || !document.getElementById("tica-review-count")) {
      return;
    }
    window
      .fetch("/api/review/counts", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : Promise.reject(response.status);
      })
      .then(setReviewCount)
      .catch(function () {
        /* the count stays as it was; the next change or page asks again */
      });
  }

  function reviewChanged() {
    if (reviewTimer === null) {
      reviewTimer = window.setTimeout(refreshReviewCount, REFRESH_DELAY_MS);
    }
  }

  /* --- a private conversation: new messages at the end --- */

  function messagesList(channel) {
    var list = document.getElementById("messages");
    if (!list) {
      return null;
    }
    var names = (list.getAttribute("data-live-channel") || "").split(/\s+/);
    return names.indexOf(channel) >= 0 ? list : null;
  }

  function lastMessageId(list) {
    for (var item = list.lastElementChild; item; item = item.previousElementSibling) {
      var match = /^message-(\d+)$/.exec(item.id || "");
      if (match) {
        return match[1];
      }
    }
    return "0";
  }

  function appendMessages(list, html) {
    var fresh = new DOMParser().parseFromString("<ul>" + html + "</ul>", "text/html");
    var holder = fresh.querySelector("ul");
    var added = 0;
    var items = holder ? holder.children : [];
    for (var i = 0; i < items.length; i++) {
      var item = items[i];
      if (!/^message-\d+$/.test(item.id || "") || document.getElementById(item.id)) {
        continue; /* already shown (a fetch that overlapped another) */
      }
      list.appendChild(document.importNode(item, true));
      added += 1;
    }
    if (added > 0) {
      announce(added === 1 ? "A new message was added at the end." : added + " new messages were added at the end.");
    }
  }

  function fetchNewMessages(channel) {
    var list = messagesList(channel);
    if (!list) {
      return;
    }
    if (messagesFetching) {
      messagesAgain = true;
      return;
    }
    var conversationId = channel.slice("conversation:".length);
    if (!window.fetch || !window.DOMParser || !/^\d+$/.test(conversationId)) {
      banner("messages", "There are new messages.", "Reload to see them");
      return;
    }
    messagesFetching = true;
    window
      .fetch("/messages/" + conversationId + "/after/" + lastMessageId(list), {
        credentials: "same-origin",
        headers: { Accept: "text/html" }
      })
      .then(function (response) {
        return response.ok ? response.text() : Promise.reject(response.status);
      })
      .then(function (html) {
        appendMessages(list, html);
      })
      .catch(function () {
        banner("messages", "There are new messages.", "Reload to see them");
      })
      .then(function () {
        messagesFetching = false;
        if (messagesAgain) {
          messagesAgain = false;
          fetchNewMessages(channel);
        }
      });
  }

  function conversationChanged(channel, event) {
    if (event === "message.created") {
      fetchNewMessages(channel);
    } else if (event === "message.hidden") {
      banner("conversation", "A message in this conversation was hidden by the moderators.", "Reload the page");
    } else if (event === "conversation.members_changed") {
      banner("conversation", "The people in this conversation have changed.", "Reload the page");
    }
  }

  /* --- the socket --- */

  function handle(message) {
    if (message.type === "event") {
      var channel = String(message.channel || "");
      if (channel.indexOf("user:") === 0) {
        if (message.event === "notification.count") {
          setCount(message.data.unread);
        }
        return;
      }
      lastEventId = message.id;
      if (channel === "review") {
        reviewChanged();
      } else if (channel.indexOf("conversation:") === 0) {
        conversationChanged(channel, message.event);
      } else if (channel.indexOf("topic:") === 0 && message.event !== "topic.updated") {
        postChanged(message.event, message.data);
      } else if (message.event === "topic.created" && !document.querySelector('[data-live-topic="' + message.data.topic_id + '"]')) {
        topicCreated(message.data);
      }
    } else if (message.type === "subscribed") {
      answered = true;
      failedResumes = 0;
      retryMs = RETRY_MIN_MS;
    } else if (message.type === "reset") {
      if (/^\d+-\d+$/.test(message.id || "")) {
        lastEventId = message.id; /* go on from now: asking again from the old id would only reset again */
      }
      banner("reset", "This page has changed while you were away.", "Reload the page", topicUrl());
    } else if (message.type === "pending") {
      answered = true; /* the server subscribes it when the channel is known */
    } else if (message.type === "error" && message.channel) {
      /* Refused (or no longer allowed): not asked for again on reconnecting. */
      answered = true;
      channels = channels.filter(function (name) {
        return name !== message.channel;
      });
    }
  }

  /* A resume that keeps ending before the server answers it would retry the same id forever:
     go on from now instead, and offer a reload. */
  function resumeFailed(code) {
    if (answered || resumedFrom === null || lastEventId !== resumedFrom) {
      return;
    }
    failedResumes += 1;
    if (code === CLOSE_TOO_SLOW || failedResumes >= FAILED_RESUMES_MAX) {
      failedResumes = 0;
      lastEventId = null;
      banner("reset", "This page has changed while you were away.", "Reload the page", topicUrl());
    }
  }

  function send(message) {
    if (socket && socket.readyState === 1) {
      socket.send(JSON.stringify(message));
    }
  }

  function connect() {
    if (channels.length === 0) {
      return; /* every channel was refused: nothing to follow */
    }
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(scheme + "//" + window.location.host + "/live");
    answered = false;
    resumedFrom = null;
    socket.onopen = function () {
      resumedFrom = lastEventId;
      send({ type: "subscribe", channels: channels, last_event_id: lastEventId });
    };
    socket.onmessage = function (event) {
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      handle(message);
    };
    socket.onclose = function (event) {
      socket = null;
      if (stopped || event.code === CLOSE_SESSION_ENDED || event.code === CLOSE_BAD_ORIGIN) {
        return; /* logged out, or not allowed: the page still works without live updates */
      }
      resumeFailed(event.code);
      var wait = event.code === CLOSE_TRY_LATER ? Math.max(retryMs, RETRY_UNAVAILABLE_MS) : retryMs;
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      window.setTimeout(connect, wait + Math.floor(Math.random() * 500));
    };
  }

  function start() {
    channels = collectChannels();
    if (channels.length === 0) {
      return;
    }
    var since = document.querySelector("[data-live-since]");
    if (since && /^\d+-\d+$/.test(since.getAttribute("data-live-since") || "")) {
      lastEventId = since.getAttribute("data-live-since");
    }
    window.addEventListener("pagehide", function () {
      stopped = true;
      if (socket) {
        socket.close(1000);
      }
    });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted && stopped) {
        stopped = false; /* back from the back-forward cache: catch up from where it stopped */
        connect();
      }
    });
    connect();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
