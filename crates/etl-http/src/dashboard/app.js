// The ETL dashboard: one tenant's figures from GET /api/v1/etl/stats and its
// newest jobs from GET /api/v1/etl/jobs, refreshed every 10 s.
//
// The token is asked for once and kept in sessionStorage only: a reload of
// the tab keeps it, a new tab asks again, and it never goes into the URL or
// localStorage. Every value from the API is written with textContent, never
// parsed as HTML. No request leaves this origin.
"use strict";

const TOKEN_KEY = "etl.dashboard.token";
const REFRESH_MS = 10000;
const RAW_STATUSES = ["pending", "processing", "completed", "failed", "skipped"];
const JOB_STATUSES = ["pending", "queued", "running", "completed", "failed", "cancelled"];
const numbers = new Intl.NumberFormat("en-US");
let timer = null;

const $ = (id) => document.getElementById(id);

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/// What the token says about itself (for display only: the server checks it).
function claims(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch (_) {
    return null;
  }
}

function notice(text, kind) {
  const box = $("notice");
  box.textContent = text;
  box.className = kind || "";
  box.hidden = !text;
}

function showSignIn(message) {
  if (timer) clearInterval(timer);
  timer = null;
  $("board").hidden = true;
  $("who").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  notice(message || "", message ? "error" : "");
  $("token").value = "";
  $("token").focus();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  showSignIn(message);
}

class Refused extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(path, options) {
  const response = await fetch(path, {
    ...(options || {}),
    headers: { Authorization: "Bearer " + token(), "Content-Type": "application/json" },
    cache: "no-store",
    credentials: "omit",
  });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    throw new Refused(response.status, (body && body.detail) || response.statusText);
  }
  return body;
}

function count(n) {
  return numbers.format(n || 0);
}

