// The RAFTiNG dashboard. It talks only to the public REST API: first to the node that served
// the page, then, when that node stops answering, to the other members it learned from
// /v1/cluster (the members send CORS headers to each other's pages, so this works across
// ports). No library, no build step: the node serves this file as it is.
"use strict";

const CLUSTER_POLL_MS = 500;
const SERVICES_POLL_MS = 2000;
const REQUEST_TIMEOUT_MS = 2000;
const WATCH_TIMEOUT_MS = 25000;
const HISTORY_MAX = 30;
// The keys view lists a folder in pages of this many names, up to this many in all.
const FOLDER_PAGE_KEYS = 1000;
const FOLDER_SCAN_KEYS_MAX = 10000;
const TOKEN_KEY = "rafting.token";
const NEAR_CAP = 0.9;

const state = {
  // Base URLs to try, the page's own node first; `current` is the one answering.
  endpoints: [location.origin],
  current: 0,
  view: "cluster",
  lastLeader: undefined,
  lastTerm: undefined,
  unreachable: new Set(),
  keys: { folder: "/", entries: [], revision: 0, selected: null, generation: 0, watch: null },
  servicesShown: "",
  // The leader's base URL, from the last /v1/cluster answer (null when none leads).
  leaderBase: null,
  // The bearer token, if the cluster asked for one (kept in session storage, never in a URL).
  token: sessionStorage.getItem(TOKEN_KEY),
};

const byId = (id) => document.getElementById(id);

// Builds an element: el("td", {class: "number"}, "42").
function el(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value !== undefined && value !== null && value !== false) element.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

function now() {
  return new Date().toISOString().slice(11, 23);
}

function encodePath(path) {
  return path.split("/").map(encodeURIComponent).join("/");
}

// One request to `base` with a timeout; resolves to the Response whatever its status.
async function request(base, method, path, options = {}) {
  const controller = new AbortController();
  const timeout = options.timeoutMs || REQUEST_TIMEOUT_MS;
  const timer = setTimeout(() => controller.abort(), timeout);
  // The caller's own signal (a watch whose folder the page left) aborts the request too.
  if (options.signal) {
    if (options.signal.aborted) controller.abort();
    else options.signal.addEventListener("abort", () => controller.abort(), { once: true });
  }
  try {
    const token = state.token;
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const response = await fetch(base + path, {
      method,
      body: options.body,
      headers,
      signal: controller.signal,
      cache: "no-store",
    });
    // A browser drops Authorization on a redirect to another origin, so a 401 after one says
    // nothing about the token; nor does one to a request sent before the token changed.
    if (response.status === 401 && !response.redirected && token === state.token) {
      askForToken(await describeFailure(response.clone()));
    }
    return response;
  } finally {
    clearTimeout(timer);
  }
}

// A request to the leader when the page knows it (else to the member currently answering):
// writes and linearizable reads sent to a follower come back as 307s to the leader, which
// fetch follows with the same method and body, but without the token (a browser drops
// Authorization on a redirect to another origin).
function api(method, path, options) {
  return request(state.leaderBase || state.endpoints[state.current], method, path, options);
}

// The API's error body `{"code","message"}` as one line.
async function describeFailure(response) {
  try {
    const body = await response.json();
    return `${response.status} ${body.code}: ${body.message}`;
  } catch (_) {
    return `${response.status} ${response.statusText}`;
  }
}

// ---- the token

// The cluster runs with tenants on and refused the token (or its absence): ask for one.
function askForToken(reason) {
  byId("token-reason").textContent = state.token
    ? `the token was refused (${reason}); enter another`
    : `this cluster needs a token (${reason})`;
  byId("token-form").hidden = false;
}

function useToken(event) {
  event.preventDefault();
  const token = byId("token").value.trim();
  if (!token) return;
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  byId("token").value = "";
  byId("token-form").hidden = true;
  byId("forget-token").hidden = false;
  showView(state.view);
}

function forgetToken() {
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  byId("forget-token").hidden = true;
}

function showMessage(id, text, isError) {
  const message = byId(id);
  message.textContent = text;
  message.classList.toggle("error", Boolean(isError));
}

// ---- tabs

