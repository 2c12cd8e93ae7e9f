// The dispatcher's board: cases in columns by state, due times shown and overdue ones
// marked, filters by matter, area and department; a case's place on a map, its timeline
// and the steps the workflow allows this user (sent with If-Match, so a stale view
// cannot overwrite someone else's step).

import { h, fill, toast, chinaTime } from '../dom';
import { t } from '../i18n';
import { get, post, request, query, describe } from '../api';
import { createMap, showGeoJSON, zoomTo } from '../map';
import type { Cleanup } from '../main';

interface Case {
  id: number; state: string; source: string; matter_code: string | null; category: string | null;
  description: string; address: string | null; lon: number; lat: number;
  grid_code: string; grid_name?: string | null; community_code: string; township_code: string; county_code: string;
  near_boundary: boolean; neighbour_grid: string | null;
  reporter_name: string | null; reporter_phone: string | null;
  centre_code: string; department_code: string | null; deadline: string | null;
  extension_request: unknown; returns: number; supervisions: number;
  reported_at: string; updated_at: string; version: number; allowed_actions: string[];
}
interface Event { id: number; at: string; actor: string; kind: string; from_state: string | null; to_state: string | null; note: string | null; detail: Record<string, unknown> }
interface Department { code: string; name: string; kind: string }
interface Matter { code: string; name: string; public: boolean }

const COLUMNS: [string, string[]][] = [
  ['board.new', ['reported', 'escalated']],
  ['board.accepted', ['accepted', 'returned']],
  ['board.assigned', ['assigned', 'acknowledged']],
  ['board.handled', ['handled', 'verified']],
  ['board.done', ['closed', 'resolved_on_site', 'merged']],
];
const DUE_SOON_MS = 4 * 3600 * 1000;

// The step that moves a case on is primary; steps that send it back or end it
// otherwise are destructive; the rest (supervise, extend, reopen…) are secondary.
const ACTION_STYLE: Record<string, string> = {
  accept: 'primary', assign: 'primary', acknowledge: 'primary', handle: 'primary', verify: 'primary', close: 'primary', resolve_on_site: 'primary',
  return: 'danger', reject_result: 'danger', merge: 'danger',
};

/** A new report's deadline is the centre's, for accepting it; later ones the department's. */
const dueLabel = (c: Case) => t(['reported', 'escalated'].includes(c.state) ? 'board.acceptBy' : 'board.due');

function urgency(c: Case, now: number): 'overdue' | 'due_soon' | '' {
  if (!c.deadline || ['handled', 'verified', 'closed', 'resolved_on_site', 'merged'].includes(c.state)) return '';
  const left = Date.parse(c.deadline) - now;
  return left < 0 ? 'overdue' : left < DUE_SOON_MS ? 'due_soon' : '';
}

