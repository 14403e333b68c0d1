// The Request access page: what you get (your own account, or a temporary one), the endpoint
// filter, the endpoints the rules would not deny you (GET /requests/offer), the groups the
// endpoint's OS has, the account it elevates, and what the rules would do with the values
// (GET /requests/preview) as they change.
// Progressive enhancement only: the form works without this file.
'use strict';

document.addEventListener('DOMContentLoaded', () => {
  const form = document.getElementById('request-form');
  if (!form) return;
  const select = form.querySelector('#endpoint');
  const filter = form.querySelector('#endpoint-filter');
  const minutes = form.querySelector('#minutes');
  const out = document.getElementById('preview');
  const account = document.getElementById('account');
  const accountLine = document.getElementById('account-line');
  const offerNote = document.getElementById('offer-note');

  const operation = () => form.querySelector('input[name=operation]:checked')?.value ?? 'elevate-account';
  const group = () => form.querySelector('input[name=group]:checked')?.value ?? '';

  // Each option's text, visibility and whether it may be chosen: the filter, the rules' denial
  // (the chosen endpoint stays: the preview says why) and, for an elevation, the agent's capability.
  const options = () => {
    const q = (filter?.value ?? '').trim().toLowerCase();
    const elevate = operation() === 'elevate-account';
    for (const o of select.options) {
      const cannot = elevate && o.dataset.cannot ? o.dataset.cannot : '';
      const denied = Boolean(o.dataset.denied) && !o.selected;
      o.textContent = cannot ? `${o.dataset.label} — ${cannot}` : o.dataset.label;
      o.hidden = denied || (q !== '' && !o.textContent.toLowerCase().includes(q));
      o.disabled = denied || Boolean(cannot);
      if (o.disabled && o.selected) o.selected = false;
    }
    if (accountLine) accountLine.hidden = !elevate;
  };

  filter?.addEventListener('input', options);

  const chosen = () => select.selectedOptions[0];
  const osGroupsOf = osGroups(form, select); // console.js
  const groups = () => {
    osGroupsOf();
    if (account && chosen()?.dataset.account) { account.textContent = chosen().dataset.account; }
  };

  // Which endpoints the rules would not deny for this group and duration.
  let offered = 0;
  const offer = async () => {
    const n = ++offered;
    const q = new URLSearchParams({ group: group(), minutes: minutes?.value ?? '' });
    try {
      const res = await fetch(`/requests/offer?${q}`, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
      if (!res.ok) return;
      const body = await res.json();
      if (n !== offered) return; // a later change asked again
      const denied = new Map(body.endpoints.map((e) => [e.id, e.deniedBy]));
      for (const o of select.options) {
        if (denied.get(o.value)) o.dataset.denied = denied.get(o.value);
        else delete o.dataset.denied;
      }
      if (offerNote) offerNote.textContent = body.note;
      options();
    } catch {
      // The list stays as it was; the preview says when the server does not answer.
    }
  };

  let asked = 0;
  const preview = async () => {
    const endpoint = chosen()?.value ?? '';
    const n = ++asked;
    if (!endpoint || !group() || !minutes.value) {
      out.textContent = '— (choose an endpoint, a group and a duration)';
      out.dataset.action = '';
      return;
    }
    const q = new URLSearchParams({ endpoint, group: group(), minutes: minutes.value });
    try {
      const res = await fetch(`/requests/preview?${q}`, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
      const body = await res.json();
      if (n !== asked) return; // a later change asked again
      out.textContent = res.ok ? body.says : `— (${body.error?.fields?.map((f) => `${f.field}: ${f.message}`).join('; ') || body.error?.message || 'not known yet'})`;
      out.dataset.action = res.ok ? body.action : '';
    } catch {
      if (n === asked) { out.textContent = '— (the server did not answer)'; out.dataset.action = ''; }
    }
  };

  select?.addEventListener('change', () => { options(); groups(); preview(); });
  form.querySelectorAll('input[name=operation]').forEach((r) => r.addEventListener('change', () => { options(); groups(); preview(); }));
  form.querySelectorAll('input[name=group]').forEach((r) => r.addEventListener('change', () => { offer(); preview(); }));
  minutes?.addEventListener('input', () => { offer(); preview(); });
  options();
  groups();
  preview();
});