function showView(view) {
  if (!["cluster", "keys", "services", "tenants"].includes(view)) view = "cluster";
  state.view = view;
  for (const section of document.querySelectorAll(".view")) {
    section.hidden = section.id !== `view-${view}`;
  }
  for (const tab of document.querySelectorAll(".tab")) {
    tab.setAttribute("aria-selected", String(tab.dataset.view === view));
  }
  if (view === "keys") listKeys();
  if (view === "services") refreshServices();
  if (view === "tenants") refreshTenants();
}

// ---- cluster

// A member's HTTP address as a base URL this browser can reach (a member listening on every
// interface is reached through the page's own host name).
function baseOf(http) {
  const [host, port] = [http.slice(0, http.lastIndexOf(":")), http.slice(http.lastIndexOf(":") + 1)];
  const reachableHost = host === "0.0.0.0" || host === "[::]" ? location.hostname : host;
  return `http://${reachableHost}:${port}`;
}

function learnEndpoints(cluster) {
  for (const node of cluster.nodes || []) {
    if (!node.http) continue;
    const base = baseOf(node.http);
    if (!state.endpoints.includes(base)) state.endpoints.push(base);
  }
}

// Polls /v1/cluster, trying each known member in turn until one answers.
async function pollCluster() {
  for (let tried = 0; tried < state.endpoints.length; tried++) {
    const base = state.endpoints[state.current];
    try {
      const response = await request(base, "GET", "/v1/cluster");
      if (response.status === 401) {
        renderConnection(base, "this cluster needs a token: enter it above");
        return;
      }
      if (!response.ok) throw new Error(await describeFailure(response));
      const cluster = await response.json();
      learnEndpoints(cluster);
      renderConnection(base, null);
      renderCluster(cluster);
      return;
    } catch (error) {
      state.current = (state.current + 1) % state.endpoints.length;
    }
  }
  renderConnection(null, "no member answers; still trying every 500 ms");
}

function renderConnection(base, problem) {
  const line = byId("connection");
  line.classList.toggle("lost", Boolean(problem));
  if (problem) {
    line.textContent = problem;
  } else if (base === location.origin) {
    line.textContent = `via ${base} · updated ${now()}`;
  } else {
    line.textContent = `the node this page came from does not answer; via ${base} · updated ${now()}`;
  }
}

function isLeader(node, cluster) {
  return node.reachable === true && node.role === "leader" && node.term === cluster.term;
}

function renderCluster(cluster) {
  const nodes = cluster.nodes || [];
  const leader = nodes.find((node) => isLeader(node, cluster));
  state.leaderBase = leader && leader.http ? baseOf(leader.http) : null;
  const reachable = nodes.filter((node) => node.reachable === true).length;
  byId("cluster-summary").textContent = leader
    ? `leader: node ${leader.id} · term ${cluster.term} · ${reachable} of ${nodes.length} members reachable`
    : `no leader · term ${cluster.term ?? "?"} · ${reachable} of ${nodes.length} members reachable`;
  const tbody = document.querySelector("#members tbody");
  for (const node of nodes) {
    let row = tbody.querySelector(`tr[data-id="${node.id}"]`);
    if (!row) {
      row = memberRow(node.id);
      tbody.append(row);
    }
    updateMemberRow(row, node, cluster, leader);
  }
  recordHistory(cluster, leader, nodes);
}

function memberRow(id) {
  const row = el("tr", { class: "member", "data-id": id });
  for (const name of ["id", "address", "role", "term", "commit", "applied", "durable", "lag", "progress"]) {
    const numeric = ["term", "commit", "applied", "durable", "lag"].includes(name);
    row.append(el("td", { class: numeric ? `${name} number` : name }));
  }
  const button = el("button", { type: "button", class: "transfer", "data-id": id }, "transfer leadership here");
  row.append(el("td", {}, button));
  return row;
}

function setCell(row, name, text) {
  const cell = row.querySelector(`td.${name}`);
  const value = text === undefined || text === null ? "—" : String(text);
  if (cell.textContent !== value) cell.textContent = value;
}

