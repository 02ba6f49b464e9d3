// Live updates: the ledger's server-sent events tell a page that it is stale; htmx then
// swaps in the fresh fragment. No inline script anywhere (the CSP forbids it).
(function () {
  "use strict";
  var region = document.getElementById("live");
  if (!region || !region.dataset.live || !window.EventSource) {
    return;
  }
  var busy = false;
  var again = false;
  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    htmx.ajax("GET", region.dataset.live, { target: region, swap: "innerHTML" }).then(
      function () {
        busy = false;
        region.dataset.refreshed = String(Number(region.dataset.refreshed || "0") + 1);
        if (again) {
          again = false;
          refresh();
        }
      },
      function () {
        busy = false;
      }
    );
  }
  var source = new EventSource("/events?after=" + encodeURIComponent(region.dataset.seq || "0"));
  source.addEventListener("ledger", refresh);
  source.addEventListener("open", function () {
    document.body.dataset.live = "connected";
  });
})();
