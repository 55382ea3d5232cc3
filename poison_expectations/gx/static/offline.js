/* poison-check Data Docs, offline: a small stand-in for the jQuery, Bootstrap and
   bootstrap-table calls that GX's page templates make (GX loads those from CDNs).
   With it the index lists every run, tabs and "Show more info" work, and
   "Failed Only" filters, on a machine without network access. */
(function () {
  "use strict";

  function Nodes(list) { this.nodes = list; }

  function $(target) {
    if (typeof target === "function") { return ready(target); }
    if (target instanceof Nodes) { return target; }
    if (typeof target === "string") {
      try { return new Nodes(Array.prototype.slice.call(document.querySelectorAll(target))); }
      catch (err) { return new Nodes([]); }  // e.g. an id that is not a valid CSS selector
    }
    if (target === document || target === window) { return new DocumentNodes(); }
    return new Nodes(target ? [target] : []);
  }

  function ready(fn) {
    if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", fn); } else { fn(); }
  }

  function DocumentNodes() { Nodes.call(this, [document]); }
  DocumentNodes.prototype = Object.create(Nodes.prototype);
  DocumentNodes.prototype.ready = function (fn) { ready(fn); return this; };

  Nodes.prototype.each = function (fn) { this.nodes.forEach(function (el, i) { fn.call(el, i, el); }); return this; };
  Nodes.prototype.parent = function () {
    return new Nodes(this.nodes.map(function (el) { return el.parentElement; }).filter(Boolean));
  };
  Nodes.prototype.fadeIn = function () { return this.each(function (i, el) { el.style.display = ""; }); };
  Nodes.prototype.fadeOut = function () { return this.each(function (i, el) { el.style.display = "none"; }); };
  Nodes.prototype.data = function (key) { return this.nodes.length ? this.nodes[0].getAttribute("data-" + key) : undefined; };
  Nodes.prototype.on = function (name, handler) {
    return this.each(function (i, el) { (el.poisonHandlers = el.poisonHandlers || []).push(handler); });
  };
  Nodes.prototype.bootstrapTable = function (options) {
    if (typeof options !== "object") { return this; }  // 'resetSearch', 'clearFilterControl': nothing to reset
    return this.each(function (i, el) { renderTable(el, options); });
  };

  function sortKey(options) {
    var name = options.sortName;
    (options.columns || []).forEach(function (c) { if (c.field === name && c.sortName) { name = c.sortName; } });
    return name;
  }

  function renderTable(table, options) {
    var columns = options.columns || [], rows = (options.data || []).slice();
    var key = sortKey(options), sign = options.sortOrder === "desc" ? -1 : 1;
    if (key) {
      rows.sort(function (a, b) { return a[key] < b[key] ? -sign : a[key] > b[key] ? sign : 0; });
    }
    var head = "<thead><tr>" + columns.map(function (c) { return "<th>" + (c.title || c.field) + "</th>"; }).join("")
      + "</tr></thead>";
    var body = rows.map(function (row) {
      var cells = columns.map(function (c) {
        var value = row[c.field] === undefined ? "" : String(row[c.field]);
        if (c.field === "validation_success" && row._validation_success_text) {
          value += '<span class="poison-status-text">' + row._validation_success_text + "</span>";
        }
        return "<td>" + value + "</td>";
      }).join("");
      return '<tr class="clickable-row" data-href="' + (row._table_row_link_path || "") + '">' + cells + "</tr>";
    }).join("");
    table.classList.add("table");
    table.innerHTML = head + "<tbody>" + body + "</tbody>";
    table.addEventListener("click", function (event) {
      var tr = event.target.closest("tr.clickable-row");
      if (!tr || event.target.closest("a")) { return; }
      var handlers = table.poisonHandlers || [];
      if (handlers.length) {
        handlers.forEach(function (h) { h(event, null, new Nodes([tr])); });
      } else if (tr.getAttribute("data-href")) {
        window.location = tr.getAttribute("data-href");
      }
    });
  }

  function toggle(event) {
    var link = event.target.closest("[data-toggle]");
    if (!link) { return; }
    var kind = link.getAttribute("data-toggle");
    var selector = link.getAttribute("data-target") || link.getAttribute("href");
    if ((kind !== "tab" && kind !== "collapse") || !selector || selector.charAt(0) !== "#") { return; }
    var target = document.getElementById(selector.slice(1));
    if (!target) { return; }
    event.preventDefault();
    if (kind === "collapse") { target.classList.toggle("show"); return; }
    var nav = link.closest("ul"), panes = target.parentElement;
    if (nav) { nav.querySelectorAll(".nav-link").forEach(function (a) { a.classList.remove("active"); }); }
    Array.prototype.forEach.call(panes.children, function (p) { p.classList.remove("active", "show"); });
    link.classList.add("active");
    target.classList.add("active", "show");
  }

  document.addEventListener("click", toggle);
  window.$ = window.jQuery = $;
})();
