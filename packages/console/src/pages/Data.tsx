/**
 * Data: an owner's datasets (upload by drag and drop or a file picker, the list with sizes, sha256
 * digests and the grants that cover each file, delete after a confirmation), or a user's data
 * folders (one per package: its inputs, what it holds, download, delete, empty). Every name and
 * message shows as text; names are checked with the station's own rules before anything is sent.
 */
import type { CoveringGrant, DataFolderView, OwnerFileView } from '@datastation/protocol/station';
import { dataPathProblem } from '@datastation/protocol/patterns';
import { type DragEvent, type FormEvent, useCallback, useEffect, useId, useRef, useState } from 'react';
import { api, stationFileUrl, uploadStationFile } from '../api';
import { Digest, ErrorNote, Loading, PackageLabel, ReleaseBadge, TableWrap, Time } from '../components/common';
import { usePackages, useSession } from '../data';
import { formatBytes } from '../format';
import { useResource, useTitle } from '../hooks';

export function DataPage() {
  const role = useSession().principal.role;
  return role === 'owner' ? <OwnerDataPage /> : <UserDataPage />;
}

// ---- owners ----

function OwnerDataPage() {
  useTitle('Data');
  const owner = useSession().principal.id;
  const top = `owners/${owner}`;
  const load = useCallback((signal: AbortSignal) => api.ownerFiles(top, signal), [top]);
  const files = useResource(load, ['data', 'grant', 'revoke']);
  const [message, setMessage] = useState('');
  const usage = files.data?.usage;
  return (
    <>
      <h1 tabIndex={-1}>Data</h1>
      <p className="lede">
        {`Your datasets on the station, under ${top}/. Runs read them only through your grants; nobody downloads them, through the console or the API.`}
      </p>
      <p className="status-line" role="status" data-testid="data-status">
        {message}
      </p>
      <Uploader
        root={top}
        label="Upload files"
        onUploaded={(text) => {
          setMessage(text);
          files.reload();
        }}
      />
      <section aria-labelledby="files-heading">
        <h2 id="files-heading">Your files</h2>
        {usage ? (
          <p className="muted" data-testid="data-usage">
            {`${formatBytes(usage.bytes)} of ${formatBytes(usage.maxBytes)}, ${usage.files} of ${usage.maxFiles} files used by uploads.`}
          </p>
        ) : null}
        <ErrorNote error={files.error} prefix="Could not load your files" />
        {files.loading && !files.data ? <Loading /> : null}
        {files.data && files.data.files.length === 0 ? <p>You have no files on the station yet.</p> : null}
        {files.data && files.data.files.length > 0 ? (
          <TableWrap label="Your files">
            <table data-testid="owner-files">
              <thead>
                <tr>
                  <th scope="col">Path</th>
                  <th scope="col">Size</th>
                  <th scope="col">SHA-256</th>
                  <th scope="col">Granted to</th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {files.data.files.map((file) => (
                  <OwnerFileRow
                    key={file.path}
                    file={file}
                    shown={file.path.slice(top.length + 1)}
                    onDeleted={(text) => {
                      setMessage(text);
                      files.reload();
                    }}
                  />
                ))}
              </tbody>
            </table>
          </TableWrap>
        ) : null}
        {files.data?.truncated ? <p className="muted">{`The first ${files.data.files.length} of ${files.data.total} files.`}</p> : null}
      </section>
    </>
  );
}

function OwnerFileRow({ file, shown, onDeleted }: { file: OwnerFileView; shown: string; onDeleted: (message: string) => void }) {
  return (
    <tr data-testid="owner-file-row" data-path={file.path}>
      <th scope="row" className="path">
        {shown}
      </th>
      <td className="num">{formatBytes(file.size)}</td>
      <td>{file.sha256 ? <Digest digest={`sha256:${file.sha256}`} /> : <span className="muted">not uploaded here</span>}</td>
      <td>
        <Grants grants={file.grants} />
      </td>
      <td className="actions">
        <DeleteButton path={file.path} label={shown} what="file" onDone={onDeleted} />
      </td>
    </tr>
  );
}

