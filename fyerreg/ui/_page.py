"""The dashboard's page: HTML, style and script, served as they are (no build step, no framework).

The script builds every element with ``textContent`` and attributes, never with HTML
strings: names, addresses and metadata come from etcd and are hostile input. The page
is served with a Content-Security-Policy that allows only these files' own script and
style, so even markup that slipped through could not run.
"""

from __future__ import annotations

__all__ = ["HTML", "STYLE", "SCRIPT"]

HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fyerreg dashboard</title>
<link rel="stylesheet" href="app.css">
<script src="app.js" defer></script>
</head>
<body>
<header>
  <h1>fyerreg</h1>
  <div id="about"></div>
  <div id="status" class="status connecting">connecting</div>
</header>
<main>
  <section id="overview">
    <h2>Services <span id="totals"></span></h2>
    <table id="summary">
      <thead><tr><th>Service</th><th>Instances</th><th>Enabled</th><th>Last change</th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="empty" class="muted" hidden>No service is registered in this namespace yet.</p>
  </section>
  <div id="services"></div>
</main>
<noscript>This dashboard needs JavaScript; <code>fyerreg services</code> and <code>fyerreg list</code>
show the same in a terminal.</noscript>
</body>
</html>
"""

STYLE = """
:root { --fg: #1d2430; --muted: #6b7585; --line: #dde2ea; --bg: #f6f8fb; --card: #fff;
        --ok: #1a7f37; --warn: #b35900; --bad: #c62828; --accent: #2457c5; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 1.5em; padding: .8em 1.5em; background: #16213a; color: #fff; }
header h1 { font-size: 1.25em; margin: 0; letter-spacing: .02em; }
#about { color: #c5cee0; font-size: .92em; flex: 1; }
#about b { color: #fff; font-weight: 600; }
main { padding: 1em 1.5em 2em; max-width: 1400px; }
h2 { font-size: 1.05em; margin: 0 0 .5em; }
h2 .muted, #totals { font-weight: normal; color: var(--muted); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1em 1.2em;
          margin-bottom: 1em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35em .7em; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: .85em; text-transform: uppercase; letter-spacing: .04em; }
td.address, td.id, td.metadata, td.ttl, .timeline .what { font-family: ui-monospace, Menlo, Consolas, monospace;
          font-size: .92em; }
