/** The station's sessions (one per user and package): state, age and the limits they run under. */
import type { SessionView } from '@datastation/protocol/station';
import { SESSION_STATES } from '@datastation/protocol/station';
import { useCallback } from 'react';
import { api } from '../api';
import { ErrorNote, Loading, PackageLabel, TableWrap, Time } from '../components/common';
import { formatBytes, formatDuration } from '../format';
import { useResource, useTitle } from '../hooks';

const STATES: ReadonlySet<string> = new Set(SESSION_STATES);

export function SessionsPage() {
  useTitle('Sessions');
  const load = useCallback((signal: AbortSignal) => api.sessions(signal), []);
  const { data, error, loading, reload } = useResource(load, ['session', 'run']);
  const sessions = [...(data ?? [])].sort((a, b) => b.since.localeCompare(a.since));
  return (
    <>
      <h1 tabIndex={-1}>Sessions</h1>
      <p className="lede">A session is one user's container for one package: warm between runs, paused when idle, then removed.</p>
      <p>
        <button type="button" className="button" onClick={reload} disabled={loading}>
          Refresh
        </button>
      </p>
      <ErrorNote error={error} prefix="Could not load the sessions" />
      {loading && !data ? <Loading /> : null}
      {data && sessions.length === 0 ? <p>No session yet.</p> : null}
      {sessions.length > 0 ? (
        <TableWrap label="Sessions">
          <table data-testid="sessions-table" className="sessions">
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Package</th>
                <th scope="col">State</th>
                <th scope="col">Since</th>
                <th scope="col">Idle</th>
                <th scope="col">Memory</th>
                <th scope="col">CPUs</th>
                <th scope="col">PIDs</th>
                <th scope="col">Timeout</th>
                <th scope="col">Data quota</th>
                <th scope="col">Result cap</th>
                <th scope="col">Pause after</th>
                <th scope="col">Removed after</th>
                <th scope="col">Runtime</th>
              </tr>
            </thead>
            <tbody>
              {sessions.map((s) => (
                <SessionRow key={s.id} session={s} />
              ))}
            </tbody>
          </table>
        </TableWrap>
      ) : null}
    </>
  );
}

function SessionRow({ session: s }: { session: SessionView }) {
  const l = s.limits;
  return (
    <tr data-testid="session-row" data-session-id={s.id}>
      <th scope="row">{s.user}</th>
      <td>
        <PackageLabel digest={s.package} />
      </td>
      <td>
        <span className={`badge badge-session-${STATES.has(s.state) ? s.state : 'unknown'}`}>{s.state}</span>
      </td>
      <td>
        <Time iso={s.since} />
      </td>
      <td className="num">{s.idleMs === undefined ? '—' : formatDuration(s.idleMs)}</td>
      <td className="num">{`${l.memoryMb} MB`}</td>
      <td className="num">{l.cpus}</td>
      <td className="num">{l.pids}</td>
      <td className="num">{formatDuration(l.timeoutMs)}</td>
      <td className="num">{`${formatBytes(l.dataBytes)}, ${l.dataFiles} files`}</td>
      <td className="num">{formatBytes(l.resultBytes)}</td>
      <td className="num">{l.pauseAfterMs === null ? 'never' : formatDuration(l.pauseAfterMs)}</td>
      <td className="num">{l.idleTtlMs === null ? 'never' : formatDuration(l.idleTtlMs)}</td>
      <td>{s.runtime ?? <span className="muted">default</span>}</td>
    </tr>
  );
}