function Grants({ grants }: { grants: CoveringGrant[] }) {
  if (grants.length === 0) return <span className="muted">no grant</span>;
  return (
    <ul className="plain-list">
      {grants.map((g) => (
        <li key={g.id}>
          {g.user} <PackageLabel digest={g.package} /> <ReleaseBadge mode={g.release} />
        </li>
      ))}
    </ul>
  );
}

// ---- users ----

function UserDataPage() {
  useTitle('Data');
  const load = useCallback((signal: AbortSignal) => api.dataFolders(signal), []);
  const folders = useResource(load, ['data', 'run', 'grant', 'revoke']);
  const [message, setMessage] = useState('');
  const { packages } = usePackages();
  const user = useSession().principal.id;
  const known = new Set((folders.data?.folders ?? []).map((f) => f.package));
  const others = packages.filter((p) => !known.has(p.digest));
  return (
    <>
      <h1 tabIndex={-1}>Data</h1>
      <p className="lede">
        Your data folders: one per package, the /data its functions read and write. Give a package inputs here. A folder holding data of an owner who reviews or
        denies releases is sealed until you empty it.
      </p>
      <p className="status-line" role="status" data-testid="data-status">
        {message}
      </p>
      <ErrorNote error={folders.error} prefix="Could not load your folders" />
      {folders.loading && !folders.data ? <Loading /> : null}
      {folders.data && folders.data.folders.length === 0 ? <p>You have no data folder yet.</p> : null}
      {(folders.data?.folders ?? []).map((folder) => (
        <FolderCard
          key={folder.package}
          folder={folder}
          onChanged={(text) => {
            setMessage(text);
            folders.reload();
          }}
        />
      ))}
      {others.length > 0 ? (
        <NewFolder
          user={user}
          packages={others.map((p) => ({ digest: p.digest, label: `${p.name} ${p.version}` }))}
          onUploaded={(text) => {
            setMessage(text);
            folders.reload();
          }}
        />
      ) : null}
    </>
  );
}

function FolderCard({ folder, onChanged }: { folder: DataFolderView; onChanged: (message: string) => void }) {
  const [open, setOpen] = useState(false);
  const headingId = useId();
  return (
    <section className="card" aria-labelledby={headingId} data-testid="data-folder" data-package={folder.package}>
      <h2 id={headingId}>
        <PackageLabel digest={folder.package} />
      </h2>
      <p>
        {folder.bytes === null ? (
          <span className="muted">Size withheld.</span>
        ) : (
          `${formatBytes(folder.bytes)} in ${folder.entries ?? 0} ${folder.entries === 1 ? 'entry' : 'entries'}.`
        )}{' '}
        {folder.holds.length > 0 ? `Holds data of ${folder.holds.join(', ')}.` : 'Holds no owner’s data.'}
      </p>
      {folder.withheld ? (
        <div className="note note-warning" data-testid="folder-withheld">
          <p>{folder.withheld}</p>
        </div>
      ) : null}
      <p>
        <button type="button" className="button" aria-expanded={open} onClick={() => setOpen(!open)}>
          {open ? 'Hide files' : 'Show files'}
        </button>{' '}
        <DeleteButton path={folder.path} label={`your folder of ${folder.name ?? folder.package}`} what="folder" onDone={onChanged} />
      </p>
      {open ? <FolderFiles path={folder.path} onChanged={onChanged} /> : null}
    </section>
  );
}

function FolderFiles({ path, onChanged }: { path: string; onChanged: (message: string) => void }) {
  const load = useCallback((signal: AbortSignal) => api.dataFolder(path, signal), [path]);
  const detail = useResource(load, ['data', 'run']);
  const changed = (text: string) => {
    onChanged(text);
    detail.reload();
  };
  const view = detail.data;
  return (
    <div data-testid="folder-files">
      <ErrorNote error={detail.error} prefix="Could not load the folder" />
      {detail.loading && !view ? <Loading /> : null}
      {view && !view.withheld ? (
        <>
          {view.files.length === 0 ? <p>No files.</p> : null}
          {view.files.length > 0 ? (
            <TableWrap label="Files">
              <table data-testid="folder-file-table">
                <thead>
                  <tr>
                    <th scope="col">Path</th>
                    <th scope="col">Size</th>
                    <th scope="col">Modified</th>
                    <th scope="col">
                      <span className="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {view.files.map((file) => (
                    <tr key={file.path} data-testid="folder-file-row">
                      <th scope="row" className="path">
                        {file.path}
                      </th>
                      <td className="num">{formatBytes(file.size)}</td>
                      <td>
                        <Time iso={file.modifiedAt} />
                      </td>
                      <td className="actions">
                        <a className="button" href={stationFileUrl(`${path}/${file.path}`)} download={file.path.split('/').pop()}>
                          Download
                        </a>{' '}
                        <DeleteButton path={`${path}/${file.path}`} label={file.path} what="file" onDone={changed} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
          ) : null}
          <Uploader root={path} label="Add inputs" onUploaded={changed} />
        </>
      ) : null}
    </div>
  );
}

