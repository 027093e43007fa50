// ogLab console: the live parts htmx does not cover — the classroom map and tracking logs
// follow the API's server-sent events (the session cookie authenticates them).
(function () {
  "use strict";
  function follow(url, onData) {
    var es = new EventSource(url);
    es.onmessage = function (ev) { onData(JSON.parse(ev.data)); };
    return es;
  }
  function mapLive(map) {
    follow("/api/v1/computers/stream", function (changed) {
      changed.forEach(function (c) {
        var li = map.querySelector('[data-pc="' + c.name + '"]');
        if (!li) { return; }
        li.dataset.status = c.status;
        var st = li.querySelector(".st");
        if (st) { st.textContent = c.status; }
        var icon = li.querySelector(".icon");
        if (icon) { icon.textContent = ICONS[c.status] || ""; }
        var act = c.activity || {};
        li.title = act.stage ? act.stage : "";
      });
    });
  }
  var ICONS = {OFF: "\u23FB", INI: "\u2026", OPG: "og", BSY: "\u27F3", WIN: "\u229E", WINS: "\u229E",
               LNX: "\uD83D\uDC27", LNXS: "\uD83D\uDC27", OSX: "\uF8FF", MNT: "\u2699"};
  function logLive(pre) {
    follow(pre.dataset.stream, function (line) {
      var t = new Date(line.t * 1000).toLocaleTimeString();
      pre.textContent += t + "  " + line.text + "\n";
      pre.scrollTop = pre.scrollHeight;
    });
  }
  function groupSelect(sel) {
    sel.addEventListener("change", function () {
      document.querySelectorAll('#map input[name="pc"]').forEach(function (box) {
        box.checked = false;
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var map = document.getElementById("map");
    if (map) { mapLive(map); }
    var pre = document.getElementById("log");
    if (pre) { logLive(pre); }
    var g = document.getElementById("group");
    if (g) { groupSelect(g); }
  });
})();
