// The service's API as the pages use it: bearer token from the login, problem+json
// errors turned into exceptions with the problem's detail.

import { t, lang } from './i18n';

export interface Grant { role: string; scope: string }
export interface Me { name: string; grants: Grant[] }

const TOKEN = 'wangge.token';
const USER = 'wangge.user';

export class ApiProblem extends Error {
  constructor(public status: number, public type: string, detail: string, public body: unknown) {
    super(detail);
  }
}

export function token(): string | null {
  return localStorage.getItem(TOKEN);
}

export function me(): Me | null {
  const raw = localStorage.getItem(USER);
  try {
    return raw ? (JSON.parse(raw) as Me) : null;
  } catch {
    return null;
  }
}

export function hasRole(...roles: string[]): boolean {
  return (me()?.grants ?? []).some((g) => roles.includes(g.role));
}

/** The widest scope the user holds one of `roles` over. */
export function scopeOf(...roles: string[]): string | undefined {
  return (me()?.grants ?? [])
    .filter((g) => roles.includes(g.role))
    .map((g) => g.scope)
    .sort((a, b) => a.length - b.length)[0];
}

async function failure(r: Response): Promise<ApiProblem> {
  let body: any = null;
  try {
    body = await r.json();
  } catch {
    /* not JSON */
  }
  if (Array.isArray(body) && body[0]?.description) {
    return new ApiProblem(r.status, 'open311', body[0].description, body);
  }
  const detail = body?.detail ?? body?.title ?? `${r.status} ${r.statusText}`;
  return new ApiProblem(r.status, body?.type ?? '', detail, body);
}

/**
 * What to tell the user about a failed request, in their language: a known problem
 * `type` by its own words, a network failure as such (with what to do), anything else
 * by the service's detail without server paths.
 */
export function describe(err: unknown): string {
  if (err instanceof ApiProblem) {
    const slug = err.type.replace(/^urn:wangge:problem:/, '');
    const known = t(`problem.${slug}`);
    // Where the service's words say which feature, field or step, they follow.
    const specific = ['bad-file', 'bad-geometry', 'unreadable-file', 'bad-case', 'bad-plan', 'refused', 'four-eyes', 'unsupported-format'];
    if (known !== `problem.${slug}`) return specific.includes(slug) && lang() !== 'en' ? `${known}（${withoutPaths(err.message)}）` : known;
    if (err.status >= 500) return t('problem.server');
    return lang() === 'en' ? withoutPaths(err.message) : `${t('problem.other')}（${withoutPaths(err.message)}）`;
  }
  if (err instanceof TypeError) return t('problem.network');
  return withoutPaths(String((err as Error)?.message ?? err));
}

/** A message without absolute file paths (`/tmp/…/x.shp` → `x.shp`). */
function withoutPaths(message: string): string {
  return message.replace(/(?:\/[\w.+-]+)+\/([\w.+-]+)/g, '$1');
}

export async function request<T>(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ data: T; response: Response }> {
  // The service's own words (problem details) in the language the page is shown in.
  const h: Record<string, string> = { 'accept-language': lang() === 'en' ? 'en' : 'zh-CN', ...headers };
  const t = token();
  if (t) h.authorization = `Bearer ${t}`;
  let payload: BodyInit | undefined;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    h['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const r = await fetch(path, { method, headers: h, body: payload });
  if (r.status === 401 && t) {
    // The token expired or was revoked: forget it so the page asks to log in again.
    localStorage.removeItem(TOKEN);
    localStorage.removeItem(USER);
  }
  if (!r.ok) throw await failure(r);
  const type = r.headers.get('content-type') ?? '';
  const data = (type.includes('json') ? await r.json() : await r.text()) as T;
  return { data, response: r };
}

export async function get<T>(path: string): Promise<T> {
  return (await request<T>('GET', path)).data;
}

export async function post<T>(path: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
  return (await request<T>('POST', path, body, headers)).data;
}

export async function login(name: string, password: string): Promise<Me> {
  const r = await post<{ token: string; user: Me }>('/v1/auth/login', { name, password });
  localStorage.setItem(TOKEN, r.token);
  localStorage.setItem(USER, JSON.stringify(r.user));
  return r.user;
}

export async function logout(): Promise<void> {
  try {
    if (token()) await post('/v1/auth/logout');
  } finally {
    localStorage.removeItem(TOKEN);
    localStorage.removeItem(USER);
  }
}

/** `?a=1&b=2` without the empty ones. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
