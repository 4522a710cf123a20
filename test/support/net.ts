import { createServer, type Server } from 'node:net';
import { execFileSync } from 'node:child_process';

/** A TCP server on one host address that counts who connected: the bait for network escapes. */
export interface Bait extends AsyncDisposable {
  host: string;
  port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

export async function listenBait(host: string): Promise<Bait> {
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections++;
    socket.on('error', () => undefined);
    socket.end('bait\n');
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, () => resolve()));
  const { port } = server.address() as { port: number };
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return {
    host,
    port,
    get connections() {
      return connections;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Every IPv4 address of the host, with its prefix, from `ip` (Node's own list leaves out interfaces that are down, like an idle docker0). */
function hostAddresses(): { iface: string; address: string; prefix: number }[] {
  const out = execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' });
  return [...out.matchAll(/^\d+:\s+(\S+)\s+inet\s+([\d.]+)\/(\d+)/gm)].map((m) => ({ iface: m[1]!, address: m[2]!, prefix: Number(m[3]) }));
}

/** The host's IPv4 address on the interface named `name` (docker0, say). */
export function interfaceAddress(name: string): string {
  const address = hostAddresses().find((a) => a.iface === name)?.address;
  if (!address) throw new Error(`The host has no IPv4 address on ${name}; the network tests need Docker's default bridge.`);
  return address;
}

/** The host's own address on the bridge a container address belongs to: the network's gateway. */
export function hostAddressFacing(containerIp: string): string {
  const toInt = (ip: string) => ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
  for (const a of hostAddresses()) {
    const size = 2 ** (32 - a.prefix);
    if (Math.floor(toInt(a.address) / size) === Math.floor(toInt(containerIp) / size)) return a.address;
  }
  throw new Error(`No host interface shares a subnet with ${containerIp}.`);
}
