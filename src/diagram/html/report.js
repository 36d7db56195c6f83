// ipclab's report: builds each section (its diagram and step list) from
// the run's data in this page, and shows a step's strace line, note and
// descriptors when its box or its line is hovered or clicked.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("run-data").textContent);
  var main = document.getElementById("sections");
  var panel = document.getElementById("panel");
  var panelBody = document.getElementById("panel-body");
  var pinned = null;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }

  document.getElementById("legend").innerHTML = data.legend;

  function table(head, rows) {
    var t = el("table");
    var tr = el("tr");
    head.forEach(function (h) { tr.appendChild(el("th", null, h)); });
    t.appendChild(tr);
    rows.forEach(function (r) {
      var row = el("tr");
      r.forEach(function (c) { row.appendChild(el("td", null, c)); });
      t.appendChild(row);
    });
    return t;
  }

  function show(si, entry) {
    var sec = data.sections[si];
    panelBody.textContent = "";
    panelBody.appendChild(el("h2", null, "#" + entry.seq + " · pid " + entry.pid + " · " + entry.name + (entry.libc && entry.libc !== entry.name ? " (" + entry.libc + "() in libc)" : "")));
    panelBody.appendChild(el("h3", null, "strace line"));
    panelBody.appendChild(el("pre", null, "[pid " + entry.pid + "] " + entry.line));
    if (entry.wait) {
      panelBody.appendChild(el("h3", null, "blocked"));
      panelBody.appendChild(el("pre", null, entry.wait));
    }
    panelBody.appendChild(el("h3", null, "note"));
    panelBody.appendChild(el("pre", null, entry.note || "—"));
    panelBody.appendChild(el("h3", null, "kernel objects of this call"));
    if (entry.objects.length) {
      panelBody.appendChild(table(["fd", "object", "address"], entry.objects.map(function (o) {
        var addr = [o.proto, o.local, o.remote ? "→ " + o.remote : null, o.peer ? "peer " + o.peer : null]
          .filter(function (x) { return x; }).join(" ");
        return [String(o.fd), o.object, addr];
      })));
    } else {
      panelBody.appendChild(el("p", "none", "no descriptor"));
    }
    panelBody.appendChild(el("h3", null, "descriptors of pid " + entry.pid + (sec.recorded ? "" : " (as its steps show them)")));
    if (entry.table !== null && sec.tables[entry.table]) {
      panelBody.appendChild(table(["fd", "what"], sec.tables[entry.table].map(function (r) {
        return [String(r.fd), r.desc || r.target];
      })));
    } else {
      panelBody.appendChild(el("p", "none", "no descriptor used by this process yet"));
    }
    panel.hidden = false;
    document.body.classList.add("with-panel");
  }

  function select(si, seq, scroll) {
    document.querySelectorAll(".selected").forEach(function (e) { e.classList.remove("selected"); });
    var box = document.getElementById("s" + si + "-" + seq);
    var li = document.getElementById("l" + si + "-" + seq);
    if (box) { box.classList.add("selected"); }
    if (li) { li.classList.add("selected"); }
    if (scroll && box) { box.scrollIntoView({ block: "center", inline: "nearest" }); }
  }

  var lookup = [];
  data.sections.forEach(function (sec, si) {
    var det = el("details", "section");
    det.open = si < 6 || data.sections.length === 1;
    var sum = el("summary", null, sec.name + (sec.title ? " — " + sec.title : ""));
    if (sec.result) {
      sum.appendChild(el("span", "result" + (sec.result === "ok" ? "" : " bad"), sec.result));
    }
    det.appendChild(sum);
    var pic = el("div", "diagram");
    pic.innerHTML = sec.svg;
    det.appendChild(pic);
    var stepsBox = el("details", "steps");
    stepsBox.appendChild(el("summary", null, "step list (" + sec.entries.filter(function (e) { return e.kind === "step"; }).length + " syscalls)"));
    var ol = el("ol", "steps");
    var bySeq = {};
    lookup.push(bySeq);
    sec.entries.forEach(function (e) {
      var li = el("li", e.kind + (e.failed ? " failed" : ""));
      if (e.kind === "step") {
        bySeq[e.seq] = e;
        li.id = "l" + si + "-" + e.seq;
        li.appendChild(el("span", "call", "[pid " + e.pid + "] " + e.line));
        if (e.note) { li.appendChild(el("span", "note", (e.libc && e.libc !== e.name ? "[" + e.libc + "() in libc] " : "") + e.note)); }
        li.addEventListener("click", function () { pinned = e; show(si, e); select(si, e.seq, true); });
      } else {
        li.textContent = "[pid " + e.pid + "] " + e.text;
      }
      ol.appendChild(li);
    });
    stepsBox.appendChild(ol);
    det.appendChild(stepsBox);
    main.appendChild(det);
    pic.querySelectorAll("g.box").forEach(function (g) {
      var e = bySeq[g.getAttribute("data-seq")];
      if (!e) { return; }
      g.addEventListener("mouseenter", function () { if (!pinned) { show(si, e); } });
      g.addEventListener("click", function () { pinned = e; show(si, e); select(si, e.seq, false); stepsBox.open = true; });
    });
  });

  // A link to one step: FILE.html#step-0-12 (section 0, step #12). Not a
  // box's own id, which the browser would scroll to itself.
  var m = /^#step-(\d+)-(\d+)$/.exec(window.location.hash);
  if (m && lookup[+m[1]] && lookup[+m[1]][m[2]]) {
    pinned = lookup[+m[1]][m[2]];
    show(+m[1], pinned);
    select(+m[1], pinned.seq, true);
  }

  document.getElementById("panel-close").addEventListener("click", function () {
    pinned = null;
    panel.hidden = true;
    document.body.classList.remove("with-panel");
    document.querySelectorAll(".selected").forEach(function (e) { e.classList.remove("selected"); });
  });
}());
