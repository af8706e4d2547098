// Flotilla dashboard: live updates. The server announces changes on
// /events (server-sent events); the page then fetches its own content
// again (?fragment=1) and swaps it in, so nothing reloads.
(function () {
  "use strict";
  window.flotillaLoadedAt = window.flotillaLoadedAt || Date.now();
  var live = document.getElementById("live");
  var pending = false, inflight = false;
  function refresh() {
    if (inflight) { pending = true; return; }
    inflight = true;
    var u = new URL(window.location.href);
    u.searchParams.set("fragment", "1");
    fetch(u.toString(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        var main = document.getElementById("content");
        if (main) { main.innerHTML = html; }
        document.body.setAttribute("data-updated", String(Date.now()));
      })
      .catch(function () { if (live) { live.className = "live off"; } })
      .finally(function () { inflight = false; if (pending) { pending = false; refresh(); } });
  }
  if (window.EventSource) {
    var es = new EventSource("/events");
    es.onopen = function () { if (live) { live.className = "live on"; } };
    es.onmessage = function () { refresh(); };
    es.onerror = function () { if (live) { live.className = "live off"; } };
  }
})();
