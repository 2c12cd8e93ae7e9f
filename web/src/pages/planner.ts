// The planner's view: upload a draft, see its validation (counts per problem kind, each
// problem on the map and in a list to step through), compare it with the current grids
// side by side, read the impact, and take the approval steps the user's role allows.

import { h, fill, toast, chinaTime, confirmDialog, legend, chinaDay } from '../dom';
import { t, tf, lang } from '../i18n';
import { get, post, request, me, scopeOf, query, describe } from '../api';
import { createMap, hoverGrids, showGeoJSON, bboxOf, zoomTo, maplibregl } from '../map';
import type { Cleanup } from '../main';

interface Plan {
  id: number; scope_code: string; layer: string; title: string; status: string;
  effective_date: string | null; created_by: string; error_count: number; warning_count: number;
}
interface Problem {
  kind: string; severity: 'error' | 'warning'; grids: string[]; parent: string | null;
  area_m2: number | null; width_m: number | null; location: [number, number]; detail: string; detail_zh?: string;
}
interface MappingWarning { role: 'name' | 'households' | 'parent'; detail: string; detail_zh?: string; candidates: { field: string; because: string[]; sample: string | null }[] }
interface Mapping { used: Record<string, string>; fields: string[]; warnings: MappingWarning[] }
interface Validation {
  valid: boolean; problems: Problem[]; mapping?: Mapping;
  stats: { grids: number; by_kind: Record<string, number>; [k: string]: unknown };
}
interface Impact {
  added: string[]; removed: string[]; changed: { code: string; area_gained_m2: number; area_lost_m2: number; households_gained_estimate: number; households_lost_estimate: number }[];
  unchanged: number; households_moving_estimate: number;
  members_moving: { name: string; from_code: string; to_code: string | null }[];
}

/** Whether the user may review (approve, reject, return, activate) plans of `scope`. */
/** The service's sentence about a problem or warning, in the page's language. */
function inLang(x: { detail: string; detail_zh?: string }): string {
  return lang() !== 'en' && x.detail_zh ? x.detail_zh : x.detail;
}

function mayReview(scope: string): boolean {
  return (me()?.grants ?? []).some((g) =>
    (g.role === 'city_admin' && scope.startsWith(g.scope)) ||
    (g.role === 'planner' && g.scope.length <= 6 && scope.startsWith(g.scope)));
}
interface RepairAction { kind: string; vertices?: number; m2?: number; grid?: string | null }
interface Proposal {
  grid: string; area_before_m2: number; area_after_m2: number;
  exchanged: { grid: string | null; m2: number }[]; from_gaps_m2: number; dropped_m2: number;
  actions: RepairAction[]; before?: GeoJSON.Geometry; after?: GeoJSON.Geometry;
}
interface RepairAnswer {
  plan: Plan; applied: number;
  proposals: { changed: number; incomplete: boolean; grids: Proposal[]; gaps_left: { parent: string | null; area_m2: number }[] };
}

/** Colours of the problem kinds on the map and in its legend. */
const PROBLEM_COLOURS: [string, string][] = [
  ['overlap', '#e74c3c'], ['gap', '#16a085'], ['edge_mismatch', '#d35400'], ['outside_parent', '#8e44ad'], ['uncovered', '#7f8c8d'],
];
const OTHER_PROBLEM = '#c0392b';

function describeAction(a: RepairAction): string {
  return tf(`repair.${a.kind}`, { n: a.vertices ?? 0, m: (a.m2 ?? 0).toFixed(1), g: a.grid ?? '—' });
}

function mayDraft(scope: string): boolean {
  return (me()?.grants ?? []).some((g) => ['planner', 'city_admin'].includes(g.role) && scope.startsWith(g.scope));
}

/** A plan event's note in the user's language: the service's own notes for revisions
 * are fixed English phrases; a person's reason (a rejection's) is shown as written. */