/** A first input for a package the user has no folder of yet. */
function NewFolder({ user, packages, onUploaded }: { user: string; packages: { digest: string; label: string }[]; onUploaded: (message: string) => void }) {
  const [digest, setDigest] = useState(packages[0]?.digest ?? '');
  const id = useId();
  const chosen = packages.some((p) => p.digest === digest) ? digest : (packages[0]?.digest ?? '');
  return (
    <section aria-labelledby={`${id}-h`} className="card">
      <h2 id={`${id}-h`}>Give another package inputs</h2>
      <div className="field">
        <label htmlFor={`${id}-pkg`}>Package</label>
        <select id={`${id}-pkg`} value={chosen} onChange={(e) => setDigest(e.target.value)}>
          {packages.map((p) => (
            <option key={p.digest} value={p.digest}>
              {p.label}
            </option>
          ))}
        </select>
      </div>
      {chosen ? <Uploader root={`users/${user}/${chosen.replace(/^sha256:/, '')}`} label="Upload inputs" onUploaded={onUploaded} /> : null}
    </section>
  );
}

// ---- shared ----

interface Queued {
  key: string;
  name: string;
  size: number;
  sent: number;
  state: 'refused' | 'sending' | 'done' | 'failed';
  note: string;
  error?: Error;
}

/**
 * Files dropped on the zone, or picked, go below `root` (in the sub-folder typed, if any), one at a
 * time, each with its progress. A name the station would refuse is refused here first, as text.
 */
