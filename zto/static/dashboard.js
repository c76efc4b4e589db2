// zto dashboard: polls /dashboard/snapshot and redraws the page. The cards, the chart and
// the table come from that one answer, so they always agree (with several workers and no
// Redis, one worker answers it whole; the page names that worker).
// Everything a client sent (path, user agent...) is written with textContent, never
// as markup. No libraries: the chart is plain SVG drawn here. Whether a request
// succeeded is the server's call (each record's "ok"), never re-derived here. Rows
// come newest first by the time each request arrived, which is the time shown;
// requests still running ("in_progress") are listed, not charted.
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
      if (r.in_progress) {
        tr.className = "in-progress";
        badge.className = "badge pending";
        badge.textContent = r.stream ? "streaming" : "in progress";
      } else {
        badge.className = "badge " + (r.ok ? "ok" : "fail");
        badge.textContent = String(r.status);
      }
      status.appendChild(badge);
      cell(tr, "Error", r.error || "–", r.error ? "error-code" : "");
      cell(tr, "Duration", duration(r.duration_ms) + (r.in_progress ? " so far" : r.stream ? " (stream)" : ""),
        "num nowrap");
      cell(tr, "Client IP", r.client_ip, "nowrap");
      // Long user agents are cut to two lines; the whole one is the cell's title (text, as ever).
      const agent = cell(tr, "User agent", "", "agent");
      const clamped = document.createElement("span");
      clamped.className = "clamp";
      clamped.textContent = r.user_agent || "–";
      agent.appendChild(clamped);
      if (r.user_agent) agent.title = r.user_agent;
      return tr;
    });
    body.replaceChildren(...rows);
    $("requests-empty").hidden = requests.length > 0;
    setText("page-info", "Page " + (page + 1) + " of " + pages);
    $("prev-page").disabled = page === 0;
    $("next-page").disabled = page >= pages - 1;
    setText("requests-caption", requests.length
      ? "newest first by arrival · " + (page * PAGE_SIZE + 1) + "–" + Math.min(requests.length, (page + 1) * PAGE_SIZE) + " of " + requests.length
      : "the last 100 are kept");
  }

  // ---- chart ----------------------------------------------------------------

  // The axis: ticks at a round step (1, 2 or 5 times a power of ten), at most six of
  // them, the top one the first at or above the slowest request, so the bars fill the
  // chart. Every label has the same unit and the same number of decimals.
  function linearTicks(max) {
    max = Math.max(max, 1);
    let power = Math.pow(10, Math.floor(Math.log10(max)) - 1);
    for (;;) {
      for (const m of [1, 2, 5]) {
        const step = m * power;
        const n = Math.ceil(max / step - 1e-9);
        if (n <= 6) {
          const ticks = [];
          for (let i = 0; i <= n; i++) ticks.push(i * step);
          return ticks;
        }
      }
      power *= 10;
    }
  }

  function tickLabels(ticks) {
    const top = ticks[ticks.length - 1];
    const unit = top >= 1000 ? 1000 : 1;
    const decimals = Math.max(0, ...ticks.filter((t) => t > 0).map((t) => {
      const value = t / unit;
      for (let d = 0; d < 4; d++) if (Math.abs(value * Math.pow(10, d) - Math.round(value * Math.pow(10, d))) < 1e-6) return d;
      return 3;
    }));
    return ticks.map((t) => (t ? (t / unit).toFixed(decimals) + (unit === 1000 ? " s" : " ms") : "0"));
  }

  // Fast requests next to slow streams: when the slowest is over LOG_RATIO times the
  // fastest (1 ms at least), the axis is logarithmic, so a 5 ms answer stays visible and
  // distinct from a 50 ms one beside 5 s streams. Its labels are whole numbers: powers
  // of ten, and a top just above the slowest (whole seconds from 2 s, else whole ms).
  const LOG_RATIO = 30;
  const LOG_FLOOR_MS = 1;

  function logTop(max) {
    if (max >= 2000 && max < 10000) return Math.ceil(max / 1000 - 1e-9) * 1000;
    const ticks = linearTicks(max);
    return ticks[ticks.length - 1];
  }

  const wholeLabel = (ms) => (ms >= 1000 && ms % 1000 === 0 ? ms / 1000 + " s" : Math.round(ms) + " ms");

  function scaleFor(durations) {
    const max = Math.max(0, ...durations);
    const min = Math.max(LOG_FLOOR_MS, Math.min(...durations));
    const top = linearTicks(max);
    const topMs = top[top.length - 1];
    if (!durations.length || max / min <= LOG_RATIO) {
      return { kind: "linear", top: topMs, ticks: top, labels: tickLabels(top), at: (ms) => ms / topMs };
    }
    const logTopMs = logTop(max);
    const bottom = Math.pow(10, Math.floor(Math.log10(min)));
    const span = Math.log10(logTopMs) - Math.log10(bottom);
    const at = (ms) => (Math.log10(Math.max(ms, bottom)) - Math.log10(bottom)) / span;
    const ticks = [];
    for (let t = bottom; t < logTopMs; t *= 10) if (at(logTopMs) - at(t) > 0.12) ticks.push(t);
    ticks.push(logTopMs);
    return { kind: "log", top: logTopMs, ticks, labels: ticks.map(wholeLabel), at };
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
    const points = requests.filter((r) => !r.in_progress).reverse(); // oldest first, left to right
    const nodes = [];
    const scale = scaleFor(points.map((r) => r.duration_ms));
    scale.ticks.forEach((t, i) => {
      const y = top + plotH - plotH * scale.at(t);
      nodes.push(svg("line", { x1: left, x2: W - right, y1: y, y2: y, class: "grid" }));
      nodes.push(svg("text", { x: left - 8, y: y + 4, class: "axis", "text-anchor": "end" }, scale.labels[i]));
    });
    if (!points.length) {
      nodes.push(svg("text", { x: left + plotW / 2, y: top + plotH / 2, class: "axis", "text-anchor": "middle" },
        "No requests yet"));
    }
    const slots = Math.max(points.length, 20);
    const slot = plotW / slots;
    const barWidth = Math.max(1, slot * 0.72);
    const first = slots - points.length; // few requests: they stand on the right, by "newest"
    points.forEach((r, i) => {
      const h = Math.max(r.ok ? 1.5 : 4, plotH * scale.at(r.duration_ms)); // a fast failure stays visible
      const bar = svg("rect", {
        x: (left + (first + i) * slot + (slot - barWidth) / 2).toFixed(2), y: (top + plotH - h).toFixed(2),
        width: barWidth.toFixed(2), height: h.toFixed(2), rx: Math.min(2, barWidth / 3).toFixed(2),
        class: "bar " + (r.ok ? "ok" : "fail"), "data-ms": r.duration_ms,
      });
      bar.appendChild(svg("title", {}, clock(r.time) + "  " + r.method + " " + r.path + "  " + r.status + "  " + duration(r.duration_ms)));
      nodes.push(bar);
    });
    if (points.length) {
      const avg = points.reduce((sum, r) => sum + r.duration_ms, 0) / points.length;
      const y = top + plotH - plotH * scale.at(avg);
      nodes.push(svg("line", { x1: left, x2: W - right, y1: y, y2: y, class: "avg" }));
    }
    nodes.push(svg("line", { x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, class: "baseline" }));
    nodes.push(svg("text", { x: left, y: H - 8, class: "axis" }, points.length ? "older" : ""));
    nodes.push(svg("text", { x: W - right, y: H - 8, class: "axis", "text-anchor": "end" }, points.length ? "newest" : ""));
    chart.replaceChildren(...nodes);
    chart.setAttribute("data-bars", String(points.length));
    chart.setAttribute("data-scale", scale.kind);
    chart.setAttribute("data-top-ms", String(scale.top));
    const logNote = scale.kind === "log" ? " · log scale, so fast ones stay visible" : "";
    setText("chart-caption", (points.length > 1 ? "last " + points.length + " finished requests, oldest on the left"
      : points.length ? "the only finished request so far" : "") + (points.length ? logNote : ""));
  }

  // ---- polling --------------------------------------------------------------

  // What went wrong, in words for the person watching (fetch alone says "Failed to fetch").
  class UpdateError extends Error {}
  class Unavailable extends UpdateError {}

  async function getJSON(url) {
    let response;
    try {
      response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" });
    } catch (error) {
      throw new UpdateError("the server cannot be reached (stopped, restarting, or no network)");
    }
    if (response.status === 401) {
      window.location.assign(root.dataset.loginUrl);
      throw new UpdateError("the dashboard key is needed");
    }
    if (response.status === 503) {
      const body = await response.json().catch(() => ({}));
      if (body.error && body.error.code === "statistics_unavailable") throw new Unavailable("the statistics are unavailable");
    }
    if (!response.ok) throw new UpdateError("the server answered with an error (HTTP " + response.status + ")");
    try {
      return await response.json();
    } catch (error) {
      throw new UpdateError("the server's answer was cut off or is not JSON");
    }
  }

  let lastUpdate = null;

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
      lastUpdate = Date.now() / 1000;
      setStatus("Updated " + clock(lastUpdate));
    } catch (error) {
      const unavailable = error instanceof Unavailable;
      $("stats-unavailable").hidden = !unavailable;
      const reason = error instanceof UpdateError ? error.message : "something went wrong on this page (" + error.message + ")";
      const since = lastUpdate ? "Not updated since " + clock(lastUpdate) : "No data yet";
      const again = ". Trying again every " + REFRESH_MS / 1000 + " s.";
      setStatus(unavailable ? "Statistics unavailable (see above). " + since + again : since + ": " + reason + again, true);
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