function updateMemberRow(row, node, cluster, leader) {
  const reachable = node.reachable === true;
  row.classList.toggle("leader", isLeader(node, cluster));
  row.classList.toggle("unreachable", !reachable);
  setCell(row, "id", node.id);
  setCell(row, "address", node.http);
  setCell(row, "role", reachable ? node.role : "unreachable");
  setCell(row, "term", reachable ? node.term : null);
  setCell(row, "commit", reachable ? node.commit_index : null);
  setCell(row, "applied", reachable ? node.applied_index : null);
  setCell(row, "durable", reachable ? node.durable_index : null);
  const lag = reachable && leader ? Math.max(0, leader.commit_index - node.applied_index) : null;
  setCell(row, "lag", lag);
  const progress = (cluster.progress || []).find((entry) => entry.id === node.id);
  setCell(row, "progress", progress ? describeProgress(progress) : reachable && isLeader(node, cluster) ? "leader" : null);
  const button = row.querySelector("button.transfer");
  button.hidden = !(leader && reachable && !isLeader(node, cluster));
}

function describeProgress(progress) {
  const parts = [`match ${progress.match_index}`, progress.state];
  if (!progress.recent_active) parts.push("inactive");
  if (progress.disk_lost) parts.push(`disk lost ×${progress.disk_losses}`);
  return parts.join(" · ");
}

// Keeps a short log of what this page saw change: leaders, terms, members going down and up.
function recordHistory(cluster, leader, nodes) {
  const leaderId = leader ? leader.id : null;
  if (leaderId !== state.lastLeader || cluster.term !== state.lastTerm) {
    const text = leaderId === null ? `term ${cluster.term}: no leader` : `term ${cluster.term}: node ${leaderId} leads`;
    if (state.lastLeader !== undefined || leaderId !== null) addHistory(text);
    state.lastLeader = leaderId;
    state.lastTerm = cluster.term;
  }
  for (const node of nodes) {
    const down = node.reachable !== true;
    if (down && !state.unreachable.has(node.id)) {
      state.unreachable.add(node.id);
      addHistory(`node ${node.id} unreachable`);
    } else if (!down && state.unreachable.delete(node.id)) {
      addHistory(`node ${node.id} reachable again`);
    }
  }
}

function addHistory(text) {
  const list = byId("history");
  list.prepend(el("li", {}, `${now()} ${text}`));
  while (list.children.length > HISTORY_MAX) list.lastElementChild.remove();
}

async function transferLeadership(id) {
  showMessage("cluster-message", `asking node ${id} to take over…`);
  try {
    const response = await api("POST", `/v1/cluster/transfer-leader?to=${id}`, { timeoutMs: 5000 });
    if (!response.ok) throw new Error(await describeFailure(response));
    showMessage("cluster-message", `leadership transfer to node ${id} requested`);
  } catch (error) {
    showMessage("cluster-message", `transfer to node ${id} failed: ${error.message}`, true);
  }
}

// ---- keys: the hierarchy, folder by folder
//
// Keys are paths (`/app/config/mode`); a folder is a prefix that ends at a `/`. The page lists
// every key under the current folder (names only, in pages, up to FOLDER_SCAN_KEYS_MAX) and
// groups them: a folder row per next segment with how many keys it holds, a key row per key
// directly in the folder. A click on a folder descends, the breadcrumbs go back up, a click on
// a key reads its value. With "live" on, the watch long poll on the folder lists it again.

function normalizeKey(text) {
  const key = text.trim();
  return key.startsWith("/") ? key : `/${key}`;
}

// A folder path without its trailing slash ("/" for the root).
function normalizeFolder(text) {
  const folder = normalizeKey(text).replace(/\/+$/, "");
  return folder === "" ? "/" : folder;
}

// The path of `name` inside `folder`.
function childPath(folder, name) {
  return folder === "/" ? `/${name}` : `${folder}/${name}`;
}

function valueText(entry) {
  return entry.value !== undefined ? entry.value : `(base64) ${entry.value_base64}`;
}

function openFolder(folder) {
  byId("folder").value = normalizeFolder(folder);
  state.keys.selected = null;
  listKeys();
}

// Lists every key under the folder, page by page (names, versions and revisions only).
async function scanFolder(folder) {
  const entries = [];
  let after = null;
  let revision = 0;
  while (entries.length < FOLDER_SCAN_KEYS_MAX) {
    const from = after === null ? "" : `&after=${encodeURIComponent(after)}`;
    const path = `/v1/kv${encodePath(folder)}?list&keys_only&limit=${FOLDER_PAGE_KEYS}${from}`;
    const response = await api("GET", path);
    if (!response.ok) throw new Error(await describeFailure(response));
    const listing = await response.json();
    entries.push(...listing.entries);
    revision = revision || listing.revision;
    if (!listing.continue_after) return { entries, revision, truncated: false };
    after = listing.continue_after;
  }
  return { entries, revision, truncated: true };
}

