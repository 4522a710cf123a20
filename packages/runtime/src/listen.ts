import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { isAuthorised } from './auth.js';
import { maxFrameBytes, type RuntimeConfig } from './config.js';

/**
 * The runtime's socket: WebSocket only, for one host, once. The secret is in the container's
 * environment at start (/proc/1/environ and the runtime's own /proc/<pid>/environ still show it),
 * so a function can learn it: the first authenticated connection wins and the listener closes at
 * once (the socket file goes, the port closes), so knowing the secret later gains nothing.
 */
export class HostListener {
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private hostAccepted = false;
  private shuttingDown = false;
  private listenerClosed: Promise<void> | undefined;

  constructor(
    private readonly config: RuntimeConfig,
    onHost: (ws: WebSocket) => void,
  ) {
    this.http = createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('Data Station runtime: WebSocket only.\n');
    });
    this.wss = new WebSocketServer({ noServer: true, maxPayload: maxFrameBytes(config), perMessageDeflate: false });
    this.http.on('upgrade', (request, socket: Duplex, head) => {
      socket.on('error', () => socket.destroy());
      if (this.shuttingDown || this.hostAccepted) return void socket.destroy();
      if (!isAuthorised(request, config.secret)) {
        socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(request, socket, head, (ws) => {
        // Claimed once the handshake is complete, so a malformed upgrade cannot lock the host out.
        if (this.hostAccepted) return ws.terminate();
        this.hostAccepted = true;
        void this.stopListening();
        onHost(ws);
      });
    });
  }

  /** Listens on the configured Unix socket (a stale file replaced) or TCP port. */
  async listen(): Promise<void> {
    const { socketPath, port } = this.config;
    if (socketPath) {
      await rm(socketPath, { force: true });
      // The host may run as another uid than the container (mode 0666, see listenOn); the folder around the socket is what guards it.
      await listenOn(this.http, socketPath);
    } else {
      await listenOn(this.http, port ?? 0);
    }
  }

  /** Refuses any new host from now on (the runtime is ending); the connected one stays until close(). */
  refuseHosts(): void {
    this.shuttingDown = true;
  }

  /** Refuses new hosts, ends the connected one, and stops listening (which removes the socket). */
  async close(): Promise<void> {
    this.shuttingDown = true;
    for (const client of this.wss.clients) client.terminate();
    const closed = this.stopListening();
    this.http.closeAllConnections();
    await closed;
  }

  private stopListening(): Promise<void> {
    this.listenerClosed ??= new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeIdleConnections();
    });
    return this.listenerClosed;
  }
}

function listenOn(server: Server, target: string | number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    if (typeof target === 'string') {
      // The socket's mode is set as it is created, through the umask: under gVisor (runsc), chmod
      // of a socket in a bind-mounted folder fails with EPERM. listen() binds synchronously, so
      // the umask differs only for that moment.
      const umask = process.umask(0o111);
      try {
        server.listen(target, () => resolve());
      } finally {
        process.umask(umask);
      }
    } else server.listen(target, networkAddress(), () => resolve());
  });
}

/** On the session's network, listen only where the controller connects: the container's own address. */
function networkAddress(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    const v4 = addresses?.find((a) => a.family === 'IPv4' && !a.internal);
    if (v4) return v4.address;
  }
  return '127.0.0.1';
}
