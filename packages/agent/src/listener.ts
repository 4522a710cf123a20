/**
 * The agent's door: an HTTPS server with mutual TLS (TLS 1.3; a client certificate signed by the
 * station's CA is required before a byte of HTTP is read) that upgrades to a WebSocket only for a
 * client whose certificate carries the gatekeeper role. Every message is parsed before the core
 * sees it; frames are capped (MAX_REQUEST_BYTES), compression is off, a gatekeeper that stops
 * answering pings is cut off (its calls cancelled), and so is one that stops reading.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { DsError } from '@datastation/protocol/errors';
import { AgentCore, type AgentCoreOptions, type Peer } from './agent.js';
import { GATEKEEPER_ROLE, roleOf } from './roles.js';
import { AGENT_PATH, DEFAULT_AGENT_PORT, DEFAULT_MAX_CONNECTIONS, MAX_REQUEST_BYTES, parseGatekeeperMessage } from './protocol.js';

/** The agent's TLS material, PEM: its certificate (agent role) and key, and the station's CA. */
export interface AgentTls {
  cert: string;
  key: string;
  ca: string;
}

export interface AgentOptions extends AgentCoreOptions {
  tls: AgentTls;
  /** Default 0.0.0.0. */
  host?: string;
  /** Default DEFAULT_AGENT_PORT (7443); 0 picks a free one. */
  port?: number;
  /** Gatekeeper connections at once; more are answered 503. Default DEFAULT_MAX_CONNECTIONS. */
  maxConnections?: number;
  /** Ping interval; a gatekeeper that misses one is disconnected and its calls cancelled. Default 5 000 ms. */
  pingMs?: number;
}

export interface Agent extends AsyncDisposable {
  readonly id: string;
  readonly boot: string;
  /** `wss://host:port` as it listens. */
  readonly url: string;
  readonly port: number;
  readonly core: AgentCore;
  /** Stops listening, cancels every call, closes every session (containers removed). Idempotent. */
  close(): Promise<void>;
}

/** Unsent bytes on one connection past which its gatekeeper is taken to be stuck and cut off. */
const MAX_BUFFERED_BYTES = 256 * 1024 * 1024;

/** Starts the agent: its Station (after the reaper ran), then the TLS door. */
export async function startAgent(options: AgentOptions): Promise<Agent> {
  const { tls } = options;
  if (!tls?.cert || !tls.key || !tls.ca)
    throw new DsError('BAD_REQUEST', 'The agent needs its TLS certificate, key and the station CA (DS_TLS_CERT, DS_TLS_KEY, DS_TLS_CA).');
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const pingMs = options.pingMs ?? 5_000;
  const core = await AgentCore.start(options);
  const log = options.logger;
  const server: Server = createServer(
    { cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
    (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end(`This is a Data Station agent: gatekeepers connect with a WebSocket at ${AGENT_PATH}.\n`);
    },
  );
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_REQUEST_BYTES, perMessageDeflate: false });
  const sockets = new Set<WebSocket>();

  server.on('tlsClientError', (error, socket) => {
    log?.warn({ remote: socket.remoteAddress, error: error.message }, 'refused a TLS client');
  });
  server.on('upgrade', (req, socket: Duplex, head) => {
    const tlsSocket = socket as TLSSocket;
    const refuse = (status: string, why: string) => {
      log?.warn({ remote: tlsSocket.remoteAddress, why }, 'refused a connection');
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    };
    // The chain was verified at the handshake (rejectUnauthorized); the role says it is a gatekeeper's.
    const role = tlsSocket.authorized ? roleOf(tlsSocket.getPeerCertificate()) : undefined;
    if (role !== GATEKEEPER_ROLE) return refuse('403 Forbidden', `a client certificate of role ${JSON.stringify(role ?? null)}, not ${GATEKEEPER_ROLE}`);
    if ((req.url ?? '').split('?')[0] !== AGENT_PATH) return refuse('404 Not Found', `no WebSocket at ${req.url ?? ''}`);
    if (sockets.size >= maxConnections) return refuse('503 Service Unavailable', `already ${maxConnections} gatekeepers connected`);
    wss.handleUpgrade(req, socket, head, (ws) => serve(ws, `${tlsSocket.remoteAddress ?? '?'}:${tlsSocket.remotePort ?? '?'}`));
  });

  const serve = (ws: WebSocket, name: string) => {
    sockets.add(ws);
    const peer: Peer = {
      name,
      send(message) {
        if (ws.readyState !== WebSocket.OPEN) return false;
        if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
          log?.warn({ peer: name }, 'a gatekeeper stopped reading; disconnected');
          ws.terminate();
          return false;
        }
        ws.send(typeof message === 'string' ? message : JSON.stringify(message));
        return true;
      },
    };
    let alive = true;
    const ping = setInterval(() => {
      if (!alive) return void ws.terminate();
      alive = false;
      ws.ping();
    }, pingMs);
    ping.unref();
    ws.on('pong', () => {
      alive = true;
    });
    ws.on('message', (data, isBinary) => {
      alive = true;
      if (isBinary) return core.refuse(peer, null, new DsError('PROTOCOL_ERROR', 'The agent protocol has text messages only.'));
      const parsed = parseGatekeeperMessage(data.toString());
      if (!parsed.ok) return core.refuse(peer, parsed.id, parsed.error);
      core.handle(peer, parsed.message);
    });
    ws.on('error', (error) => log?.warn({ peer: name, error: error.message }, 'gatekeeper connection error'));
    ws.on('close', () => {
      clearInterval(ping);
      sockets.delete(ws);
      core.disconnected(peer);
      log?.info({ peer: name }, 'gatekeeper disconnected');
    });
    log?.info({ peer: name }, 'gatekeeper connected');
    core.connected(peer);
  };

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? DEFAULT_AGENT_PORT, options.host ?? '0.0.0.0', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await core.close().catch(() => undefined);
    throw new DsError(
      'BAD_REQUEST',
      `The agent cannot listen on ${options.host ?? '0.0.0.0'}:${options.port ?? DEFAULT_AGENT_PORT}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  log?.info({ agent: core.id, boot: core.boot, port: address.port }, `agent ${core.id} listening on wss://${shown}:${address.port}${AGENT_PATH}`);

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const ws of sockets) ws.close(1001, 'agent stopping');
      await core.close();
      for (const ws of sockets) ws.terminate();
      server.closeAllConnections();
      await closed;
    })());
  return { id: core.id, boot: core.boot, url: `wss://${shown}:${address.port}`, port: address.port, core, close, [Symbol.asyncDispose]: close };
}