// The folder's rows: its sub-folders (with how many keys each holds), then its own keys.
function folderRows(folder, entries) {
  const folders = new Map();
  const keys = [];
  const start = folder === "/" ? 1 : folder.length + 1;
  for (const entry of entries) {
    if (entry.key.length <= start || (folder !== "/" && entry.key[folder.length] !== "/")) continue;
    const rest = entry.key.slice(start);
    const slash = rest.indexOf("/");
    if (slash < 0) {
      keys.push(entry);
    } else {
      const name = rest.slice(0, slash);
      folders.set(name, (folders.get(name) || 0) + 1);
    }
  }
  return { folders: [...folders.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)), keys };
}

async function listKeys() {
  const keys = state.keys;
  keys.folder = normalizeFolder(byId("folder").value || "/");
  const generation = ++keys.generation;
  // The previous listing's watch is a long poll holding one of the few connections a browser
  // opens to a host (six): left to run out, a few folders opened in a row would hold them all
  // and the page's next requests would wait behind them until they time out.
  keys.watch?.abort();
  keys.watch = null;
  try {
    const scan = await scanFolder(keys.folder);
    if (generation !== keys.generation) return;
    keys.entries = scan.entries;
    keys.revision = scan.revision;
    renderKeys(scan);
    if (byId("watch").checked) watchKeys(generation, scan.revision + 1);
  } catch (error) {
    showMessage("keys-message", `listing ${keys.folder} failed: ${error.message}`, true);
  }
}

// "1 key", "2 keys".
function count(number, noun) {
  return `${number} ${noun}${number === 1 ? "" : "s"}`;
}

function renderBreadcrumbs(folder) {
  const crumbs = [el("button", { type: "button", class: "crumb", "data-folder": "/" }, "/")];
  let path = "";
  for (const segment of folder.split("/").filter(Boolean)) {
    path += `/${segment}`;
    crumbs.push(el("span", { class: "separator" }, "›"));
    crumbs.push(el("button", { type: "button", class: "crumb", "data-folder": path }, segment));
  }
  crumbs[crumbs.length - 1].setAttribute("aria-current", "location");
  byId("breadcrumbs").replaceChildren(...crumbs);
}

function renderKeys(scan) {
  const keys = state.keys;
  const { folders, keys: own } = folderRows(keys.folder, scan.entries);
  const more = scan.truncated ? ` (counted over the first ${scan.entries.length} keys)` : "";
  byId("keys-summary").textContent =
    `${keys.folder}: ${count(folders.length, "folder")}, ${count(own.length, "key")} here, ` +
    `${count(scan.entries.length, "key")} in all, at revision ${scan.revision}${more}`;
  renderBreadcrumbs(keys.folder);
  const folderRow = ([name, count]) =>
    el(
      "tr",
      { class: "folder", "data-folder": childPath(keys.folder, name) },
      el("td", { class: "name" }, `${name}/`),
      el("td", { class: "number" }, count),
      el("td", {}),
      el("td", {}),
    );
  const keyRow = (entry) =>
    el(
      "tr",
      { "data-key": entry.key, class: entry.key === keys.selected ? "selected" : null },
      el("td", { class: "name" }, entry.key.slice(entry.key.lastIndexOf("/") + 1)),
      el("td", {}),
      el("td", { class: "number" }, entry.version),
      el("td", { class: "number" }, entry.modify_revision),
    );
  document.querySelector("#keys tbody").replaceChildren(...folders.map(folderRow), ...own.map(keyRow));
  if (!own.some((entry) => entry.key === keys.selected)) keys.selected = null;
  showKey(keys.selected);
}

// Reads a key with its value (a one-key listing: its JSON carries the value, and its revisions
// are in the body, where a page from another origin can read them) and shows it.
async function showKey(key) {
  const card = byId("key-detail");
  if (!key) {
    card.hidden = true;
    return;
  }
  try {
    const response = await api("GET", `/v1/kv${encodePath(key)}?list&limit=1`);
    if (!response.ok) throw new Error(await describeFailure(response));
    const entry = (await response.json()).entries.find((candidate) => candidate.key === key);
    if (state.keys.selected !== key) return;
    if (!entry) {
      card.hidden = true;
      return;
    }
    renderKeyDetail(entry);
  } catch (error) {
    showMessage("keys-message", `reading ${key} failed: ${error.message}`, true);
  }
}

