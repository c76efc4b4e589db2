// zto dashboard: polls /dashboard/snapshot and redraws the page. The cards, the chart and
// the table come from that one answer, so they always agree (with several workers and no
// Redis, one worker answers it whole; the page names that worker).
// Everything a client sent (path, user agent...) is written with textContent, never
// as markup. No libraries: the chart is plain SVG drawn here. Whether a request
// succeeded is the server's call (each record's "ok"), never re-derived here.
(function () {
  "use strict";

  const root = document.getElementById("dashboard");
  const PAGE_SIZE = 20;
  const REFRESH_MS = Number(root.dataset.refreshMs) || 5000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  let requests = [];
  let page = 0;
  let timer = null;

  // ---- formatting -----------------------------------------------------------

  const pad = (n) => String(n).padStart(2, "0");

  function clock(seconds) {
    const d = new Date(seconds * 1000);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function duration(ms) {
    if (ms >= 10000) return (ms / 1000).toFixed(1) + " s";
    if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
    if (ms >= 100) return Math.round(ms) + " ms";
    return ms.toFixed(1) + " ms";
  }

  function uptime(seconds) {
    const s = Math.floor(seconds);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + (s % 60) + "s";
    return s + "s";
  }

  const count = (n) => n.toLocaleString("en-US");

  function setText(id, text) {
    $(id).textContent = text;
  }

  // ---- cards ----------------------------------------------------------------

  function renderStats(stats) {
    setText("total-requests", count(stats.total_requests));
    setText("successful-requests", count(stats.successful_requests));
    setText("failed-requests", count(stats.failed_requests));
    const rate = stats.total_requests ? (100 * stats.successful_requests) / stats.total_requests : null;
    setText("success-rate", rate === null ? "–" : (rate === 100 || rate === 0 ? rate.toFixed(0) : rate.toFixed(1)) + "%");
    $("success-meter").style.width = (rate === null ? 0 : rate) + "%";
    setText("average-response", stats.total_requests ? duration(stats.average_response_ms) : "–");
    setText("p95-response", stats.total_requests ? duration(stats.p95_response_ms) : "–");
    setText("in-flight", count(stats.in_flight));
    setText("uptime", uptime(stats.uptime_s));
    setText("last-request", stats.last_request_at ? "last at " + clock(stats.last_request_at) : "none yet");
    setText("worker-line", stats.shared ? "all workers and instances (answered by pid " + stats.pid + ")"
      : stats.workers > 1 ? "worker pid " + stats.pid + " of " + stats.workers + " (partial view)" : "pid " + stats.pid);
    const pid = $("worker-pid");
    if (pid) pid.textContent = String(stats.pid);
    const aside = stats.api_keys_set_aside || [];
    $("keys-aside").hidden = aside.length === 0;
    setText("keys-aside-list", aside.map((k) => k.key + " (" + k.reason + ", back in " + uptime(k.seconds_left) + ")").join(", "));
  }

  // ---- table ----------------------------------------------------------------

  function cell(row, label, text, className) {
    const td = document.createElement("td");
    td.setAttribute("data-label", label);
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function renderTable() {
    const pages = Math.max(1, Math.ceil(requests.length / PAGE_SIZE));
    page = Math.min(page, pages - 1);
    const body = $("requests-body");
    const rows = requests.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE).map((r) => {
      const tr = document.createElement("tr");
      const time = cell(tr, "Time", clock(r.time), "nowrap");
      time.title = new Date(r.time * 1000).toString();
      cell(tr, "Method", r.method);
      cell(tr, "Path", r.path, "path");
      cell(tr, "Model", r.model || "–");
      cell(tr, "Upstream", r.upstream ? r.upstream + (r.fell_back ? " (fallback)" : "") : "–", "nowrap");
      const status = cell(tr, "Status", "");
      const badge = document.createElement("span");
      badge.className = "badge " + (r.ok ? "ok" : "fail");
      badge.textContent = String(r.status);
      status.appendChild(badge);
      cell(tr, "Error", r.error || "–", r.error ? "error-code" : "");
      cell(tr, "Duration", duration(r.duration_ms) + (r.stream ? " (stream)" : ""), "num nowrap");
      cell(tr, "Client IP", r.client_ip, "nowrap");
      cell(tr, "User agent", r.user_agent || "–", "agent");
      return tr;
    });
    body.replaceChildren(...rows);
    $("requests-empty").hidden = requests.length > 0;
    setText("page-info", "Page " + (page + 1) + " of " + pages);
    $("prev-page").disabled = page === 0;
    $("next-page").disabled = page >= pages - 1;
    setText("requests-caption", requests.length
      ? "newest first · " + (page * PAGE_SIZE + 1) + "–" + Math.min(requests.length, (page + 1) * PAGE_SIZE) + " of " + requests.length
      : "the last 100 are kept");
  }

  // ---- chart ----------------------------------------------------------------

  function niceCeiling(value) {
    if (value <= 0) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * power >= value) return step * power;
    }
    return 10 * power;
  }

  function svg(name, attributes, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderChart() {
    const chart = $("chart");
    // Drawn at the chart's real width, so that text keeps its size on any screen.
    const W = Math.max(280, Math.round(chart.getBoundingClientRect().width) || 720);
    const H = 240, left = 64, right = 12, top = 14, bottom = 30;
    chart.setAttribute("viewBox", "0 0 " + W + " " + H);
    const plotW = W - left - right, plotH = H - top - bottom;
    const points = requests.slice().reverse(); // oldest first, left to right
    const nodes = [];
    const max = niceCeiling(Math.max(0, ...points.map((r) => r.duration_ms)));
    for (let i = 0; i <= 4; i++) {
      const y = top + plotH - (plotH * i) / 4;
      nodes.push(svg("line", { x1: left, x2: W - right, y1: y, y2: y, class: "grid" }));
      nodes.push(svg("text", { x: left - 8, y: y + 4, class: "axis", "text-anchor": "end" }, i ? duration((max * i) / 4) : "0"));
    }
    if (!points.length) {
      nodes.push(svg("text", { x: left + plotW / 2, y: top + plotH / 2, class: "axis", "text-anchor": "middle" },
        "No requests yet"));
    }
    const slots = Math.max(points.length, 20);
    const slot = plotW / slots;
    const barWidth = Math.max(1, slot * 0.72);
    const first = slots - points.length; // few requests: they stand on the right, by "newest"
    points.forEach((r, i) => {
      const h = Math.max(r.ok ? 1.5 : 4, (plotH * r.duration_ms) / max); // a fast failure stays visible
      const bar = svg("rect", {
        x: (left + (first + i) * slot + (slot - barWidth) / 2).toFixed(2), y: (top + plotH - h).toFixed(2),
        width: barWidth.toFixed(2), height: h.toFixed(2), rx: Math.min(2, barWidth / 3).toFixed(2),
        class: "bar " + (r.ok ? "ok" : "fail"),
      });
      bar.appendChild(svg("title", {}, clock(r.time) + "  " + r.method + " " + r.path + "  " + r.status + "  " + duration(r.duration_ms)));
      nodes.push(bar);
    });
    if (points.length) {
      const avg = points.reduce((sum, r) => sum + r.duration_ms, 0) / points.length;
      const y = top + plotH - (plotH * avg) / max;
      nodes.push(svg("line", { x1: left, x2: W - right, y1: y, y2: y, class: "avg" }));
    }
    nodes.push(svg("line", { x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, class: "baseline" }));
    nodes.push(svg("text", { x: left, y: H - 8, class: "axis" }, points.length ? "older" : ""));
    nodes.push(svg("text", { x: W - right, y: H - 8, class: "axis", "text-anchor": "end" }, points.length ? "newest" : ""));
    chart.replaceChildren(...nodes);
    chart.setAttribute("data-bars", String(points.length));
    setText("chart-caption", points.length > 1 ? "last " + points.length + " requests, oldest on the left"
      : points.length ? "the only request so far" : "");
  }

  // ---- polling --------------------------------------------------------------

  class Unavailable extends Error {}

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" });
    if (response.status === 401) {
      window.location.assign(root.dataset.loginUrl);
      throw new Error("the dashboard key is needed");
    }
    if (response.status === 503) {
      const body = await response.json().catch(() => ({}));
      if (body.error && body.error.code === "statistics_unavailable") throw new Unavailable("statistics unavailable");
    }
    if (!response.ok) throw new Error("the server answered " + response.status);
    return response.json();
  }

  function setStatus(text, failing) {
    setText("status", text);
    $("live").classList.toggle("failing", Boolean(failing));
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const snapshot = await getJSON(root.dataset.snapshotUrl);
      requests = snapshot.recent;
      renderStats(snapshot.stats);
      renderTable();
      renderChart();
      $("stats-unavailable").hidden = true;
      root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
      setStatus("Updated " + clock(Date.now() / 1000));
    } catch (error) {
      const unavailable = error instanceof Unavailable;
      $("stats-unavailable").hidden = !unavailable;
      setStatus(unavailable ? "Statistics unavailable; retrying" : "Cannot update: " + error.message + "; retrying", true);
    } finally {
      timer = setTimeout(refresh, document.hidden ? REFRESH_MS * 3 : REFRESH_MS);
    }
  }

  let lastWidth = 0;
  window.addEventListener("resize", () => {
    const width = Math.round($("chart").getBoundingClientRect().width);
    if (width !== lastWidth) { lastWidth = width; renderChart(); }
  });
  $("prev-page").addEventListener("click", () => { page = Math.max(0, page - 1); renderTable(); });
  $("next-page").addEventListener("click", () => { page += 1; renderTable(); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  refresh();
})();
