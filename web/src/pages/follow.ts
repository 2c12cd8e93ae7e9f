// A resident's report, followed by its number and follow-up key (Art. 9: residents
// learn what became of what they reported): status, time limit, and every step with
// the notes residents may read. Reached from the receipt's link (#/report/ID/KEY) or by
// typing both. The key stays in the page's fragment, which no request carries, and goes
// to the service in a header.

import { h, fill, chinaTime } from '../dom';
import { t, limitText } from '../i18n';
import { request, ApiProblem, describe } from '../api';

interface Followed {
  id: number;
  state: string;
  grid_code: string;
  grid_name: string | null;
  matter_name: string | null;
  time_limit: { amount: number; unit: string } | null;
  deadline: string | null;
  reported_at: string;
  status_notes: string | null;
  description: string;
  address: string | null;
  steps: { at: string; step: string; state: string; note: string | null }[];
}

/** The link to a report's status page. */
export function followLink(id: number, key: string): string {
  return `#/report/${id}/${encodeURIComponent(key)}`;
}

export async function followPage(root: HTMLElement): Promise<void> {
  const [, idText, keyText] = location.hash.replace(/^#\/?/, '').split('/');
  const number = h('input', { name: 'number', id: 'follow-number', inputmode: 'numeric', required: true, value: idText ?? '' });
  const key = h('input', { name: 'key', id: 'follow-key', autocomplete: 'off', autocapitalize: 'characters', required: true, value: decoded(keyText) });
  const out = h('section', { id: 'follow-result' });
  const form = h('form', { class: 'follow panel', id: 'follow-form' },
    h('h2', {}, t('follow.title')),
    h('label', {}, t('follow.number'), number),
    h('label', {}, t('follow.key'), key),
    h('button', { type: 'submit', class: 'primary' }, t('follow.go')),
  );
  fill(root, h('div', { class: 'follow-page' }, form, out));

  const show = async () => {
    const id = number.value.trim();
    const k = key.value.trim();
    if (!/^\d+$/.test(id) || !k) return;
    try {
      // In a header, not the URL: keys stay out of access logs.
      const { data } = await request<Followed>('GET', `/v1/public/reports/${id}`, undefined, { 'follow-up-key': k });
      fill(out, view(data));
    } catch (err) {
      const status = (err as ApiProblem).status;
      fill(out, h('p', { class: 'warn', id: 'follow-none' }, status === 404 ? t('follow.none') : describe(err)));
    }
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    // The address bar keeps the report, so the page can be bookmarked.
    history.replaceState(null, '', followLink(Number(number.value.trim()), key.value.trim()));
    void show();
  });
  if (idText && keyText) await show();
}

function decoded(text: string | undefined): string {
  try {
    return text ? decodeURIComponent(text) : '';
  } catch {
    return '';
  }
}

function view(r: Followed): HTMLElement {
  return h('article', { class: 'panel followed', 'data-case': r.id, 'data-state': r.state },
    h('h2', {}, `${t('follow.number')} ${r.id}`, ' ', h('span', { class: `state ${r.state}` }, t(`state.${r.state}`))),
    h('dl', {},
      h('dt', {}, t('follow.matter')), h('dd', {}, r.matter_name ?? t('report.matter.unknown')),
      h('dt', {}, t('follow.grid')), h('dd', {}, r.grid_name ?? r.grid_code),
      h('dt', {}, t('follow.reported')), h('dd', {}, chinaTime(r.reported_at)),
      h('dt', {}, t('report.limit')), h('dd', {}, limitText(r.time_limit), r.time_limit ? t('report.limit.after') : null),
      r.deadline ? [h('dt', {}, t('follow.deadline')), h('dd', {}, chinaTime(r.deadline))] : null,
      h('dt', {}, t('follow.description')), h('dd', {}, r.description),
      r.status_notes ? [h('dt', {}, t('follow.result')), h('dd', {}, r.status_notes)] : null,
    ),
    h('h3', {}, t('follow.steps')),
    h('ol', { class: 'timeline', id: 'follow-steps' }, r.steps.map((s) => h('li', { 'data-step': s.step },
      h('time', {}, chinaTime(s.at)), ' ', t(`action.${s.step}`), ' → ', t(`state.${s.state}`),
      s.note ? h('p', { class: 'note' }, s.note) : null))),
  );
}