function renderKeyDetail(entry) {
  const card = byId("key-detail");
  const field = (name, value) => [el("dt", {}, name), el("dd", {}, value ?? "—")];
  card.replaceChildren(
    el("h3", {}, entry.key),
    el(
      "dl",
      {},
      ...field("value", el("pre", { class: "value" }, valueText(entry))),
      ...field("version", entry.version),
      ...field("created at revision", entry.create_revision),
      ...field("modified at revision", entry.modify_revision),
      ...field("session", entry.session),
    ),
    el("button", { type: "button", class: "danger delete-key", "data-key": entry.key }, "delete"),
  );
  card.hidden = false;
}

// Follows the folder's changes with the watch long poll and lists again when one arrives.
async function watchKeys(generation, since) {
  const keys = state.keys;
  while (generation === keys.generation && state.view === "keys" && byId("watch").checked) {
    try {
      const path = `/v1/kv${encodePath(keys.folder)}?watch&since=${since}&timeout_ms=${WATCH_TIMEOUT_MS}`;
      const stop = new AbortController();
      keys.watch = stop;
      const response = await api("GET", path, { timeoutMs: WATCH_TIMEOUT_MS + 5000, signal: stop.signal });
      if (generation !== keys.generation) return;
      if (!response.ok) throw new Error(await describeFailure(response));
      const batch = await response.json();
      if (batch.events.length > 0) {
        listKeys();
        return;
      }
      since = batch.next_since;
    } catch (_) {
      // The node may be gone: list again (through whichever member answers) in a moment.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      if (generation === keys.generation) listKeys();
      return;
    }
  }
}

async function putKey(event) {
  event.preventDefault();
  const key = normalizeKey(byId("put-key").value);
  if (key === "/") {
    showMessage("keys-message", "give a key, such as /config/mode", true);
    return;
  }
  try {
    const response = await api("PUT", `/v1/kv${encodePath(key)}`, { body: byId("put-value").value, timeoutMs: 10000 });
    if (!response.ok) throw new Error(await describeFailure(response));
    const answer = await response.json();
    showMessage("keys-message", `put ${key}: version ${answer.version} at revision ${answer.revision}`);
    byId("folder").value = normalizeFolder(key.slice(0, key.lastIndexOf("/")) || "/");
    state.keys.selected = key;
    listKeys();
  } catch (error) {
    showMessage("keys-message", `put ${key} failed: ${error.message}`, true);
  }
}

async function deleteKey(key) {
  try {
    const response = await api("DELETE", `/v1/kv${encodePath(key)}`, { timeoutMs: 10000 });
    if (!response.ok) throw new Error(await describeFailure(response));
    const answer = await response.json();
    showMessage("keys-message", `deleted ${key} at revision ${answer.revision}`);
    state.keys.selected = null;
    listKeys();
  } catch (error) {
    showMessage("keys-message", `delete ${key} failed: ${error.message}`, true);
  }
}

// ---- services

async function refreshServices() {
  try {
    const response = await api("GET", "/v1/services");
    if (!response.ok) throw new Error(await describeFailure(response));
    const list = await response.json();
    const groups = await Promise.all(
      list.services.map(async (summary) => {
        const detail = await api("GET", `/v1/services${encodePath(summary.name)}`);
        return detail.ok ? detail.json() : { ...summary, standbys: [], members: [] };
      }),
    );
    const shown = JSON.stringify(groups);
    if (shown !== state.servicesShown) {
      state.servicesShown = shown;
      renderServices(groups);
    }
    byId("services-summary").textContent = `${groups.length} service groups · updated ${now()}`;
  } catch (error) {
    byId("services-summary").textContent = `reading the service groups failed: ${error.message}`;
  }
}

function renderServices(groups) {
  byId("groups").replaceChildren(...groups.map(groupCard));
}

// Who holds a member out of the picks: itself (its own reports), the operator, or both.
function drainedBy(member) {
  const by = [];
  if (member.drained_by_self ?? member.draining) by.push("self");
  if (member.drained_by_operator) by.push("operator");
  return by.length ? `drained by ${by.join(" + ")}` : "no";
}

