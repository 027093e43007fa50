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
  // selection on the map: a click or Space (the checkbox's own), Enter too; a group marks its
  // members (the command goes to the group); a range is expanded by the server as on submit
  function boxes() { return document.querySelectorAll('#map input[name="pc"]'); }
  function countPicked() {
    var n = 0;
    boxes().forEach(function (b) { if (b.checked) { n += 1; } });
    var out = document.getElementById("picked");
    if (out) {
      out.textContent = n ? n + " " + (out.dataset.label || "") + " \u2713" : "";
      out.dataset.n = String(n);
    }
  }
  function groupSelect(sel) {
    function mark() {
      document.querySelectorAll("#map li.pc").forEach(function (li) {
        li.classList.toggle("in-group", sel.value !== "" && li.dataset.group === sel.value);
      });
    }
    sel.addEventListener("change", function () {
      boxes().forEach(function (box) { box.checked = false; });
      mark();
      countPicked();
    });
    mark();
  }
  function pickRange(input) {
    var url = "/ui/range?classroom=" + encodeURIComponent(input.dataset.classroom) +
              "&range=" + encodeURIComponent(input.value);
    fetch(url, {credentials: "same-origin"}).then(function (r) { return r.json(); })
      .then(function (body) {
        var names = body.names || [];
        boxes().forEach(function (b) { if (names.indexOf(b.value) >= 0) { b.checked = true; } });
        var note = document.getElementById("notes");
        if (note) { note.textContent = body.error ? body.error : ""; }
        countPicked();
      });
  }
  function mapKeys(map) {
    map.addEventListener("keydown", function (ev) {
      var t = ev.target;
      if (ev.key === "Enter" && t && t.name === "pc") {
        ev.preventDefault();  // Enter toggles, as Space does, and never submits the form
        t.checked = !t.checked;
        countPicked();
      }
    });
    map.addEventListener("change", countPicked);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var range = document.getElementById("range");
    if (range) {
      range.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter") { ev.preventDefault(); pickRange(range); }
      });
      var rb = document.getElementById("range-btn");
      if (rb) { rb.addEventListener("click", function () { pickRange(range); }); }
    }
    var clear = document.getElementById("clear-btn");
    if (clear) {
      clear.addEventListener("click", function () {
        boxes().forEach(function (b) { b.checked = false; });
        if (range) { range.value = ""; }
        countPicked();
      });
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    var map = document.getElementById("map");
    if (map) { mapLive(map); mapKeys(map); countPicked(); }
    var pre = document.getElementById("log");
    if (pre) { logLive(pre); }
    var g = document.getElementById("group");
    if (g) { groupSelect(g); }
  });
})();