function historyNote(note: string): string {
  const repaired = /^repaired: (\d+) of (\d+) proposed grids$/.exec(note);
  if (repaired) return t('plans.note.repaired').replace('{applied}', repaired[1]).replace('{proposed}', repaired[2]);
  if (note === 'content replaced') return t('plans.note.replaced');
  if (note === 'attributes mapped again') return t('plans.note.remapped');
  return note;
}

export async function plannerPage(root: HTMLElement): Promise<Cleanup> {
  const side = h('aside', { class: 'side wide' });
  const maps = h('div', { class: 'maps' });
  const mapEl = h('div', { class: 'map', id: 'plan-map' });
  maps.append(mapEl);
  fill(root, h('div', { class: 'split' }, side, maps));
  mapEl.append(legend([
    ['#8e44ad', t('plans.legend.draft'), 'line'],
    ...PROBLEM_COLOURS.slice(0, 3).map(([k, c]) => [c, t(`kind.${k}`), 'fill'] as [string, string, 'fill']),
    ['#f1c40f', t('plans.legend.focus'), 'fill'],
    ['#e67e22', t('plans.legend.changed'), 'fill'],
    ['#c0392b', t('plans.legend.before'), 'line'],
    ['#27ae60', t('plans.legend.after'), 'fill'],
  ]));
  const map = await createMap(mapEl, { name: 'planner' });
  hoverGrids(map);
  let compareMap: maplibregl.Map | undefined;
  let unsync: (() => void) | undefined;

  const closeCompare = () => {
    unsync?.();
    compareMap?.remove();
    compareMap = undefined;
    maps.querySelector('#compare-map')?.remove();
    maps.classList.remove('two');
    map.resize();
  };

  const openCompare = async () => {
    if (compareMap) return closeCompare();
    maps.classList.add('two');
    const el = h('div', { class: 'map', id: 'compare-map' }, h('span', { class: 'map-label' }, t('plans.current')));
    maps.prepend(el);
    map.resize();
    compareMap = await createMap(el, { name: 'compare' });
    compareMap.jumpTo({ center: map.getCenter(), zoom: map.getZoom() });
    // Move either map and the other follows.
    let syncing = false;
    const follow = (from: maplibregl.Map, to: maplibregl.Map) => () => {
      if (syncing) return;
      syncing = true;
      to.jumpTo({ center: from.getCenter(), zoom: from.getZoom(), bearing: from.getBearing(), pitch: from.getPitch() });
      syncing = false;
    };
    const a = follow(map, compareMap), b = follow(compareMap, map);
    map.on('move', a);
    compareMap.on('move', b);
    const other = compareMap;
    unsync = () => { map.off('move', a); other.off('move', b); };
  };

  const uploadForm = (replacing?: Plan) => {
    const file = h('input', { type: 'file', name: 'file', id: 'plan-file', accept: '.geojson,.json,.zip,.gpkg,.kml', required: true });
    const drop = h('label', { class: 'drop' }, t('plans.drop'), file);
    for (const ev of ['dragover', 'dragenter']) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      const dt = (e as DragEvent).dataTransfer;
      if (dt?.files.length) file.files = dt.files;
    });
    const scope = h('input', { name: 'scope', id: 'plan-scope', value: replacing?.scope_code ?? scopeOf('planner', 'city_admin') ?? '', required: true, disabled: !!replacing });
    const title = h('input', { name: 'title', id: 'plan-title', value: replacing?.title ?? '' });
    const effective = h('input', { name: 'effective', type: 'date', value: replacing?.effective_date ?? '' });
    const crs = h('input', { name: 'crs', placeholder: 'EPSG:4490' });
    const encoding = h('input', { name: 'encoding', placeholder: 'UTF-8' });
    const button = h('button', { type: 'submit', id: 'plan-upload' }, replacing ? t('plans.replace') : t('plans.upload'));
    const form = h('form', { class: 'upload', id: 'upload-form' },
      h('h3', {}, replacing ? t('plans.replace') : t('plans.new')),
      drop,
      replacing ? null : h('label', {}, t('plans.scope'), scope),
      h('label', {}, t('plans.titlefield'), title),
      h('label', {}, t('plans.effective'), effective),
      h('details', {}, h('summary', {}, 'CRS / encoding'), h('label', {}, t('plans.crs'), crs), h('label', {}, t('plans.encoding'), encoding)),
      button,
    );
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const f = file.files?.[0];
      if (!f) return;
      const data = new FormData();
      data.set('file', f, f.name);
      if (!replacing) data.set('scope', scope.value.trim());
      for (const [k, el] of [['title', title], ['effective', effective], ['crs', crs], ['encoding', encoding]] as const) {
        if (el.value.trim()) data.set(k, el.value.trim());
      }
      button.disabled = true;
      button.textContent = t('plans.uploading');
      const started = performance.now();
      try {
        const { data: plan } = replacing
          ? await request<Plan>('PUT', `/v1/plans/${replacing.id}`, data)
          : await request<Plan>('POST', '/v1/plans', data);
        await showPlan(plan, started);
      } catch (err) {
        toast(describe(err), 'error');
        button.disabled = false;
        button.textContent = replacing ? t('plans.replace') : t('plans.upload');
      }
    });
    return form;
  };

  const showList = async () => {
    closeCompare();
    const plans = await get<Plan[]>('/v1/plans');
    fill(side,
      h('h2', {}, t('plans.title')),
      plans.length
        ? h('ul', { class: 'plans', id: 'plans' }, plans.map((p) => h('li', {},
            h('button', { class: 'link', onclick: () => showPlan(p) }, `#${p.id} ${p.title}`),
            h('small', {}, ` ${p.scope_code} · ${t(`status.${p.status}`)} · ${p.error_count} ${t('plans.errors')}`))))
        : h('p', {}, t('plans.none')),
      mayDraft(scopeOf('planner', 'city_admin') ?? '') ? uploadForm() : null,
    );
  };

  const showPlan = async (summary: Plan, uploadStarted?: number) => {
    const id = summary.id;
    const [validation, plan] = await Promise.all([get<Validation>(`/v1/plans/${id}/validation`), get<Plan>(`/v1/plans/${id}`)]);
    const list = h('ol', { class: 'problems', id: 'problems' });
    const counts = Object.entries(validation.stats.by_kind ?? {});
    const steps = h('section', { class: 'steps', id: 'steps' });
    const impactEl = h('section', { class: 'impact', id: 'impact' });
    const history = h('section', { class: 'history' });
    fill(side,
      h('button', { class: 'link', onclick: showList }, '← ', t('plans.title')),
      h('h2', { id: 'plan-title-h', 'data-plan': id }, `#${id} ${plan.title}`),
      h('p', {}, `${plan.scope_code} · ${t('plans.status')}: `, h('strong', { id: 'plan-status' }, t(`status.${plan.status}`)), ` · ${validation.stats.grids} ${t('level.grid')}`),
      h('div', { class: 'summary', id: 'validation-summary', 'data-valid': String(validation.valid) },
        validation.valid && !counts.length ? h('p', { class: 'ok' }, t('plans.valid')) : null,
        counts.map(([k, n]) => h('span', { class: `chip ${k}`, 'data-kind': k }, `${t(`kind.${k}`)} ${n}`)),
      ),
      validation.problems.length ? h('div', { class: 'buttons' },
        h('button', { id: 'next-problem', onclick: () => step(1) }, t('plans.next')),
        h('span', { id: 'problem-pos' }, '')) : null,
      list,
      plan.status === 'draft' && mayDraft(plan.scope_code) && !validation.valid ? repairSection(plan) : null,
      plan.status === 'draft' && mayDraft(plan.scope_code) ? mappingForm(plan, validation.mapping) : null,
      h('div', { class: 'buttons' }, h('button', { id: 'compare', class: 'secondary', onclick: openCompare }, t('plans.compare'))),
      steps, impactEl,
      plan.status === 'draft' && mayDraft(plan.scope_code) ? uploadForm(plan) : null,
      history,
    );
    if (uploadStarted !== undefined) window.wangge.timings.planFirstResults = Math.round(performance.now() - uploadStarted);
    let at = -1;
    const items = validation.problems.map((p, i) => h('li', { class: `${p.severity} ${p.kind}`, 'data-kind': p.kind, onclick: () => focus(i) },
      h('strong', {}, t(`kind.${p.kind}`)), ' ', p.grids.join(' / '),
      p.area_m2 ? ` · ${p.area_m2.toFixed(1)} m²` : '', h('br', {}), h('small', {}, inLang(p))));
    fill(list, items);
    const problemsGeo = await get<GeoJSON.FeatureCollection>(`/v1/plans/${id}/problems`);
    const focus = (i: number) => {
      at = i;
      items.forEach((el, j) => el.classList.toggle('current', j === i));
      items[i]?.scrollIntoView({ block: 'nearest' });
      const pos = document.getElementById('problem-pos');
      if (pos) pos.textContent = `${i + 1} / ${items.length}`;
      const f = problemsGeo.features[i];
      const p = validation.problems[i];
      const b = bboxOf(f?.geometry) ?? [p.location[0], p.location[1], p.location[0], p.location[1]];
      const pad = 0.002;
      zoomTo(map, [b[0] - pad, b[1] - pad, b[2] + pad, b[3] + pad], 17);
      showGeoJSON(map, 'focus', f ?? { type: 'Point', coordinates: p.location }, '#f1c40f', 0.5);
    };
    const step = (d: number) => { if (items.length) focus((at + d + items.length) % items.length); };

    const draft = await get<GeoJSON.FeatureCollection>(`/v1/plans/${id}/grids`);
    showGeoJSON(map, 'draft', draft, '#8e44ad', 0.05);
    // Under the problems: the grids that change (filled once the impact is in).
    showGeoJSON(map, 'changes', { type: 'FeatureCollection', features: [] }, '#e67e22', 0.3);
    showGeoJSON(map, 'problems', problemsGeo, OTHER_PROBLEM, 0.6);
    // Each kind its own colour, as in the legend.
    const byKind = ['match', ['get', 'kind'], ...PROBLEM_COLOURS.flat(), OTHER_PROBLEM] as unknown as maplibregl.ExpressionSpecification;
    map.setPaintProperty('problems-fill', 'fill-color', byKind);
    map.setPaintProperty('problems-line', 'line-color', byKind);
    map.setPaintProperty('problems-point', 'circle-color', byKind);
    // A revision's map shows none of the previous one's proposals or changes.
    for (const layer of ['repair-before', 'repair-after', 'changes']) {
      (map.getSource(layer) as maplibregl.GeoJSONSource | undefined)?.setData({ type: 'FeatureCollection', features: [] });
    }
    const all = bboxOf({ type: 'GeometryCollection', geometries: draft.features.map((f: GeoJSON.Feature) => f.geometry) });
    if (!validation.problems.length) zoomTo(map, all, 15);
    else focus(0);

    renderSteps(steps, plan, validation.valid, () => showPlan(plan));
    const byCode = new Map(draft.features.map((f) => [String(f.properties?.code ?? f.id), f]));
    get<Impact>(`/v1/plans/${id}/impact`).then((imp) => {
      const changed = [
        ...imp.added.map((code) => ({ code, kind: 'added', gained: 0, lost: 0, hGained: 0, hLost: 0 })),
        ...imp.changed.map((c) => ({ code: c.code, kind: 'changed', gained: c.area_gained_m2, lost: c.area_lost_m2, hGained: c.households_gained_estimate, hLost: c.households_lost_estimate })),
        ...imp.removed.map((code) => ({ code, kind: 'removed', gained: 0, lost: 0, hGained: 0, hLost: 0 })),
      ];
      // The grids that change, highlighted on the map (removed ones are not in the draft).
      showGeoJSON(map, 'changes', { type: 'FeatureCollection', features: changed.flatMap((c) => byCode.get(c.code) ?? []) }, '#e67e22', 0.3);
      const name = (code: string) => byCode.get(code)?.properties?.name ?? '';
      fill(impactEl,
      h('h3', {}, t('plans.impact')),
      h('table', {}, h('tbody', {},
        h('tr', {}, h('th', {}, t('plans.added')), h('td', {}, imp.added.length)),
        h('tr', {}, h('th', {}, t('plans.removed')), h('td', {}, imp.removed.length)),
        h('tr', {}, h('th', {}, t('plans.changed')), h('td', {}, imp.changed.length)),
        h('tr', {}, h('th', {}, t('plans.unchanged')), h('td', {}, imp.unchanged)),
        h('tr', {}, h('th', {}, t('plans.households')), h('td', {}, Math.round(imp.households_moving_estimate))),
      )),
      imp.members_moving.length ? h('p', {}, t('plans.moving'), '：', imp.members_moving.map((m) => `${m.name} ${m.from_code}→${m.to_code ?? '—'}`).join('，')) : null,
      changed.length ? [h('h4', {}, t('plans.changes')), h('ul', { class: 'changes', id: 'changes' }, changed.map((c) => h('li', {
        class: c.kind, 'data-code': c.code, 'data-kind': c.kind,
        onclick: () => { const f = byCode.get(c.code); if (f) zoomTo(map, bboxOf(f.geometry), 16); },
      }, `${t(`plans.change.${c.kind}`)} ${name(c.code)} ${c.code}`,
      c.kind === 'changed' ? h('small', {}, ` ${t('plans.change.gained')} ${Math.round(c.gained)} m² (≈${Math.round(c.hGained)} ${t('plans.change.households')}) · ${t('plans.change.lost')} ${Math.round(c.lost)} m² (≈${Math.round(c.hLost)} ${t('plans.change.households')})`) : null)))] : null,
    );
    }).catch(() => fill(impactEl));
    get<{ from: string | null; to: string; actor: string; at: string; reason: string | null }[]>(`/v1/plans/${id}/events`).then((events) => fill(history,
      h('h3', {}, t('plans.history')),
      h('ul', {}, events.map((e) => h('li', {}, `${chinaTime(e.at)} ${e.actor}: ${t(`status.${e.to}`)}${e.reason ? ` (${historyNote(e.reason)})` : ''}`))),
    )).catch(() => fill(history));
  };

  // A field the file has but wangge did not read (names, households, communities):
  // the planner picks it from the file's own fields, best candidates first, and the
  // draft is validated again from what was uploaded, without a new upload.
  const mappingForm = (plan: Plan, mapping?: Mapping) => {
    if (!mapping?.warnings.length) return null;
    const selects = mapping.warnings.map((w) => {
      const first = w.candidates[0]?.field;
      const others = mapping.fields.filter((f) => !w.candidates.some((c) => c.field === f));
      const select = h('select', { name: `${w.role}_field`, id: `mapping-${w.role}` },
        h('option', { value: '' }, t('mapping.none')),
        w.candidates.map((c) => h('option', { value: c.field, selected: c.field === first },
          c.sample ? `${c.field} (${c.sample})` : c.field)),
        others.map((f) => h('option', { value: f }, f)));
      return h('label', { class: 'warning', title: inLang(w) }, t(`mapping.${w.role}`), select,
        h('small', {}, t(w.candidates.length ? 'mapping.unread' : 'mapping.unread_none')));
    });
    const button = h('button', { type: 'submit', id: 'mapping-apply' }, t('mapping.apply'));
    const form = h('form', { class: 'mapping', id: 'mapping-form' }, h('h3', {}, t('mapping.title')), selects, button);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body: Record<string, string> = {};
      for (const s of form.querySelectorAll('select')) if (s.value) body[s.name] = s.value;
      button.setAttribute('disabled', '');
      try {
        const r = await post<Plan>(`/v1/plans/${plan.id}/mapping`, body);
        toast(t('mapping.done'));
        await showPlan(r);
      } catch (err) {
        toast(describe(err), 'error');
        button.removeAttribute('disabled');
      }
    });
    return form;
  };

  // Proposals for what the engine can repair (issue: planners see each proposal on the
  // map, before in red and after in green, and apply all or some as a new revision).
  const repairSection = (plan: Plan) => {
    const out = h('div', { id: 'repair-result' });
    const button = h('button', { id: 'repair-preview', class: 'secondary' }, t('repair.preview'));
    button.addEventListener('click', async () => {
      button.disabled = true;
      fill(out, h('p', { class: 'hint' }, t('repair.working')));
      try {
        const r = await post<RepairAnswer>(`/v1/plans/${plan.id}/repair`, { preview: true });
        showProposals(plan, r, out);
      } catch (err) {
        fill(out);
        toast(describe(err), 'error');
      } finally {
        button.disabled = false;
      }
    });
    return h('section', { class: 'repair', id: 'repair' }, h('h3', {}, t('repair.title')), h('p', { class: 'hint' }, t('repair.hint')), button, out);
  };

  const showProposals = (plan: Plan, r: RepairAnswer, out: HTMLElement) => {
    const grids = r.proposals.grids;
    const feature = (g: Proposal, which: 'before' | 'after') => (g[which] ? [{ type: 'Feature' as const, geometry: g[which]!, properties: { grid: g.grid } }] : []);
    showGeoJSON(map, 'repair-before', { type: 'FeatureCollection', features: grids.flatMap((g) => feature(g, 'before')) }, '#c0392b', 0.0);
    showGeoJSON(map, 'repair-after', { type: 'FeatureCollection', features: grids.flatMap((g) => feature(g, 'after')) }, '#27ae60', 0.35);
    if (!grids.length) return fill(out, h('p', {}, t('repair.none')));
    const boxes = grids.map((g) => h('input', { type: 'checkbox', name: 'grid', value: g.grid, checked: true }));
    const all = h('input', { type: 'checkbox', id: 'repair-all', checked: true });
    all.addEventListener('change', () => boxes.forEach((b) => (b.checked = all.checked)));
    const apply = h('button', { id: 'repair-apply', class: 'primary' }, t('repair.apply'));
    apply.addEventListener('click', async () => {
      const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
      if (!chosen.length) return toast(t('repair.select_some'), 'error');
      apply.disabled = true;
      try {
        const done = await post<RepairAnswer>(`/v1/plans/${plan.id}/repair`, chosen.length === grids.length ? {} : { grids: chosen });
        toast(tf('repair.applied', { n: done.applied }));
        await showPlan(done.plan);
      } catch (err) {
        apply.disabled = false;
        toast(describe(err), 'error');
      }
    });
    fill(out,
      h('p', {}, tf('repair.count', { n: grids.length }),
        r.proposals.gaps_left.length ? ['；', h('span', { class: 'warn' }, tf('repair.gaps_left', { n: r.proposals.gaps_left.length }))] : null),
      r.proposals.incomplete ? h('p', { class: 'warn' }, t('repair.incomplete')) : null,
      h('label', { class: 'check' }, all, t('repair.all')),
      // The box chooses the proposal; the grid's code shows it on the map.
      h('ul', { class: 'repair-list', id: 'repair-list' }, grids.map((g, i) => h('li', { 'data-grid': g.grid },
        boxes[i], ' ',
        h('button', { class: 'link', type: 'button', onclick: () => zoomTo(map, bboxOf(g.after ?? g.before), 17) }, g.grid),
        ` ${t('repair.area')} ${Math.round(g.area_before_m2)} → ${Math.round(g.area_after_m2)} m²`,
        h('small', {}, g.actions.map(describeAction).join('；'))))),
      h('div', { class: 'buttons' }, apply),
    );
  };

  const renderSteps = (el: HTMLElement, plan: Plan, valid: boolean, refresh: () => void) => {
    const reason = h('input', { id: 'step-reason', placeholder: t('plans.reason') });
    const effective = h('input', { id: 'step-effective', type: 'date', value: plan.effective_date ?? '' });
    const take = (name: string, body: Record<string, unknown> = {}) => async () => {
      try {
        const r = await post<Plan>(`/v1/plans/${plan.id}/${name}`, body);
        toast(`${t(`step.${name}`)}: ${t(`status.${r.status}`)}`);
        refresh();
      } catch (err) {
        toast(describe(err), 'error');
      }
    };
    // What the dialog says of a step that cannot be undone: the date and the changes.
    const consequences = (): HTMLElement => {
      const rows = Array.from(document.querySelectorAll<HTMLTableRowElement>('#impact table tr'))
        .map((r) => `${r.querySelector('th')?.textContent ?? ''} ${r.querySelector('td')?.textContent ?? ''}`);
      return h('p', { class: 'hint' }, rows.join(' · '));
    };
    const activate = async () => {
      const date = effective.value || plan.effective_date || chinaDay();
      const ok = await confirmDialog(t('confirm.activate.title'), [
        t('confirm.activate.body'),
        h('p', {}, `${t('confirm.effective')}：`, h('strong', {}, date === chinaDay() ? `${date}（${t('confirm.effective.today')}）` : date)),
        consequences(),
      ], t('step.activate'));
      if (ok) await take('activate', { effective: effective.value || undefined })();
    };
    const reject = async () => {
      if (!reason.value.trim()) {
        reason.focus();
        return toast(t('confirm.reason_needed'), 'error');
      }
      const ok = await confirmDialog(t('confirm.reject.title'), [t('confirm.reject.body'), h('p', {}, `${t('plans.reason')}：${reason.value.trim()}`)], t('step.reject'), true);
      if (ok) await take('reject', { reason: reason.value })();
    };
    const buttons: HTMLElement[] = [];
    if (plan.status === 'draft' && mayDraft(plan.scope_code)) {
      buttons.push(h('button', { id: 'step-submit', class: 'primary', disabled: !valid, title: valid ? undefined : t('plans.submit_blocked'), onclick: take('submit') }, t('step.submit')));
      if (!valid) buttons.push(h('span', { class: 'hint', id: 'submit-blocked' }, t('plans.submit_blocked')));
    }
    if (plan.status === 'submitted' && mayReview(plan.scope_code)) {
      buttons.push(
        h('button', { id: 'step-approve', class: 'primary', onclick: () => take('approve', { effective: effective.value || undefined })() }, t('step.approve')),
        h('button', { id: 'step-return', class: 'secondary', onclick: () => take('return', { reason: reason.value })() }, t('step.return')),
        h('button', { id: 'step-reject', class: 'danger', onclick: reject }, t('step.reject')),
      );
    }
    if (plan.status === 'approved' && mayReview(plan.scope_code)) {
      buttons.push(h('button', { id: 'step-activate', class: 'primary', onclick: activate }, t('step.activate')));
    }
    fill(el, buttons.length ? [h('h3', {}, t('plans.steps')),
      plan.status === 'submitted' ? h('label', {}, t('plans.reason'), reason) : null,
      ['submitted', 'approved'].includes(plan.status) ? h('label', {}, t('plans.effective'), effective) : null,
      h('div', { class: 'buttons' }, buttons)] : []);
  };

  const wanted = new URLSearchParams(location.hash.split('?')[1] ?? '').get('plan');
  if (wanted) await showPlan({ id: Number(wanted) } as Plan);
  else await showList();

  return () => {
    closeCompare();
    map.remove();
  };
}

export { query };
