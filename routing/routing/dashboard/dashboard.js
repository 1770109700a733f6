// Meridian's SRE dashboard: the routing table, its event timeline and the
// failure drills, followed live over the routing API's long polls (the
// page comes from the same origin). Drain and undrain take the admin
// token. Nothing here trusts data as HTML: text goes through textContent.
// (after infra/web/common.js: $, wait, h)

const SVG = 'http://www.w3.org/2000/svg';
// The `pop` of a drill's seconds that add up every POP (the server fills
// it in from routing::drills::ALL_POPS).
const ALL_POPS = document.body.dataset.allPops;

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v != null) el.setAttribute(k, v);
  for (const c of children.flat()) if (c != null) el.append(c instanceof Node ? c : String(c));
  return el;
}

// One API call: JSON, or an Error whose message is the problem's detail.
async function api(method, path, { token } = {}) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = 'Bearer ' + token;
  const res = await fetch(path, { method, headers });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const e = new Error((data && (data.detail || data.title)) || `HTTP ${res.status}`);
    e.status = res.status;
    e.title = data && data.title;
    throw e;
  }
  return data;
}

const clock = (ms) => new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
const latency = (ms) => (ms == null ? '–' : `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`);
const health = (value) => h('span', { class: `health ${value}`, text: value });

// --- The table --------------------------------------------------------

let table = null;

function renderTable(t) {
  table = t;
  const activeFor = (region) => t.shards.filter((x) => x.active === region).map((x) => x.shard).join(', ') || '–';
  replaceKeepingFocus($('regions').tBodies[0], ...t.regions.map((r) => h('tr', { 'data-region': r.name },
    h('th', { scope: 'row', text: r.name }),
    h('td', {}, health(r.health)),
    h('td', { text: latency(r.probe_latency_ms) }),
    h('td', { text: activeFor(r.name) }),
    h('td', {}, token()
      ? (r.health === 'drained'
        ? h('button', { type: 'button', onclick: () => drain(r.name, false), 'data-focus': `drain ${r.name}`, text: 'Undrain', 'aria-label': `Undrain ${r.name}` })
        : h('button', { type: 'button', onclick: () => drain(r.name, true), 'data-focus': `drain ${r.name}`, text: 'Drain', 'aria-label': `Drain ${r.name}` }))
      : h('span.muted', { text: 'token needed' })))));
  $('shards').tBodies[0].replaceChildren(...t.shards.map((x) => h('tr', { 'data-shard': x.shard },
    h('th', { scope: 'row', text: x.shard }),
    h('td', { text: x.home }),
    h('td', { class: x.active === x.home ? 'healthy' : x.active ? 'degraded' : 'down' },
      x.active == null ? 'unserved' : x.active === x.home ? x.active : `${x.active} (failed over)`),
    h('td', { text: x.standbys.join(', ') || '–' }))));
  $('pops').tBodies[0].replaceChildren(...(t.pops || []).map((p) => h('tr', { 'data-pop': p.name },
    h('th', { scope: 'row', text: p.name }),
    h('td', {}, health(p.health)),
    h('td', { text: latency(p.probe_latency_ms) }))));
}

function describe(e) {
  switch (e.event) {
    case 'region_health': return `region ${e.region}: ${e.from} → ${e.to}`;
    case 'pop_health': return `POP ${e.pop}: ${e.from} → ${e.to}`;
    case 'shard_moved': return `shard ${e.shard} moved: ${e.from || 'nowhere'} → ${e.to || 'nowhere'}`;
    default: return e.event;
  }
}

async function refreshEvents() {
  const events = await api('GET', '/v1/events?limit=50');
  $('events').replaceChildren(...events.slice().reverse().map((e) => h('li', {},
    h('time', { datetime: new Date(e.at_ms).toISOString(), text: clock(e.at_ms) }), describe(e))));
}

// The table long poll: each answer is a change (or the poll's timeout).
async function followTable() {
  let since = 0;
  for (let failures = 0; ;) {
    try {
      const t = await api('GET', `/v1/table/watch?since=${since}&timeout_ms=25000`);
      since = t.version;
      failures = 0;
      renderTable(t);
      $('link').textContent = `Live · table version ${t.version}`;
      await refreshEvents();
    } catch (e) {
      failures++;
      $('link').textContent = `Routing API unreachable (${e.message}); retrying`;
      await wait(Math.min(500 * 2 ** failures, 5000));
    }
  }
}

// --- Drain and undrain --------------------------------------------------

const token = () => sessionStorage.getItem('mrd.admin-token');

async function drain(region, on) {
  const verb = on ? 'drain' : 'undrain';
  try {
    renderTable(await api('POST', `/v1/regions/${encodeURIComponent(region)}/${verb}`, { token: token() }));
    $('admin-status').textContent = `${region} ${on ? 'drained: it gets no traffic' : 'undrained: it serves again when healthy'}.`;
  } catch (e) {
    $('admin-status').textContent = `Could not ${verb} ${region}: ${e.title ? e.title + ': ' : ''}${e.message}`;
  }
}

$('admin').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const value = $('token').value.trim();
  if (value) sessionStorage.setItem('mrd.admin-token', value);
  $('token').value = '';
  $('admin-status').textContent = value ? 'Token set for this tab.' : 'Enter a token first.';
  if (table) renderTable(table);
});
$('forget').addEventListener('click', () => {
  sessionStorage.removeItem('mrd.admin-token');
  $('admin-status').textContent = 'Token forgotten.';
  if (table) renderTable(table);
});

// --- Drills -------------------------------------------------------------

let followed = null; // the id of the drill in the live view