function drainButton(group, instance, drainedByOperator) {
  return el(
    "button",
    {
      type: "button",
      class: drainedByOperator ? "undrain" : "danger drain",
      "data-name": group.name,
      "data-instance": instance,
    },
    drainedByOperator ? "undrain" : "drain",
  );
}

function groupCard(group) {
  const field = (name, value) => [el("dt", {}, name), el("dd", {}, value ?? "—")];
  const farm = group.mode === "farm";
  const rows = (group.members || []).map((member) =>
    el(
      "tr",
      { class: member.draining ? "draining" : null, "data-instance": member.instance },
      el("td", {}, member.instance),
      el("td", {}, member.role),
      el("td", { class: "number" }, member.weight),
      el("td", { class: "number" }, member.load),
      el("td", { class: "drained-by" }, drainedBy(member)),
      el("td", { class: "number" }, member.priority),
      el("td", {}, Object.entries(member.addresses || {}).map(([name, address]) => `${name}=${address}`).join(" ")),
      farm ? el("td", {}, drainButton(group, member.instance, member.drained_by_operator)) : null,
    ),
  );
  const columns = ["instance", "role", "weight", "load", "draining", "priority", "addresses"];
  if (farm) columns.push("operator");
  const header = el("tr", {}, ...columns.map((name) => el("th", {}, name)));
  // Instances the operator drained that are not registered now: they come back drained.
  const registered = new Set((group.members || []).map((member) => member.instance));
  const away = (group.drained_by_operator || []).filter((instance) => !registered.has(instance));
  return el(
    "div",
    { class: "card group", "data-name": group.name },
    el("h3", {}, group.name, " ", el("span", { class: "badge" }, group.mode), " ", el("span", { class: "badge" }, group.phase)),
    el(
      "dl",
      {},
      ...field("epoch", group.epoch),
      ...(farm ? [] : field("master", group.master ? group.master.instance : "none")),
      ...(farm ? [] : field("standbys", (group.standbys || []).join(" → ") || "none")),
      ...field("members", (group.members || []).length),
    ),
    el("div", { class: "scroll" }, el("table", { class: "members" }, el("thead", {}, header), el("tbody", {}, ...rows))),
    away.length
      ? el(
          "div",
          { class: "actions away" },
          "drained by the operator, not registered now:",
          ...away.flatMap((instance) => [el("span", {}, instance), drainButton(group, instance, true)]),
        )
      : null,
    farm || !group.master
      ? null
      : el(
          "button",
          { type: "button", class: "danger resign", "data-name": group.name, "data-instance": group.master.instance, "data-epoch": group.epoch },
          `resign ${group.master.instance} (the next standby takes over)`,
        ),
  );
}

// The operator drains a farm member (it stays registered and is no longer picked; its own
// keep-alives do not undo it) or gives it back to the picks.
async function drainMember(button) {
  const { name, instance } = button.dataset;
  const action = button.classList.contains("undrain") ? "undrain" : "drain";
  button.disabled = true;
  try {
    const path = `/v1/services${encodePath(name)}/members/${encodeURIComponent(instance)}/${action}`;
    const response = await api("POST", path, { timeoutMs: 10000 });
    if (!response.ok) throw new Error(await describeFailure(response));
    const answer = await response.json();
    const now = answer.draining ? "out of the picks" : "picked again";
    showMessage("services-message", `${name}: ${instance} ${action}ed by the operator; ${now}`);
    refreshServices();
  } catch (error) {
    button.disabled = false;
    showMessage("services-message", `${name}: ${action} ${instance} failed: ${error.message}`, true);
  }
}

// Resigns the master on its behalf, with the epoch shown: if the group moved on meanwhile the
// API refuses it (409 stale_epoch) instead of deposing a master the operator has not seen.
async function resignMaster(button) {
  const { name, instance, epoch } = button.dataset;
  const body = JSON.stringify({ instance, epoch: Number(epoch) });
  try {
    const response = await api("POST", `/v1/services${encodePath(name)}/resign`, { body, timeoutMs: 10000 });
    if (!response.ok) throw new Error(await describeFailure(response));
    const answer = await response.json();
    showMessage("services-message", `${name}: ${instance} resigned; epoch ${answer.epoch}, master ${answer.master ?? "none"}`);
    refreshServices();
  } catch (error) {
    showMessage("services-message", `${name}: resigning ${instance} failed: ${error.message}`, true);
  }
}