export async function dispatcherPage(root: HTMLElement): Promise<Cleanup> {
  const [matterList, departments] = await Promise.all([
    get<{ categories: { matters: Matter[] }[] }>('/v1/public/matters').catch(() => ({ categories: [] })),
    get<Department[]>('/v1/departments').catch(() => [] as Department[]),
  ]);
  const matters = matterList.categories.flatMap((c) => c.matters);
  const matterName = (code: string | null) => matters.find((m) => m.code === code)?.name ?? code ?? '—';
  const deptName = (code: string | null) => departments.find((d) => d.code === code)?.name ?? code ?? '—';

  const matterSel = h('select', { id: 'filter-matter' }, h('option', { value: '' }, t('board.all')), matters.map((m) => h('option', { value: m.code }, m.name)));
  const under = h('input', { id: 'filter-under', placeholder: t('board.grid'), size: 15 });
  const deptSel = h('select', { id: 'filter-department' }, h('option', { value: '' }, t('board.all')), departments.map((d) => h('option', { value: d.code }, d.name)));
  const filters = h('form', { class: 'filters' },
    h('label', {}, t('board.matter'), matterSel), h('label', {}, t('board.grid'), under), h('label', {}, t('board.department'), deptSel),
    h('button', { type: 'submit', id: 'refresh' }, t('board.refresh')));
  const board = h('div', { class: 'board', id: 'board' });
  const detail = h('aside', { class: 'detail', id: 'case-detail' });
  // The queue: what needs a dispatcher first, counted; a counter narrows the board to it.
  const queue = h('div', { class: 'queue', id: 'queue' });
  let only: 'overdue' | 'due_soon' | 'new' | '' = '';
  fill(root, h('h2', {}, t('board.title')), filters, queue, h('div', { class: 'board-split' }, board, detail));

  let open: number | undefined;
  let cases: Case[] = [];
  let map: Awaited<ReturnType<typeof createMap>> | undefined;

  const load = async () => {
    cases = await get<Case[]>(`/v1/cases${query({ matter: matterSel.value, under: under.value.trim(), department: deptSel.value, limit: 1000 })}`);
    const now = Date.now();
    const isNew = (c: Case) => COLUMNS[0][1].includes(c.state);
    const count = { overdue: cases.filter((c) => urgency(c, now) === 'overdue').length, due_soon: cases.filter((c) => urgency(c, now) === 'due_soon').length, new: cases.filter(isNew).length };
    fill(queue, (['overdue', 'due_soon', 'new'] as const).map((k) => h('button', {
      class: `counter ${k} ${only === k ? 'on' : ''}`, id: `queue-${k.replace('_', '-')}`, 'data-count': count[k], 'aria-pressed': String(only === k),
      onclick: () => { only = only === k ? '' : k; void load(); },
    }, t(`queue.${k}`), h('strong', {}, count[k]))));
    const wanted = (c: Case) => !only || (only === 'new' ? isNew(c) : urgency(c, now) === only);
    // Soonest deadline first; cases without one after, oldest first.
    const byDeadline = (a: Case, b: Case) =>
      (a.deadline ? Date.parse(a.deadline) : Infinity) - (b.deadline ? Date.parse(b.deadline) : Infinity) || a.id - b.id;
    fill(board, COLUMNS.map(([title, states]) => {
      const inCol = cases.filter((c) => states.includes(c.state) && wanted(c)).sort(byDeadline);
      return h('section', { class: 'column', 'data-column': title.split('.')[1] },
        h('h3', {}, t(title), h('span', { class: 'count' }, inCol.length)),
        inCol.length ? inCol.map((c) => {
          const u = urgency(c, now);
          return h('article', { class: `case ${u} ${c.id === open ? 'open' : ''}`, 'data-case': c.id, 'data-state': c.state, onclick: () => showCase(c.id, true) },
            h('header', {}, `#${c.id} `, h('strong', {}, matterName(c.matter_code))),
            h('p', {}, c.description.length > 60 ? `${c.description.slice(0, 60)}…` : c.description),
            h('small', { class: 'grid', title: c.grid_code }, `${t(`state.${c.state}`)} · ${c.grid_name ?? c.grid_code}`),
            c.deadline ? h('small', { class: 'due' }, ` · ${dueLabel(c)} ${chinaTime(c.deadline)}`, u ? ` · ${t(`board.${u}`)}` : '') : null);
        }) : h('p', { class: 'empty' }, t('board.empty')));
    }));
  };

  // Calls of showCase overlap (a click, the reload after a step, an event from the
  // stream): only the latest draws, and each map is removed exactly once.
  let latest = 0;

  /** Shows case `id`; `reveal` scrolls to it where the panel sits under the board (phones). */
  const showCase = async (id: number, reveal = false) => {
    const mine = ++latest;
    open = id;
    board.querySelectorAll('.case').forEach((el) => el.classList.toggle('open', (el as HTMLElement).dataset.case === String(id)));
    const { data: c, response } = await request<Case>('GET', `/v1/cases/${id}`);
    const etag = response.headers.get('etag') ?? `"${c.version}"`;
    const events = await get<Event[]>(`/v1/cases/${id}/events`);
    if (mine !== latest || closed) return;
    const mapEl = h('div', { class: 'map small', id: 'case-map' });
    const actions = h('div', { class: 'actions', id: 'case-actions' });
    fill(detail,
      h('h3', { id: 'case-title' }, `${t('case.title')} #${c.id} · ${matterName(c.matter_code)}`),
      h('p', {}, c.description),
      h('dl', {},
        h('dt', {}, t('case.state')), h('dd', { id: 'case-state' }, t(`state.${c.state}`)),
        h('dt', {}, t('case.source')), h('dd', {}, t(`source.${c.source}`)),
        h('dt', {}, t('level.grid')), h('dd', {}, c.grid_name ? `${c.grid_name} (${c.grid_code})` : c.grid_code, c.near_boundary ? ` (${t('case.near_boundary')} ${c.neighbour_grid ?? ''})` : ''),
        h('dt', {}, t('case.department')), h('dd', {}, deptName(c.department_code)),
        h('dt', {}, dueLabel(c)), h('dd', { id: 'case-deadline' }, chinaTime(c.deadline)),
        c.reporter_name || c.reporter_phone ? [h('dt', {}, t('case.reporter')), h('dd', {}, `${c.reporter_name ?? ''} ${c.reporter_phone ?? ''}`)] : null),
      mapEl,
      h('h4', {}, t('case.actions')), actions,
      h('h4', {}, t('case.timeline')),
      h('ol', { class: 'timeline', id: 'timeline' }, events.map((e) => h('li', {},
        h('time', {}, chinaTime(e.at)), ' ', h('strong', {}, t(`action.${e.kind}`) === `action.${e.kind}` ? e.kind : t(`action.${e.kind}`)),
        e.to_state ? ` → ${t(`state.${e.to_state}`)}` : '', ` · ${e.actor}`, e.note ? h('div', { class: 'note' }, e.note) : null))),
    );
    renderActions(actions, c, etag);
    if (reveal && getComputedStyle(detail).position === 'static') detail.scrollIntoView({ block: 'start' });
    const old = map;
    map = undefined;
    old?.remove();
    const made = await createMap(mapEl, { name: 'case' });
    if (mine !== latest || closed) {
      made.remove();
      return;
    }
    map = made;
    showGeoJSON(map, 'case', { type: 'Point', coordinates: [c.lon, c.lat] }, '#e67e22');
    zoomTo(map, [c.lon - 0.01, c.lat - 0.01, c.lon + 0.01, c.lat + 0.01], 15);
  };

  const renderActions = (el: HTMLElement, c: Case, etag: string) => {
    const field = (name: string, input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement) => h('label', {}, t(`field.${name}`), input);
    const text = (name: string) => { const i = h('input', { name }); return [i, field(name, i)] as const; };
    fill(el, c.allowed_actions.map((action) => {
      const body: () => Record<string, unknown> = (() => {
        const form = h('div', { class: 'action-fields' });
        switch (action) {
          case 'assign': {
            const dept = h('select', { name: 'department', id: 'assign-department' }, h('option', { value: '' }, t('assign.routed')), departments.map((d) => h('option', { value: d.code }, d.name)));
            // Over a hundred departments: a search narrows the list.
            const find = h('input', { type: 'search', id: 'assign-department-search', placeholder: t('assign.search') });
            find.addEventListener('input', () => {
              const q = find.value.trim();
              const options = Array.from(dept.options).slice(1);
              for (const o of options) o.hidden = !!q && !o.text.includes(q) && !o.value.includes(q);
              const first = options.find((o) => !o.hidden);
              if (q && first) dept.value = first.value;
            });
            const [reason, l] = text('reason');
            form.append(h('label', {}, t('field.department'), find, dept), l);
            return Object.assign(() => ({ department: dept.value || undefined, reason: reason.value || undefined }), { form });
          }
          case 'accept': {
            const m = h('select', { name: 'matter' }, h('option', { value: '' }, '—'), matters.map((x) => h('option', { value: x.code }, x.name)));
            form.append(field('matter', m));
            return Object.assign(() => ({ matter: m.value || undefined }), { form });
          }
          case 'return': {
            const r = h('select', { name: 'reason' }, ['not_our_responsibility', 'outside_jurisdiction', 'insufficient_information', 'legal_procedure', 'other'].map((x) => h('option', { value: x }, t(`return.${x}`))));
            const [ex, l] = text('explanation');
            form.append(field('reason', r), l);
            return Object.assign(() => ({ reason: r.value, explanation: ex.value }), { form });
          }
          case 'request_extension': {
            const d = h('input', { name: 'days', type: 'number', min: 1, value: 2 });
            const [r, l] = text('reason');
            form.append(field('days', d), l);
            return Object.assign(() => ({ working_days: Number(d.value), reason: r.value }), { form });
          }
          case 'decide_extension':
          case 'verify': {
            const yes = h('input', { type: 'checkbox', name: 'ok', checked: true });
            const [n, l] = text('note');
            form.append(h('label', { class: 'check' }, yes, t(action === 'verify' ? 'field.ok' : 'field.approve')), l);
            return Object.assign(() => (action === 'verify' ? { ok: yes.checked, note: n.value || undefined } : { approve: yes.checked, note: n.value || undefined }), { form });
          }
          case 'merge': {
            const into = h('input', { name: 'into', type: 'number' });
            form.append(field('into', into));
            return Object.assign(() => ({ into: Number(into.value) }), { form });
          }
          default: {
            const key = ({ resolve_on_site: 'result', handle: 'feedback', reopen: 'reason', escalate_up: 'reason', supervise: 'note' } as Record<string, string>)[action] ?? 'note';
            const [i, l] = text(key);
            form.append(l);
            return Object.assign(() => ({ [key]: i.value || (key === 'note' ? undefined : '') }), { form });
          }
        }
      })();
      const go = h('button', { 'data-action': action, class: ACTION_STYLE[action] ?? 'secondary', onclick: async () => {
        try {
          await request('POST', `/v1/cases/${c.id}/actions`, { action, ...body() }, { 'if-match': etag });
          toast(`${t(`action.${action}`)}: ${t('case.done')}`);
          await load();
          await showCase(c.id);
        } catch (err) {
          toast(describe(err), 'error');
        }
      } }, t(`action.${action}`));
      return h('div', { class: 'action' }, (body as any).form, go);
    }));
  };

  filters.addEventListener('submit', (e) => { e.preventDefault(); load().catch((err) => toast(describe(err), 'error')); });
  await load();
  // New reports and others' steps show as they happen: the event stream, opened with a
  // one-time ticket (EventSource cannot send the token), reloads the board on each
  // event (at most every 2 s). Should the stream fail, a new ticket is asked for after a
  // pause, and the board is polled every 15 s meanwhile.
  let source: EventSource | undefined;
  let closed = false;
  let pending: number | undefined;
  let retry: number | undefined;
  // The open case's panel follows its events too: redrawn when nothing is being typed
  // in it, otherwise a notice offers to reload (a half-written note is not thrown away).
  let openChanged = false;
  const refreshOpen = () => {
    if (open === undefined || closed) return;
    const focused = document.activeElement;
    const editing = (focused !== null && detail.contains(focused) && /^(INPUT|TEXTAREA|SELECT)$/.test(focused.tagName))
      || [...detail.querySelectorAll<HTMLInputElement | HTMLTextAreaElement>('textarea, input[type=text], input[type=number]')].some((el) => el.value.trim() !== '');
    if (!editing) {
      void showCase(open).catch(() => {});
    } else if (!detail.querySelector('#case-changed')) {
      const id = open;
      detail.prepend(h('p', { class: 'hint', id: 'case-changed' }, t('case.changed'), ' ',
        h('button', { class: 'link', onclick: () => { void showCase(id); } }, t('case.reload'))));
    }
  };
  const soon = (e?: MessageEvent) => {
    if (e !== undefined && open !== undefined) {
      try {
        if ((JSON.parse(e.data) as { case_id?: number }).case_id === open) openChanged = true;
      } catch {
        /* not a case event */
      }
    }
    if (pending === undefined) {
      pending = window.setTimeout(() => {
        pending = undefined;
        load().then(() => { if (openChanged) { openChanged = false; refreshOpen(); } }).catch(() => {});
      }, 2000);
    }
  };
  const connect = async () => {
    if (closed) return;
    try {
      const { stream } = await post<{ stream: string }>('/v1/cases/stream-ticket');
      if (closed) return;
      source = new EventSource(stream);
      source.onopen = () => { window.wangge.timings.dispatcherStream ??= Math.round(performance.now()); document.body.dataset.stream = 'open'; };
      source.onmessage = soon;
      for (const kind of ['reported', 'accept', 'assign', 'acknowledge', 'return', 'handle', 'verify', 'close', 'resolve_on_site', 'escalate', 'reopen', 'merge', 'supervise', 'due_soon', 'overdue', 'request_extension', 'decide_extension', 'reject_result', 'escalate_up']) {
        source.addEventListener(kind, soon);
      }
      source.onerror = () => {
        // A ticket opens once: reconnect with a new one, not the browser's retry.
        source?.close();
        document.body.dataset.stream = 'down';
        if (!closed) retry = window.setTimeout(connect, 5000);
      };
    } catch {
      if (!closed) retry = window.setTimeout(connect, 15000);
    }
  };
  void connect();
  const timer = window.setInterval(() => { if (!document.hidden && document.body.dataset.stream !== 'open') load().catch(() => {}); }, 15000);
  return () => {
    closed = true;
    source?.close();
    delete document.body.dataset.stream;
    window.clearInterval(timer);
    window.clearTimeout(pending);
    window.clearTimeout(retry);
    const old = map;
    map = undefined;
    old?.remove();
  };
}
