// Progressive enhancement only: every page works without this file.
'use strict';

const pad = (n) => String(n).padStart(2, '0');

/** "2 h 03 min", "4 min 05 s", "12 s". */
function span(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h) return `${h} h ${pad(m)} min`;
  if (m) return `${m} min ${pad(sec)} s`;
  return `${sec} s`;
}

/** Shows <time> elements in the browser's time zone. */
function localTimes(root) {
  for (const t of root.querySelectorAll('time[datetime]')) {
    const d = new Date(t.getAttribute('datetime'));
    if (!Number.isNaN(d.getTime())) { t.title = t.getAttribute('datetime'); t.textContent = d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }); }
  }
}

function countdowns() {
  for (const c of document.querySelectorAll('.countdown[data-until]')) {
    const left = Date.parse(c.dataset.until) - Date.now();
    c.textContent = left > 0 ? span(left) : 'now';
  }
}

/**
 * Disables the groups the endpoint chosen in `select` cannot honour, with the reason (the wizard
 * and the Request access page, requests.js, which this file is loaded before).
 */
function osGroups(form, select) {
  const osName = { linux: 'Linux', windows: 'Windows', macos: 'macOS' };
  return () => {
    const os = select.selectedOptions[0]?.dataset.os;
    form.querySelectorAll('input[name=group]').forEach((r, i) => {
      const ok = !os || r.dataset.allowedOs.split(' ').includes(os);
      r.disabled = !ok;
      if (!ok) r.checked = false;
      const reason = form.querySelector(`#reason-${i}`);
      if (reason) reason.textContent = ok ? '' : `${osName[os]} endpoints have no "${r.value}" group`;
    });
  };
}

/** Endpoint picker: filter box, and groups the chosen endpoint's OS cannot honour disabled with the reason. */
function wizard(form) {
  const select = form.querySelector('#endpoint');
  const filter = form.querySelector('#endpoint-filter');
  filter?.addEventListener('input', () => {
    const q = filter.value.trim().toLowerCase();
    for (const o of select.options) o.hidden = q !== '' && !o.textContent.toLowerCase().includes(q);
  });
  const groups = osGroups(form, select);
  select?.addEventListener('change', groups);
  groups();

  // elevate-account: its fields only with it, and the chosen endpoint's accounts to pick from.
  const operation = form.querySelector('#operation');
  const elevateFields = () => form.querySelectorAll('.elevate-only').forEach((f) => (f.hidden = operation.value !== 'elevate-account'));
  const accounts = () => {
    const list = form.querySelector('#accounts-list');
    const names = (select.selectedOptions[0]?.dataset.accounts ?? '').split(' ').filter(Boolean);
    list?.replaceChildren(...names.map((n) => Object.assign(document.createElement('option'), { value: n })));
  };
  operation?.addEventListener('change', elevateFields);
  select?.addEventListener('change', accounts);
  if (operation) elevateFields();

  const tz = form.querySelector('#tz');
  const start = form.querySelector('#start');
  const end = form.querySelector('#end');
  const out = form.querySelector('#duration');
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  // A fresh form follows the browser's zone; a re-shown one keeps what was typed.
  if (tz && !form.querySelector('.field-error') && tz.value === 'UTC' && browserZone && browserZone !== 'UTC' && start.value) {
    const shift = (v) => toLocalValue(new Date(`${v}Z`), true);
    start.value = shift(start.value); end.value = end.value ? shift(end.value) : '';
    tz.value = browserZone;
  }
  const names = () => form.querySelectorAll('.tz-name').forEach((n) => (n.textContent = tz.value));
  const dur = () => {
    const ms = Date.parse(end.value) - Date.parse(start.value);
    out.textContent = start.value && end.value && ms > 0 ? span(ms) : '—';
  };
  tz?.addEventListener('input', names);
  start?.addEventListener('input', dur);
  end?.addEventListener('input', dur);
  names(); dur();
  // Quick choices right here, without a round trip (the buttons still work without JS).
  // Wall times are handled as UTC numbers so the chosen zone, not the browser's, applies.
  const wall = (v) => Date.parse(`${v}Z`);
  form.querySelectorAll('.quick button').forEach((b) => b.addEventListener('click', (ev) => {
    let now;
    try { now = wall(nowIn(tz.value)); } catch { return; } // unknown zone: let the server answer
    ev.preventDefault();
    const s = b.value === 'start-now' || !start.value ? now : wall(start.value);
    start.value = toLocalValue(new Date(s), false);
    const hours = b.value === 'plus-4h' ? 4 : 1;
    if (b.value !== 'start-now' || !end.value || wall(end.value) <= s) end.value = toLocalValue(new Date(s + hours * 3600e3), false);
    dur();
  }));
}