// ---- tenants

// Every tenant with the admin token; a tenant's own token shows that tenant alone.
async function refreshTenants() {
  try {
    let response = await api("GET", "/v1/tenants");
    let tenants;
    if (response.status === 403 && state.token && state.token.includes(".")) {
      const own = state.token.slice(0, state.token.indexOf("."));
      response = await api("GET", `/v1/tenants/${encodeURIComponent(own)}`);
      if (!response.ok) throw new Error(await describeFailure(response));
      tenants = [await response.json()];
    } else {
      if (!response.ok) throw new Error(await describeFailure(response));
      tenants = (await response.json()).tenants;
    }
    byId("tenants")
      .querySelector("tbody")
      .replaceChildren(...tenants.map(tenantRow));
    byId("tenants-summary").textContent = `${tenants.length} tenants · updated ${now()}`;
  } catch (error) {
    byId("tenants-summary").textContent = `reading the tenants failed: ${error.message}`;
  }
}

function tenantRow(tenant) {
  const caps = tenant.caps || {};
  const usage = tenant.usage || {};
  const here = tenant.on_this_node || {};
  const against = (used, cap) => {
    const near = cap !== null && cap !== undefined && used >= cap * NEAR_CAP;
    const text = cap === null || cap === undefined ? `${used} / —` : `${used} / ${cap}`;
    return el("td", { class: near ? "number near-cap" : "number" }, text);
  };
  const rate = (value) => el("td", { class: "number" }, value ?? "—");
  return el(
    "tr",
    { "data-name": tenant.name },
    el("td", {}, tenant.name),
    against(usage.keys ?? 0, caps.keys),
    against(usage.bytes ?? 0, caps.bytes),
    against(usage.sessions ?? 0, caps.sessions),
    against(usage.services ?? 0, caps.services),
    against(usage.members ?? 0, caps.members),
    against(here.watches ?? 0, caps.watches),
    against(here.connections ?? 0, caps.connections),
    rate(caps.write_rate),
    rate(caps.write_bytes_rate),
    rate(caps.read_rate),
    el("td", { class: "number" }, (tenant.tokens || []).length),
  );
}

// ---- start

function start() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      location.hash = tab.dataset.view;
    });
  }
  window.addEventListener("hashchange", () => showView(location.hash.slice(1)));
  document.querySelector("#members tbody").addEventListener("click", (event) => {
    const button = event.target.closest("button.transfer");
    if (button) transferLeadership(Number(button.dataset.id));
  });
  byId("folder-form").addEventListener("submit", (event) => {
    event.preventDefault();
    openFolder(byId("folder").value || "/");
  });
  byId("watch").addEventListener("change", () => listKeys());
  byId("breadcrumbs").addEventListener("click", (event) => {
    const crumb = event.target.closest("button.crumb");
    if (crumb) openFolder(crumb.dataset.folder);
  });
  document.querySelector("#keys tbody").addEventListener("click", (event) => {
    const folder = event.target.closest("tr[data-folder]");
    if (folder) {
      openFolder(folder.dataset.folder);
      return;
    }
    const row = event.target.closest("tr[data-key]");
    if (!row) return;
    state.keys.selected = row.dataset.key;
    for (const other of document.querySelectorAll("#keys tbody tr")) other.classList.toggle("selected", other === row);
    showKey(row.dataset.key);
  });
  byId("key-detail").addEventListener("click", (event) => {
    const button = event.target.closest("button.delete-key");
    if (button) deleteKey(button.dataset.key);
  });
  byId("put-form").addEventListener("submit", putKey);
  byId("token-form").addEventListener("submit", useToken);
  byId("forget-token").addEventListener("click", forgetToken);
  byId("forget-token").hidden = !state.token;
  byId("groups").addEventListener("click", (event) => {
    const button = event.target.closest("button.resign");
    if (button) resignMaster(button);
    const drain = event.target.closest("button.drain, button.undrain");
    if (drain) drainMember(drain);
  });

  showView(location.hash.slice(1));
  const loop = async () => {
    await pollCluster();
    setTimeout(loop, CLUSTER_POLL_MS);
  };
  loop();
  setInterval(() => {
    if (state.view === "services") refreshServices();
    if (state.view === "tenants") refreshTenants();
  }, SERVICES_POLL_MS);
}

start();
