// The Request access page: the endpoint filter, the groups its OS has, the account it elevates,
// and what the rules would do with the values (GET /requests/preview) as they change.
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
  const osName = { linux: 'Linux', windows: 'Windows', macos: 'macOS' };

  filter?.addEventListener('input', () => {
    const q = filter.value.trim().toLowerCase();
    for (const o of select.options) o.hidden = q !== '' && !o.textContent.toLowerCase().includes(q);
  });

  const chosen = () => select.selectedOptions[0];
  const groups = () => {
    const os = chosen()?.dataset.os;
    form.querySelectorAll('input[name=group]').forEach((r, i) => {
      const ok = !os || r.dataset.allowedOs.split(' ').includes(os);
      r.disabled = !ok;
      if (!ok) r.checked = false;
      const reason = form.querySelector(`#reason-${i}`);
      if (reason) reason.textContent = ok ? '' : `${osName[os]} endpoints have no "${r.value}" group`;
    });
    if (account && chosen()?.dataset.account) { account.textContent = chosen().dataset.account; }
  };

  let asked = 0;
  const preview = async () => {
    const endpoint = chosen()?.value ?? '';
    const group = form.querySelector('input[name=group]:checked')?.value ?? '';
    const n = ++asked;
    if (!endpoint || !group || !minutes.value) {
      out.textContent = '— (choose an endpoint, a group and a duration)';
      out.dataset.action = '';
      return;
    }
    const q = new URLSearchParams({ endpoint, group, minutes: minutes.value });
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

  select?.addEventListener('change', () => { groups(); preview(); });
  form.querySelectorAll('input[name=group]').forEach((r) => r.addEventListener('change', preview));
  minutes?.addEventListener('input', preview);
  groups();
  preview();
});