async function refreshDrills() {
  const drills = await api('GET', '/v1/drills');
  drills.sort((a, b) => b.started_ms - a.started_ms);
  if (!drills.length) {
    $('drills').tBodies[0].replaceChildren(h('tr', {}, h('td', { colspan: 5, class: 'muted', text: 'None yet: run one with meridian drill <scenario> --target <control API>.' })));
  } else replaceKeepingFocus($('drills').tBodies[0], ...drills.map((d) => h('tr', { 'data-drill': d.id },
    h('td', {}, h('time', { datetime: new Date(d.started_ms).toISOString(), text: new Date(d.started_ms).toLocaleString('en-GB') })),
    h('td', { text: d.scenario }),
    h('td', { text: d.region }),
    h('td', { class: d.state, text: d.state }),
    h('td', {}, d.state === 'running' ? h('span.muted', { text: 'running' }) : [
      h('a', { href: `/v1/drills/${encodeURIComponent(d.id)}/report.html`, 'data-focus': `html ${d.id}`, text: 'HTML' }), ' · ',
      h('a', { href: `/v1/drills/${encodeURIComponent(d.id)}/report.md`, 'data-focus': `md ${d.id}`, text: 'Markdown' })]))));
  const live = drills.find((d) => d.state === 'running') || drills[0];
  if (live && live.id !== followed) {
    followed = live.id;
    followDrill(live.id);
  }
}

// A drill's long poll, until it ends (or another drill is followed).
async function followDrill(id) {
  let since = 0;
  for (let failures = 0; followed === id;) {
    try {
      const d = await api('GET', `/v1/drills/${encodeURIComponent(id)}/watch?since=${since}&timeout_ms=25000`);
      failures = 0;
      if (followed !== id) return;
      renderDrill(d);
      if (d.state !== 'running') { since = d.version; refreshDrills(); return; }
      since = d.version;
    } catch (e) {
      if (e.status === 404) return;
      failures++;
      await wait(Math.min(500 * 2 ** failures, 5000));
    }
  }
}

function renderDrill(d) {
  const all = d.seconds.filter((x) => x.pop === ALL_POPS).sort((a, b) => a.at_s - b.at_s);
  const start = d.start;
  const faultEnd = start.fault_at_s + start.fault_for_s;
  const chart = (title, series, unit) => figure(title, series, unit, start.duration_s, [start.fault_at_s, faultEnd]);
  replaceKeepingFocus($('drill'),
    h('p', {}, h('strong', { text: `${d.scenario} of ${d.region}` }), ' · ',
      h('span', { id: 'drill-state', class: d.state, text: d.state })),
    h('dl.facts', {},
      h('dt', { text: 'Hypothesis' }), h('dd', { text: start.hypothesis }),
      h('dt', { text: 'Fault' }), h('dd', { text: `from ${start.fault_at_s} s for ${start.fault_for_s} s of ${start.duration_s} s` }),
      h('dt', { text: 'Started' }), h('dd', { text: new Date(d.started_ms).toLocaleString('en-GB') })),
    h('h3', { text: 'Timeline' }),
    h('ol', { id: 'drill-timeline' }, d.timeline.map((m) => h('li', {}, h('b', { text: `+${(m.at_ms / 1000).toFixed(1)} s ` }), m.what))),
    h('div.charts', {},
      chart('Throughput', [['requests/s', all.map((x) => [x.at_s, x.requests])]], '/s'),
      chart('Error rate', [['errors', all.map((x) => [x.at_s, x.requests ? (100 * x.errors) / x.requests : 0])]], '%'),
      chart('Latency', [['p50', all.map((x) => [x.at_s, x.p50_ms])], ['p99', all.map((x) => [x.at_s, x.p99_ms])]], ' ms')),
    d.state === 'running' ? null : h('p', {}, 'Report: ',
      h('a', { href: `/v1/drills/${encodeURIComponent(d.id)}/report.html`, 'data-focus': `html ${d.id}`, text: 'HTML' }), ' · ',
      h('a', { href: `/v1/drills/${encodeURIComponent(d.id)}/report.md`, 'data-focus': `md ${d.id}`, text: 'Markdown' })));
}

// A line chart of `series` ([name, [[second, value]…]]) over the drill's
// length, its fault window shaded; described in words for screen readers.
function figure(title, series, unit, duration, [from, to]) {
  const W = 320, H = 140, L = 34, B = 18, T = 8;
  const max = Math.max(1, ...series.flatMap(([, pts]) => pts.map(([, v]) => v)));
  const x = (t) => L + ((W - L - 6) * t) / Math.max(1, duration);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const last = series.map(([name, pts]) => `${name} ${pts.length ? Math.round(pts[pts.length - 1][1] * 10) / 10 + unit : 'none yet'}`);
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title} per second; peak ${Math.round(max * 10) / 10}${unit}; latest: ${last.join(', ')}` },
    s('rect', { class: 'fault', x: x(from), y: T, width: Math.max(0, x(to) - x(from)), height: H - T - B }),
    s('line', { class: 'axis', x1: L, y1: H - B, x2: W - 6, y2: H - B }),
    s('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }),
    s('text', { x: 2, y: T + 10 }, `${Math.round(max)}${unit.trim()}`),
    s('text', { x: L, y: H - 4 }, '0 s'),
    s('text', { x: W - 40, y: H - 4 }, `${duration} s`),
    series.map(([, pts], i) => s('polyline', { class: `s${i}`, points: pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ') })));
  return h('figure', {}, h('figcaption', { text: title }), svg,
    h('div.legend', {}, series.map(([name], i) => h('span', { class: `k${i}`, text: `— ${name}` }))));
}

// New drills are found by listing (a drill does not change the table).
async function watchDrills() {
  for (;;) {
    try { await refreshDrills(); } catch { /* the table's poll reports the link */ }
    await wait(2000);
  }
}

followTable();
watchDrills();
