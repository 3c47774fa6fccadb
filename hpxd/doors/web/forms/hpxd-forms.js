/* hpxd-forms.js: the client of hpxd's form door (QFQ's client-server
 * protocol, docs/forms.md). Plain script, no libraries, no build step; the
 * page's Content-Security-Policy allows only this server's scripts, so
 * every handler is attached here, none inline.
 *
 * It relies on the markup of hpxd/doors/web/forms_pages.py (its docstring
 * is the contract) and does, for each form.hpxd-form: load on change
 * (form-update, element-update), save with validation and redirects,
 * alerts, the record lock (dirty), file upload and delete, typeahead and
 * record delete; for each table.hpxd-table: drag-and-drop ordering, sorting,
 * filters, column selection and saved views.
 */
(function () {
  "use strict";

  // A held lock is extended every 5 minutes, or at half the server's lock
  // timeout (data-lock-timeout, seconds) when that is shorter.
  var LOCK_EXTEND_MS = 5 * 60 * 1000;
  var TYPEAHEAD_DELAY_MS = 150;
  var INFO_TIMEOUT_MS = 3000;
  var TAB_KEY = "hpxd-tab-id";

  // -- requests -------------------------------------------------------------------

  function apiUrl(base, endpoint, query) {
    var url = base + endpoint;
    var text = query ? new URLSearchParams(query).toString() : "";
    return text ? url + "?" + text : url;
  }

  /* fetch, answered as the protocol's JSON. A network failure or an
   * answer that is not JSON becomes an error Minimal Response, so callers
   * handle one shape. */
  function call(url, options) {
    options = Object.assign({credentials: "same-origin", headers: {}}, options || {});
    options.headers.Accept = "application/json";
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () {
        return {status: "error", message: "the server answered " + response.status +
                " without JSON"};
      });
    }, function (error) {
      return {status: "error", message: "the server cannot be reached (" + error.message + ")"};
    });
  }

  /* The form's controls as a urlencoded body: no file inputs (the seed
   * wants them out), and no submit buttons (submit_reason goes in the URL). */
  function formParams(form, extra) {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, name) {
      if (typeof value === "string") {
        params.append(name, value);
      }
    });
    Object.keys(extra || {}).forEach(function (name) { params.set(name, extra[name]); });
    return params;
  }

  function post(url, params) {
    return call(url, {method: "POST", body: params});
  }

  // -- alerts (the seed's Alert) ----------------------------------------------------

  var alertHandlers = {};

  /* Show {message, type: info|warning|error, timeout, modal, buttons:
   * [{label, eventName, focus}]}. A button closes the alert, then runs the
   * handler registered for its eventName (hpxdForms.on) and dispatches the
   * DOM event "hpxd-alert" (detail: eventName) on document. With an empty
   * buttons list a click anywhere on the alert dismisses it. */
  function showAlert(spec) {
    var type = ["info", "warning", "error"].indexOf(spec.type) >= 0 ? spec.type : "info";
    var box = document.createElement("div");
    box.className = "hpxd-alert hpxd-alert-" + type;
    box.setAttribute("role", type === "error" || spec.modal ? "alert" : "status");
    var text = document.createElement("p");
    text.className = "hpxd-alert-message";
    text.textContent = spec.message || (type === "error" ? "Something went wrong" : "");
    box.appendChild(text);
    var holder = spec.modal ? modalOverlay(box) : box;
    var close = function () {  // by a button, a click, or the timeout: once
      if (holder.isConnected) {
        holder.remove();
        releaseModal();
      }
    };
    var buttons = spec.buttons;
    if (buttons === undefined) {
      buttons = [{label: "Close", eventName: "close"}];
    }
    if (buttons.length === 0) {
      box.addEventListener("click", close);
    } else {
      box.appendChild(alertButtons(buttons, close));
    }
    if (spec.modal) {
      document.body.appendChild(holder);
      holdModal();
    } else {
      alertsArea().appendChild(box);
    }
    var focused = box.querySelector("button[data-focus]") || (spec.modal && box.querySelector("button"));
    if (focused) {
      focused.focus();
    }
    if (spec.timeout > 0) {
      setTimeout(close, spec.timeout);
    }
    return {element: box, close: close};
  }

  function alertButtons(buttons, close) {
    var row = document.createElement("div");
    row.className = "hpxd-alert-buttons";
    buttons.forEach(function (spec) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = spec.label;
      button.dataset.eventName = spec.eventName || "";
      if (spec.focus) {
        button.dataset.focus = "";
      }
      button.addEventListener("click", function () {
        close();
        var handler = alertHandlers[spec.eventName];
        if (handler) {
          handler();
        }
        document.dispatchEvent(new CustomEvent("hpxd-alert", {detail: spec.eventName}));
      });
      row.appendChild(button);
    });
    return row;
  }

  function modalOverlay(box) {
    var overlay = document.createElement("div");
    overlay.className = "hpxd-modal";
    box.setAttribute("aria-modal", "true");
    box.setAttribute("role", "alertdialog");
    overlay.appendChild(box);
    return overlay;
  }

  // While a modal alert is open, the page under it takes no input (inert:
  // keyboard focus too, not only the clicks the overlay catches).
  function holdModal() {
    var main = document.querySelector("main");
    if (main) {
      main.inert = true;
    }
  }

  function releaseModal() {
    var main = document.querySelector("main");
    if (main && !document.querySelector(".hpxd-modal")) {
      main.inert = false;
    }
  }

  function alertsArea() {
    var area = document.getElementById("hpxd-alerts");
    if (!area) {
      area = document.createElement("div");
      area.id = "hpxd-alerts";
      document.body.appendChild(area);
    }
    return area;
  }

  function showError(answer) {
    return showAlert({message: answer.message, type: "error"});
  }

  /* An answer of any endpoint: its own alert if it brings one, else an
   * error is shown; true if it succeeded. */
  function succeeded(answer) {
    var ok = answer.status !== "error";
    if (answer.alert) {
      showAlert(answer.alert);
    } else if (!ok) {
      showError(answer);
    }
    return ok;
  }

  /* The alert the server sent with ``answer``, or ``fallback`` (the seed's
   * Alert shape) when it sent none. */
  function alertOf(answer, fallback) {
    return showAlert(answer.alert || fallback);
  }

  // -- form-update and element-update ---------------------------------------------

  function controlsNamed(form, name) {
    return Array.prototype.filter.call(form.elements, function (el) {
      return el.name === name;
    });
  }

  function applyFormUpdate(form, updates) {
    (updates || []).forEach(function (update) {
      var name = update["form-element"];
      var controls = controlsNamed(form, name);
      var group = form.querySelector('.form-group[data-field="' + CSS.escape(name) + '"]');
      if ("hidden" in update && group) {
        group.hidden = !!update.hidden;
        group.classList.toggle("hidden", !!update.hidden);
      }
      if ("disabled" in update) {
        fieldControls(form, name, controls).forEach(function (el) { el.disabled = !!update.disabled; });
      }
      if ("required" in update) {
        controls.forEach(function (el) { if (el.type !== "hidden") { el.required = !!update.required; } });
      }
      if ("value" in update) {
        setValue(controls, update.value);
      }
    });
  }

  /* The controls a user works with for a field: a file field's are its
   * file input and remove button, not the hidden input holding its id. */
  function fieldControls(form, name, controls) {
    var extra = form.querySelectorAll('[data-upload-for="' + CSS.escape(name) + '"], ' +
                                      '[data-file-delete="' + CSS.escape(name) + '"]');
    return controls.concat(Array.prototype.slice.call(extra));
  }

  function setValue(controls, value) {
    controls.forEach(function (el) {
      if (el.type === "checkbox") {
        el.checked = value === true || value === "true" || value === 1;
      } else if (el.type === "radio") {
        el.checked = String(el.value) === String(value);
      } else if (el.tagName === "SELECT" && Array.isArray(value)) {
        replaceOptions(el, value);
      } else {
        el.value = value === null || value === undefined ? "" : String(value);
      }
    });
  }

  function replaceOptions(select, options) {
    select.textContent = "";
    options.forEach(function (spec) {
      var option = document.createElement("option");
      option.value = String(spec.value);
      option.textContent = "text" in spec ? String(spec.text) : String(spec.value);
      option.selected = !!spec.selected;
      select.appendChild(option);
    });
  }

  function applyElementUpdate(updates) {
    Object.keys(updates || {}).forEach(function (id) {
      var el = document.getElementById(id);
      if (!el) {
        return;
      }
      var change = updates[id];
      Object.keys(change.attr || {}).forEach(function (name) {
        var value = change.attr[name];
        if (value === null) {
          el.removeAttribute(name);
        } else {
          el.setAttribute(name, value);
          if (name === "value" && "value" in el) {
            el.value = value;  // the attribute alone does not change an edited input
          }
        }
      });
      if ("content" in change) {
        el.textContent = change.content;
      }
    });
  }

  function applyUpdates(form, answer) {
    applyFormUpdate(form, answer["form-update"]);
    applyElementUpdate(answer["element-update"]);
  }

  // -- redirects ---------------------------------------------------------------------

  function goBack() {
    if (history.length > 1) {
      history.back();
    }
  }

  /* A redirect URL on this server, else null: an answer never sends the
   * page to another site (the server checks close_url too). */
  function sameOrigin(url) {
    try {
      var target = new URL(url, location.href);
      return target.origin === location.origin ? target.href : null;
    } catch (e) {
      return null;
    }
  }

  /* Obey a successful answer's redirect; never called for an error. */
  function redirect(answer, reason) {
    var kind = answer.redirect || "no";
    var url = answer["redirect-url"] ? sameOrigin(answer["redirect-url"]) : null;
    if (kind === "url" && url) {
      location.assign(url);
    } else if (kind === "url-skip-history" && url) {
      location.replace(url);
    } else if (kind === "close" || (kind === "auto" && /close/.test(reason || ""))) {
      goBack();
    }
  }

  // -- a form -------------------------------------------------------------------------

  function tabId() {
    var id = null;
    try {
      id = sessionStorage.getItem(TAB_KEY);
    } catch (e) { /* storage off: a fresh id per page */ }
    if (!id) {
      var bytes = new Uint8Array(12);
      crypto.getRandomValues(bytes);
      id = Array.prototype.map.call(bytes, function (b) {
        return (b + 256).toString(16).slice(1);
      }).join("");
      try {
        sessionStorage.setItem(TAB_KEY, id);
      } catch (e) { /* keep it for this page only */ }
    }
    return id;
  }

  function Form(form) {
    this.form = form;
    this.api = form.dataset.api || "/forms/api/";
    this.loads = 0;  // the latest load: older answers arriving late are ignored
    this.readOnlyNow = false;  // a lock conflict: nothing may change the form
    this.saving = false;  // a save is on its way
    this.lock = new RecordLock(this);
    form.elements.tabUniqId.value = tabId();
    form.addEventListener("change", this.changed.bind(this));
    form.addEventListener("input", this.edited.bind(this));
    form.addEventListener("submit", this.submitted.bind(this));
    this.setUpFiles();
    this.setUpTypeahead();
    this.setUpDelete();
  }

  Form.prototype.value = function (name) {
    var el = this.form.elements[name];
    return el ? el.value : "";
  };

  Form.prototype.edited = function (event) {
    if (event.target.type !== "file") {
      this.lock.dirty();
    }
  };

  Form.prototype.changed = function (event) {
    var target = event.target;
    if (target.type === "file" || !target.name || this.readOnlyNow) {
      return;  // an upload has its own request; unnamed inputs are not the form's
    }
    this.lock.dirty();
    this.load();
  };

  /* api/load: the server's rules answer the form's current values. */
  Form.prototype.load = function () {
    var self = this;
    var mine = ++this.loads;
    return post(apiUrl(this.api, "load"), formParams(this.form)).then(function (answer) {
      if (mine !== self.loads || self.readOnlyNow) {
        return;  // a newer load answers; or a lock conflict froze the form
      }
      if (succeeded(answer)) {
        applyUpdates(self.form, answer);
      }
    });
  };

  Form.prototype.submitted = function (event) {
    event.preventDefault();
    var submitter = event.submitter;
    var reason = submitter && submitter.value === "save,close" ? "save,close" : "save";
    this.save(reason);
  };

  Form.prototype.save = function (reason) {
    var self = this;
    if (this.saving) {
      return Promise.resolve(null);  // a double click must not save a new record twice
    }
    this.saving = true;
    this.clearErrors();
    var url = apiUrl(this.api, "save", {submit_reason: reason});
    return post(url, formParams(this.form)).then(function (answer) {
      self.saving = false;
      if (answer.status === "error") {
        self.failed(answer);
        return answer;
      }
      self.lock.saved();
      applyUpdates(self.form, answer);
      alertOf(answer, {message: answer.message || "saved", type: "info",
                       timeout: INFO_TIMEOUT_MS, buttons: []});
      redirect(answer, reason);
      return answer;
    });
  };

  /* A refused save: the failing field is highlighted, its message shown
   * under it and as an alert; the page stays. */
  Form.prototype.failed = function (answer) {
    var name = answer["field-name"];
    var group = name && this.form.querySelector('.form-group[data-field="' + CSS.escape(name) + '"]');
    if (group) {
      group.classList.add("has-error");
      var help = document.getElementById("help-" + name);
      if (help) {
        help.textContent = answer["field-message"] || answer.message;
      }
      var control = group.querySelector("input:not([type=hidden]), select, textarea");
      if (control) {
        control.setAttribute("aria-invalid", "true");
        control.focus();
      }
    }
    alertOf(answer, {message: answer.message, type: "error"});
  };

  Form.prototype.clearErrors = function () {
    this.form.querySelectorAll(".form-group.has-error").forEach(function (group) {
      group.classList.remove("has-error");
      var help = group.querySelector(".help-block");
      if (help) {
        help.textContent = "";
      }
      group.querySelectorAll("[aria-invalid]").forEach(function (el) {
        el.removeAttribute("aria-invalid");
      });
    });
  };

  /* Everything the user could change is disabled (a lock conflict): the
   * page shows the record but cannot send changes. */
  Form.prototype.readOnly = function () {
    this.readOnlyNow = true;
    this.form.classList.add("hpxd-readonly");
    Array.prototype.forEach.call(this.form.elements, function (el) {
      if (el.type !== "hidden") {
        el.disabled = true;
      }
    });
  };

  Form.prototype.params = function (extra) {
    return Object.assign({s: this.value("s"), tabUniqId: this.value("tabUniqId")}, extra || {});
  };

  // -- record delete ------------------------------------------------------------------

  Form.prototype.setUpDelete = function () {
    var self = this;
    this.form.querySelectorAll('[data-action="delete"]').forEach(function (button) {
      button.addEventListener("click", function () {
        if (window.confirm("Delete this record?")) {
          self.remove();
        }
      });
    });
  };

  Form.prototype.remove = function () {
    var self = this;
    return post(apiUrl(this.api, "delete"), new URLSearchParams(this.params()))
      .then(function (answer) {
        if (succeeded(answer)) {
          self.lock.saved();  // the record is gone, and its lock with it
          if (!answer.alert) {
            showAlert({message: answer.message || "deleted", timeout: INFO_TIMEOUT_MS, buttons: []});
          }
          redirect(answer, "close");
        }
      });
  };

  // -- files ----------------------------------------------------------------------------

  Form.prototype.setUpFiles = function () {
    var self = this;
    this.form.querySelectorAll("input[type=file][data-upload-for]").forEach(function (input) {
      var name = input.dataset.uploadFor;
      var shown = document.createElement("span");
      shown.className = "hpxd-file-name";
      shown.dataset.fileNameFor = name;
      if (self.value(name)) {
        shown.textContent = "a file is stored";
      }
      input.insertAdjacentElement("afterend", shown);
      input.addEventListener("change", function () { self.upload(input, shown); });
    });
    this.form.querySelectorAll("[data-file-delete]").forEach(function (button) {
      button.addEventListener("click", function () {
        var name = button.dataset.fileDelete;
        self.deleteFile(name, self.form.querySelector('[data-file-name-for="' + CSS.escape(name) + '"]'));
      });
    });
  };

  /* api/file?action=upload: s and name first, then the file (the server
   * reads the fields before the file's bytes). */
  Form.prototype.upload = function (input, shown) {
    var self = this;
    var file = input.files[0];
    if (!file) {
      return;
    }
    var body = new FormData();
    body.append("s", this.value("s"));
    body.append("name", input.dataset.uploadFor);
    body.append("file", file, file.name);
    shown.textContent = "uploading " + file.name + "…";
    this.lock.dirty();
    return call(apiUrl(this.api, "file", {action: "upload"}), {method: "POST", body: body})
      .then(function (answer) {
        input.value = "";  // the same file may be chosen again
        if (!succeeded(answer)) {
          shown.textContent = "";
          return;
        }
        applyUpdates(self.form, answer);
        shown.textContent = (answer.file && answer.file.name) || file.name;
      });
  };

  Form.prototype.deleteFile = function (name, shown) {
    var self = this;
    var params = new URLSearchParams({s: this.value("s"), name: name, value: this.value(name)});
    this.lock.dirty();
    return post(apiUrl(this.api, "file", {action: "delete"}), params).then(function (answer) {
      if (!succeeded(answer)) {
        return;
      }
      applyUpdates(self.form, answer);
      setValue(controlsNamed(self.form, name), "");
      if (shown) {
        shown.textContent = "";
      }
      self.form.querySelectorAll('.form-group[data-field="' + CSS.escape(name) + '"] [data-download]')
        .forEach(function (el) { el.hidden = true; });  // they show the saved file, now going
    });
  };

  // -- typeahead ------------------------------------------------------------------------

  Form.prototype.setUpTypeahead = function () {
    var self = this;
    this.form.querySelectorAll("[data-typeahead-sip]").forEach(function (input) {
      var timer = null;
      input.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(function () { self.suggest(input); }, TYPEAHEAD_DELAY_MS);
      });
    });
  };

  Form.prototype.suggest = function (input) {
    var list = input.list;
    var query = input.value;
    var url = apiUrl(this.api, "typeahead", {sip: input.dataset.typeaheadSip, query: query});
    return call(url).then(function (answer) {
      if (input.value !== query || !list) {
        return;  // typed on meanwhile: a newer request fills the list
      }
      if (!succeeded(answer)) {
        return;
      }
      list.textContent = "";
      (answer.typeahead || []).forEach(function (entry) {
        var option = document.createElement("option");
        option.value = String(entry.key);
        if (String(entry.value) !== String(entry.key)) {
          option.label = String(entry.value);
        }
        list.appendChild(option);
      });
    });
  };

  // -- the record lock (dirty) ------------------------------------------------------

  /* QFQ's dirty: the first change of a saved record takes its lock; the
   * lock is extended while the page stays dirty, released when the page
   * goes and after a save (the server releases it with the save too). */
  function RecordLock(owner) {
    this.owner = owner;
    var form = owner.form;
    this.wanted = !!form.dataset.record && form.dataset.lock !== "none";
    this.state = "clean";  // clean | asking | locked | refused
    this.timer = null;
    var timeout = Number(form.dataset.lockTimeout) * 1000;
    this.every = timeout > 0 ? Math.max(500, Math.min(LOCK_EXTEND_MS, timeout / 2)) : LOCK_EXTEND_MS;
    window.addEventListener("pagehide", this.release.bind(this));
  }

  RecordLock.prototype.url = function (action) {
    return apiUrl(this.owner.api, "dirty", this.params(action));
  };

  RecordLock.prototype.params = function (action) {
    return this.owner.params({action: action, recordHashMd5: this.owner.value("recordHashMd5")});
  };

  RecordLock.prototype.dirty = function () {
    if (!this.wanted || this.state !== "clean") {
      return;
    }
    this.state = "asking";
    var self = this;
    call(this.url("lock")).then(function (answer) { self.answered(answer); });
  };

  RecordLock.prototype.answered = function (answer) {
    var self = this;
    if (answer.status === "success") {
      this.state = "locked";
      clearInterval(this.timer);
      this.timer = setInterval(function () { self.extend(); }, this.every);
    } else if (answer.status === "conflict") {
      this.state = "refused";
      this.owner.readOnly();
      // The seed: a modal dialog, the form unchangeable, a way to reload.
      alertOf(answer, {message: answer.message, type: "warning", modal: true,
                       buttons: [{label: "Reload", eventName: "reload", focus: true}]});
    } else if (answer.status === "conflict_allow_force") {
      this.state = "refused";
      alertOf(answer, {message: answer.message, type: "warning",
                       buttons: [{label: "Take over", eventName: "force"},
                                 {label: "Cancel", eventName: "cancel", focus: true}]});
    } else {
      this.state = "clean";  // the next change asks again
      alertOf(answer, {message: answer.message, type: "error"});
    }
  };

  RecordLock.prototype.extend = function () {
    var self = this;
    call(this.url("extend")).then(function (answer) {
      if (answer.status !== "success") {
        self.stop();
        self.answered(answer);
      }
    });
  };

  RecordLock.prototype.force = function () {
    var self = this;
    call(this.url("force")).then(function (answer) { self.answered(answer); });
  };

  RecordLock.prototype.stop = function () {
    clearInterval(this.timer);
    this.timer = null;
    this.state = "clean";
  };

  /* After a save: the server released the lock; the next change takes it
   * again, with the new recordHashMd5. */
  RecordLock.prototype.saved = function () {
    this.stop();
  };

  /* The page goes: a beacon still leaves after the page is gone. */
  RecordLock.prototype.release = function () {
    if (this.state !== "locked" && this.state !== "asking") {
      return;
    }
    var body = new URLSearchParams(this.params("release"));
    if (!navigator.sendBeacon || !navigator.sendBeacon(apiUrl(this.owner.api, "dirty"), body)) {
      fetch(apiUrl(this.owner.api, "dirty"), {method: "POST", body: body, keepalive: true});
    }
    this.stop();
  };

  // -- a table view ---------------------------------------------------------------------

  function Table(table) {
    this.table = table;
    this.api = table.dataset.api || "/forms/api/";
    this.sortList = [];
    this.filters = [];
    this.heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    this.original = this.rows();  // the server's order, for "no sort"
    this.addFilters();
    this.addColumnChoice();
    this.heads.forEach(function (th, column) {
      th.tabIndex = 0;
      th.classList.add("hpxd-sortable");
      th.addEventListener("click", this.sortBy.bind(this, column));
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter") { this.sortBy(column); }
      }.bind(this));
    }, this);
    if (table.dataset.dnd) {
      this.setUpDragAndDrop();
    }
    this.setUpViews();
  }

  Table.prototype.rows = function () {
    return Array.prototype.slice.call(this.table.tBodies[0].rows);
  };

  Table.prototype.cellText = function (row, column) {
    var cell = row.cells[column];
    return cell ? cell.textContent.trim() : "";
  };

  // Sorting: a click sorts by that column, a second click reverses it, a
  // third gives the server's order back (Tablesorter's sortList: [[column,
  // 0 ascending | 1 descending]]; [] the server's order).
  Table.prototype.sortBy = function (column) {
    var now = this.sortList[0];
    if (!now || now[0] !== column) {
      this.sort([[column, 0]]);
    } else {
      this.sort(now[1] === 0 ? [[column, 1]] : []);
    }
  };

  Table.prototype.sort = function (sortList) {
    var self = this;
    this.sortList = sortList || [];
    var rows = this.original.slice();
    if (this.sortList.length) {
      var column = this.sortList[0][0], sign = this.sortList[0][1] ? -1 : 1;
      rows.sort(function (a, b) {
        return sign * compare(self.cellText(a, column), self.cellText(b, column));
      });
    }
    var body = this.table.tBodies[0];
    rows.forEach(function (row) { body.appendChild(row); });
    this.heads.forEach(function (th, i) {
      var sorted = self.sortList.length && self.sortList[0][0] === i;
      th.setAttribute("aria-sort", !sorted ? "none"
                      : self.sortList[0][1] ? "descending" : "ascending");
    });
  };

  function compare(a, b) {
    var x = Number(a), y = Number(b);
    if (a !== "" && b !== "" && !isNaN(x) && !isNaN(y)) {
      return x - y;
    }
    return a.localeCompare(b);
  }

  // Filters: one text box per column; a row shows when each column's
  // text contains its box's text (case ignored).
  Table.prototype.addFilters = function () {
    var self = this;
    var row = this.table.tHead.insertRow(-1);
    row.className = "hpxd-filters";
    this.heads.forEach(function (th, column) {
      var cell = document.createElement("td");
      var input = document.createElement("input");
      input.type = "search";
      input.className = "hpxd-filter";
      input.dataset.column = String(column);
      input.setAttribute("aria-label", "filter " + th.textContent);
      input.addEventListener("input", function () { self.filter(self.filterInputs()); });
      cell.appendChild(input);
      row.appendChild(cell);
    });
  };

  Table.prototype.filterInputs = function () {
    return Array.prototype.map.call(this.table.querySelectorAll("input.hpxd-filter"),
                                    function (input) { return input.value; });
  };

  Table.prototype.filter = function (filters) {
    var self = this;
    this.filters = filters.slice();
    this.table.querySelectorAll("input.hpxd-filter").forEach(function (input, i) {
      input.value = self.filters[i] || "";
    });
    this.rows().forEach(function (row) {
      row.hidden = !self.filters.every(function (text, column) {
        return !text || self.cellText(row, column).toLowerCase()
          .indexOf(text.toLowerCase()) >= 0;
      });
    });
  };

  // Column selection: a checkbox per column shows or hides it.
  Table.prototype.addColumnChoice = function () {
    var self = this;
    var box = document.createElement("fieldset");
    box.className = "hpxd-columns";
    var legend = document.createElement("legend");
    legend.textContent = "Columns";
    box.appendChild(legend);
    this.heads.forEach(function (th, column) {
      var label = document.createElement("label");
      var check = document.createElement("input");
      check.type = "checkbox";
      check.checked = true;
      check.dataset.column = String(column);
      check.addEventListener("change", function () { self.showColumns(self.chosenColumns()); });
      label.appendChild(check);
      label.appendChild(document.createTextNode(" " + th.textContent));
      box.appendChild(label);
    });
    this.table.insertAdjacentElement("beforebegin", box);
    this.columnBox = box;
  };

  Table.prototype.chosenColumns = function () {
    return Array.prototype.filter.call(this.columnBox.querySelectorAll("input"), function (c) {
      return c.checked;
    }).map(function (c) { return Number(c.dataset.column); });
  };

  Table.prototype.showColumns = function (columns) {
    var shown = columns.map(Number);
    this.columnBox.querySelectorAll("input").forEach(function (check) {
      check.checked = shown.indexOf(Number(check.dataset.column)) >= 0;
    });
    Array.prototype.forEach.call(this.table.rows, function (row) {
      Array.prototype.forEach.call(row.cells, function (cell, column) {
        cell.hidden = shown.indexOf(column) < 0;
      });
    });
  };

  // -- drag and drop ------------------------------------------------------------------

  Table.prototype.setUpDragAndDrop = function () {
    var self = this;
    var body = this.table.tBodies[0];
    this.dragged = null;
    body.addEventListener("dragstart", function (event) {
      var row = event.target.closest && event.target.closest("tr[draggable]");
      if (!row) {
        return;
      }
      if (self.sortList.length) {
        // A drop places a row in the server's order, which a sorted table
        // does not show: reordering waits until the sort is off.
        event.preventDefault();
        showAlert({message: "Turn the sort off (click the sorted column's head until " +
                   "its arrow goes) to reorder rows", type: "warning",
                   timeout: INFO_TIMEOUT_MS * 2, buttons: []});
        return;
      }
      self.dragged = row;
      row.classList.add("hpxd-dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", row.dataset.dndId);
    });
    body.addEventListener("dragover", function (event) {
      var row = self.dropRow(event);
      if (!row) {
        return;
      }
      event.preventDefault();  // this row takes the drop
      event.dataTransfer.dropEffect = "move";
      self.mark(row, self.side(row, event));
    });
    body.addEventListener("dragleave", function (event) {
      var row = self.dropRow(event);
      if (row) {
        row.classList.remove("hpxd-drop-before", "hpxd-drop-after");
      }
    });
    body.addEventListener("drop", function (event) {
      var row = self.dropRow(event);
      if (!row) {
        return;
      }
      event.preventDefault();
      self.drop(self.dragged, row, self.side(row, event));
    });
    body.addEventListener("dragend", function () { self.endDrag(); });
  };

  Table.prototype.dropRow = function (event) {
    var row = event.target.closest && event.target.closest("tr[data-dnd-id]");
    return row && this.dragged && row !== this.dragged ? row : null;
  };

  /* Above the row's middle: before it; below: after it. */
  Table.prototype.side = function (row, event) {
    var box = row.getBoundingClientRect();
    return event.clientY < box.top + box.height / 2 ? "before" : "after";
  };

  Table.prototype.mark = function (row, side) {
    this.rows().forEach(function (r) { r.classList.remove("hpxd-drop-before", "hpxd-drop-after"); });
    row.classList.add("hpxd-drop-" + side);
  };

  Table.prototype.endDrag = function () {
    this.rows().forEach(function (r) {
      r.classList.remove("hpxd-dragging", "hpxd-drop-before", "hpxd-drop-after");
    });
    this.dragged = null;
  };

  /* api/dragAndDrop: the server renumbers the order field; the row moves
   * here once the server has stored the new order. */
  Table.prototype.drop = function (dragged, hover, side) {
    var self = this;
    this.endDrag();
    var url = apiUrl(this.api, "dragAndDrop", {
      s: this.table.dataset.sip, dragId: dragged.dataset.dndId,
      dragPosition: dragged.dataset.dndPosition, setTo: side,
      hoverId: hover.dataset.dndId, hoverPosition: hover.dataset.dndPosition});
    return call(url).then(function (answer) {
      if (!succeeded(answer)) {
        return;
      }
      hover.insertAdjacentElement(side === "before" ? "beforebegin" : "afterend", dragged);
      applyElementUpdate(answer["element-update"]);
      self.original = self.rows();  // the new order is the server's order now
      self.table.dispatchEvent(new CustomEvent("hpxd-reordered", {bubbles: true}));
    });
  };

  // -- saved views (Tablesorter's save view) --------------------------------------

  Table.prototype.currentView = function () {
    return {columnSelection: this.chosenColumns(), filters: this.filterInputs(),
            sortList: this.sortList.slice()};
  };

  Table.prototype.applyView = function (view) {
    this.sort(view.sortList || []);
    this.filter(view.filters || []);
    this.showColumns(view.columnSelection || this.heads.map(function (th, i) { return i; }));
  };

  Table.prototype.setUpViews = function () {
    var self = this;
    document.querySelectorAll("ul.hpxd-views").forEach(function (list) {
      list.addEventListener("click", function (event) {
        var button = event.target.closest("[data-view]");
        if (button) {
          self.applyView(JSON.parse(button.dataset.view));
        }
      });
      self.viewList = list;
    });
    document.querySelectorAll("form.hpxd-save-view").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        self.saveView(form);
      });
    });
  };

  Table.prototype.saveView = function (form) {
    var self = this;
    var body = {name: form.elements.name.value.trim(), public: form.elements.public.checked,
                tableId: this.table.id, view: this.currentView()};
    return call(apiUrl(this.api, "save", {s: this.table.dataset.sip}), {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)
    }).then(function (answer) {
      if (!succeeded(answer)) {
        return;
      }
      self.listView(body);
      if (!answer.alert) {
        showAlert({message: answer.message || "view saved", timeout: INFO_TIMEOUT_MS, buttons: []});
      }
    });
  };

  /* A view saved now is listed at once (a reload lists it too). */
  Table.prototype.listView = function (saved) {
    if (!this.viewList) {
      return;
    }
    var old = Array.prototype.find.call(this.viewList.querySelectorAll("[data-view]"),
                                        function (b) { return b.textContent === saved.name; });
    var button = old || document.createElement("button");
    button.type = "button";
    button.textContent = saved.name;
    button.dataset.view = JSON.stringify(saved.view);
    if (!old) {
      var item = document.createElement("li");
      item.appendChild(button);
      if (saved.public) {
        item.appendChild(document.createTextNode(" (public)"));
      }
      this.viewList.appendChild(item);
    }
  };

  // -- start -----------------------------------------------------------------------------

  var forms = [];

  function start() {
    document.querySelectorAll("form.hpxd-form").forEach(function (form) {
      forms.push(new Form(form));
    });
    document.querySelectorAll("table.hpxd-table").forEach(function (table) {
      new Table(table);
    });
  }

  alertHandlers.reload = function () { location.reload(); };
  alertHandlers.force = function () {
    forms.forEach(function (f) { if (f.lock.state === "refused") { f.lock.force(); } });
  };

  window.hpxdForms = {
    showAlert: showAlert,
    on: function (eventName, handler) { alertHandlers[eventName] = handler; }
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
