// Shipyard's dashboard: live updates from the server's SSE stream, and actions through the same
// API routes the CLI calls (with the session's CSRF token). No framework, no build step. Every
// text from the server is set as text (textContent), never parsed as markup.
"use strict";

(function () {
  const CSRF_COOKIE = "shipyard_csrf";
  const MAX_LOG_CHARS = 4000000; // what a followed log keeps in the page; older text is cut

  function csrfToken() {
    for (const part of document.cookie.split(";")) {
      const [name, ...rest] = part.trim().split("=");
      if (name === CSRF_COOKIE) return decodeURIComponent(rest.join("="));
    }
    return "";
  }

  function notice(text, isError) {
    const box = document.getElementById("notice");
    if (!box) return;
    box.textContent = text;
    box.classList.toggle("error", Boolean(isError));
  }

  // One API call: JSON in and out; a refusal throws with the server's own message.
  async function api(method, path, body) {
    const headers = { Accept: "application/json", "X-CSRF-Token": csrfToken() };
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!response.ok) {
      const message = data && data.error ? data.error.message : `${response.status} ${response.statusText}`;
      const failure = new Error(message);
      failure.status = response.status;
      throw failure;
    }
    return data;
  }
  window.shipyardApi = api;

  // Values a button's request body takes from the page: data-body is JSON; data-body-from
  // names a form whose fields fill it in (checked boxes marked data-list make a list).
  function bodyOf(button) {
    const body = button.dataset.body ? JSON.parse(button.dataset.body) : {};
    const formId = button.dataset.bodyFrom;
    if (formId) {
      const form = document.getElementById(formId);
      const data = new FormData(form);
      for (const [key, value] of data.entries()) {
        if (key === "csrf_token") continue;
        if (form.querySelector(`input[name="${CSS.escape(key)}"][data-list]`)) {
          (body[key] = body[key] || []).push(value);
        } else if (value !== "") {
          body[key] = value;
        }
      }
      for (const box of form.querySelectorAll("input[type=checkbox][data-flag]")) {
        body[box.name] = box.checked;
      }
    }
    return body;
  }

  async function act(button) {
    const [method, path] = button.dataset.action.split(" ");
    const body = bodyOf(button);
    const needed = button.dataset.needsList;
    if (needed && !(body[needed] && body[needed].length)) {
      notice("Choose at least one instance first.", true);
      return;
    }
    const question = button.dataset.confirm;
    if (question && !window.confirm(question)) return;
    button.disabled = true;
    notice(`${button.textContent.trim()}…`, false);
    try {
      const answer = await api(method, path, method === "GET" ? undefined : body);
      const then = button.dataset.then || "";
      if (then === "rollout" && answer && answer.id) {
        window.location.assign(`/rollouts/${encodeURIComponent(answer.id)}`);
        return;
      }
      if (then === "reload") {
        window.location.reload();
        return;
      }
      if (then === "show" && answer) {
        const target = document.getElementById(button.dataset.showIn);
        if (target) renderAnswer(target, answer);
      }
      notice(button.dataset.done || "Done.", false);
    } catch (failure) {
      notice(`Refused: ${failure.message}`, true);
    } finally {
      button.disabled = false;
    }
  }

  // A plan preview: its waves and what each instance would do, as a table built from text.
  function renderAnswer(target, answer) {
    target.replaceChildren();
    if (answer && answer.waves) {
      answer.waves.forEach((wave, index) => {
        const heading = document.createElement("h3");
        heading.textContent = `Wave ${index + 1}`;
        target.append(heading);
        const list = document.createElement("ul");
        for (const step of wave) {
          const item = document.createElement("li");
          item.textContent = `${step.instance}: ${step.action}`;
          list.append(item);
        }
        target.append(list);
      });
      if (!answer.waves.length) target.textContent = "Nothing to deploy: every chosen instance is current.";
      return;
    }
    const pre = document.createElement("pre");
    pre.textContent = JSON.stringify(answer, null, 2);
    target.append(pre);
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) {
      event.preventDefault();
      act(button);
    }
    const opener = event.target.closest("[data-select-all]");
    if (opener) {
      const form = document.getElementById(opener.dataset.selectAll);
      for (const box of form.querySelectorAll("input[data-list]:not([disabled])")) box.checked = opener.checked;
    }
  });

  // Live status: a cell with data-live="INSTANCE" shows the last phase or result of it.
  const SIGNS = { success: "✓", failed: "✗", in_progress: "⟳", skipped: "↷", pending: "…" };
  function setStatus(cell, status, detail) {
    cell.replaceChildren();
    const span = document.createElement("span");
    span.className = `status s-${status.replace(/[ _]/g, "-")}`;
    const sign = document.createElement("span");
    sign.setAttribute("aria-hidden", "true");
    sign.textContent = SIGNS[status] || "·";
    span.append(sign, ` ${status}${detail ? ` (${detail})` : ""}`);
    cell.append(span);
    cell.dataset.status = status;
  }

  function onEvent(data) {
    if (data.instance) {
      for (const cell of document.querySelectorAll(`[data-live="${CSS.escape(data.instance)}"]`)) {
        if (data.phase === "finished") setStatus(cell, data.result || "finished", "");
        else if (!data.phase.startsWith("rollout-") && !["health", "drift", "artifact", "host-error"].includes(data.phase)) {
          setStatus(cell, "in_progress", data.phase);
        }
      }
      if (data.deployment_id || data.phase === "finished") onStep(data);
    }
    if (data.phase === "rollout-finished") {
      for (const cell of document.querySelectorAll(`[data-rollout-status="${CSS.escape(data.rollout_id || "")}"]`)) {
        setStatus(cell, data.result || "finished", "");
      }
      for (const button of document.querySelectorAll(`[data-while-running="${CSS.escape(data.rollout_id || "")}"]`)) {
        button.disabled = true;
      }
      if (document.body.dataset.rollout === data.rollout_id) {
        // Its stream ends here; the browser would only open it again.
        if (window.shipyardEvents) window.shipyardEvents.close();
        scheduleRefresh();
      }
    }
    if (document.body.dataset.refresh !== undefined) scheduleRefresh();
    const counter = document.getElementById("events-seen");
    if (counter) counter.textContent = String(Number(counter.textContent || "0") + 1);
  }

  // The rollout grid: a row per instance (made when its first event comes), a cell per step;
  // a step's cell shows how long it took once the next one begins.
  const lastStep = new Map();
  function gridRow(instance, host) {
    const table = document.querySelector("table.grid");
    if (!table) return null;
    let row = table.querySelector(`tr[data-row="${CSS.escape(instance)}"]`);
    if (row) return row;
    row = document.createElement("tr");
    row.dataset.row = instance;
    const head = document.createElement("th");
    head.scope = "row";
    const link = document.createElement("a");
    link.href = `/instances/${encodeURIComponent(instance)}`;
    link.textContent = instance;
    head.append(link);
    const hostCell = document.createElement("td");
    hostCell.textContent = host || "—";
    row.append(head, hostCell);
    for (const step of JSON.parse(table.dataset.steps)) {
      const cell = document.createElement("td");
      cell.className = "cell";
      cell.dataset.step = `${instance}|${step}`;
      cell.textContent = "·";
      row.append(cell);
    }
    const reason = document.createElement("td");
    reason.dataset.reason = instance;
    row.append(reason);
    table.tBodies[0].append(row);
    logBox(instance);
    return row;
  }

  function logBox(instance) {
    const list = document.getElementById("logs");
    if (!list) return null;
    let box = list.querySelector(`details[data-log-of="${CSS.escape(instance)}"]`);
    if (box) return box;
    box = document.createElement("details");
    box.dataset.logOf = instance;
    const summary = document.createElement("summary");
    summary.textContent = instance;
    const pre = document.createElement("pre");
    pre.className = "log";
    pre.tabIndex = 0;
    pre.setAttribute("aria-label", `Output of ${instance}`);
    pre.dataset.logPre = "";
    box.append(summary, pre);
    box.addEventListener("toggle", () => { if (box.open) followLog(pre); });
    list.append(box);
    return box;
  }

  function onStep(data) {
    if (data.phase === "finished") {
      for (const reason of document.querySelectorAll(`[data-reason="${CSS.escape(data.instance)}"]`)) {
        reason.textContent = data.result === "success" ? "" : (data.detail || "");
        reason.classList.add("reason");
      }
    }
    const row = gridRow(data.instance, data.host);
    if (!row) return;
    const at = Date.parse(data.at);
    const cell = row.querySelector(`[data-step="${CSS.escape(`${data.instance}|${data.phase}`)}"]`);
    const before = lastStep.get(data.instance);
    if (before && before.cell !== cell && before.cell.dataset.done !== "1") {
      before.cell.textContent = `${Math.max(0, (at - before.at) / 1000).toFixed(1)} s`;
      before.cell.dataset.done = "1";
    }
    if (cell) {
      if (data.phase === "finished") setStatus(cell, data.result || "finished", "");
      else cell.textContent = "running";
      lastStep.set(data.instance, { cell, at });
    }
    const box = logBox(data.instance);
    const pre = box && box.querySelector("pre");
    if (pre && data.deployment_id && !pre.dataset.deployment) {
      pre.dataset.deployment = data.deployment_id;
      if (box.open) followLog(pre);
    }
  }

  // Pages that summarise (the overview) fetch themselves again, at most once a second.
  let refreshTimer = null;
  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const region of document.querySelectorAll("[data-region]")) {
        const next = fresh.querySelector(`[data-region="${CSS.escape(region.dataset.region)}"]`);
        if (next) region.replaceWith(next);
      }
    }, 1000);
  }

  function followEvents() {
    const query = document.body.dataset.stream;
    if (query === undefined) return;
    const source = new EventSource(`/api/events/stream${query ? `?${query}` : ""}`);
    const handle = (message) => {
      try { onEvent(JSON.parse(message.data)); } catch (e) { /* a frame that is not an event */ }
    };
    for (const phase of ["queued", "uploading", "installing", "switching", "restarting",
      "health-checking", "soaking", "draining", "rolling-back", "disabling", "deleting",
      "finished", "artifact", "health", "drift", "host-error", "rollout-started",
      "rollout-cancelling", "rollout-finished"]) {
      source.addEventListener(phase, handle);
    }
    source.addEventListener("resume", (message) => {
      // Fell behind: the browser reconnects after the id it last saw (Last-Event-ID).
      notice("Catching up with the event stream…", false);
    });
    window.shipyardEvents = source;
  }

  // A deployment's log: each step's output as it is stored, appended as text.
  function followLog(pre) {
    const id = pre.dataset.deployment;
    if (!id || pre.dataset.following) return;
    pre.dataset.following = "1";
    const source = new EventSource(`/api/deployments/${encodeURIComponent(id)}/log/stream`);
    let pending = "";
    let scheduled = false;
    const flush = () => {
      scheduled = false;
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(document.createTextNode(pending));
      pending = "";
      if (pre.textContent.length > MAX_LOG_CHARS) {
        pre.textContent = `[earlier output cut]\n${pre.textContent.slice(-MAX_LOG_CHARS / 2)}`;
      }
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    };
    source.addEventListener("step", (message) => {
      const step = JSON.parse(message.data);
      const status = step.exit_status === null ? "" : ` (exit ${step.exit_status})`;
      pending += `── ${step.step} on ${step.host}${status}\n${step.output}${step.output.endsWith("\n") || !step.output ? "" : "\n"}`;
      if (!scheduled) {
        scheduled = true;
        requestAnimationFrame(flush);
      }
    });
    source.addEventListener("end", (message) => {
      const end = JSON.parse(message.data);
      pending += `── ${end.status}${end.error ? `: ${end.error}` : ""}\n`;
      flush();
      source.close();
      pre.dataset.over = end.status;
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const token = csrfToken();
    for (const field of document.querySelectorAll("[data-csrf-form] input[name=csrf_token]")) field.value = token;
    followEvents();
    for (const box of document.querySelectorAll("details[data-log-of]")) {
      box.addEventListener("toggle", () => { if (box.open) followLog(box.querySelector("pre")); });
    }
  });
})();

