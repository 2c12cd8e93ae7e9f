// The shell: header with the pages, language switch and login; pages by URL hash
// (#/public, #/report, #/planner, #/dispatcher, #/assessment) so the server only
// serves `/`.

import './style.css';
import { h, fill, toast } from './dom';
import { t, switchLang, lang } from './i18n';
import { me, login, logout, hasRole, describe } from './api';
import { publicPage } from './pages/public';
import { followPage } from './pages/follow';

/** What a page returns: a function that releases its maps and timers. */
export type Cleanup = () => void;
type Page = (root: HTMLElement) => Promise<Cleanup | void>;

// Staff pages name the roles whose work they are (the policy's read_plans and
// read_cases columns): the header shows each user those pages only.
// Staff pages load when first opened, so a resident's first map parses none of them.
const plannerPage: Page = async (root) => (await import('./pages/planner')).plannerPage(root);
const dispatcherPage: Page = async (root) => (await import('./pages/dispatcher')).dispatcherPage(root);
const assessmentPage: Page = async (root) => (await import('./pages/assessment')).assessmentPage(root);

const pages: Record<string, { title: string; page: Page; staff: boolean; roles?: string[] }> = {
  public: { title: 'nav.public', page: publicPage, staff: false },
  report: { title: 'nav.report', page: followPage, staff: false },
  planner: { title: 'nav.planner', page: plannerPage, staff: true, roles: ['city_admin', 'planner', 'auditor'] },
  dispatcher: { title: 'nav.dispatcher', page: dispatcherPage, staff: true, roles: ['city_admin', 'dispatcher', 'grid_member', 'department_handler', 'auditor'] },
  assessment: { title: 'nav.assessment', page: assessmentPage, staff: true, roles: ['city_admin', 'dispatcher', 'auditor'] },
  login: { title: 'nav.login', page: async () => {}, staff: true },
};

const forUser = (name: string): boolean => {
  const p = pages[name];
  return !p.staff || (!!me() && (!p.roles || hasRole(...p.roles)));
};
const shown = (): string[] => Object.keys(pages).filter((n) => n !== 'login' && (me() ? forUser(n) : !pages[n].staff));

let cleanup: Cleanup | void;

function current(): string {
  const name = location.hash.replace(/^#\/?/, '').split('/')[0];
  return Object.hasOwn(pages, name) ? name : 'public';
}

function header(): void {
  document.documentElement.lang = lang() === 'en' ? 'en' : 'zh-CN';
  const user = me();
  const here = current();
  fill(
    document.getElementById('top')!,
    h('strong', { class: 'brand' }, '网格 ', h('span', {}, t('app'))),
    h('nav', {}, shown().map((name) => h('a', { href: `#/${name}`, class: name === here ? 'active' : '', 'data-page': name }, t(pages[name].title)))),
    h('span', { class: 'spacer' }),
    user ? null : h('a', { href: '#/login', id: 'staff-login', class: here === 'login' ? 'active' : '' }, t('nav.login')),
    h('a', { href: '/docs', target: '_blank' }, t('nav.docs')),
    h('button', { class: 'link', id: 'lang', onclick: () => { switchLang(); route(); } }, t('lang')),
    user
      ? h('span', { class: 'user' }, h('span', { class: 'user-name' }, user.name), ' ', h('button', { class: 'link', id: 'logout', onclick: async () => { await logout(); route(); } }, t('logout')))
      : null,
  );
  // On a phone the pages scroll sideways: keep the current one in sight.
  document.querySelector<HTMLElement>('header nav a.active')?.scrollIntoView({ inline: 'nearest', block: 'nearest' });
}

/** A login form standing in for a page that needs one. */
function loginForm(root: HTMLElement): void {
  const name = h('input', { name: 'name', autocomplete: 'username', required: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h('form', { class: 'login panel' },
    h('h2', {}, t('login.title')),
    h('p', {}, t('login.needed')),
    h('label', {}, t('login.name'), name),
    h('label', {}, t('login.password'), password),
    h('button', { type: 'submit' }, t('login')),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await login(name.value.trim(), password.value);
      // From the login link, on to the user's first page.
      if (current() === 'login') location.hash = `#/${shown().find((n) => pages[n].staff) ?? 'public'}`;
      else route();
    } catch (err) {
      toast(`${t('login.failed')}: ${describe(err)}`, 'error');
    }
  });
  fill(root, form);
  name.focus();
}

let generation = 0;

async function route(): Promise<void> {
  // Each route renders into its own element: a page still loading when the user moves
  // on writes into a detached element and is released as soon as it finishes.
  const mine = ++generation;
  if (cleanup) cleanup();
  cleanup = undefined;
  header();
  const main = document.getElementById('page')!;
  main.className = `page-${current()}`;
  const root = h('div', { class: 'page-root' });
  fill(main, root);
  const p = pages[current()];
  document.title = `${t(p.title)} · 网格 wangge`;
  if (p.staff && !me()) return loginForm(root);
  if (current() === 'login') {
    location.hash = `#/${shown().find((n) => pages[n].staff) ?? 'public'}`;
    return;
  }
  if (!forUser(current())) {
    // Not this user's work: say so, and where their pages are, before any request.
    fill(root, h('div', { class: 'panel notice', id: 'not-yours' }, h('h2', {}, t('nav.not_yours')),
      h('p', {}, t('nav.not_yours.hint')),
      h('p', {}, shown().map((n) => h('a', { href: `#/${n}`, class: 'button secondary' }, t(pages[n].title))))));
    return;
  }
  try {
    const release = await p.page(root);
    if (mine !== generation) release?.();
    else cleanup = release;
  } catch (err) {
    if (mine !== generation) return;
    toast(`${t('error')}: ${describe(err)}`, 'error');
    // A token the server refused is forgotten by api.ts: show the login again.
    if (p.staff && !me()) loginForm(root);
  }
}

window.addEventListener('hashchange', route);
route();
