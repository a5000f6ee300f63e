// The timeline viewer: draws one simulated seed (the JSON in #data, written by
// `rafting sim replay --html`, see server/src/timeline.rs) on a canvas, a lane per node.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const MESSAGE = data.strides.message, ROLE = data.strides.role;
  const COMMIT = data.strides.commit, CLIENT = data.strides.client;
  const AXIS_HEIGHT = 28, LANE_HEIGHT = 56, BAND_HEIGHT = 14;
  // More arrows than this in view and messages are counted per slice of time instead.
  const ARROWS_MAX = 2500;
  const MIN_WINDOW_US = 20;

  const ROLE_COLORS = {
    follower: "#d9dee7", "pre-candidate": "#f6dfa4", candidate: "#f2b84b", leader: "#48a868",
  };
  const CATEGORY_COLORS = {
    append: "#2f6fdf", heartbeat: "#98a2b3", vote: "#8e4ec6", other: "#e07b24",
  };
  const CLIENT_COLORS = {
    invoke: "#2f6fdf", read: "#48a868", committed: "#48a868", refused: "#e07b24",
    rejected: "#e07b24", unavailable: "#e07b24", read_failed: "#c0362c", timeout: "#c0362c",
  };

  const end = Math.max(data.end_us, 1);
  const canvas = document.getElementById("canvas");
  const context = canvas.getContext("2d");
  const view = { t0: 0, t1: end };
  let hits = [];

  // ---- the model, prepared once ----
  const messageCount = data.messages.length / MESSAGE;
  const kindCategory = data.message_kinds.map(category);
  let longestFlight = 0;
  for (let i = 0; i < messageCount; i++) {
    const m = i * MESSAGE;
    longestFlight = Math.max(longestFlight, data.messages[m + 1] - data.messages[m]);
  }
  const arrivals = new Float64Array(messageCount);
  for (let i = 0; i < messageCount; i++) arrivals[i] = data.messages[i * MESSAGE + 1];

  // Role bands per node: [from, to, role name, term]; every node starts a follower at term 0.
  const bands = [];
  for (let node = 1; node <= data.nodes; node++) bands[node] = [];
  const current = [];
  for (let node = 1; node <= data.nodes; node++) current[node] = [0, "follower", 0];
  for (let i = 0; i < data.roles.length; i += ROLE) {
    const [t, node, role, term] = data.roles.slice(i, i + ROLE);
    if (!bands[node]) continue;
    const [from, name, oldTerm] = current[node];
    if (t > from) bands[node].push([from, t, name, oldTerm]);
    current[node] = [t, data.role_names[role], term];
  }
  for (let node = 1; node <= data.nodes; node++) {
    const [from, name, term] = current[node];
    bands[node].push([from, end, name, term]);
  }

  function category(kind) {
    if (kind.startsWith("Heartbeat")) return "heartbeat";
    if (kind.startsWith("AppendEntries") || kind.startsWith("InstallSnapshot")) return "append";
    if (kind.includes("Vote")) return "vote";
    return "other";
  }

  // ---- geometry ----
  function width() { return canvas.clientWidth; }
  function x(t) { return ((t - view.t0) / (view.t1 - view.t0)) * width(); }
  function timeAt(px) { return view.t0 + (px / width()) * (view.t1 - view.t0); }
  function laneTop(node) { return AXIS_HEIGHT + (node - 1) * LANE_HEIGHT; }
  function laneMiddle(node) { return laneTop(node) + BAND_HEIGHT + (LANE_HEIGHT - BAND_HEIGHT) / 2; }
  function ms(t) { return (t / 1000).toFixed(3) + " ms"; }

  function firstArrivalAtOrAfter(t) {
    let low = 0, high = messageCount;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (arrivals[mid] < t) low = mid + 1; else high = mid;
    }
    return low;
  }

  function shown(kind, fate) {
    const group = kindCategory[kind];
    if (fate !== 0 && !document.getElementById("show-dropped").checked) return false;
    if (group === "heartbeat") return document.getElementById("show-heartbeats").checked;
    if (group === "append") return document.getElementById("show-appends").checked;
    if (group === "vote") return document.getElementById("show-votes").checked;
    return true;
  }

  // ---- drawing ----
  function draw() {
    const ratio = window.devicePixelRatio || 1;
    const w = width();
    const h = AXIS_HEIGHT + data.nodes * LANE_HEIGHT;
    canvas.style.height = h + "px";
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, w, h);
    hits = [];
    drawAxis(w, h);
    drawSpans(h);
    drawBands();
    const drawn = drawMessages(w);
    drawCommits();
    if (document.getElementById("show-clients").checked) drawClients();
    drawViolation(h);
    document.body.dataset.aggregated = String(drawn.aggregated);
    document.getElementById("window").textContent =
      `${ms(view.t0)} to ${ms(view.t1)} (${ms(view.t1 - view.t0)} in view): ` +
      (drawn.aggregated
        ? `${drawn.count} messages, counted per slice (zoom in to see arrows)`
        : `${drawn.count} messages drawn`);
  }

  function drawAxis(w, h) {
    const span = view.t1 - view.t0;
    const rough = span / Math.max(2, w / 110);
    const step = [1, 2, 5].map((f) => f * Math.pow(10, Math.floor(Math.log10(rough))))
      .concat([10 * Math.pow(10, Math.floor(Math.log10(rough)))])
      .find((s) => s >= rough);
    context.font = "11px system-ui, sans-serif";
    context.fillStyle = "#667085";
    context.strokeStyle = "#eef0f3";
    context.lineWidth = 1;
    for (let t = Math.ceil(view.t0 / step) * step; t <= view.t1; t += step) {
      const px = Math.round(x(t)) + 0.5;
      context.beginPath();
      context.moveTo(px, AXIS_HEIGHT - 6);
      context.lineTo(px, h);
      context.stroke();
      context.fillText(step >= 1000 ? (t / 1000).toLocaleString() + " ms" : t + " µs", px + 3, 14);
    }
    for (let node = 1; node <= data.nodes; node++) {
      context.beginPath();
      context.moveTo(0, laneTop(node) + LANE_HEIGHT - 0.5);
      context.lineTo(w, laneTop(node) + LANE_HEIGHT - 0.5);
      context.stroke();
    }
  }

  function drawSpans(h) {
    for (const span of data.spans) {
      if (span.to_us < view.t0 || span.from_us > view.t1) continue;
      const left = Math.max(0, x(span.from_us));
      const right = Math.min(width(), x(span.to_us));
      const spanWidth = Math.max(2, right - left);
      if (span.kind === "network") {
        context.fillStyle = "rgba(192, 54, 44, 0.07)";
        context.fillRect(left, AXIS_HEIGHT, spanWidth, h - AXIS_HEIGHT);
        context.fillStyle = "rgba(192, 54, 44, 0.55)";
        context.fillRect(left, AXIS_HEIGHT - 4, spanWidth, 3);
        hits.push({ box: [left, AXIS_HEIGHT - 6, left + spanWidth, AXIS_HEIGHT], what: spanDetails(span) });
      } else {
        const top = laneTop(span.node);
        context.fillStyle = span.kind === "down" ? "rgba(29, 36, 48, 0.78)" : "rgba(47, 111, 223, 0.18)";
        context.fillRect(left, top, spanWidth, LANE_HEIGHT - 1);
        hits.push({ box: [left, top, left + spanWidth, top + LANE_HEIGHT], what: spanDetails(span), weak: true });
      }
    }
  }

  function drawBands() {
    context.font = "10px system-ui, sans-serif";
    for (let node = 1; node <= data.nodes; node++) {
      const top = laneTop(node) + 2;
      let lastPixel = -1;
      for (const [from, to, role, term] of bands[node]) {
        if (to < view.t0 || from > view.t1) continue;
        const left = Math.max(0, x(from));
        const right = Math.min(width(), x(to));
        if (right < lastPixel + 0.5 && right - left < 0.5) continue;
        lastPixel = right;
        context.fillStyle = ROLE_COLORS[role] || "#d9dee7";
        context.fillRect(left, top, Math.max(1, right - left), BAND_HEIGHT - 2);
        if (right - left > 70) {
          context.fillStyle = role === "leader" ? "white" : "#1d2430";
          context.fillText(`term ${term} ${role}`, left + 4, top + 10);
        }
        hits.push({
          box: [left, top, right, top + BAND_HEIGHT],
          what: [["node", "n" + node], ["role", role], ["term", term], ["from", ms(from)], ["to", ms(to)]],
        });
      }
    }
  }

  function drawMessages(w) {
    const first = firstArrivalAtOrAfter(view.t0);
    const last = firstArrivalAtOrAfter(view.t1 + longestFlight);
    const visible = [];
    for (let i = first; i < last; i++) {
      const m = i * MESSAGE;
      const sent = data.messages[m];
      if (sent > view.t1) continue;
      if (!shown(data.messages[m + 4], data.messages[m + 6])) continue;
      visible.push(i);
    }
    if (visible.length > ARROWS_MAX) {
      drawCounts(visible, w);
      return { count: visible.length, aggregated: true };
    }
    for (const i of visible) drawArrow(i);
    return { count: visible.length, aggregated: false };
  }

  // Messages per slice of 4 px, per receiving lane: delivered up, lost in red below.
  function drawCounts(visible, w) {
    const slice = 4;
    const slices = Math.ceil(w / slice);
    const delivered = [], lost = [];
    for (let node = 1; node <= data.nodes; node++) {
      delivered[node] = new Uint32Array(slices);
      lost[node] = new Uint32Array(slices);
    }
    let most = 1;
    for (const i of visible) {
      const m = i * MESSAGE;
      const px = x(data.messages[m + 1]);
      if (px < 0 || px >= w) continue;
      const to = data.messages[m + 3];
      if (!delivered[to]) continue;
      const counts = data.messages[m + 6] === 0 ? delivered[to] : lost[to];
      const k = Math.floor(px / slice);
      counts[k] += 1;
      most = Math.max(most, counts[k]);
    }
    const room = (LANE_HEIGHT - BAND_HEIGHT - 8) / 2;
    for (let node = 1; node <= data.nodes; node++) {
      const middle = laneMiddle(node);
      for (let k = 0; k < slices; k++) {
        if (delivered[node][k]) {
          const height = Math.max(1, (Math.log1p(delivered[node][k]) / Math.log1p(most)) * room);
          context.fillStyle = "rgba(47, 111, 223, 0.65)";
          context.fillRect(k * slice, middle - height, slice - 1, height);
        }
        if (lost[node][k]) {
          const height = Math.max(1, (Math.log1p(lost[node][k]) / Math.log1p(most)) * room);
          context.fillStyle = "rgba(192, 54, 44, 0.75)";
          context.fillRect(k * slice, middle + 1, slice - 1, height);
        }
        if (delivered[node][k] || lost[node][k]) {
          const t0 = timeAt(k * slice), t1 = timeAt((k + 1) * slice);
          hits.push({
            box: [k * slice, middle - room, (k + 1) * slice, middle + room],
            weak: true,
            what: [["node", "n" + node], ["from", ms(t0)], ["to", ms(t1)],
              ["messages received", delivered[node][k]], ["messages lost", lost[node][k]]],
          });
        }
      }
    }
  }

  function drawArrow(i) {
    const m = i * MESSAGE;
    const [sent, arrived, from, to, kind, term, fate, entries] = data.messages.slice(m, m + MESSAGE);
    if (from < 1 || from > data.nodes || to < 1 || to > data.nodes) return;
    const x1 = x(sent), y1 = laneMiddle(from);
    let x2 = x(arrived), y2 = laneMiddle(to);
    const lost = fate !== 0;
    if (lost && arrived === sent) {
      // Lost in the network as it left: a stub toward its receiver.
      x2 = x1 + 10;
      y2 = y1 + (y2 - y1) * 0.3;
    }
    const color = lost ? "#c0362c" : CATEGORY_COLORS[kindCategory[kind]];
    context.strokeStyle = color;
    context.fillStyle = color;
    context.lineWidth = kindCategory[kind] === "heartbeat" ? 0.8 : 1.2;
    context.setLineDash(lost ? [4, 3] : []);
    context.beginPath();
    context.moveTo(x1, y1);
    context.lineTo(x2, y2);
    context.stroke();
    context.setLineDash([]);
    if (lost) {
      context.beginPath();
      context.moveTo(x2 - 3, y2 - 3); context.lineTo(x2 + 3, y2 + 3);
      context.moveTo(x2 - 3, y2 + 3); context.lineTo(x2 + 3, y2 - 3);
      context.stroke();
    } else {
      const angle = Math.atan2(y2 - y1, x2 - x1);
      context.beginPath();
      context.moveTo(x2, y2);
      context.lineTo(x2 - 6 * Math.cos(angle - 0.4), y2 - 6 * Math.sin(angle - 0.4));
      context.lineTo(x2 - 6 * Math.cos(angle + 0.4), y2 - 6 * Math.sin(angle + 0.4));
      context.closePath();
      context.fill();
    }
    const what = [["message", data.message_kinds[kind]], ["from", "n" + from], ["to", "n" + to],
      ["term", term], ["sent", ms(sent)]];
    if (lost) what.push(["lost", data.reasons[fate - 1] + " at " + ms(arrived)]);
    else what.push(["arrived", ms(arrived) + " (after " + ms(arrived - sent) + ")"]);
    if (entries) what.push(["entries", entries]);
    hits.push({ segment: [x1, y1, x2, y2], what });
  }

  function drawCommits() {
    context.strokeStyle = "#1d2430";
    context.lineWidth = 1;
    let lastPixel = [];
    for (let i = 0; i < data.commits.length; i += COMMIT) {
      const [t, node, index] = data.commits.slice(i, i + COMMIT);
      if (t < view.t0 || t > view.t1 || node < 1 || node > data.nodes) continue;
      const px = Math.round(x(t)) + 0.5;
      const bottom = laneTop(node) + LANE_HEIGHT - 2;
      if (lastPixel[node] !== px) {
        context.beginPath();
        context.moveTo(px, bottom);
        context.lineTo(px, bottom - 6);
        context.stroke();
        lastPixel[node] = px;
      }
      hits.push({ point: [px, bottom - 3], what: [["commit", "n" + node + " commits up to index " + index], ["at", ms(t)]] });
    }
  }

  function drawClients() {
    for (let i = 0; i < data.clients.length; i += CLIENT) {
      const [t, client, op, event, node] = data.clients.slice(i, i + CLIENT);
      if (t < view.t0 || t > view.t1 || node < 1 || node > data.nodes) continue;
      const name = data.client_events[event];
      const px = x(t), py = laneTop(node) + BAND_HEIGHT + 5;
      context.fillStyle = CLIENT_COLORS[name] || "#667085";
      context.beginPath();
      context.moveTo(px, py + 5);
      context.lineTo(px - 3, py);
      context.lineTo(px + 3, py);
      context.closePath();
      context.fill();
      hits.push({ point: [px, py + 2], what: [["client", client], ["operation", op], ["event", name], ["node", "n" + node], ["at", ms(t)]] });
    }
  }

  function drawViolation(h) {
    const violation = data.violation;
    if (!violation || violation.at_us < view.t0 || violation.at_us > view.t1) return;
    const px = Math.round(x(violation.at_us)) + 0.5;
    context.strokeStyle = "#c0362c";
    context.lineWidth = 2;
    context.beginPath();
    context.moveTo(px, AXIS_HEIGHT - 8);
    context.lineTo(px, h);
    context.stroke();
    for (const node of violation.nodes) {
      if (node < 1 || node > data.nodes) continue;
      context.strokeRect(1, laneTop(node) + 1, width() - 2, LANE_HEIGHT - 3);
    }
    hits.push({ box: [px - 4, 0, px + 4, h], what: violationDetails(violation) });
  }

  function spanDetails(span) {
    return [["fault", span.label], ["kind", span.kind], ["from", ms(span.from_us)], ["to", ms(span.to_us)]];
  }

  function violationDetails(violation) {
    return [["violation", violation.check], ["at", ms(violation.at_us)],
      ["nodes", violation.nodes.map((n) => "n" + n).join(", ") || "none"], ["detail", violation.detail]];
  }

  // ---- interaction ----
  function show(what) {
    const details = document.getElementById("details");
    const list = document.createElement("dl");
    for (const [name, value] of what) {
      const term = document.createElement("dt");
      term.textContent = name;
      const description = document.createElement("dd");
      description.textContent = String(value);
      list.append(term, description);
    }
    details.replaceChildren(list);
  }

  function hitAt(px, py) {
    let best = null, bestDistance = 6;
    for (const hit of hits) {
      let distance;
      if (hit.segment) distance = segmentDistance(px, py, ...hit.segment);
      else if (hit.point) distance = Math.hypot(px - hit.point[0], py - hit.point[1]);
      else {
        const [l, t, r, b] = hit.box;
        distance = px >= l && px <= r && py >= t && py <= b ? (hit.weak ? 5 : 0.5) : Infinity;
      }
      if (distance < bestDistance) { best = hit; bestDistance = distance; }
    }
    return best;
  }

  function segmentDistance(px, py, x1, y1, x2, y2) {
    const dx = x2 - x1, dy = y2 - y1;
    const length = dx * dx + dy * dy;
    const k = length ? Math.max(0, Math.min(1, ((px - x1) * dx + (py - y1) * dy) / length)) : 0;
    return Math.hypot(px - (x1 + k * dx), py - (y1 + k * dy));
  }

  function setWindow(t0, t1) {
    const span = Math.max(MIN_WINDOW_US, Math.min(end, t1 - t0));
    t0 = Math.max(0, Math.min(end - span, t0));
    view.t0 = t0;
    view.t1 = t0 + span;
    draw();
  }

  function zoom(factor, aroundPx) {
    const pivot = timeAt(aroundPx);
    setWindow(pivot - (pivot - view.t0) * factor, pivot + (view.t1 - pivot) * factor);
  }

  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const rect = canvas.getBoundingClientRect();
    zoom(Math.exp(event.deltaY * 0.0015), event.clientX - rect.left);
  }, { passive: false });

  let drag = null;
  canvas.addEventListener("pointerdown", (event) => {
    drag = { x: event.clientX, t0: view.t0, t1: view.t1, moved: false };
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const dx = event.clientX - drag.x;
    if (Math.abs(dx) > 3) { drag.moved = true; canvas.classList.add("dragging"); }
    if (!drag.moved) return;
    const shift = (dx / width()) * (drag.t1 - drag.t0);
    setWindow(drag.t0 - shift, drag.t1 - shift);
  });
  canvas.addEventListener("pointerup", (event) => {
    const wasDrag = drag && drag.moved;
    drag = null;
    canvas.classList.remove("dragging");
    if (wasDrag) return;
    const rect = canvas.getBoundingClientRect();
    const hit = hitAt(event.clientX - rect.left, event.clientY - rect.top);
    if (hit) show(hit.what);
  });

  document.getElementById("fit").addEventListener("click", () => setWindow(0, end));
  document.getElementById("zoom-in").addEventListener("click", () => zoom(0.5, width() / 2));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(2, width() / 2));
  for (const id of ["show-heartbeats", "show-appends", "show-votes", "show-dropped", "show-clients"]) {
    document.getElementById(id).addEventListener("change", draw);
  }
  window.addEventListener("resize", draw);

  // ---- the page around the canvas ----
  const lanes = document.getElementById("lanes");
  for (let node = 1; node <= data.nodes; node++) {
    const label = document.createElement("div");
    label.className = "lane-label";
    label.textContent = "n" + node;
    lanes.append(label);
  }
  document.getElementById("summary").textContent =
    `${data.nodes} nodes, ${ms(end)} simulated, ${data.events.toLocaleString()} events: ` +
    `${messageCount.toLocaleString()} messages, ${data.faults.length} faults, ` +
    `${(data.commits.length / COMMIT).toLocaleString()} commits.`;
  if (data.violation) {
    const banner = document.getElementById("violation");
    banner.hidden = false;
    const title = document.createElement("strong");
    title.textContent = `Violation: ${data.violation.check} at ${ms(data.violation.at_us)}. `;
    banner.append(title, document.createTextNode(data.violation.detail));
    const button = document.getElementById("to-violation");
    button.hidden = false;
    button.addEventListener("click", () => {
      const at = data.violation.at_us;
      setWindow(at - 300000, at + 100000);
      show(violationDetails(data.violation));
    });
  }
  const legend = document.getElementById("legend");
  const entries = [["leader", ROLE_COLORS.leader], ["candidate", ROLE_COLORS.candidate],
    ["pre-candidate", ROLE_COLORS["pre-candidate"]], ["follower", ROLE_COLORS.follower],
    ["append", CATEGORY_COLORS.append], ["vote", CATEGORY_COLORS.vote],
    ["heartbeat", CATEGORY_COLORS.heartbeat], ["lost", "#c0362c"],
    ["node down", "rgba(29, 36, 48, 0.78)"], ["paused", "rgba(47, 111, 223, 0.25)"],
    ["network fault", "rgba(192, 54, 44, 0.25)"]];
  for (const [name, color] of entries) {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color;
    item.append(swatch, document.createTextNode(name));
    legend.append(item);
  }

  draw();
  window.timeline = { data, view, setWindow, draw };
  document.body.dataset.lanes = String(data.nodes);
  document.body.dataset.openMs = String(Math.round(performance.now()));
  document.body.dataset.ready = "true";
})();
