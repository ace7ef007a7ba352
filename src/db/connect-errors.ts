/**
 * Says why PostgreSQL could not be used in one line: which server (host, port, database, user;
 * never the password) and the cause (refused, unknown host, no answer, the server's own refusal).
 * drizzle wraps a driver's error as `Failed query: <sql> params: ...`, which hides all of that.
 */
import { causeChain } from "../errors";

/** Where postgres.js connects (its parsed options: a URL may list several hosts). */
export interface ServerAddress {
  host: readonly string[];
  port: readonly number[];
  database?: string;
  user?: string;
}

/** A database that could not be reached or refused the connection; `cause` is the driver's error. */
class DatabaseUnavailable extends Error {
  override readonly name = "DatabaseUnavailable";
}

/** SQLSTATEs with which a server refuses a connection, or ends one, rather than fails a statement. */
const REFUSALS: Record<string, string> = {
  "28P01": "refused the login",
  "28000": "refused the login",
  "3D000": "refused the connection",
  "53300": "refused the connection",
  "57P01": "closed the connection",
  "57P02": "closed the connection",
  "57P03": "refused the connection",
};

/** Network failures by Node/Bun error code, in words. */
const NETWORK: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "unknown host",
  EAI_AGAIN: "host name lookup failed for now",
  ETIMEDOUT: "no answer in time",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ECONNRESET: "connection reset",
  EPIPE: "connection broken",
  CONNECT_TIMEOUT: "no answer within the connect timeout",
  CONNECTION_CLOSED: "connection closed by the server",
  CONNECTION_ENDED: "connection ended",
  CONNECTION_DESTROYED: "connection destroyed",
};

/**
 * The server as errors, /health and the start banner name it: `PostgreSQL at host:port
 * (database "shop", user "shop")` (IPv6 in brackets, a socket directory as it is).
 */
export function describeServer(address: ServerAddress): string {
  const servers = address.host.map((host, i) => {
    const port = address.port[i] ?? address.port[0] ?? 5432;
    if (host.startsWith("/")) return `${host} (socket, port ${port})`;
    return `${host.includes(":") ? `[${host}]` : host}:${port}`;
  });
  const where = [address.database && `database "${address.database}"`, address.user && `user "${address.user}"`].filter(Boolean);
  return `PostgreSQL at ${servers.join(", ") || "(no host)"}${where.length ? ` (${where.join(", ")})` : ""}`;
}

/**
 * A DatabaseUnavailable naming the server and the cause when `err` (or an error it wraps) is a
 * failure to connect or a server's refusal; otherwise `err` as it is.
 */
export function explainConnectionError(err: unknown, address: ServerAddress): unknown {
  if (err instanceof DatabaseUnavailable) return err;
  for (const e of causeChain(err)) {
    const code = String((e as { code?: unknown }).code ?? "");
    const message = String((e as { message?: unknown }).message ?? "").split("\n")[0] ?? "";
    const refusal = REFUSALS[code];
    if (refusal) return new DatabaseUnavailable(`${describeServer(address)} ${refusal}: ${message} (${code})`, { cause: err });
    const network = NETWORK[code];
    if (network) {
      const host = (e as { hostname?: unknown }).hostname;
      const detail = typeof host === "string" ? ` ${host}` : "";
      return new DatabaseUnavailable(`${describeServer(address)} cannot be reached: ${network} (${code}${detail})`, { cause: err });
    }
  }
  return err;
}

/** Failures that no retry mends: the credentials or the database name are wrong. */
export function isPermanentRefusal(err: unknown): boolean {
  return causeChain(err, 6).some((e) => ["28P01", "28000", "3D000"].includes(String((e as { code?: unknown }).code ?? "")));
}