td.metadata { white-space: pre-wrap; word-break: break-all; max-width: 32em; }
.status { padding: .2em .8em; border-radius: 1em; font-size: .85em; font-weight: 600; }
.status.live { background: #d8f5df; color: var(--ok); }
.status.connecting { background: #e7ebf3; color: #445; }
.status.down { background: #ffe0d6; color: var(--bad); }
.badge { display: inline-block; padding: 0 .55em; border-radius: .8em; font-size: .85em; font-weight: 600; }
.badge.enabled { background: #d8f5df; color: var(--ok); }
.badge.disabled { background: #eceff4; color: var(--muted); }
.badge.stale { background: #fff0d9; color: var(--warn); }
tr.fresh td { animation: fresh 4s ease-out; }
@keyframes fresh { from { background: #fff6bf; } to { background: transparent; } }
.service-head { display: flex; align-items: baseline; gap: 1em; }
.cols { display: grid; grid-template-columns: minmax(0, 3fr) minmax(16em, 1fr); gap: 1.2em; align-items: start; }
.timeline { list-style: none; margin: 0; padding: 0; max-height: 18em; overflow-y: auto; font-size: .9em; }
.timeline li { padding: .2em 0; border-bottom: 1px dashed var(--line); }
.timeline .when { color: var(--muted); margin-right: .5em; }
.timeline .joined { color: var(--ok); font-weight: 600; }
.timeline .left { color: var(--bad); font-weight: 600; }
.timeline .changed { color: var(--accent); font-weight: 600; }
.muted { color: var(--muted); }
a { color: var(--accent); text-decoration: none; }
"""

SCRIPT = r"""
"use strict";
(function () {
  var services = new Map(), sections = new Map(), leases = new Map(), pending = new Map();
  var about = {}, connected = true, live = false, offset = 0;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function now() { return Date.now() / 1000 - offset; }
  function when(t) { return new Date(t * 1000).toISOString().slice(11, 23) + "Z"; }
  function keyOf(inst) { return inst.version + "/" + inst.id; }
  function metaText(meta) {
    var keys = Object.keys(meta || {}).sort();
    return keys.length ? keys.map(function (k) { return k + "=" + meta[k]; }).join("\n") : "-";
  }
  function ttlLeft(name, inst) {
    var entry = leases.get(name);
    if (!entry || !Object.prototype.hasOwnProperty.call(entry.ttl, keyOf(inst))) return undefined;
    var ttl = entry.ttl[keyOf(inst)];
    return ttl === null ? null : Math.max(-1, Math.round(ttl - (now() - entry.at)));
  }
  function staleWhy(service, ttl) {
    if (!connected) return "etcd unreachable";
    if (service.stale) return "cached copy";
    if (ttl === null && about.leased) return "no lease: never expires";
    if (typeof ttl === "number" && ttl < 0) return "lease expired";
    return "";
  }
  function ttlText(ttl) {
    if (ttl === undefined) return "…";
    if (ttl === null) return "none";
    return ttl < 0 ? "expired" : ttl + "s";
  }

  function setStatus() {
    var node = document.getElementById("status");
    if (!live) { node.className = "status connecting"; node.textContent = "reconnecting to the dashboard"; }
    else if (!connected) { node.className = "status down"; node.textContent = "etcd unreachable: last known state"; }
    else { node.className = "status live"; node.textContent = "live"; }
  }
  function renderAbout() {
    var box = document.getElementById("about");
    box.textContent = "";
    [["namespace", about.namespace], ["layout", about.layout], ["etcd", (about.endpoints || []).join(", ")]]
      .forEach(function (pair) {
        if (!pair[1]) return;
        box.appendChild(document.createTextNode(pair[0] + " "));
        box.appendChild(el("b", "", pair[1]));
        box.appendChild(document.createTextNode("   "));
      });
  }
  function renderSummary() {
    var body = document.querySelector("#summary tbody"), total = 0, names = Array.from(services.keys()).sort();
    body.textContent = "";
    names.forEach(function (name) {
      var s = services.get(name), row = el("tr"), link = el("a", "", name), last = s.timeline[s.timeline.length - 1];
      row.dataset.service = name;
      link.href = "#service-" + encodeURIComponent(name);
      var cell = el("td", "name"); cell.appendChild(link); row.appendChild(cell);
      row.appendChild(el("td", "count", s.instances.length));
      row.appendChild(el("td", "enabled", s.enabled));
      row.appendChild(el("td", "last", last ? when(last.time) + " " + last.event + " " + last.id : "-"));
      body.appendChild(row);
      total += s.instances.length;
    });
    document.getElementById("totals").textContent = plural(names.length, "service") + ", " + plural(total, "instance");
    document.getElementById("empty").hidden = names.length > 0;
  }
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  function renderService(name, joined) {
    var s = services.get(name), old = sections.get(name), box = el("section", "service");
    box.dataset.service = name;
    box.id = "service-" + encodeURIComponent(name);
    var head = el("div", "service-head");
    head.appendChild(el("h2", "", name));
    var counts = plural(s.instances.length, "instance") + ", " + s.enabled + " enabled";
    head.appendChild(el("span", "muted counts", counts));
    box.appendChild(head);
    var cols = el("div", "cols"), table = el("table", "instances"), thead = el("thead"), hr = el("tr");
    ["ID", "Version", "Address", "Status", "Weight", "Metadata", "Lease TTL", "Stale"].forEach(function (h) {
      hr.appendChild(el("th", "", h));
    });
    thead.appendChild(hr); table.appendChild(thead);
    var body = el("tbody"), cells = [], fresh = {};
    (joined || []).forEach(function (c) { if (c.event === "joined") fresh[c.version + "/" + c.id] = 1; });
    s.instances.forEach(function (inst) {
      var row = el("tr"), ttl = ttlLeft(name, inst), why = staleWhy(s, ttl);
      row.dataset.instance = keyOf(inst);
      if (fresh[keyOf(inst)]) row.className = "fresh";
      row.appendChild(el("td", "id", inst.id));
      row.appendChild(el("td", "version", inst.version));
      row.appendChild(el("td", "address", inst.address));
      var st = el("td", "status");
      st.appendChild(el("span", "badge " + (inst.status === "enabled" ? "enabled" : "disabled"), inst.status));
      row.appendChild(st);
      row.appendChild(el("td", "weight", inst.weight));
      row.appendChild(el("td", "metadata", metaText(inst.metadata)));
      var ttlCell = el("td", "ttl", ttlText(ttl)), staleCell = el("td", "stale");
      if (why) staleCell.appendChild(el("span", "badge stale", why));
      row.appendChild(ttlCell); row.appendChild(staleCell);
      cells.push({inst: inst, ttl: ttlCell, stale: staleCell});
      body.appendChild(row);
    });
    if (!s.instances.length) {
      var none = el("tr"), td = el("td", "muted", "no instances now");
      td.colSpan = 8;
      none.appendChild(td);
      body.appendChild(none);
    }
    table.appendChild(body);
    cols.appendChild(table);
    var side = el("div"), list = el("ol", "timeline");
    side.appendChild(el("h2", "", "Recent changes"));
    s.timeline.slice().reverse().forEach(function (c) {
      var item = el("li");
      item.dataset.event = c.event;
      item.appendChild(el("span", "when", when(c.time)));
      item.appendChild(el("span", c.event, c.event));
      item.appendChild(document.createTextNode(" "));
      item.appendChild(el("span", "what", c.version + "/" + c.id + " " + c.address));
      if (c.changes) {
        Object.keys(c.changes).sort().forEach(function (f) {
          var pair = c.changes[f];
          var text = f + ": " + JSON.stringify(pair[0]) + " \u2192 " + JSON.stringify(pair[1]);
          item.appendChild(el("div", "muted", text));
        });
      }
      list.appendChild(item);
    });
    if (!s.timeline.length) list.appendChild(el("li", "muted", "nothing since the dashboard started"));
    side.appendChild(list);
    cols.appendChild(side);
    box.appendChild(cols);
    box.cells = cells;
    var container = document.getElementById("services");
    if (old) { container.replaceChild(box, old); }
    else {
      var after = Array.from(sections.keys()).sort().filter(function (n) { return n > name; })[0];
      container.insertBefore(box, after ? sections.get(after) : null);
    }
    sections.set(name, box);
  }
  function tick() {
    sections.forEach(function (box, name) {
      var s = services.get(name);
      (box.cells || []).forEach(function (c) {
        var ttl = ttlLeft(name, c.inst), why = staleWhy(s, ttl);
        c.ttl.textContent = ttlText(ttl);
        if ((c.stale.textContent || "") !== why) {
          c.stale.textContent = "";
          if (why) c.stale.appendChild(el("span", "badge stale", why));
        }
      });
    });
  }
  function fetchLeases(name) {
    var url = "api/leases" + (name ? "?service=" + encodeURIComponent(name) : "");
    fetch(url, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        offset = Date.now() / 1000 - data.time;
        Object.keys(data.services).forEach(function (n) { leases.set(n, {at: data.time, ttl: data.services[n]}); });
        tick();
      })
      .catch(function () {});
  }
  function soon(name) {
    if (pending.has(name)) return;
    pending.set(name, setTimeout(function () { pending.delete(name); fetchLeases(name); }, 300));
  }

  var source = new EventSource("events");
  source.addEventListener("open", function () { live = true; setStatus(); });
  source.addEventListener("error", function () { live = false; setStatus(); });
  source.addEventListener("state", function (e) {
    var data = JSON.parse(e.data);
    about = data.about || {}; connected = data.connected; offset = Date.now() / 1000 - data.time;
    services.clear();
    sections.forEach(function (box) { box.remove(); });
    sections.clear();
    data.services.forEach(function (s) { services.set(s.name, s); });
    renderAbout(); renderSummary();
    Array.from(services.keys()).sort().forEach(function (n) { renderService(n, []); });
    live = true; setStatus();
    fetchLeases(null);
  });
  source.addEventListener("service", function (e) {
    var data = JSON.parse(e.data), s = data.service, known = services.get(s.name);
    if (known && known.seq > s.seq) return;
    s.timeline = ((known && known.timeline) || []).concat(data.changes).slice(-(about.history || 50));
    services.set(s.name, s);
    renderSummary(); renderService(s.name, data.changes);
    if (data.changes.length) soon(s.name);
  });
  source.addEventListener("connection", function (e) {
    connected = JSON.parse(e.data).connected;
    setStatus(); tick();
  });
  setInterval(tick, 1000);
})();
"""
