// Signing in. The daemon keeps the session in an HttpOnly cookie; the page
// keeps only the CSRF token that must go with every change.
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, session as sessionApi, setCsrf } from './api';
import { Notice, type NoticeValue } from './components/Notice';
import { errorText } from './format';
import type { Session } from './types';

export function adopt(session: Session): Session {
  setCsrf(session.csrf);
  return session;
}

export function Login({ onSignedIn, reason }: { onSignedIn: (s: Session) => void; reason?: string }) {
  const [user, setUser] = useState('admin');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<NoticeValue | null>(reason ? { kind: 'info', text: reason } : null);
  const passwordRef = useRef<HTMLInputElement>(null);

  useEffect(() => {
    document.title = 'Sign in · berth';
    passwordRef.current?.focus();
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setNotice(null);
    try {
      onSignedIn(adopt(await sessionApi.login(user, password)));
    } catch (err) {
      setNotice({ kind: 'error', text: loginError(err) });
      setPassword('');
      passwordRef.current?.focus();
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="login" data-testid="login-page">
      <form class="card login-card" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">
          <span class="brand-mark" aria-hidden="true">⚓</span> Sign in to berth
        </h1>
        <div class="field">
          <label for="login-user">User name</label>
          <input
            id="login-user"
            name="username"
            autocomplete="username"
            value={user}
            required
            onInput={(e) => setUser(e.currentTarget.value)}
          />
        </div>
        <div class="field">
          <label for="login-password">Password</label>
          <input
            id="login-password"
            ref={passwordRef}
            name="password"
            type="password"
            autocomplete="current-password"
            value={password}
            required
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </div>
        <Notice notice={notice} testid="login-message" />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

/** Capitalised and closed with a full stop, to go before another sentence. */
const sentence = (text: string) => `${text.charAt(0).toUpperCase()}${text.slice(1)}${/[.!?]$/.test(text) ? '' : '.'}`;

function loginError(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 401) return 'Wrong user name or password.';
    if (err.status === 429) {
      const wait = err.retryAfter === undefined ? '' : ` Try again in ${err.retryAfter} seconds.`;
      return `${sentence(err.message)}${wait}`;
    }
  }
  return errorText(err);
}
