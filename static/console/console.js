// The console's actions: every form marked data-api is sent as JSON to that /api/v1 route —
// the same call a program makes — with the session's CSRF token, and the answer (in Chinese,
// Accept-Language: zh-CN) is shown beside the form. Uploads go to the API one file at a time
// with their progress. Pages read without this script; only actions need it.
(function () {
  "use strict";
  var csrfMeta = document.querySelector('meta[name="csrf"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function text(el, t) { el.textContent = t; return el; }
  function make(tag, cls, t) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (t !== undefined) e.textContent = t;
    return e;
  }

  // An error body as a paragraph and a list of its problems (code beside the Chinese text).
  function showError(out, status, body) {
    out.replaceChildren();
    out.className = "result bad";
    var msg = body && body.message ? body.message : ("请求失败（HTTP " + status + "）");
    out.appendChild(make("p", "", msg + (body && body.error ? "〔" + body.error + "〕" : "")));
    var problems = (body && body.problems) || [];
    if (problems.length) {
      var ul = make("ul", "problems");
      problems.forEach(function (p) {
        var li = make("li");
        li.appendChild(make("code", "", p.code));
        li.appendChild(document.createTextNode(" " + (p.message || "")));
        ul.appendChild(li);
      });
      out.appendChild(ul);
    }
  }

  function call(method, url, body, done) {
    var xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Accept-Language", "zh-CN");
    if (body !== null) xhr.setRequestHeader("Content-Type", "application/json");
    xhr.onload = function () {
      var parsed = null;
      try { parsed = JSON.parse(xhr.responseText); } catch (e) { parsed = null; }
      done(xhr.status, parsed);
    };
    xhr.onerror = function () { done(0, { message: "无法连接服务器" }); };
    xhr.send(body === null ? null : JSON.stringify(body));
    return xhr;
  }

  // A form's fields as the JSON body its route expects.
  function bodyOf(form) {
    var shape = form.getAttribute("data-shape");
    if (shape === "none") return null;
    if (shape === "json") {
      return JSON.parse(form.querySelector("textarea[name=json]").value);
    }
    if (shape === "proposal") {
      var opinion = form.querySelector("[name=opinion]").value;
      var cases = [];
      form.querySelectorAll("input[name=case]:checked").forEach(function (c) {
        cases.push({ archive_id: c.value, appraisal: opinion });
      });
      return { opinion: opinion, cases: cases };
    }
    var o = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.name === "csrf" || el.disabled) return;
      if (el.type === "checkbox") { o[el.name] = el.checked; return; }
      if (el.value === "") return;
      if (el.type === "number") { o[el.name] = Number(el.value); return; }
      if (el.getAttribute("data-type") === "bool") { o[el.name] = el.value === "true"; return; }
      if (el.getAttribute("data-type") === "number") { o[el.name] = Number(el.value); return; }
      o[el.name] = el.value;
    });
    return o;
  }

  document.querySelectorAll("form[data-api]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var out = form.querySelector(".result") || form.appendChild(make("div", "result"));
      out.setAttribute("role", "status");
      var confirmText = form.getAttribute("data-confirm");
      if (confirmText && !window.confirm(confirmText)) return;
      var body;
      try { body = bodyOf(form); } catch (e) {
        showError(out, 400, { message: "JSON 格式错误：" + e.message });
        return;
      }
      var button = form.querySelector("button[type=submit]");
      if (button) button.disabled = true;
      text(out, "处理中…").className = "result";
      call(form.getAttribute("data-method") || "POST", form.getAttribute("data-api"), body, function (status, res) {
        if (button) button.disabled = false;
        if (status >= 200 && status < 300) {
          out.className = "result ok";
          var shown = form.getAttribute("data-show");
          if (shown && res && res[shown]) {
            out.replaceChildren(make("p", "", form.getAttribute("data-done") || "已完成"));
            var code = make("code", "secret", res[shown]);
            out.appendChild(code);
            return;
          }
          text(out, form.getAttribute("data-done") || "已完成");
          var next = form.getAttribute("data-next");
          if (next) {
            window.location.assign(next.replace(/\{(\w+)\}/g, function (_, k) { return encodeURIComponent(res && res[k] ? res[k] : ""); }));
          } else if (form.hasAttribute("data-reload")) {
            window.setTimeout(function () { window.location.reload(); }, 600);
          }
        } else {
          showError(out, status, res);
        }
      });
    });
  });

  // Uploads: each chosen (or dropped) ZIP is posted to the API by itself, with its progress.
  document.querySelectorAll("[data-upload]").forEach(function (zone) {
    var url = zone.getAttribute("data-upload");
    var input = zone.querySelector("input[type=file]");
    var list = zone.querySelector(".uploads");
    var queue = [];
    var running = 0;

    function row(name) {
      var li = make("li");
      li.appendChild(make("span", "name", name));
      var bar = make("progress");
      bar.max = 100; bar.value = 0;
      bar.setAttribute("aria-label", name + " 上传进度");
      li.appendChild(bar);
      var res = make("div", "result");
      res.setAttribute("role", "status");
      li.appendChild(res);
      list.appendChild(li);
      return { bar: bar, res: res };
    }

    function pump() {
      while (running < 2 && queue.length) {
        var job = queue.shift();
        running++;
        send(job.file, job.ui);
      }
    }

    function send(file, ui) {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.setRequestHeader("Accept-Language", "zh-CN");
      xhr.setRequestHeader("Content-Type", "application/zip");
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) ui.bar.value = Math.round(e.loaded * 100 / e.total);
      };
      xhr.onload = function () {
        running--;
        ui.bar.value = 100;
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status === 201 || xhr.status === 200) {
          ui.res.className = "result ok";
          ui.res.replaceChildren();
          if (body.images) {
            // Digitised copies: the new version and each image's measured QC facts.
            ui.res.appendChild(make("p", "", "已添加为第 " + body.version + " 版：" + body.pages + " 页，逐页检测通过"));
            var table = make("table", "qc");
            var head = make("tr");
            ["图像", "原件", "页", "分辨率（dpi）", "色彩", "像素"].forEach(function (h) {
              var th = make("th", "", h); th.scope = "col"; head.appendChild(th);
            });
            table.appendChild(head);
            body.images.forEach(function (im) {
              var tr = make("tr");
              [im.path, im.original, im.first_page + (im.pages > 1 ? "–" + (im.first_page + im.pages - 1) : ""),
                im.dpi === null ? "—" : im.dpi, im.colour_mode, im.width_px + "×" + im.height_px].forEach(function (v) {
                tr.appendChild(make("td", "", String(v)));
              });
              table.appendChild(tr);
            });
            ui.res.appendChild(table);
            pump();
            return;
          }
          ui.res.appendChild(document.createTextNode(xhr.status === 201 ? "已归档 " : "此前已归档 "));
          if (body.archive_id) {
            var a = make("a", "", body.archive_id);
            a.href = "/cases/" + encodeURIComponent(body.archive_id);
            ui.res.appendChild(a);
          }
          (body.warnings || []).forEach(function (w) {
            ui.res.appendChild(make("p", "warn", "提示 " + w.code + "：" + w.message));
          });
        } else {
          showError(ui.res, xhr.status, body);
        }
        pump();
      };
      xhr.onerror = function () {
        running--;
        showError(ui.res, 0, { message: "连接中断，未归档" });
        pump();
      };
      xhr.send(file);
    }

    function add(file) {
      if (!/\.zip$/i.test(file.name)) return;
      queue.push({ file: file, ui: row(file.name) });
      pump();
    }

    // A dropped folder is walked for its ZIPs.
    function walk(entry) {
      if (entry.isFile) { entry.file(add); return; }
      if (entry.isDirectory) {
        var reader = entry.createReader();
        var more = function () {
          reader.readEntries(function (entries) {
            if (!entries.length) return;
            entries.forEach(walk);
            more();
          });
        };
        more();
      }
    }

    input.addEventListener("change", function () {
      Array.prototype.forEach.call(input.files, add);
      input.value = "";
    });
    zone.addEventListener("dragover", function (e) { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      zone.classList.remove("over");
      var items = e.dataTransfer.items;
      if (items && items.length && items[0].webkitGetAsEntry) {
        Array.prototype.forEach.call(items, function (it) {
          var entry = it.webkitGetAsEntry();
          if (entry) walk(entry);
        });
      } else {
        Array.prototype.forEach.call(e.dataTransfer.files, add);
      }
    });
  });

  // "Select all" boxes for lists of cases.
  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    all.addEventListener("change", function () {
      var form = all.form;
      form.querySelectorAll("input[name=" + all.getAttribute("data-select-all") + "]").forEach(function (c) {
        if (!c.disabled) c.checked = all.checked;
      });
    });
  });

  // Print buttons (a print view's own button: no inline handler under the CSP).
  document.querySelectorAll("button[data-print]").forEach(function (b) {
    b.addEventListener("click", function () { window.print(); });
  });
})();
