/**
 * The stand-in for Docker's embedded DNS (127.0.0.11 in a container): a UDP server on loopback
 * that answers A queries for service names with the loopback addresses their processes listen
 * on, every replica's, and NXDOMAIN for anything else. Enough for nginx's `resolver`.
 */

/** A running resolver. */
export interface LocalDns {
  port: number;
  stop(): void;
}

/** The name asked in a query, lower-cased, and where its question section ends; null if unreadable. */
function question(msg: Uint8Array): { name: string; end: number; type: number } | null {
  if (msg.length < 12) return null;
  const labels: string[] = [];
  let i = 12;
  while (i < msg.length) {
    const len = msg[i] as number;
    if (len === 0) break;
    if (len > 63 || i + 1 + len > msg.length) return null;
    labels.push(new TextDecoder().decode(msg.subarray(i + 1, i + 1 + len)));
    i += 1 + len;
  }
  if (i + 5 > msg.length) return null;
  const type = ((msg[i + 1] as number) << 8) | (msg[i + 2] as number);
  return { name: labels.join(".").toLowerCase(), end: i + 5, type };
}

/** The answer to `query`: the question echoed and one A record per address (TTL 5 s). */
export function answer(query: Uint8Array, lookup: (name: string) => string[]): Uint8Array | null {
  const q = question(query);
  if (!q) return null;
  const addresses = q.type === 1 ? lookup(q.name.replace(/\.$/, "")) : [];
  const known = lookup(q.name.replace(/\.$/, "")).length > 0;
  const out = new Uint8Array(q.end + addresses.length * 16);
  out.set(query.subarray(0, q.end));
  out[2] = 0x81; // response, recursion desired (as asked)
  out[3] = known ? 0x80 : 0x83; // recursion available; NOERROR or NXDOMAIN
  out.set([0, 1, addresses.length >> 8, addresses.length & 0xff, 0, 0, 0, 0], 4);
  let o = q.end;
  for (const ip of addresses) {
    out.set([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, ...ip.split(".").map(Number)], o);
    o += 16;
  }
  return out;
}

/** Starts the resolver on 127.0.0.1 (a free port). */
export async function startLocalDns(lookup: (name: string) => string[]): Promise<LocalDns> {
  const socket = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(sock, data, port, address) {
        const reply = answer(new Uint8Array(data), lookup);
        if (reply) sock.send(reply, port, address);
      },
    },
  });
  return { port: socket.port, stop: () => socket.close() };
}
