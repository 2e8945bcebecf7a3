// corral dashboard: reads api/* (relative: the page works under any mount prefix), draws with Chart.js,
// never puts event text into HTML (every string from the journal goes through textContent).
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const charts = {};
const COLORS = { allow: "#2e8b57", prompt: "#d98e04", forbidden: "#c0392b", deny: "#c0392b",
  asked: "#d98e04", sandbox: "#6a4c93" };

function filters() {
  const p = new URLSearchParams();
  for (const el of document.querySelectorAll("#filters [name]")) {
    if (el.value) p.set(el.name, el.value);
  }
  return p;
}

async function api(path, params) {
  const r = await fetch(path + (params ? "?" + params.toString() : ""), { headers });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function pick(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function table(id, rows, onClick) {
  const t = document.getElementById(id);
  t.replaceChildren();
  if (!rows.length) { t.append(el("tr")); t.rows[0].append(el("td", "none")); return; }
  for (const [k, v, drill] of rows) {
    const tr = el("tr");
    const td = el("td");
    if (onClick && drill) { const a = el("a", k); a.onclick = () => onClick(drill, k); td.append(a); }
    else td.textContent = k;
    tr.append(td, el("td", v, "n"));
    t.append(tr);
  }
}

function entries(obj) { return Object.entries(obj || {}); }

function chart(id, config) {
  if (charts[id]) charts[id].destroy();
  charts[id] = new Chart(document.getElementById(id), config);
}

async function drill(query, title) {
  const p = filters();
  for (const [k, v] of new URLSearchParams(query)) p.set(k, v);
  const box = document.getElementById("drill");
  box.hidden = false;
  document.getElementById("drill-title").textContent = "sessions behind: " + title;
  document.getElementById("timeline").textContent = "";
  const data = await api("api/sessions", p);
  const t = document.getElementById("t-sessions");
  t.replaceChildren();
  const head = el("tr");
  const cols = ["session", "team", "agent", "repository", "events", "first", "last"];
  if (data.sessions.some((s) => "user" in s)) cols.splice(2, 0, "user");
  for (const c of cols) head.append(el("th", c));
  t.append(head);
  for (const s of data.sessions) {
    const tr = el("tr");
    tr.dataset.session = s.session_id;
    const a = el("a", s.session_id);
    a.onclick = () => timeline(s.session_id);
    const cells = [a, el("td", s.team)];
    if (cols.includes("user")) cells.push(el("td", s.user));
    cells.push(el("td", s.agent), el("td", s.repo), el("td", s.count, "n"), el("td", s.first),
      el("td", s.last));
    const first = el("td"); first.append(a);
    tr.append(first, ...cells.slice(1));
    t.append(tr);
  }
  document.body.dataset.drilled = String(data.sessions.length);
  box.scrollIntoView();
}

async function timeline(sid) {
  const r = await fetch("api/session/" + encodeURIComponent(sid), { headers });
  document.getElementById("timeline").textContent = await r.text();
  document.body.dataset.timeline = sid;
}

async function load() {
  document.body.dataset.ready = "0";
  const err = document.getElementById("error");
  err.textContent = "";
  try {
    const p = filters();
    const [s, ts] = await Promise.all([api("api/stats", p), api("api/series", p)]);
    for (const b of document.querySelectorAll("[data-num]")) {
      const v = pick(s, b.dataset.num);
      b.textContent = v === undefined || v === null ? "–" : String(v);
    }
    const d = (key, label, color) => ({ label, data: ts.series[key], backgroundColor: color,
      borderColor: color });
    chart("c-time", { type: "bar", data: { labels: ts.labels, datasets: [
      d("decision:allow", "allowed", COLORS.allow), d("decision:prompt", "prompted", COLORS.prompt),
      d("decision:forbidden", "forbidden", COLORS.forbidden)] },
      options: { animation: false, maintainAspectRatio: false,
        scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } } });
    chart("c-blocks", { type: "line", data: { labels: ts.labels, datasets: [
      d("net:deny", "network denied", COLORS.deny), d("net:asked", "network asked", COLORS.asked),
      d("sandbox:sandbox_denied", "sandbox denials", COLORS.sandbox)] },
      options: { animation: false, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } } });
    const src = entries(s.decisions.by_source);
    chart("c-source", { type: "bar", data: { labels: src.map(([k]) => k), datasets:
      ["allow", "prompt", "forbidden"].map((c) => ({ label: c, data: src.map(([, v]) => v[c]),
        backgroundColor: COLORS[c] })) },
      options: { animation: false, maintainAspectRatio: false, indexAxis: "y",
        scales: { x: { stacked: true }, y: { stacked: true } } } });
    const kinds = entries(s.tools.by_kind);
    chart("c-kind", { type: "doughnut", data: { labels: kinds.map(([k]) => k), datasets: [{
      data: kinds.map(([, v]) => v), backgroundColor: ["#4062bb", "#59c3c3", "#f45b69", "#ebebeb"] }] },
      options: { animation: false, maintainAspectRatio: false } });
    table("t-denied", s.top_denied_domains.map((x) => [x.domain, x.count,
      "metric=net&k1=deny&k2=" + encodeURIComponent(x.domain)]), drill);
    table("t-asked", s.top_asked_domains.map((x) => [x.domain, x.count,
      "metric=net&k4=asked&k2=" + encodeURIComponent(x.domain)]), drill);
    table("t-denials", entries(s.sandbox.denials_by_kind).map(([k, v]) => [k, v,
      "metric=sandbox&k1=sandbox_denied&k2=" + encodeURIComponent(k)]), drill);
    table("t-mcp", entries(s.mcp_servers).map(([k, v]) => [k, v,
      "metric=mcp&k1=" + encodeURIComponent(k)]), drill);
    table("t-agents", entries(s.agents).map(([k, v]) => [k, v]));
    table("t-grants", entries(s.grants.by_scope).map(([k, v]) => [k, v,
      "metric=grant&k1=" + encodeURIComponent(k)]), drill);
    table("t-reviewer", entries(s.reviewer).map(([k, v]) => [k.replace("_", " "), v]));
    table("t-triage", entries(s.triage).map(([k, v]) => [k, v]));
    const sug = document.getElementById("t-suggest");
    sug.replaceChildren();
    for (const x of s.suggestions) {
      const tr = el("tr");
      const code = el("code", x.kind === "prefix_rule" ? x.rule : x.config);
      const td = el("td"); td.append(code);
      tr.append(td, el("td", "asked " + x.count + "×, always approved", "n"));
      sug.append(tr);
    }
    if (!s.suggestions.length) sug.append(el("tr", "nothing to suggest yet"));
    document.body.dataset.ready = "1";
  } catch (e) {
    err.textContent = e.message;
    document.body.dataset.ready = "error";
  }
}

