/** The console: sign in, then the pages of the principal's role, with the live events connected. */
import type { ConsoleSession } from '@datastation/protocol/station';
import { useEffect, useRef, useState } from 'react';
import { api, setUnauthenticatedHandler } from './api';
import { PackagesProvider, SessionContext } from './data';
import { connectEvents, type LiveState } from './events';
import { AuditPage } from './pages/Audit';
import { DataPage } from './pages/Data';
import { DeveloperPage } from './pages/Developer';
import { GrantsPage } from './pages/Grants';
import { PackageDetailPage, PackagesPage } from './pages/Packages';
import { PrincipalsPage } from './pages/Principals';
import { ReviewPage } from './pages/Review';
import { SessionsPage } from './pages/Sessions';
import { SignIn } from './pages/SignIn';
import { UserRunsPage } from './pages/UserRuns';
import { Link, navigate, parseLocation, useLocation } from './router';
import { homeRoute, NAV, type Page, resolvePage } from './routes';

export function App() {
  // undefined: still asking whether the cookie holds a session.
  const [session, setSession] = useState<ConsoleSession | null | undefined>(undefined);
  const [notice, setNotice] = useState<string>();
  // Signed in through the form (not a reload with a live cookie): focus goes to the first page's heading.
  const [signedInHere, setSignedInHere] = useState(false);

  useEffect(() => {
    setUnauthenticatedHandler(() => {
      setSession(null);
      setNotice('Your session has ended. Sign in again.');
    });
    return () => setUnauthenticatedHandler(null);
  }, []);

  useEffect(() => {
    let current = true;
    api.session().then(
      (s) => {
        if (current) setSession(s);
      },
      (error: unknown) => {
        if (!current) return;
        setNotice(`The station did not answer: ${error instanceof Error ? error.message : String(error)}`);
        setSession(null);
      },
    );
    return () => {
      current = false;
    };
  }, []);

  if (session === undefined) {
    return (
      <>
        <Header />
        <main id="main">
          <p role="status">Loading…</p>
        </main>
      </>
    );
  }
  if (session === null) {
    return (
      <>
        <Header />
        <SignIn
          notice={notice}
          onSignedIn={(s) => {
            setNotice(undefined);
            // Signed in on a page this role does not have (another role's, after a sign-out): go home.
            const here = parseLocation(`${window.location.pathname}${window.location.search}`);
            if (!resolvePage(s.principal.role, here.segments, here.search)) navigate(homeRoute(s.principal.role), { replace: true });
            setSignedInHere(true);
            setSession(s);
          }}
        />
      </>
    );
  }
  return (
    <SessionContext value={session}>
      <PackagesProvider>
        <Shell
          session={session}
          focusFirstPage={signedInHere}
          onSignedOut={(text) => {
            setNotice(text);
            setSession(null);
          }}
        />
      </PackagesProvider>
    </SessionContext>
  );
}

const LIVE_TEXT: Record<LiveState, string> = { connecting: 'Connecting…', live: 'Live', offline: 'Offline, retrying' };

function Header({ session, live, onSignOut }: { session?: ConsoleSession; live?: LiveState; onSignOut?: () => void }) {
  const location = useLocation();
  const role = session?.principal.role;
  return (
    <header className="site-header">
      <a className="skip-link" href="#main">
        Skip to the content
      </a>
      <div className="header-inner">
        <p className="brand">
          Data Station <span className="brand-sub">console</span>
        </p>
        {role ? (
          <nav aria-label="Main" className="main-nav">
            <ul>
              {NAV[role].map((item) => (
                <li key={item.route}>
                  <Link to={item.route} aria-current={location.segments[0] === item.route ? 'page' : undefined}>
                    {item.label}
                  </Link>
                </li>
              ))}
            </ul>
          </nav>
        ) : null}
        {session ? (
          <div className="who">
            <span data-testid="whoami">
              <span className="muted">Signed in as</span> <strong>{session.principal.id}</strong> <span className="role">{session.principal.role}</span>
            </span>
            {live ? (
              <span className={`live live-${live}`} data-testid="live-status" aria-live="polite">
                {LIVE_TEXT[live]}
              </span>
            ) : null}
            <button type="button" className="button" onClick={onSignOut}>
              Sign out
            </button>
          </div>
        ) : null}
      </div>
    </header>
  );
}

function Shell({ session, focusFirstPage, onSignedOut }: { session: ConsoleSession; focusFirstPage: boolean; onSignedOut: (notice: string) => void }) {
  const [live, setLive] = useState<LiveState>('connecting');
  const location = useLocation();
  const role = session.principal.role;
  const page = resolvePage(role, location.segments, location.search);
  const main = useRef<HTMLElement>(null);
  const path = location.segments.join('/');
  // A reload keeps the browser's own focus; a sign-in or a navigation moves it to the page.
  const firstPath = useRef(!focusFirstPage);

  useEffect(() => connectEvents(setLive), []);

  // `/console/` leads to the role's first page.
  useEffect(() => {
    if (path === '') navigate(homeRoute(role), { replace: true });
  }, [path, role]);

  // After a navigation, the keyboard and screen readers start at the new page's heading (unless
  // the page put focus somewhere itself, e.g. the grant form's first field).
  useEffect(() => {
    if (firstPath.current) {
      if (path) firstPath.current = false;
      return;
    }
    const region = main.current;
    if (!path || !region) return;
    const active = document.activeElement;
    if (active && active !== region && region.contains(active)) return;
    const heading = region.querySelector('h1');
    (heading ?? region).focus();
  }, [path]);

  const signOut = async () => {
    try {
      await api.signOut();
      onSignedOut('You signed out.');
    } catch (error) {
      onSignedOut(`You are signed out here, but the station did not confirm it: ${error instanceof Error ? error.message : String(error)}`);
    }
  };

  return (
    <>
      <Header session={session} live={live} onSignOut={signOut} />
      <main id="main" ref={main} tabIndex={-1} data-page={page?.page ?? 'not-found'}>
        {page ? <PageView page={page} /> : path ? <NotFound home={homeRoute(role)} /> : null}
      </main>
    </>
  );
}

function PageView({ page }: { page: Page }) {
  switch (page.page) {
    case 'packages':
      return <PackagesPage />;
    case 'package':
      return <PackageDetailPage id={page.id} file={page.file} />;
    case 'grants':
      return <GrantsPage prefillPackage={page.prefillPackage} />;
    case 'review':
      return <ReviewPage />;
    case 'audit':
      return <AuditPage />;
    case 'sessions':
      return <SessionsPage />;
    case 'runs':
      return <UserRunsPage />;
    case 'developer':
      return <DeveloperPage />;
    case 'principals':
      return <PrincipalsPage />;
    case 'data':
      return <DataPage />;
  }
}

function NotFound({ home }: { home: string }) {
  return (
    <>
      <h1 tabIndex={-1}>Page not found</h1>
      <p>
        There is no such page for you here. <Link to={home}>Go to the start page</Link>.
      </p>
    </>
  );
}
