// The mallgate dashboard: asks for a staff (or ops) token once per browser tab, keeps it
// in sessionStorage, and draws the snapshots /api/v1/events streams every 2 seconds.
// EventSource cannot send an Authorization header, so the token goes as ?token= on the
// stream's URL (the gateway accepts it there only, and keeps no access log).
"use strict";

const KEY = "mallgate.token";
const STREAM_AFTER_MS = 2000;  // the stream's own period
const $ = (id) => document.getElementById(id);
let source = null;

function takeTokenFromAddress() {
  // A token given as ?token= (a bookmark, a test) is kept for the tab and removed from
  // the address bar, so it is not left in the history or shown on screen.
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token) {
    sessionStorage.setItem(KEY, token);
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function rows(id, items, cells, empty) {
  const body = $(id);
  body.replaceChildren();
  if (!items.length) {
    const tr = el("tr");
    const td = el("td", empty, "muted");
    td.colSpan = 8;
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const item of items) {
    const tr = el("tr");
    for (const [text, cls] of cells(item)) tr.append(el("td", text, cls));
    body.append(tr);
  }
}

function time(text) {
  if (!text) return "-";
  const at = new Date(text);
  return isNaN(at) ? text : at.toLocaleTimeString();
}

function onOff(flag) {
  if (flag === null || flag === undefined) return ["unknown", "muted"];
  return flag ? ["online", "online"] : ["offline", "offline"];
}

function drawChart(points) {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 22;
  ctx.clearRect(0, 0, w, h);
  const top = Math.max(1, ...points.map((p) => p.count));
  const step = (w - pad) / Math.max(1, points.length);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#666";
  ctx.fillText(String(top), 0, 12);
  ctx.fillText("0", 0, h - pad);
  points.forEach((p, i) => {
    const bar = Math.round((h - pad - 8) * p.count / top);
    ctx.fillStyle = "#3b6ea8";
    ctx.fillRect(pad + i * step + 1, h - pad - bar, Math.max(1, step - 2), bar);
    if (i % 5 === 0) {
      ctx.fillStyle = "#666";
      ctx.fillText(p.minute.slice(11, 16), pad + i * step, h - 6);
    }
  });
}

function render(s) {
  $("site").textContent = s.site.name + " / " + s.site.gateway_id;
  $("at").textContent = "as of " + time(s.at);
  rows("parts", s.parts, (p) => [[p.name], [p.state, p.state], [p.restarts], [p.reason || ""]],
       "no parts");
  const sync = $("sync");
  sync.replaceChildren();
  const facts = s.sync ? [
    ["mode", s.sync.mode || "-"], ["central", s.sync.online ? "online" : "offline"],
    ["outbox depth", s.sync.outbox_depth],
    ["oldest pending", s.sync.oldest_pending_s == null ? "-" :
      Math.round(s.sync.oldest_pending_s) + " s"],
    ["cursor lag", s.sync.cursor_lag == null ? "-" : s.sync.cursor_lag],
    ["last error", s.sync.last_error || "-"],
  ] : [["mode", "sync off (no central configured)"]];
  for (const [name, value] of facts) sync.append(el("dt", name), el("dd", value));
  $("dead-letters").textContent = s.dead_letters.pending;
  rows("pos", s.devices.pos, (p) => [[p.path], [p.store_id + "/" + p.pos_id],
    p.up ? ["open", "up"] : ["closed", "down"], [p.receipts], [p.errors]], "no POS ports");
  rows("kiosks", s.devices.kiosks, (k) => [[k.id], onOff(k.online), [time(k.last_seen)]],
       "no kiosk seen yet");
  rows("receivers", s.devices.ble_receivers, (r) => [[r.id], [r.zone], onOff(r.online),
    [r.adverts]], "no BLE receivers");
  rows("offers", s.welcome_offers, (o) => [[time(o.at)], [o.zone], [o.title || o.offer_id],
    [o.member_id]], "none yet");
  rows("redemptions", s.redemptions, (r) => [[time(r.at)], [r.account_id], [r.points],
    [r.channel]], "none yet");
  drawChart(s.events_per_minute);
}

function showLogin(message) {
  if (source) source.close();
  source = null;
  $("board").hidden = true;
  $("forget").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("link").textContent = "not connected";
  $("link").className = "badge";
}

async function connect() {
  const token = sessionStorage.getItem(KEY);
  if (!token) return showLogin();
  // One plain request first: it tells a refused token (401/403) from a lost connection,
  // which an EventSource cannot, and shows data before the stream's first tick.
  let reply;
  try {
    reply = await fetch("/api/v1/dashboard", { headers: { Authorization: "Bearer " + token } });
  } catch (err) {
    $("link").textContent = "gateway unreachable";
    $("link").className = "badge lost";
    setTimeout(connect, 3000);
    return;
  }
  if (reply.status === 401 || reply.status === 403) {
    sessionStorage.removeItem(KEY);
    return showLogin(reply.status === 401 ? "That token is not known to this gateway."
                                          : "That token's role may not see the dashboard.");
  }
  if (!reply.ok) {
    setTimeout(connect, 3000);
    return;
  }
  $("login").hidden = true;
  $("board").hidden = false;
  $("forget").hidden = false;
  $("link").textContent = "connected";
  $("link").className = "badge live";
  render(await reply.json());
  // The stream starts at the next tick: the page already shows this one. (A headless
  // browser waiting for the page to settle, as the tests do, would wait forever on an
  // open stream; this way it settles first.)
  setTimeout(() => openStream(token), STREAM_AFTER_MS);
}

function openStream(token) {
  if (source || sessionStorage.getItem(KEY) !== token) return;
  source = new EventSource("/api/v1/events?token=" + encodeURIComponent(token));
  source.addEventListener("snapshot", (event) => {
    $("link").textContent = "live";
    $("link").className = "badge live";
    render(JSON.parse(event.data));
  });
  source.addEventListener("error", () => {
    $("link").textContent = "reconnecting";
    $("link").className = "badge lost";
    if (source.readyState === EventSource.CLOSED) {
      source = null;
      setTimeout(connect, 3000);  // e.g. the token was removed from the configuration
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  takeTokenFromAddress();
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("token").value.trim());
    $("token").value = "";
    connect();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    showLogin();
  });
  connect();
});
