// A few lines instead of a framework: build elements, replace children, show a toast.

type Attrs = Record<string, string | number | boolean | ((e: Event) => void) | undefined | null>;
type Child = Node | string | number | null | undefined | false;

/** `h('button', {class: 'x', onclick: f}, 'text')` */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v as EventListener);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

let toastTimer: number | undefined;
/** A short message at the bottom of the page. It goes away by itself (errors after 8 s,
 * long enough to read) or when tapped. */
export function toast(message: string, kind: 'info' | 'error' = 'info'): void {
  const el = document.getElementById('toast');
  if (!el) return;
  el.textContent = message;
  el.className = `show ${kind}`;
  el.onclick = () => (el.className = '');
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => (el.className = ''), kind === 'info' ? 4000 : 8000);
}

/** The calendar day in China (`YYYY-MM-DD`) at `ms` since the epoch, whatever the
 * browser's zone: the server reads form dates as China's days (+08:00, no DST). */
export function chinaDay(ms: number = Date.now()): string {
  return new Date(ms + 8 * 3600_000).toISOString().slice(0, 10);
}

/** Local date and time in China, whatever the browser's zone. */
export function chinaTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString('zh-CN', { timeZone: 'Asia/Shanghai', hour12: false }).replace(/\//g, '-');
}

/**
 * Asks before a step that cannot be undone: a modal with a title, what will happen and
 * a confirm button (`#confirm-ok`, `#confirm-cancel`); resolves whether it was confirmed.
 */
export function confirmDialog(title: string, body: (Node | string)[], okLabel: string, danger = false): Promise<boolean> {
  return new Promise((resolve) => {
    const ok = h('button', { id: 'confirm-ok', class: danger ? 'danger-solid' : 'primary', value: 'ok' }, okLabel);
    const cancel = h('button', { id: 'confirm-cancel', class: 'secondary', value: 'cancel' }, document.documentElement.lang === 'en' ? 'Cancel' : '取消');
    const dialog = h('dialog', { id: 'confirm-dialog', class: 'confirm' },
      h('form', { method: 'dialog' }, h('h2', {}, title), body.map((b) => (typeof b === 'string' ? h('p', {}, b) : b)), h('div', { class: 'buttons' }, ok, cancel)));
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'ok');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** A map legend: coloured swatches with their meaning. */
export function legend(items: [string, string, 'fill' | 'line' | 'point'][]): HTMLElement {
  return h('div', { class: 'legend' }, items.map(([colour, label, kind]) =>
    h('span', {}, h('i', { class: kind, style: `--c: ${colour}` }), label)));
}
