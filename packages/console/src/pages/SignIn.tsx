import type { ConsoleSession } from '@datastation/protocol/station';
import { type FormEvent, useState } from 'react';
import { api } from '../api';
import { ErrorNote } from '../components/common';
import { useTitle } from '../hooks';

export function SignIn({ onSignedIn, notice }: { onSignedIn: (session: ConsoleSession) => void; notice?: string | undefined }) {
  useTitle('Sign in');
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error>();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!token.trim()) {
      setError(new Error('Enter your token.'));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      const session = await api.signIn(token.trim());
      setToken('');
      onSignedIn(session);
    } catch (e) {
      setError(e instanceof Error ? e : new Error(String(e)));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" className="sign-in">
      <h1>Sign in</h1>
      <p>
        Sign in with the token the station gave you (the admin's, an owner's, a developer's or a user's). It is sent once; the console then uses a session
        cookie.
      </p>
      {notice ? (
        <p className="note note-info" role="status">
          {notice}
        </p>
      ) : null}
      <form onSubmit={submit} className="form sign-in-form" noValidate>
        <div className="field">
          <label htmlFor="token">Token</label>
          <input id="token" name="token" type="password" autoComplete="current-password" value={token} onChange={(e) => setToken(e.target.value)} required />
        </div>
        <button type="submit" className="button primary" disabled={busy}>
          Sign in
        </button>
        {busy ? <span className="muted"> Signing in…</span> : null}
      </form>
      <ErrorNote error={error} />
    </main>
  );
}
