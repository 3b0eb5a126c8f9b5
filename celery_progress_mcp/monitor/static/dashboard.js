// celery-progress-mcp dashboard: live updates over SSE, no framework, no build step.
// Every value that comes from a session is written with textContent or as an
// attribute value, never parsed as HTML.
"use strict";

(function () {
  const body = document.body;
  // The pages' prefix, and the JSON API's (the same on the Starlette dashboard;
  // under Django the API sits beside the pages).
  const base = body.dataset.base || "";
  const api = body.dataset.api === undefined ? base : body.dataset.api;
  // Django's CSRF token, where the page carries one (its middleware checks the header).
  const csrf = body.dataset.csrf ? { "X-CSRFToken": body.dataset.csrf } : {};
  const liveBadge = document.getElementById("live");

  // -- formatting (mirrors monitor/formatting.py) ----------------------------------

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    seconds = Math.max(0, seconds);
    if (seconds < 10) return seconds.toFixed(1) + "s";
    const whole = Math.round(seconds);
    const hours = Math.floor(whole / 3600);
    const minutes = Math.floor((whole % 3600) / 60);
    const secs = whole % 60;
    const two = (n) => String(n).padStart(2, "0");
    if (hours) return hours + "h " + two(minutes) + "m";
    if (minutes) return minutes + "m " + two(secs) + "s";
    return secs + "s";
  }
  const percent = (v) => (v === null || v === undefined ? "" : Number(v).toFixed(1) + "%");
  const rate = (v) => (100 * v).toFixed(1) + "%";
  const statusText = (s) => String(s).replace(/_/g, " ");
  function stepText(step, number, total) {
    let counter = "";
    if (number !== null && number !== undefined && total) counter = number + "/" + total;
    else if (number !== null && number !== undefined) counter = String(number);
    if (step && counter) return step + " (" + counter + ")";
    return step || counter;
  }
  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const two = (n) => String(n).padStart(2, "0");
    return d.getUTCFullYear() + "-" + two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate()) +
      " " + two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + ":" + two(d.getUTCSeconds());
  }
  // Fallback refresh periods: what the granularity sends no event for.
  const LIST_POLL_MS = 10000;
  const SESSION_POLL_MS = 3000;
  const ACTIVE = new Set(["initializing", "in_progress", "paused"]);
  const STATES = ["initializing", "in_progress", "paused", "completed", "failed", "cancelled"];

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function setText(node, text) {
    if (node && node.textContent !== text) node.textContent = text;
  }
  function setStatusClass(node, prefix, status) {
    if (!node) return;
    for (const cls of Array.from(node.classList)) {
      if (STATES.includes(cls.replace(prefix, "")) || cls.startsWith("sub-")) node.classList.remove(cls);
    }
    node.classList.add(prefix + status);
  }
  function throttle(fn, waitMs) {
    let timer = null;
    let pending = false;
    let last = 0;
    return function run() {
      const now = Date.now();
      if (timer) { pending = true; return; }
      const delay = Math.max(0, last + waitMs - now);
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        fn();
        if (pending) { pending = false; run(); }
      }, delay);
    };
  }
  async function getJson(path) {
    const response = await fetch(api + path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  }
  function segment(id) { return encodeURIComponent(id); }

  // -- live stream ---------------------------------------------------------------

  // One EventSource; the browser resumes it with Last-Event-ID after a drop.
  function connect(query, handlers) {
    const source = new EventSource(api + "/api/events?" + query.toString());
    source.addEventListener("open", () => { liveBadge.textContent = "live"; liveBadge.classList.add("on"); });
    source.addEventListener("error", () => { liveBadge.textContent = "reconnecting"; liveBadge.classList.remove("on"); });
    source.addEventListener("progress", (event) => {
      const frame = JSON.parse(event.data);
      handlers.progress(frame.updates, frame.seq);
    });
    source.addEventListener("resync", () => handlers.resync());
    return source;
  }

  // -- the session list --------------------------------------------------------------

  function listPage() {
    const tbody = document.querySelector("#sessions tbody");
    const notice = document.getElementById("notice");
    const offset = Number(body.dataset.offset || 0);
    let source = null;
    let seq = Number(body.dataset.seq || 0);
    let newCount = 0;

    const rows = () => new Map(Array.from(tbody.querySelectorAll("tr[data-session]")).map((tr) => [tr.dataset.session, tr]));
    let rowMap = rows();

    function applyUpdate(tr, u) {
      const cell = (name) => tr.querySelector('[data-field="' + name + '"]');
      if (u.status) {
        tr.dataset.status = u.status;
        const badge = cell("status");
        setText(badge, statusText(u.status));
        setStatusClass(badge, "", u.status);
        setStatusClass(cell("bar"), "", u.status);
        if (!ACTIVE.has(u.status)) {
          setText(cell("eta"), "");
          if (typeof u.duration_seconds === "number") tr.dataset.duration = u.duration_seconds;
          else if (!tr.dataset.duration) tr.dataset.duration = Math.max(0, u.ts - Number(tr.dataset.created));
          setText(cell("duration"), duration(Number(tr.dataset.duration)));
        }
      }
      if (typeof u.percentage === "number") {
        cell("bar").value = u.percentage;
        setText(cell("percentage"), percent(u.percentage));
      }
      if (u.status === "in_progress" && ("current_step" in u || "current_step_number" in u)) {
        setText(cell("step"), stepText(u.current_step, u.current_step_number, u.total_steps));
      } else if (u.error_message || u.reason || u.result_summary) {
        const message = u.error_message ? (u.error_code ? u.error_code + ": " + u.error_message : u.error_message) : (u.reason || u.result_summary);
        setText(cell("step"), message);
      }
      if (u.status === "in_progress" && "eta_seconds" in u) setText(cell("eta"), duration(u.eta_seconds));
    }

    function buildRow(s) {
      const tr = el("tr", { "data-session": s.id, "data-status": s.status, "data-created": Date.parse(s.created_at) / 1000 });
      if (!s.active) tr.dataset.duration = s.duration_seconds;
      const link = el("a", { class: "mono", href: base + "/sessions/" + segment(s.id), title: s.id }, s.id.length > 18 ? s.id.slice(0, 17) + "…" : s.id);
      tr.append(el("td", {}), el("td", { "data-field": "operation" }, s.operation_id));
      tr.firstChild.append(link);
      const stateCell = el("td");
      stateCell.append(el("span", { class: "badge " + s.status, "data-field": "status" }, statusText(s.status)));
      const bar = el("td", { class: "progress-cell" });
      const progress = el("progress", { max: "100", class: s.status, "data-field": "bar" });
      progress.value = s.percentage;
      bar.append(progress, el("span", { class: "pct", "data-field": "percentage" }, percent(s.percentage)));
      const step = s.status === "in_progress" ? stepText(s.current_step, s.current_step_number, s.total_steps) : (s.message || "");
      tr.append(stateCell, bar,
        el("td", { "data-field": "step" }, step),
        el("td", { "data-field": "eta" }, duration(s.eta_seconds)),
        el("td", { "data-field": "duration" }, duration(s.duration_seconds)),
        el("td", { "data-field": "worker" }, s.worker || ""));
      return tr;
    }

    async function refresh() {
      const query = new URLSearchParams(window.location.search);
      try {
        const page = await getJson("/api/sessions?" + query.toString());
        const fresh = page.sessions.map(buildRow);
        if (!fresh.length) {
          const empty = el("tr", { class: "empty" });
          empty.append(el("td", { colspan: "8" }, "No sessions match."));
          fresh.push(empty);
        }
        tbody.replaceChildren(...fresh);
        const shown = page.sessions.length;
        setText(document.getElementById("range"), page.total ? (page.offset + 1) + "–" + (page.offset + shown) + " of " + page.total : "0 of 0");
        const before = Array.from(rowMap.keys()).join(" ");
        rowMap = rows();
        newCount = 0;
        notice.hidden = true;
        if (Array.from(rowMap.keys()).join(" ") !== before) openStream();
      } catch (error) {
        console.warn(error);
      }
    }
    const refreshSoon = throttle(refresh, 1000);

    function onProgress(updates, frameSeq) {
      seq = frameSeq;
      let created = 0;
      for (const u of updates) {
        const tr = rowMap.get(u.id);
        if (tr) applyUpdate(tr, u);
        else if (u.created) created += 1;
      }
      if (created) {
        if (offset === 0) refreshSoon();
        else {
          newCount += created;
          setText(document.getElementById("notice-text"), newCount + " new session(s).");
          const first = new URLSearchParams(window.location.search);
          first.delete("offset");
          document.getElementById("notice-link").setAttribute("href", window.location.pathname + "?" + first.toString());
          notice.hidden = false;
        }
      }
      statsSoon();
    }

    function openStream() {
      if (source) source.close();
      const query = new URLSearchParams();
      for (const id of rowMap.keys()) query.append("session_id", id);
      query.set("include_new", "1");
      query.set("since", String(seq));
      source = connect(query, { progress: onProgress, resync: refreshSoon });
    }

    async function refreshStats() {
      try {
        const stats = await getJson("/api/stats");
        for (const node of document.querySelectorAll("[data-stat]")) {
          const key = node.dataset.stat;
          let text;
          if (key.startsWith("state:")) text = String(stats.sessions_by_state[key.slice(6)] || 0);
          else if (key.endsWith("_rate")) text = rate(stats[key]);
          else if (key.endsWith("_seconds")) text = duration(stats[key]);
          else text = String(stats[key]);
          setText(node, text);
        }
      } catch (error) {
        console.warn(error);
      }
    }
    const statsSoon = throttle(refreshStats, 2000);

    // Durations of running sessions tick once a second.
    setInterval(() => {
      const now = Date.now() / 1000;
      for (const tr of rowMap.values()) {
        if (ACTIVE.has(tr.dataset.status)) {
          setText(tr.querySelector('[data-field="duration"]'), duration(now - Number(tr.dataset.created)));
        }
      }
    }, 1000);

    // Changes that send no event at the configured granularity (a group's
    // members moving its rollup, say) still show within a few seconds.
    setInterval(() => {
      if (Array.from(rowMap.values()).some((tr) => ACTIVE.has(tr.dataset.status))) refreshSoon();
    }, LIST_POLL_MS);

    openStream();
  }

  // -- one session ----------------------------------------------------------------------

  function sessionPage() {
    const id = body.dataset.session;
    let eventSeq = Number(body.dataset.eventSeq || 0);
    let status = document.getElementById("status").textContent.trim().replace(/ /g, "_");
    const chart = document.getElementById("chart");
    const chartUrl = base + "/sessions/" + segment(id) + "/history.svg";
    const created = Number(body.dataset.created);

    function render(s) {
      status = s.status;
      const badge = document.getElementById("status");
      setText(badge, statusText(s.status));
      setStatusClass(badge, "", s.status);
      const overall = document.getElementById("overall");
      overall.value = s.percentage;
      setStatusClass(overall, "", s.status);
      setText(document.getElementById("overall-pct"), percent(s.percentage));
      setText(document.getElementById("step"), stepText(s.current_step, s.current_step_number, s.total_steps));
      setText(document.getElementById("eta"), duration(s.eta_seconds));
      setText(document.getElementById("duration"), duration(s.duration_seconds));
      setText(document.getElementById("worker"), s.worker || "");
      setText(document.getElementById("updated"), when(s.updated_at));
      setText(document.getElementById("message"), s.message || "");
      setText(document.getElementById("metadata"), JSON.stringify(sortKeys(s.metadata), null, 2));
      renderSubs(s.sub_operations);
      showActions(s.status);
    }

    function sortKeys(value) {
      if (Array.isArray(value)) return value.map(sortKeys);
      if (value && typeof value === "object") {
        return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]));
      }
      return value;
    }

    function renderSubs(subs) {
      const tbody = document.querySelector("#subs tbody");
      setText(document.getElementById("sub-count"), String(subs.length));
      if (!subs.length) {
        const tr = el("tr", { class: "empty" });
        tr.append(el("td", { colspan: "6" }, "No sub-operations."));
        tbody.replaceChildren(tr);
        return;
      }
      tbody.replaceChildren(...subs.map((sub) => {
        const pct = sub.state === "completed" ? 100 : sub.percentage;
        const tr = el("tr", { "data-sub": sub.id });
        const stateCell = el("td");
        stateCell.append(el("span", { class: "badge sub-" + sub.state }, sub.state));
        const barCell = el("td", { class: "progress-cell" });
        const bar = el("progress", { max: "100", class: "sub-" + sub.state });
        bar.value = pct;
        barCell.append(bar, el("span", { class: "pct" }, percent(pct)));
        tr.append(el("td", {}, sub.name), el("td", { class: "mono" }, sub.id), stateCell, barCell,
          el("td", {}, String(sub.weight)), el("td", {}, sub.error || ""));
        return tr;
      }));
    }

    function showActions(current) {
      const show = {
        pause: current === "initializing" || current === "in_progress",
        resume: current === "paused",
        cancel: ACTIVE.has(current),
      };
      for (const button of document.querySelectorAll("#actions button[data-action]")) {
        button.hidden = !show[button.dataset.action];
      }
    }

    function eventText(data) {
      const parts = [];
      if ("sub_operation_id" in data) {
        parts.push("sub-operation " + data.sub_operation_id);
        if (data.sub_operation_state) parts.push(data.sub_operation_state);
        if (typeof data.sub_operation_percentage === "number") parts.push(percent(data.sub_operation_percentage));
        if (data.sub_operation_error) parts.push(data.sub_operation_error);
        return parts.join(" · ");
      }
      if (data.status) parts.push(statusText(data.status));
      if (typeof data.percentage === "number") parts.push(percent(data.percentage));
      const step = stepText(data.current_step, data.current_step_number, data.total_steps);
      if (step) parts.push(step);
      for (const key of ["error_message", "reason", "result_summary"]) if (data[key]) parts.push(String(data[key]));
      return parts.join(" · ");
    }

    async function refreshEvents() {
      const page = await getJson("/api/sessions/" + segment(id) + "/events?since=" + eventSeq + "&limit=1000");
      const tbody = document.querySelector("#events tbody");
      for (const event of page.events) {
        const tr = el("tr");
        tr.append(el("td", {}, String(event.seq)), el("td", {}, when(event.timestamp)),
          el("td", {}, event.event_type), el("td", {}, eventText(event.data)));
        tbody.prepend(tr);
        eventSeq = event.seq;
      }
    }

    async function refresh() {
      try {
        render(await getJson("/api/sessions/" + segment(id)));
        await refreshEvents();
      } catch (error) {
        console.warn(error);
      }
    }
    const refreshSoon = throttle(refresh, 400);
    const chartSoon = throttle(() => chart.setAttribute("src", chartUrl + "?t=" + Date.now()), 2000);

    const query = new URLSearchParams();
    query.append("session_id", id);
    query.set("since", body.dataset.seq || "0");
    connect(query, {
      progress: () => { refreshSoon(); chartSoon(); },
      resync: () => { refreshSoon(); chartSoon(); },
    });

    setInterval(() => {
      if (ACTIVE.has(status)) setText(document.getElementById("duration"), duration(Date.now() / 1000 - created));
    }, 1000);
    setInterval(() => {
      if (ACTIVE.has(status)) { refreshSoon(); chartSoon(); }
    }, SESSION_POLL_MS);

    const result = document.getElementById("action-result");
    const prompts = {
      cancel: "Cancel this session? A running Celery task is revoked.",
      pause: "Pause this session?",
      resume: "Resume this session?",
    };
    for (const button of document.querySelectorAll("#actions button[data-action]")) {
      button.addEventListener("click", async () => {
        const action = button.dataset.action;
        if (!window.confirm(prompts[action])) return;
        button.disabled = true;
        result.classList.remove("error");
        setText(result, action + "…");
        try {
          const response = await fetch(api + "/api/sessions/" + segment(id) + "/" + action, {
            method: "POST",
            credentials: "same-origin",
            headers: { "Content-Type": "application/json", "X-Requested-With": "celery-progress-mcp", ...csrf },
            body: action === "resume" ? "" : JSON.stringify({ reason: action === "cancel" ? "cancelled from the dashboard" : "paused from the dashboard" }),
          });
          const answer = await response.json();
          if (!response.ok) throw new Error(answer.detail || ("HTTP " + response.status));
          setText(result, "done: " + statusText(answer.session.status));
          refreshSoon();
          chartSoon();
        } catch (error) {
          result.classList.add("error");
          setText(result, String(error.message || error));
        } finally {
          button.disabled = false;
        }
      });
    }
  }

  if (body.dataset.page === "list") listPage();
  else if (body.dataset.page === "session") sessionPage();
})();
