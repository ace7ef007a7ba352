/**
 * What the kernel says of the server's TCP connections, for the live feed: which of them have a
 * closed receive window. Behind a client that does not read, the kernel's buffers absorb some MiB
 * on loopback (hundreds of KiB over a network) before a write of Bun's waits; until then the
 * stream's queue shows nothing. The peer's kernel tells sooner: once its receive buffer is full
 * it advertises a zero window, and ours probes it (Linux's zero-window probe timer, `tr` 4 in
 * `/proc/net/tcp`). Read from `/proc/net/tcp` and `/proc/net/tcp6` (Linux); elsewhere nothing is known.
 */
import { readFile } from "node:fs/promises";
import { endianness } from "node:os";

/** The timer Linux shows for a connection probing its peer's zero window (ICSK_TIME_PROBE0). */
const ZERO_WINDOW_PROBE = 4;
const ESTABLISHED = 1;
const littleEndian = endianness() === "LE";

/** The key of one connection: the server's port, and the peer's address (normalized, see peerKey) and port. */
export const connectionKey = (localPort: number, peerAddress: string, peerPort: number) => `${localPort} ${peerAddress} ${peerPort}`;

/** An address as the kernel's tables key it: IPv4 dotted (an IPv4-mapped IPv6 one as IPv4), IPv6 as eight groups without leading zeros. */
export function normalizeAddress(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1]) return mapped[1];
  if (!ip.includes(":")) return ip;
  const [head = "", tail] = ip.toLowerCase().split("%")[0]?.split("::") ?? [];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return groups.map((g) => g.replace(/^0+(?=.)/, "")).join(":");
}

/** One 32-bit word of a /proc/net/tcp address (printed in host byte order) as its four bytes in network order. */
function wordBytes(hex: string): number[] {
  const bytes = [0, 2, 4, 6].map((i) => Number.parseInt(hex.slice(i, i + 2), 16));
  return littleEndian ? bytes.reverse() : bytes;
}

/** A /proc/net/tcp{,6} address (`0100007F`, or 32 hex digits) as normalizeAddress writes it. */
function procAddress(hex: string): string {
  if (hex.length === 8) return wordBytes(hex).join(".");
  const bytes = [0, 8, 16, 24].flatMap((i) => wordBytes(hex.slice(i, i + 8)));
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12).join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return groups.join(":");
}

/** Established connections of the local ports asked for, each with whether its peer's window is closed; null where /proc/net/tcp cannot be read. */
export async function zeroWindows(localPorts: ReadonlySet<number>): Promise<Map<string, boolean> | null> {
  const tables = await Promise.all(["/proc/net/tcp", "/proc/net/tcp6"].map((f) => readFile(f, "latin1").catch(() => null)));
  if (tables.every((t) => t === null)) return null;
  const found = new Map<string, boolean>();
  for (const table of tables) {
    if (!table) continue;
    for (const line of table.split("\n")) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when ...
      const f = line.trim().split(/\s+/);
      const [local, remote, st, , timer] = [f[1], f[2], f[3], f[4], f[5]];
      if (!local || !remote || !st || !timer || Number.parseInt(st, 16) !== ESTABLISHED) continue;
      const localPort = Number.parseInt(local.slice(local.indexOf(":") + 1), 16);
      if (!localPorts.has(localPort)) continue;
      const colon = remote.indexOf(":");
      const key = connectionKey(localPort, procAddress(remote.slice(0, colon)), Number.parseInt(remote.slice(colon + 1), 16));
      found.set(key, Number.parseInt(timer.slice(0, timer.indexOf(":")), 16) === ZERO_WINDOW_PROBE);
    }
  }
  return found;
}