function duration(seconds) {
  const s = Math.round(seconds);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

/// A span of time as a person reads it: minutes under an hour, hours
/// under two days, days beyond.
function span(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const hours = seconds / 3600;
  if (hours < 1) return Math.round(seconds / 60) + " min";
  if (hours < 48) return (Math.round(hours * 10) / 10) + " h";
  return (Math.round(hours / 2.4) / 10) + " days";
}

const FLOW_FIGURES = [
  ["work_items", "lead_time_s", "Lead time (created → resolved)"],
  ["work_items", "cycle_time_s", "Cycle time (in progress → resolved)"],
  ["pull_requests", "coding_time_s", "Coding time (first commit → PR opened)"],
  ["pull_requests", "pickup_time_s", "Pickup time (PR opened → first review)"],
  ["pull_requests", "review_time_s", "Review time (first review → merged)"],
];

/// The Flow card: percentiles of each figure over the last 30 days.
function flow(metrics) {
  const body = $("flow").tBodies[0];
  body.replaceChildren();
  for (const [side, figure, label] of FLOW_FIGURES) {
    const p = metrics[side][figure];
    const row = el("tr", null, { "data-figure": figure });
    row.append(el("th", label, { scope: "row" }));
    for (const q of ["p50", "p85", "p95"]) {
      row.append(el("td", span(p[q]), { class: "n", "data-seconds": p[q] === null ? "" : String(p[q]) }));
    }
    body.append(row);
  }
  const items = metrics.work_items.count;
  const pulls = metrics.pull_requests.count;
  $("flow-summary").textContent = count(items) + (items === 1 ? " work item" : " work items") + " resolved and "
    + count(pulls) + (pulls === 1 ? " pull request" : " pull requests") + " merged in the last 30 days";
}

/// A kind × status table: one row per kind, a column per status and a total.
function matrix(table, cells, statuses, kindLabel) {
  const head = table.tHead;
  head.replaceChildren();
  const header = el("tr");
  header.append(el("th", kindLabel, { scope: "col" }));
  for (const status of statuses) header.append(el("th", status, { scope: "col", class: "n" }));
  header.append(el("th", "total", { scope: "col", class: "n" }));
  head.append(header);
  const body = table.tBodies[0];
  body.replaceChildren();
  const kinds = Object.keys(cells).sort();
  if (kinds.length === 0) {
    const row = el("tr");
    row.append(el("td", "None yet", { colspan: String(statuses.length + 2) }));
    body.append(row);
    return;
  }
  for (const kind of kinds) {
    const row = el("tr");
    row.append(el("th", kind, { scope: "row" }));
    let total = 0;
    for (const status of statuses) {
      const n = cells[kind][status] || 0;
      total += n;
      const cell = el("td", count(n), {
        class: "n " + status + (n === 0 ? " zero" : ""),
        "data-kind": kind,
        "data-status": status,
        "data-value": String(n),
      });
      row.append(cell);
    }
    row.append(el("td", count(total), { class: "n", "data-kind": kind, "data-status": "total", "data-value": String(total) }));
    body.append(row);
  }
}

function failures(groups) {
  const body = $("failures").tBodies[0];
  body.replaceChildren();
  $("no-failures").hidden = groups.length > 0;
  for (const group of groups) {
    const row = el("tr", null, { "data-entity": group.entity_type, "data-code": group.code || "" });
    row.append(el("td", group.entity_type));
    row.append(el("td", group.code || "(no code)"));
    row.append(el("td", count(group.count), { class: "n failed", "data-value": String(group.count) }));
    row.append(el("td", group.sample || "—"));
    const action = el("td");
    const what = group.code
      ? count(group.count) + " failed " + group.entity_type + " records with code " + group.code
      : "every failed " + group.entity_type + " record";
    const button = el("button", "Replay", { type: "button", "aria-label": "Replay " + what });
    button.addEventListener("click", () => replay(button, group));
    action.append(button);
    row.append(action);
    body.append(row);
  }
}

async function replay(button, group) {
  button.disabled = true;
  const body = { entity_type: group.entity_type };
  if (group.code) body.error_code = group.code;
  try {
    const answer = await api("/api/v1/etl/raw-data/replay", { method: "POST", body: JSON.stringify(body) });
    $("status").textContent =
      "Replay queued " + count(answer.records) + " " + group.entity_type + " records in " +
      count(answer.job_ids.length) + (answer.job_ids.length === 1 ? " job." : " jobs.");
    await refresh();
  } catch (error) {
    handle(error);
  } finally {
    button.disabled = false;
  }
}

function chart(minutes) {
  const svg = $("chart");
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  const width = 600;
  const height = 160;
  const peak = Math.max(0, ...minutes.map((m) => m.rows));
  const top = Math.max(1, peak);
  const slot = width / Math.max(1, minutes.length);
  const base = document.createElementNS(ns, "line");
  for (const [name, value] of Object.entries({ x1: 0, y1: height - 14, x2: width, y2: height - 14 })) {
    base.setAttribute(name, value);
  }
  svg.append(base);
  minutes.forEach((minute, i) => {
    const bar = document.createElementNS(ns, "rect");
    const h = ((height - 28) * minute.rows) / top;
    bar.setAttribute("x", (i * slot + 1).toFixed(1));
    bar.setAttribute("width", Math.max(1, slot - 2).toFixed(1));
    bar.setAttribute("y", (height - 14 - h).toFixed(1));
    bar.setAttribute("height", h.toFixed(1));
    const title = document.createElementNS(ns, "title");
    title.textContent = new Date(minute.minute).toLocaleTimeString() + ": " + count(minute.rows) + " rows";
    bar.append(title);
    svg.append(bar);
  });
  const label = (text, x, anchor) => {
    const node = document.createElementNS(ns, "text");
    node.setAttribute("x", x);
    node.setAttribute("y", height - 2);
    node.setAttribute("text-anchor", anchor);
    node.textContent = text;
    svg.append(node);
  };
  if (minutes.length > 0) {
    label(new Date(minutes[0].minute).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }), 2, "start");
    label("now", width - 2, "end");
  }
  const peakLabel = document.createElementNS(ns, "text");
  peakLabel.setAttribute("x", 2);
  peakLabel.setAttribute("y", 10);
  peakLabel.textContent = "peak " + count(peak) + "/min";
  svg.append(peakLabel);
  const total = minutes.reduce((sum, m) => sum + m.rows, 0);
  $("chart-summary").textContent =
    count(total) + " rows loaded in the last hour" + (total > 0 ? ", at most " + count(peak) + " in one minute." : ".");
}