const GROUP_COLS = [["sessions", "sessions"], ["active users", "active_users"],
  ["tool calls", "tool_calls"], ["prompted", "decisions.prompt"],
  ["forbidden", "decisions.forbidden"], ["network denied", "network.deny"],
  ["network asked", "network.ask"], ["sandbox denials", "sandbox.outcomes.sandbox_denied"]];

async function loadGroups() {
  document.body.dataset.groups = "0";
  const by = document.getElementById("by").value;
  const p = filters();
  p.set("by", by);
  const s = await api("api/stats", p);
  const t = document.getElementById("t-groups");
  t.replaceChildren();
  const head = el("tr");
  head.append(el("th", by));
  for (const [label] of GROUP_COLS) head.append(el("th", label));
  t.append(head);
  for (const [name, g] of Object.entries(s.groups)) {
    const tr = el("tr");
    tr.dataset.group = name;
    const td = el("td");
    if (by === "user") td.textContent = name;
    else {  // narrow the whole page to this group
      const a = el("a", name);
      a.onclick = () => {
        const sel = document.querySelector(`select[name=${by}]`);
        if (sel) { sel.value = name; load().then(loadGroups); }
      };
      td.append(a);
    }
    tr.append(td);
    for (const [, path] of GROUP_COLS) tr.append(el("td", pick(g, path) ?? 0, "n"));
    t.append(tr);
  }
  document.body.dataset.groups = "1";
}

async function init() {
  const o = await api("api/options");
  for (const [name, values] of [["team", o.teams], ["agent", o.agents], ["repo", o.repos]]) {
    const sel = document.querySelector(`select[name=${name}]`);
    for (const v of values) sel.append(new Option(v, v));
  }
  if (o.investigator) {
    document.getElementById("scope").textContent = "investigator view (per-user)";
    document.getElementById("by").append(new Option("user", "user"));
  }
  document.getElementById("by").onchange = loadGroups;
  for (const b of document.querySelectorAll("[data-drill]")) {
    b.onclick = () => drill(b.dataset.drill, b.nextElementSibling.textContent);
  }
  document.getElementById("filters").onsubmit = (ev) => {
    ev.preventDefault();
    load().then(loadGroups);
  };
  await load();
  await loadGroups();  // after the overview: the page is usable first
}

init().catch((e) => {  // a refused token (the server's dashboard) fails the first request
  document.getElementById("error").textContent = e.message;
  document.body.dataset.ready = "error";
});