function Uploader({ root, label, onUploaded }: { root: string; label: string; onUploaded: (message: string) => void }) {
  const id = useId();
  const [folder, setFolder] = useState('');
  const [queue, setQueue] = useState<Queued[]>([]);
  const [over, setOver] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const busy = useRef(false);
  const pending = useRef<{ key: string; file: File; path: string }[]>([]);
  const abort = useRef<AbortController | null>(null);
  useEffect(() => () => abort.current?.abort(), []);

  const update = (key: string, change: Partial<Queued>) => setQueue((q) => q.map((item) => (item.key === key ? { ...item, ...change } : item)));

  const pump = async () => {
    if (busy.current) return;
    busy.current = true;
    const uploaded: string[] = [];
    try {
      for (let next = pending.current.shift(); next; next = pending.current.shift()) {
        const { key, file, path } = next;
        update(key, { state: 'sending', note: 'Sending…' });
        abort.current = new AbortController();
        try {
          const view = await uploadStationFile(path, file, (sent) => update(key, { sent }), abort.current.signal);
          update(key, { state: 'done', sent: file.size, note: `Uploaded, sha256 ${view.sha256.slice(0, 12)}…` });
          uploaded.push(view.path);
        } catch (e) {
          update(key, { state: 'failed', note: 'Not uploaded', error: e instanceof Error ? e : new Error(String(e)) });
        }
      }
    } finally {
      busy.current = false;
    }
    // Once the queue is done: the page's list reloads then (it may replace this uploader, as a new folder's appears).
    if (uploaded.length > 0) onUploaded(uploaded.length === 1 ? `Uploaded ${uploaded[0]}.` : `Uploaded ${uploaded.length} files: ${uploaded.join(', ')}.`);
  };

  const add = (files: FileList | File[]) => {
    const sub = folder.split('/').filter(Boolean).join('/');
    const items: Queued[] = [];
    for (const file of Array.from(files)) {
      const key = `${Date.now()}-${Math.random()}`;
      const below = sub ? `${sub}/${file.name}` : file.name;
      const found = dataPathProblem(below);
      if (found) {
        items.push({ key, name: below, size: file.size, sent: 0, state: 'refused', note: `Refused: the name ${found.problem}. Rename the file.` });
        continue;
      }
      items.push({ key, name: below, size: file.size, sent: 0, state: 'sending', note: 'Waiting…' });
      pending.current.push({ key, file, path: `${root}/${below}` });
    }
    setQueue((q) => [...items, ...q].slice(0, 50));
    void pump();
  };

  const onDrop = (event: DragEvent<HTMLDivElement>) => {
    event.preventDefault();
    setOver(false);
    if (event.dataTransfer.files.length > 0) add(event.dataTransfer.files);
  };

  return (
    <section aria-labelledby={`${id}-h`} className="uploader">
      <h3 id={`${id}-h`}>{label}</h3>
      <div className="field">
        <label htmlFor={`${id}-folder`}>{`Into the folder (below ${root}/; empty for the top)`}</label>
        <input id={`${id}-folder`} type="text" value={folder} onChange={(e) => setFolder(e.target.value)} placeholder="e.g. trips/2026" spellCheck={false} />
      </div>
      {/* biome-ignore lint/a11y/noStaticElementInteractions: dropping is a pointer's shortcut; the file picker inside is the way for keyboards and screen readers. */}
      <div
        className={`drop-zone${over ? ' drop-zone-over' : ''}`}
        data-testid="drop-zone"
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
      >
        <p>Drop files here, or</p>
        <input
          ref={input}
          id={`${id}-files`}
          type="file"
          multiple
          className="visually-hidden"
          onChange={(e: FormEvent<HTMLInputElement>) => {
            const files = e.currentTarget.files;
            if (files && files.length > 0) add(Array.from(files));
            e.currentTarget.value = '';
          }}
        />
        <label htmlFor={`${id}-files`} className="button">
          Choose files
        </label>
      </div>
      {queue.length > 0 ? (
        <ul className="plain-list upload-queue" data-testid="upload-queue">
          {queue.map((item) => (
            <li key={item.key} data-testid="upload-item" data-state={item.state}>
              <span className="path">{item.name}</span> <span className="muted">{formatBytes(item.size)}</span>{' '}
              {item.state === 'sending' ? <progress max={item.size || 1} value={item.sent} aria-label={`Sending ${item.name}`} /> : null}{' '}
              <span>{item.note}</span>
              <ErrorNote error={item.error} />
            </li>
          ))}
        </ul>
      ) : null}
    </section>
  );
}

/** Delete (or, for a folder of a package, empty) after a confirmation. */
function DeleteButton({ path, label, what, onDone }: { path: string; label: string; what: 'file' | 'folder'; onDone: (message: string) => void }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error>();
  const confirmButton = useRef<HTMLButtonElement>(null);
  const first = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (confirming) confirmButton.current?.focus();
  }, [confirming]);
  const verb = what === 'folder' ? 'Empty' : 'Delete';
  const run = async () => {
    setBusy(true);
    setError(undefined);
    try {
      if (what === 'folder') {
        const done = await api.emptyFolder(path);
        onDone(`Emptied ${label}${done.held.length ? `; it no longer holds data of ${done.held.join(', ')}` : ''}.`);
      } else {
        await api.deleteFile(path);
        onDone(`Deleted ${label}.`);
      }
      setConfirming(false);
    } catch (e) {
      setError(e instanceof Error ? e : new Error(String(e)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <span className="delete-control">
      {confirming ? (
        <span className="confirm">
          <span className="confirm-text">{what === 'folder' ? `Empty ${label}? Its files are deleted.` : `Delete ${label}?`}</span>
          <button type="button" className="button danger" ref={confirmButton} disabled={busy} onClick={run}>
            {`Confirm ${verb.toLowerCase()}`}
          </button>{' '}
          <button
            type="button"
            className="button"
            disabled={busy}
            onClick={() => {
              setConfirming(false);
              setError(undefined);
              requestAnimationFrame(() => first.current?.focus());
            }}
          >
            Cancel
          </button>
        </span>
      ) : (
        <button type="button" className="button" ref={first} aria-label={`${verb} ${label}`} onClick={() => setConfirming(true)}>
          {verb}
        </button>
      )}
      <ErrorNote error={error} prefix={`Could not ${verb.toLowerCase()}`} />
    </span>
  );
}