function resultOf(job) {
  if (job.error_details && job.error_details.code) {
    return job.error_details.code + (job.error_details.message ? ": " + job.error_details.message : "");
  }
  const r = job.result;
  if (!r) return "—";
  const parts = [];
  for (const key of ["transformed", "inserted", "updated", "unchanged", "failed"]) {
    if (typeof r[key] === "number") parts.push(count(r[key]) + " " + key);
  }
  return parts.length ? parts.join(", ") : JSON.stringify(r).slice(0, 120);
}

function recent(jobs) {
  const body = $("recent").tBodies[0];
  body.replaceChildren();
  for (const job of jobs) {
    const row = el("tr", null, { "data-job": String(job.id) });
    row.append(el("td", "#" + job.id));
    row.append(el("td", job.job_type));
    row.append(el("td", job.entity_type));
    row.append(el("td", job.status, { class: job.status }));
    row.append(el("td", resultOf(job)));
    row.append(el("td", job.completed_at ? new Date(job.completed_at).toLocaleString() : "—"));
    body.append(row);
  }
}

function handle(error) {
  if (error instanceof Refused && error.status === 401) {
    signOut("The token was refused (" + error.message + "). Paste a valid token to go on.");
  } else if (error instanceof Refused && error.status === 403) {
    signOut("This token's tenant may not use the service (" + error.message + ").");
  } else if (error instanceof Refused) {
    notice("The service answered " + error.status + ": " + error.message + ". Retrying shortly.", "error");
  } else {
    notice("Cannot reach the service (" + error.message + "). Retrying shortly.", "error");
  }
}

async function refresh() {
  if (!token()) return showSignIn();
  try {
    const [stats, jobs, metrics] = await Promise.all([
      api("/api/v1/etl/stats"),
      api("/api/v1/etl/jobs?order=desc&limit=50"),
      api("/api/v1/etl/flow-metrics"),
    ]);
    notice("");
    matrix($("raw-records"), stats.raw_records, RAW_STATUSES, "entity type");
    matrix($("jobs"), stats.jobs, JOB_STATUSES, "job type");
    $("outbox-pending").textContent = count(stats.outbox.pending);
    $("outbox-noun").textContent = stats.outbox.pending === 1 ? "job" : "jobs";
    $("outbox-age").textContent = stats.outbox.pending > 0 ? duration(stats.outbox.oldest_pending_age_s) : "—";
    const ages = stats.job_ages;
    $("job-waiting-age").textContent = ages.oldest_waiting_s === null ? "—" : duration(ages.oldest_waiting_s);
    $("job-running-age").textContent = ages.oldest_running_s === null ? "—" : duration(ages.oldest_running_s);
    failures(stats.failures);
    chart(stats.loaded_per_minute);
    flow(metrics);
    recent(jobs);
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString() + "; refreshes every 10 s.";
    $("board").hidden = false;
    $("sign-in").hidden = true;
  } catch (error) {
    handle(error);
  }
}

function start() {
  const jwt = token();
  if (!jwt) return showSignIn();
  const c = claims(jwt);
  const who = $("who");
  who.textContent = c
    ? "Tenant " + c.tenant_id + " · " + c.sub + (c.exp ? " · token valid until " + new Date(c.exp * 1000).toLocaleString() : "")
    : "";
  who.hidden = !c;
  $("sign-out").hidden = false;
  $("sign-in").hidden = true;
  refresh();
  if (timer) clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim().replace(/^Bearer\s+/i, "");
    if (!value) return showSignIn("Paste a token first.");
    if (value.split(".").length !== 3) return showSignIn("That is not a token: a JWT has three parts separated by dots.");
    sessionStorage.setItem(TOKEN_KEY, value);
    notice("");
    start();
  });
  $("sign-out").addEventListener("click", () => signOut());
  start();
});