// ── Secrets shown once (the admin page): a button with data-reveal="METHOD /api/..." sends
// its form (data-body-from) like data-action does and shows one field of the answer
// (data-reveal-field: a new token, a webhook's signing secret) as text in data-show-in. The
// page never has it again: a reload shows only the token's prefix.
(function () {
  function formBody(form) {
    const body = {};
    if (!form) return body;
    for (const [key, value] of new FormData(form).entries()) {
      if (key === "csrf_token") continue;
      if (form.querySelector(`input[name="${CSS.escape(key)}"][data-list]`)) {
        (body[key] = body[key] || []).push(value);
      } else if (value !== "") {
        body[key] = value;
      }
    }
    for (const box of form.querySelectorAll("input[type=checkbox][data-flag]")) body[box.name] = box.checked;
    return body;
  }

  function say(text, isError) {
    const box = document.getElementById("notice");
    if (!box) return;
    box.textContent = text;
    box.classList.toggle("error", Boolean(isError));
  }

  async function reveal(button) {
    const [method, path] = button.dataset.reveal.split(" ");
    const form = document.getElementById(button.dataset.bodyFrom);
    if (form && !form.reportValidity()) return;
    const target = document.getElementById(button.dataset.showIn);
    button.disabled = true;
    try {
      const answer = await window.shipyardApi(method, path, formBody(form));
      const value = answer ? answer[button.dataset.revealField] : null;
      if (target) {
        target.replaceChildren();
        if (value) {
          const label = document.createElement("p");
          label.textContent = button.dataset.revealLabel || "Shown this once:";
          const code = document.createElement("code");
          code.className = "secret-once";
          code.tabIndex = 0;
          code.textContent = value;
          const after = document.createElement("p");
          after.className = "muted";
          after.textContent = "It is not stored in a form anyone can read back: reloading this page shows only its prefix.";
          target.append(label, code, after);
        }
      }
      if (form) form.reset();
      say("Done. Reload the page to see it in the list.", false);
    } catch (failure) {
      say(`Refused: ${failure.message}`, true);
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-reveal]");
    if (button) {
      event.preventDefault();
      reveal(button);
    }
  });
})();
