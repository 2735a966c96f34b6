/* The insights dashboard: Coder's template insights panels over this service's API, kept
 * current by the server-sent "changed" events of /api/v2/insights/live.
 *
 * Plain browser JavaScript (no build step); the only library is the vendored uPlot.
 * Every insights request carries the browser's IANA zone as `tz`, and start_time /
 * end_time follow Coder's rules in that zone: local midnights, or the next full hour when
 * the range ends today.
 */
(function () {
  "use strict";

  const TOKEN_KEY = "insights-token";
  const THEME_KEY = "insights-theme";
  const COOKIE = "coder_session_token";
  const API = "api/v2/insights/";
  const LIVE = API + "live";
  const HOUR_MS = 3600 * 1000;
  const DAY_MS = 24 * HOUR_MS;
  const WEEK_MS = 7 * DAY_MS;
  const DAU_DAYS = 61;
  const PERCENTILES = "50,95,99";
  const TOP = 10;
  const MAX_VALUES = 8;
  const MAX_TEMPLATE_NAMES = 3; // named in a parameter's card; more are counted
  const POLL_MS = 30 * 1000;
  const CHANGE_DEBOUNCE_MS = 150;
  const CHART_HEIGHT = 220;
  const PRESET_DAYS = { "7d": 7, "4w": 28, "12w": 84 };
  const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

  const $ = (id) => document.getElementById(id);
  const root = document.documentElement;

  const state = {
    template: "",
    range: "7d",
    interval: "day",
    templates: new Map(), // id -> {name, org} ("" where events named none)
    showAllActivity: false,
    showAllLatency: false,
    showAllApps: false,
  };

  // --- formatting -----------------------------------------------------------------------

  const intFmt = new Intl.NumberFormat();
  const msFmt = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });
  const longDayFmt = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric" });
  const hourFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

  function fmtInt(n) {
    return intFmt.format(n);
  }

  function fmtDuration(seconds) {
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    if (hours >= 100) return `${fmtInt(hours)} h`;
    const rest = minutes % 60;
    return rest ? `${hours} h ${rest} min` : `${hours} h`;
  }

  function fmtMs(value) {
    return value < 0 ? "–" : msFmt.format(value);
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  // --- time: Coder's window rules in the browser's zone ----------------------------------

  function midnight(d) {
    return new Date(d.getFullYear(), d.getMonth(), d.getDate());
  }

  // Calendar arithmetic, not 24 h steps, so that DST days stay whole days.
  function addDays(d, n) {
    return new Date(d.getFullYear(), d.getMonth(), d.getDate() + n);
  }

  function isoDate(d) {
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }

  function parseDate(text) {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text || "");
    return m ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : null;
  }

  /** RFC 3339 of the instant `ms` as the clock reads in a zone `offsetMin` east of UTC. */
  function formatAt(ms, offsetMin) {
    const t = new Date(ms + offsetMin * 60 * 1000);
    const abs = Math.abs(offsetMin);
    const zone = offsetMin === 0
      ? "Z"
      : `${offsetMin > 0 ? "+" : "-"}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
    return `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())}` +
      `T${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}:${pad(t.getUTCSeconds())}${zone}`;
  }

  function offsetOf(d) {
    return -d.getTimezoneOffset();
  }

  function rfc3339(d) {
    return formatAt(d.getTime(), offsetOf(d));
  }

  /** The latest end_time allowed today: the next local full hour, unless that is past the
   * server's limit (now truncated to the UTC hour, plus one hour), as it is in zones with
   * a half-hour offset. */
  function todayEnd(now) {
    const limit = Math.floor(now.getTime() / HOUR_MS) * HOUR_MS + HOUR_MS;
    let end = new Date(now.getFullYear(), now.getMonth(), now.getDate(), now.getHours() + 1);
    while (end.getTime() > limit) {
      end = new Date(end.getFullYear(), end.getMonth(), end.getDate(), end.getHours() - 1);
    }
    return end;
  }

  /** The selected range as the API wants it, or {error} when it cannot be asked for. */
  function currentWindow(now) {
    now = now || new Date();
    const today = midnight(now);
    const weekly = state.interval === "week";
    let start;
    let end;
    if (state.range === "custom") {
      const from = parseDate($("from").value);
      const to = parseDate($("to").value);
      if (!from || !to) return { error: "Choose both dates of the custom range." };
      if (to > today) return { error: "The range cannot end after today." };
      if (from > to) return { error: "The first day must not be after the last one." };
      start = from;
      if (to < today) end = addDays(to, 1);
      else end = weekly ? today : todayEnd(now); // weeks stop at today's midnight, as presets do
    } else {
      const days = PRESET_DAYS[state.range] || 7;
      if (weekly) {
        end = today;
        start = addDays(today, -days);
      } else {
        start = addDays(today, -(days - 1));
        end = todayEnd(now);
      }
    }
    let endMs = end.getTime();
    let endText = rfc3339(end);
    if (weekly) {
      if (endMs <= start.getTime()) return { error: "A weekly range needs at least one whole day before today." };
      const rest = (endMs - start.getTime()) % WEEK_MS;
      if (rest !== 0 && rest < 6 * DAY_MS) {
        // The API counts weeks in elapsed time: across a DST change the same number of
        // calendar weeks is an hour too long. End them in the start's offset instead, an
        // hour earlier, where that clock reads midnight.
        const aligned = endMs - rest;
        if (rest > HOUR_MS || aligned <= start.getTime()) {
          return { error: "Weekly intervals need whole weeks (the last one of at least 6 days)." };
        }
        endMs = aligned;
        endText = formatAt(aligned, offsetOf(start));
      }
    }
    return {
      startMs: start.getTime(),
      endMs,
      startText: rfc3339(start),
      endText,
      lastDay: new Date(endMs - 1),
      endsToday: endMs > today.getTime(),
    };
  }

  function dausWindow(now) {
    now = now || new Date();
    return { startMs: addDays(midnight(now), -(DAU_DAYS - 1)).getTime(), endMs: now.getTime() + HOUR_MS };
  }

  /** Whether a UTC day's changes can show in a window: padded a day each side, since a
   * local day overlaps up to three UTC days. */
  function touches(win, days) {
    return days.some((day) => {
      const t = Date.parse(`${day}T00:00:00Z`);
      return Number.isFinite(t) && t - DAY_MS < win.endMs && t + 2 * DAY_MS > win.startMs;
    });
  }

  // --- auth ------------------------------------------------------------------------------

  let rejectedCookie = null;

  function stored(key) {
    try {
      return window.sessionStorage.getItem(key) || "";
    } catch (_) {
      return "";
    }
  }

  function cookieToken() {
    for (const part of document.cookie.split(";")) {
      const eq = part.indexOf("=");
      if (eq > 0 && part.slice(0, eq).trim() === COOKIE) {
        try {
          return decodeURIComponent(part.slice(eq + 1).trim());
        } catch (_) {
          return "";
        }
      }
    }
    return "";
  }

  function token() {
    const saved = stored(TOKEN_KEY);
    if (saved) return saved;
    const cookie = cookieToken();
    return cookie && cookie !== rejectedCookie ? cookie : "";
  }

  function saveToken(value) {
    try {
      window.sessionStorage.setItem(TOKEN_KEY, value);
    } catch (_) {
      // Storage refused (private mode): the token lives as long as the page.
      memoryToken = value;
    }
  }

  let memoryToken = "";

  function currentToken() {
    return token() || memoryToken;
  }

  function forgetToken() {
    const cookie = cookieToken();
    if (cookie && !stored(TOKEN_KEY)) rejectedCookie = cookie;
    try {
      window.sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      // nothing stored
    }
    memoryToken = "";
  }

  // --- API -------------------------------------------------------------------------------

  class AuthError extends Error {}

  class ApiError extends Error {}

  function describe(status, body) {
    if (!body || typeof body.message !== "string") return `The server answered ${status}.`;
    const parts = [body.message];
    if (body.detail) parts.push(body.detail);
    for (const v of Array.isArray(body.validations) ? body.validations : []) {
      parts.push(`${v.field}: ${v.detail}`);
    }
    if (status === 403) parts.push("This panel needs a token with deployment scope.");
    // Template-scoped tokens must name their templates; "All templates" names none.
    if (status === 404 && !state.template) parts.push("This token may need a template: choose one above.");
    return parts.map((p) => (/[.!?]$/.test(p) ? p : `${p}.`)).join(" ");
  }

  /** `params` null: an endpoint that takes no parameters at all (it refuses `tz`). */
  async function getJSON(endpoint, params, signal) {
    if (params) params.set("tz", ZONE);
    let res;
    try {
      res = await fetch(`${API}${endpoint}${params ? `?${params}` : ""}`, {
        headers: { "Coder-Session-Token": currentToken(), Accept: "application/json" },
        cache: "no-store",
        signal,
      });
    } catch (err) {
      if (signal.aborted) throw err;
      throw new ApiError("The server cannot be reached.");
    }
    const body = await res.json().catch(() => null);
    signal.throwIfAborted();
    if (res.status === 401) {
      throw new AuthError(body && body.message ? body.message : "The token was not accepted.");
    }
    if (!res.ok) throw new ApiError(describe(res.status, body));
    return body;
  }

  function windowParams(win) {
    const params = new URLSearchParams({ start_time: win.startText, end_time: win.endText });
    if (state.template) params.set("template_ids", state.template);
    return params;
  }

  // --- DOM helpers -----------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function hue(text) {
    let h = 0;
    for (const ch of text) h = (h * 31 + ch.codePointAt(0)) % 360;
    return h;
  }

  function badge(label, extra) {
    const node = el("span", `icon badge ${extra || ""}`);
    node.setAttribute("aria-hidden", "true");
    const first = Array.from((label || "?").trim())[0] || "?";
    node.textContent = first.toUpperCase();
    node.style.setProperty("--hue", String(hue(label || "?")));
    return node;
  }

  /** Coder's icon paths (/icon/code.svg, /emojis/...) are not served here: only absolute
   * http(s) URLs become images, anything else a letter badge; a failed image turns into one. */
  function iconFor(url, label, extra) {
    if (!/^https?:\/\//i.test(url || "")) return badge(label, extra);
    const img = el("img", `icon ${extra || ""}`);
    img.alt = "";
    img.decoding = "async";
    img.referrerPolicy = "no-referrer";
    img.addEventListener("error", () => img.replaceWith(badge(label, extra)), { once: true });
    img.src = url;
    return img;
  }

  function meter(fraction, label) {
    const outer = el("div", "meter");
    outer.setAttribute("aria-hidden", "true");
    const inner = el("span");
    inner.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
    outer.append(inner);
    if (label) outer.title = label;
    return outer;
  }

  function table(headers, rows, caption) {
    const t = el("table", "grid-table");
    if (caption) t.append(el("caption", "visually-hidden", caption));
    const head = el("thead");
    const tr = el("tr");
    for (const h of headers) {
      const th = el("th", h.num ? "num" : "", h.text);
      th.scope = "col";
      tr.append(th);
    }
    head.append(tr);
    const body = el("tbody");
    for (const row of rows) body.append(row);
    t.append(head, body);
    return t;
  }

  function cells(values, numeric) {
    const tr = el("tr");
    values.forEach((v, i) => {
      const td = el("td", numeric && numeric[i] ? "num" : "");
      if (v instanceof Node) td.append(v);
      else td.textContent = String(v);
      tr.append(td);
    });
    return tr;
  }

  function userCell(user) {
    const name = user.username || `user ${String(user.user_id).slice(0, 8)}`;
    const box = el("span", "user");
    box.append(iconFor(user.avatar_url, name, "small round"), el("span", "", name));
    return box;
  }

  function empty(text) {
    return el("p", "empty", text);
  }

  // --- charts ----------------------------------------------------------------------------

  const charts = new Map(); // name -> {box, xs, ys, spec, plot, theme}

  function cssVar(name) {
    return getComputedStyle(root).getPropertyValue(name).trim();
  }

  function themeKey() {
    return isDark() ? "dark" : "light";
  }

  function barChart(name, xs, ys, spec) {
    const box = $(`${name}-chart`);
    const chart = charts.get(name) || { box };
    Object.assign(chart, { xs, ys, spec });
    charts.set(name, chart);
    box.setAttribute("aria-label", spec.summary);
    if (chart.plot && chart.theme === themeKey() && chart.step === spec.step) {
      chart.plot.setData([xs, ys]);
      return;
    }
    drawChart(chart);
  }

  function drawChart(chart) {
    if (chart.plot) chart.plot.destroy();
    chart.plot = null;
    chart.box.replaceChildren();
    if (typeof window.uPlot !== "function" || chart.box.clientWidth === 0) return;
    const { spec } = chart;
    const text = cssVar("--muted");
    const grid = cssVar("--grid");
    const bar = cssVar(spec.color || "--bar");
    const halfStep = spec.step / 2;
    chart.theme = themeKey();
    chart.step = spec.step;
    chart.plot = new window.uPlot(
      {
        width: chart.box.clientWidth,
        height: CHART_HEIGHT,
        cursor: { drag: { x: false, y: false }, points: { show: false } },
        legend: { show: true, live: true },
        scales: {
          x: { time: true, range: (u, min, max) => [min - halfStep, max + halfStep] },
          y: { range: (u, min, max) => [0, Math.max(1, Math.ceil((max || 0) * 1.15))] },
        },
        axes: [
          { stroke: text, grid: { show: false }, ticks: { stroke: grid } },
          {
            stroke: text,
            grid: { stroke: grid, width: 1 },
            ticks: { show: false },
            incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000],
            values: (u, splits) => splits.map((v) => fmtInt(v)),
            size: 48,
          },
        ],
        // Away from the chart the legend shows the latest bar instead of dashes.
        series: [
          { label: spec.xLabel, value: (u, ts) => spec.xFormat(ts == null ? last(chart.xs) : ts) },
          {
            label: spec.label,
            fill: bar,
            stroke: bar,
            width: 0,
            points: { show: false },
            paths: window.uPlot.paths.bars({ size: [0.72, 56], align: 0 }),
            value: (u, v) => fmtInt(v == null ? last(chart.ys) : v),
          },
        ],
      },
      [chart.xs, chart.ys],
      chart.box,
    );
    if (!chart.xs.length) chart.box.replaceChildren(empty("Nothing in this range."));
  }

  function last(values) {
    return values.length ? values[values.length - 1] : 0;
  }

  function redrawCharts() {
    for (const chart of charts.values()) drawChart(chart);
  }

  let resizeFrame = 0;
  window.addEventListener("resize", () => {
    cancelAnimationFrame(resizeFrame);
    resizeFrame = requestAnimationFrame(() => {
      for (const chart of charts.values()) {
        if (chart.plot) chart.plot.setSize({ width: chart.box.clientWidth, height: CHART_HEIGHT });
        else drawChart(chart);
      }
    });
  });

  // --- panels ----------------------------------------------------------------------------

  function dayLabel(ts) {
    return dayFmt.format(new Date(ts * 1000));
  }

  async function loadDaus(signal) {
    const body = await getJSON("daus", new URLSearchParams(), signal);
    const entries = Array.isArray(body.entries) ? body.entries : [];
    const dates = entries.map((e) => parseDate(e.date));
    const xs = dates.map((d) => d.getTime() / 1000);
    const ys = entries.map((e) => e.amount);
    const today = entries.length ? entries[entries.length - 1].amount : 0;
    $("daus-today").textContent = fmtInt(today);
    $("daus-sub").textContent = `The last ${entries.length} days in ${ZONE}, all templates`;
    const peak = Math.max(0, ...ys);
    barChart("daus", xs, ys, {
      step: 86400,
      label: "Active users",
      xLabel: "Day",
      xFormat: dayLabel,
      summary: entries.length
        ? `Bar chart of daily active users from ${longDayFmt.format(dates[0])} to ` +
          `${longDayFmt.format(dates[dates.length - 1])}: at most ${fmtInt(peak)} a day, ` +
          `${fmtInt(today)} today.`
        : "No daily active users.",
    });
    const rows = entries
      .map((e, i) => cells([longDayFmt.format(dates[i]), fmtInt(e.amount)], [false, true]))
      .reverse();
    $("daus-table").replaceChildren(
      table([{ text: "Day" }, { text: "Active users", num: true }], rows, "Daily active users"),
    );
  }

  /** The names events gave the templates (the template-names extension). Without them the
   * reports still render, with ids for names: a failure here costs labels, not a panel. */
  async function loadTemplateNames(signal) {
    let body;
    try {
      body = await getJSON("template-names", null, signal);
    } catch (err) {
      if (err instanceof AuthError || signal.aborted) throw err;
      return;
    }
    for (const t of Array.isArray(body && body.templates) ? body.templates : []) {
      if (t && t.template_id) {
        state.templates.set(t.template_id, { name: t.name || "", org: t.organization_name || "" });
      }
    }
  }

  /** What to call a template: its name, with its organization where another template in a
   * different one has the same name, else its id. */
  function templateLabel(id) {
    const t = state.templates.get(id);
    if (!t || !t.name) return id;
    for (const [other, o] of state.templates) {
      if (other !== id && o.name === t.name && o.org !== t.org && t.org) return `${t.name} (${t.org})`;
    }
    return t.name;
  }

  function learnTemplates(report) {
    for (const id of report.template_ids || []) {
      if (!state.templates.has(id)) state.templates.set(id, { name: "", org: "" });
    }
    const select = $("template");
    const ids = Array.from(state.templates.keys())
      .map((id) => ({ id, label: templateLabel(id), named: templateLabel(id) !== id }))
      // Names first, alphabetically; the bare ids of unnamed templates after them.
      .sort((a, b) => b.named - a.named || a.label.localeCompare(b.label) || a.id.localeCompare(b.id));
    const have = Array.from(select.options).slice(1).map((o) => `${o.value}=${o.textContent}`);
    if (have.join("\n") === ids.map((t) => `${t.id}=${t.label}`).join("\n")) return;
    const keep = select.value;
    select.replaceChildren(new Option("All templates", ""));
    for (const t of ids) select.append(new Option(t.label, t.id));
    select.value = keep;
  }

  async function loadTemplates(signal) {
    const win = currentWindow();
    if (win.error) throw new ApiError(win.error);
    const params = windowParams(win);
    params.set("interval", state.interval);
    // The filter learns the names even when the report fails (a template-scoped token on
    // "All templates"): that is how such a token gets to its templates.
    const named = loadTemplateNames(signal).then(() => learnTemplates({}));
    const [body] = await Promise.all([getJSON("templates", params, signal), named]);
    const report = body.report || {};
    learnTemplates(report);
    renderActive(report, Array.isArray(body.interval_reports) ? body.interval_reports : []);
    renderApps(Array.isArray(report.apps_usage) ? report.apps_usage : []);
    renderParams(Array.isArray(report.parameters_usage) ? report.parameters_usage : []);
  }

  function renderActive(report, intervals) {
    const weekly = state.interval === "week";
    $("active-users").textContent = fmtInt(report.active_users || 0);
    $("active-sub").textContent = weekly ? "Distinct users per week" : "Distinct users per day";
    const starts = intervals.map((r) => new Date(Date.parse(r.start_time)));
    const ends = intervals.map((r) => new Date(Date.parse(r.end_time) - 1));
    const xs = starts.map((d) => d.getTime() / 1000);
    const ys = intervals.map((r) => r.active_users);
    const label = (i) =>
      weekly ? `${longDayFmt.format(starts[i])} – ${longDayFmt.format(ends[i])}` : longDayFmt.format(starts[i]);
    barChart("active", xs, ys, {
      step: weekly ? 7 * 86400 : 86400,
      label: "Active users",
      xLabel: weekly ? "Week of" : "Day",
      xFormat: dayLabel,
      color: "--bar",
      summary: intervals.length
        ? `Bar chart of active users per ${weekly ? "week" : "day"}, ${intervals.length} ` +
          `${weekly ? "weeks" : "days"}: at most ${fmtInt(Math.max(...ys))}, ` +
          `${fmtInt(report.active_users || 0)} distinct users in the range.`
        : "No intervals in the range.",
    });
    const rows = intervals.map((r, i) => cells([label(i), fmtInt(r.active_users)], [false, true]));
    $("active-table").replaceChildren(
      table(
        [{ text: weekly ? "Week" : "Day" }, { text: "Active users", num: true }],
        rows,
        "Active users per interval",
      ),
    );
  }

  let lastApps = [];

  function renderApps(apps) {
    lastApps = apps
      .filter((a) => a.seconds > 0)
      .sort((a, b) => b.seconds - a.seconds || a.display_name.localeCompare(b.display_name));
    drawApps();
  }

  function drawApps() {
    const used = lastApps;
    const list = $("apps-list");
    const more = $("apps-more");
    if (!used.length) {
      list.replaceChildren(el("li", "empty", "No app or IDE usage in this range."));
      more.replaceChildren();
      return;
    }
    const max = used[0].seconds;
    const shown = state.showAllApps ? used : used.slice(0, TOP);
    more.replaceChildren(
      ...(used.length > TOP
        ? [toggleButton(used.length, state.showAllApps, "apps", () => {
            state.showAllApps = !state.showAllApps;
            drawApps();
          })]
        : []),
    );
    list.replaceChildren(
      ...shown.map((app) => {
        const li = el("li", app.type === "app" ? "app" : "builtin");
        li.dataset.slug = app.slug;
        li.dataset.seconds = String(app.seconds);
        const name = el("span", "name", app.display_name || app.slug);
        if (app.type !== "app") name.append(el("span", "kind", "built-in"));
        const value = el("span", "value", fmtDuration(app.seconds));
        if (app.type === "app") {
          value.append(el("small", "", `opened ${fmtInt(app.times_used)} ${app.times_used === 1 ? "time" : "times"}`));
        }
        li.append(iconFor(app.icon, app.display_name || app.slug), name, value, meter(app.seconds / max));
        return li;
      }),
    );
  }

  function renderParams(parameters) {
    const box = $("params-list");
    if (!parameters.length) {
      box.replaceChildren(empty("No workspace builds in this range."));
      return;
    }
    box.replaceChildren(
      ...parameters.map((p) => {
        const card = el("article", "param");
        card.dataset.name = p.name;
        const title = el("h3", "", p.display_name || p.name);
        if (p.display_name && p.display_name !== p.name) title.append(el("code", "", p.name));
        const notes = [];
        if (p.description) notes.push(p.description);
        const names = (p.template_ids || []).map(templateLabel).sort((a, b) => a.localeCompare(b));
        if (!state.template && names.length) {
          notes.push(
            names.length <= MAX_TEMPLATE_NAMES
              ? `${names.length === 1 ? "Template" : "Templates"}: ${names.join(", ")}`
              : `${names.length} templates`,
          );
        }
        const note = el("p", "muted", notes.join(" · "));
        if (names.length > MAX_TEMPLATE_NAMES) note.title = names.join(", ");
        card.append(title, note);
        const options = new Map((p.options || []).map((o) => [o.value, o]));
        const values = (p.values || []).slice().sort((a, b) => b.count - a.count || a.value.localeCompare(b.value));
        const max = values.length ? values[0].count : 1;
        const list = el("ul");
        list.setAttribute("aria-label", `Values of ${p.display_name || p.name}`);
        const shownValues = values.slice(0, MAX_VALUES);
        const nameCount = new Map();
        for (const v of shownValues) {
          const option = options.get(v.value);
          if (option) nameCount.set(option.name, (nameCount.get(option.name) || 0) + 1);
        }
        for (const v of shownValues) {
          const option = options.get(v.value);
          let text = option ? option.name : v.value === "" ? "(empty)" : v.value;
          // Options may share a name ("Asia Pacific" for two regions): say which is which.
          if (option && nameCount.get(option.name) > 1) text += ` (${option.description || v.value})`;
          const li = el("li");
          li.append(
            options.size ? iconFor(option ? option.icon : "", text, "small") : el("span"),
            el("span", "label", text),
            el("span", "count", fmtInt(v.count)),
            meter(v.count / max),
          );
          li.title = option && option.description ? `${v.value}: ${option.description}` : v.value;
          list.append(li);
        }
        card.append(list);
        if (values.length > MAX_VALUES) {
          card.append(el("p", "muted", `and ${values.length - MAX_VALUES} more values`));
        }
        return card;
      }),
    );
  }

  function toggleButton(total, showingAll, noun, onToggle) {
    const button = el("button", "button more", showingAll ? `Show the top ${TOP}` : `Show all ${total} ${noun}`);
    button.setAttribute("aria-expanded", String(showingAll));
    button.type = "button";
    button.addEventListener("click", onToggle);
    return button;
  }

  async function loadActivity(signal) {
    const win = currentWindow();
    if (win.error) throw new ApiError(win.error);
    const body = await getJSON("user-activity", windowParams(win), signal);
    const users = ((body.report || {}).users || [])
      .slice()
      .sort((a, b) => b.seconds - a.seconds || (a.username || "").localeCompare(b.username || ""));
    lastActivity = users;
    renderActivity();
  }

  let lastActivity = [];

  function renderActivity() {
    const users = lastActivity;
    const total = users.reduce((sum, u) => sum + u.seconds, 0);
    $("activity-total").textContent = fmtDuration(total);
    const box = $("activity-table");
    if (!users.length) {
      box.replaceChildren(empty("No activity in this range."));
      return;
    }
    const max = users[0].seconds;
    const shown = state.showAllActivity ? users : users.slice(0, TOP);
    const rows = shown.map((u, i) => {
      const tr = cells([String(i + 1), userCell(u), fmtDuration(u.seconds), meter(u.seconds / max)], [true, false, true]);
      tr.dataset.user = u.username || u.user_id;
      tr.dataset.seconds = String(u.seconds);
      return tr;
    });
    const parts = [
      table(
        [{ text: "#", num: true }, { text: "User" }, { text: "Time", num: true }, { text: "Share" }],
        rows,
        "Activity by user",
      ),
    ];
    if (users.length > TOP) {
      parts.push(
        toggleButton(users.length, state.showAllActivity, "users", () => {
          state.showAllActivity = !state.showAllActivity;
          renderActivity();
        }),
      );
    }
    box.replaceChildren(...parts);
  }

  let lastLatency = [];

  async function loadLatency(signal) {
    const win = currentWindow();
    if (win.error) throw new ApiError(win.error);
    const params = windowParams(win);
    params.set("percentiles", PERCENTILES);
    const body = await getJSON("user-latency", params, signal);
    const p50 = (u) => (u.latency_ms && u.latency_ms.p50 >= 0 ? u.latency_ms.p50 : -Infinity);
    lastLatency = ((body.report || {}).users || []).slice().sort((a, b) => p50(b) - p50(a));
    renderLatency();
  }

  function renderLatency() {
    const users = lastLatency;
    const box = $("latency-table");
    if (!users.length) {
      box.replaceChildren(empty("No connections in this range."));
      return;
    }
    const shown = state.showAllLatency ? users : users.slice(0, TOP);
    const rows = shown.map((u) => {
      const q = u.latency_ms || {};
      const tr = cells([userCell(u), fmtMs(q.p50), fmtMs(q.p95), fmtMs(q.p99 ?? -1)], [false, true, true, true]);
      tr.dataset.user = u.username || u.user_id;
      return tr;
    });
    const parts = [
      table(
        [
          { text: "User" },
          { text: "p50 (ms)", num: true },
          { text: "p95 (ms)", num: true },
          { text: "p99 (ms)", num: true },
        ],
        rows,
        "Latency by user",
      ),
    ];
    if (users.length > TOP) {
      parts.push(
        toggleButton(users.length, state.showAllLatency, "users", () => {
          state.showAllLatency = !state.showAllLatency;
          renderLatency();
        }),
      );
    }
    box.replaceChildren(...parts);
  }

  // --- loading: one run per panel source, coalesced, cancelled when filters change -------

  const SOURCES = {
    daus: { window: dausWindow, load: loadDaus, panels: ["panel-daus"] },
    templates: { window: currentWindow, load: loadTemplates, panels: ["panel-active", "panel-apps", "panel-params"] },
    activity: { window: currentWindow, load: loadActivity, panels: ["panel-activity"] },
    latency: { window: currentWindow, load: loadLatency, panels: ["panel-latency"] },
  };
  const ALL = Object.keys(SOURCES);
  const FILTERED = ["templates", "activity", "latency"];
  const runs = new Map();
  let signedIn = false;

  function setPanels(name, fn) {
    for (const id of SOURCES[name].panels) fn($(id));
  }

  function refresh(names) {
    for (const name of names) {
      const run = runs.get(name) || { busy: false, again: false, ctrl: null };
      runs.set(name, run);
      if (run.busy) run.again = true;
      else start(name, run);
    }
  }

  /** Drop what is in flight (its answer is for old filters) and load again. */
  function reload(names) {
    for (const name of names) {
      const run = runs.get(name);
      if (run && run.busy) {
        run.again = true;
        run.ctrl.abort();
      }
    }
    refresh(names);
  }

  async function start(name, run) {
    run.busy = true;
    run.again = false;
    run.ctrl = new AbortController();
    const { signal } = run.ctrl;
    setPanels(name, (p) => p.setAttribute("aria-busy", "true"));
    try {
      await SOURCES[name].load(signal);
      setPanels(name, (p) => {
        p.classList.add("loaded");
        p.querySelector(".panel-error").textContent = "";
      });
      markUpdated();
    } catch (err) {
      if (signal.aborted) {
        // superseded: the next run renders
      } else if (err instanceof AuthError) {
        signOut(err.message);
      } else if (err instanceof ApiError) {
        setPanels(name, (p) => (p.querySelector(".panel-error").textContent = err.message));
      } else {
        setPanels(name, (p) => (p.querySelector(".panel-error").textContent = "This panel failed to render."));
        console.error(err);
      }
    } finally {
      run.busy = false;
      setPanels(name, (p) => p.setAttribute("aria-busy", "false"));
      if (run.again && signedIn) start(name, run);
    }
  }

  function abortAll() {
    for (const run of runs.values()) {
      run.again = false;
      if (run.ctrl) run.ctrl.abort();
    }
  }

  // --- "updated N s ago" -----------------------------------------------------------------

  let lastUpdated = 0;

  function markUpdated() {
    lastUpdated = Date.now();
    tick();
  }

  function tick() {
    const node = $("updated");
    if (!lastUpdated || !signedIn) {
      node.textContent = "";
      return;
    }
    const s = Math.max(0, Math.round((Date.now() - lastUpdated) / 1000));
    node.textContent = s < 60
      ? `Updated ${s} s ago`
      : s < 3600 ? `Updated ${Math.floor(s / 60)} min ago` : `Updated at ${hourFmt.format(lastUpdated)}`;
  }

  // --- live updates ----------------------------------------------------------------------

  let source = null;
  let retryTimer = 0;
  let pollTimer = 0;
  let retries = 0;
  let pendingDays = new Set();
  let changeTimer = 0;

  function setLive(stateName, label) {
    $("live-state").dataset.state = stateName;
    $("live-label").textContent = label;
  }

  function stopLive() {
    if (source) source.close();
    source = null;
    clearTimeout(retryTimer);
    clearInterval(pollTimer);
    clearTimeout(changeTimer);
    pollTimer = 0;
    pendingDays = new Set();
  }

  function connectLive() {
    stopLive();
    setLive("connecting", "Connecting…");
    const es = new EventSource(`${LIVE}?${new URLSearchParams({ coder_session_token: currentToken() })}`);
    source = es;
    es.addEventListener("open", () => {
      if (source === es) setLive("live", "Live");
    });
    es.addEventListener("changed", (event) => {
      if (source !== es) return;
      retries = 0;
      setLive("live", "Live");
      let data = null;
      try {
        data = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      const days = data && Array.isArray(data.days) ? data.days : [];
      if (!days.length) {
        // Connected (again): whatever changed while away is unknown, so load it all.
        refresh(ALL);
        return;
      }
      for (const day of days) pendingDays.add(day);
      clearTimeout(changeTimer);
      changeTimer = setTimeout(applyChanges, CHANGE_DEBOUNCE_MS);
    });
    es.addEventListener("error", () => {
      if (source !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (an answer that is not a stream): find out why.
        es.close();
        source = null;
        probeLive();
      } else {
        setLive("reconnecting", "Reconnecting…");
      }
    });
  }

  function applyChanges() {
    const days = Array.from(pendingDays);
    pendingDays = new Set();
    const now = new Date();
    refresh(ALL.filter((name) => {
      const win = SOURCES[name].window(now);
      return !win.error && touches(win, days);
    }));
  }

  async function probeLive() {
    let status = 0;
    let body = null;
    const ctrl = new AbortController();
    try {
      const res = await fetch(LIVE, {
        headers: { "Coder-Session-Token": currentToken(), Accept: "text/event-stream" },
        cache: "no-store",
        signal: ctrl.signal,
      });
      status = res.status;
      if (status === 401) body = await res.json().catch(() => null);
    } catch (_) {
      status = 0;
    } finally {
      ctrl.abort();
    }
    if (!signedIn) return;
    if (status === 401) {
      signOut(body && body.message ? body.message : "The token was not accepted.");
    } else if (status === 404) {
      startPolling();
    } else {
      setLive("reconnecting", "Reconnecting…");
      retryTimer = setTimeout(connectLive, Math.min(30000, 1000 * 2 ** retries++));
    }
  }

  function startPolling() {
    // A server without the live stream: refresh on a timer instead.
    setLive("polling", `Refreshing every ${POLL_MS / 1000} s`);
    clearInterval(pollTimer);
    pollTimer = setInterval(() => refresh(ALL), POLL_MS);
  }

  // --- sign-in, filters, theme -----------------------------------------------------------

  /** The skip link leads to whichever main is shown. */
  function skipTo(id, text) {
    $("skip-link").href = `#${id}`;
    $("skip-link").textContent = text;
  }

  function showLogin(message) {
    skipTo("token", "Skip to the sign-in form");
    $("reports").hidden = true;
    $("sign-out").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    const input = $("token");
    input.value = "";
    input.setAttribute("aria-invalid", message ? "true" : "false");
    input.focus();
  }

  function showReports() {
    signedIn = true;
    skipTo("reports", "Skip to the reports");
    $("login").hidden = true;
    $("reports").hidden = false;
    $("sign-out").hidden = false;
    redrawCharts();
    refresh(ALL);
    connectLive();
    tick();
  }

  function signOut(message) {
    signedIn = false;
    abortAll();
    stopLive();
    setLive("idle", "Not connected");
    forgetToken();
    lastUpdated = 0;
    tick();
    showLogin(message);
  }

  function updateRangeNote() {
    const note = $("range-note");
    const win = currentWindow();
    note.classList.toggle("invalid", Boolean(win.error));
    if (win.error) {
      note.textContent = win.error;
      return;
    }
    const first = longDayFmt.format(new Date(win.startMs));
    const last = longDayFmt.format(win.lastDay);
    const until = win.endsToday ? `, until ${hourFmt.format(new Date(win.endMs))}` : "";
    note.textContent = `${first === last ? first : `${first} – ${last}`}${until} (${ZONE})`;
  }

  function filtersChanged(names) {
    updateRangeNote();
    if (!signedIn) return;
    const win = currentWindow();
    if (win.error) {
      abortAll();
      for (const name of FILTERED) {
        setPanels(name, (p) => (p.querySelector(".panel-error").textContent = win.error));
      }
      return;
    }
    reload(names);
  }

  function isDark() {
    const chosen = root.dataset.theme;
    return chosen ? chosen === "dark" : window.matchMedia("(prefers-color-scheme: dark)").matches;
  }

  function applyTheme() {
    $("theme-toggle").setAttribute("aria-pressed", String(isDark()));
    redrawCharts();
  }

  function init() {
    $("zone-name").textContent = ZONE;
    let theme = "";
    try {
      theme = window.localStorage.getItem(THEME_KEY) || "";
    } catch (_) {
      theme = "";
    }
    if (theme === "dark" || theme === "light") root.dataset.theme = theme;
    applyTheme();
    $("theme-toggle").addEventListener("click", () => {
      root.dataset.theme = isDark() ? "light" : "dark";
      try {
        window.localStorage.setItem(THEME_KEY, root.dataset.theme);
      } catch (_) {
        // kept for this page only
      }
      applyTheme();
    });
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", applyTheme);

    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token").value.trim();
      if (!value) {
        showLogin("Enter a token.");
        return;
      }
      saveToken(value);
      showReports();
    });
    $("sign-out").addEventListener("click", () => signOut(""));

    const today = new Date();
    $("from").value = isoDate(addDays(today, -6));
    $("to").value = isoDate(today);
    $("from").max = $("to").max = isoDate(today);
    $("template").addEventListener("change", (e) => {
      state.template = e.target.value;
      filtersChanged(FILTERED);
    });
    $("range").addEventListener("change", (e) => {
      state.range = e.target.value;
      $("custom-range").hidden = state.range !== "custom";
      filtersChanged(FILTERED);
    });
    $("from").addEventListener("change", () => filtersChanged(FILTERED));
    $("to").addEventListener("change", () => filtersChanged(FILTERED));
    $("interval").addEventListener("change", (e) => {
      state.interval = e.target.value;
      filtersChanged(FILTERED);
    });
    $("refresh").addEventListener("click", () => filtersChanged(ALL));
    $("filters").addEventListener("submit", (e) => e.preventDefault());
    updateRangeNote();

    // A new local day moves every window; a new hour moves today's end.
    let day = isoDate(new Date());
    let hour = new Date().getHours();
    setInterval(() => {
      tick();
      const now = new Date();
      if (isoDate(now) !== day || now.getHours() !== hour) {
        const newDay = isoDate(now) !== day;
        day = isoDate(now);
        hour = now.getHours();
        $("from").max = $("to").max = day;
        updateRangeNote();
        if (signedIn) refresh(newDay ? ALL : FILTERED);
      }
    }, 1000);

    if (currentToken()) showReports();
    else showLogin("");
  }

  init();
})();
