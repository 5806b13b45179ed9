// Development only: the daemon's UI session contract (/ui/session,
// /ui/login, /ui/logout), answered by the Vite server itself so that the UI
// can be worked on against a daemon that does not serve it. It also holds
// the proxied API to that contract — a session cookie for every call, the
// CSRF header on every change — so that a UI call missing either fails here
// as it would against the daemon.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Connect, Plugin } from 'vite';

const COOKIE = 'berth_dev_session';
const MAX_FAILURES = 5;
const LOCKOUT_SECS = 30;

export interface DevAuthOptions {
  user: string;
  password: string;
  /** Paths that are the daemon's API, proxied once the checks pass. */
  apiPrefixes: string[];
}

export function devAuth(options: DevAuthOptions): Plugin {
  const sessions = new Map<string, string>(); // cookie value → CSRF token
  let failures = 0;
  let lockedUntil = 0;

  const send = (res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, body === undefined ? headers : { 'Content-Type': 'application/json', ...headers });
    res.end(body === undefined ? undefined : JSON.stringify(body));
  };
  const refuse = (res: ServerResponse, status: number, code: string, message: string, headers?: Record<string, string>) =>
    send(res, status, { code, message }, headers);

  const sessionOf = (req: IncomingMessage) => {
    const cookie = (req.headers.cookie ?? '').split(/;\s*/).find((c) => c.startsWith(`${COOKIE}=`));
    const id = cookie?.slice(COOKIE.length + 1);
    const csrf = id ? sessions.get(id) : undefined;
    return id && csrf ? { id, csrf } : undefined;
  };

  const readJson = (req: IncomingMessage) =>
    new Promise<Record<string, unknown>>((resolve) => {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString()));
      req.on('end', () => {
        try {
          resolve(JSON.parse(text) as Record<string, unknown>);
        } catch {
          resolve({});
        }
      });
    });

  const middleware: Connect.NextHandleFunction = (req, res, next) => {
    const path = (req.url ?? '').split('?')[0];
    const session = sessionOf(req);
    const body = (csrf: string) => ({ user: options.user, csrf, method: 'password' });

    if (path === '/ui/session' && req.method === 'GET') {
      return session ? send(res, 200, body(session.csrf)) : refuse(res, 401, 'unauthorized', 'not signed in');
    }
    if (path === '/ui/login' && req.method === 'POST') {
      void readJson(req).then((given) => {
        const wait = Math.ceil((lockedUntil - Date.now()) / 1000);
        if (wait > 0) {
          return refuse(res, 429, 'busy', 'too many wrong passwords', { 'Retry-After': String(wait) });
        }
        if (given.user !== options.user || given.password !== options.password) {
          failures += 1;
          if (failures >= MAX_FAILURES) {
            failures = 0;
            lockedUntil = Date.now() + LOCKOUT_SECS * 1000;
          }
          return refuse(res, 401, 'unauthorized', 'wrong user name or password');
        }
        failures = 0;
        const id = randomBytes(16).toString('hex');
        const csrf = randomBytes(16).toString('hex');
        sessions.set(id, csrf);
        send(res, 200, body(csrf), { 'Set-Cookie': `${COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/` });
      });
      return;
    }
    if (path === '/ui/logout' && req.method === 'POST') {
      if (session && req.headers['x-berth-csrf'] !== session.csrf) return refuse(res, 403, 'forbidden', 'missing CSRF token');
      if (session) sessions.delete(session.id);
      return send(res, 204, undefined, { 'Set-Cookie': `${COOKIE}=; Max-Age=0; Path=/` });
    }
    if (options.apiPrefixes.some((p) => path === p || path.startsWith(`${p}/`))) {
      if (!session) return refuse(res, 401, 'unauthorized', 'not signed in');
      if (req.method !== 'GET' && req.method !== 'HEAD' && req.headers['x-berth-csrf'] !== session.csrf) {
        return refuse(res, 403, 'forbidden', 'missing or wrong X-Berth-CSRF header');
      }
    }
    next();
  };

  return {
    name: 'berth-dev-auth',
    configureServer: (server) => void server.middlewares.use(middleware),
    configurePreviewServer: (server) => void server.middlewares.use(middleware),
  };
}