/** The wall time now in an IANA zone, as a datetime-local value. */
function nowIn(zone) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-CA', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }).formatToParts(new Date()).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}`;
}

/** datetime-local value of a Date, in the browser's zone (local) or as UTC wall time. */
function toLocalValue(d, local = true) {
  const g = local ? (k) => d[`get${k}`]() : (k) => d[`getUTC${k}`]();
  return `${g('FullYear')}-${pad(g('Month') + 1)}-${pad(g('Date'))}T${pad(g('Hours'))}:${pad(g('Minutes'))}:${pad(g('Seconds'))}`;
}

/** The grant page's timeline, refreshed every 2 s while the grant is live. */
function liveGrant(el) {
  const id = el.dataset.grantId;
  const list = document.getElementById('timeline');
  const state = document.getElementById('state');
  const user = document.getElementById('username');
  const tick = async () => {
    let g;
    try {
      const res = await fetch(`/grants/${encodeURIComponent(id)}/timeline.json`, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
      if (!res.ok) return setTimeout(tick, 5000);
      g = await res.json();
    } catch { return setTimeout(tick, 5000); }
    state.textContent = g.state;
    state.className = `state state-${g.state}`;
    if (g.username && user) { user.textContent = ''; const c = document.createElement('code'); c.textContent = g.username; user.append(c); }
    if (list.children.length !== g.timeline.length) {
      list.replaceChildren(...g.timeline.map((e) => {
        const li = document.createElement('li');
        li.dataset.type = e.type;
        const when = document.createElement('span'); when.className = 'when';
        const t = document.createElement('time'); t.setAttribute('datetime', e.at); when.append(t);
        const type = document.createElement('strong'); type.className = 'type'; type.textContent = e.type;
        const actor = document.createElement('span'); actor.className = 'actor'; actor.textContent = e.actor;
        const detail = document.createElement('code'); detail.className = 'detail'; detail.textContent = Object.keys(e.detail).length ? JSON.stringify(e.detail) : '';
        li.append(when, ' ', type, ' ', actor, ' ');
        if (e.summary) { const s = document.createElement('span'); s.className = 'summary'; s.textContent = e.summary; li.append(s, ' '); }
        li.append(detail);
        return li;
      }));
      localTimes(list);
    }
    const final = ['removed', 'revoked', 'failed'].includes(g.state);
    const next = document.getElementById('next');
    if (next) {
      const enabling = !final && g.state !== 'enabled' && Date.parse(g.enableAt) > Date.now();
      const c = document.createElement('span');
      c.className = 'countdown';
      c.dataset.until = enabling ? g.enableAt : g.endAt;
      if (final) next.textContent = '—';
      else { next.replaceChildren(enabling ? 'enabled in ' : 'ends in ', c); countdowns(); }
    }
    const delivery = document.getElementById('delivery');
    const d = g.emailDelivery;
    if (delivery && d) delivery.textContent = `${d.status} (${d.attempts} attempt(s))${d.lastError ? ` — ${d.lastError}` : ''} · ${g.serverSideSmtp ? 'from the server' : 'from the endpoint'}`;
    if (final) document.querySelectorAll('#revoke, #resend').forEach((b) => b.remove());
    if (!final) setTimeout(tick, 2000);
  };
  setTimeout(tick, 2000);
}

document.addEventListener('DOMContentLoaded', () => {
  localTimes(document);
  countdowns();
  setInterval(countdowns, 1000);
  const form = document.getElementById('wizard');
  if (form) wizard(form);
  const grant = document.getElementById('grant');
  if (grant?.dataset.live) liveGrant(grant);
});
