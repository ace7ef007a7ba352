/**
 * docker-compose.yml as Compose reads it: YAML with merge keys, `${VAR}` interpolation from the
 * environment and `.env` (the environment wins), `$$` for a literal `$`, services filtered by
 * profile and ordered by `depends_on`. Only what compose:local runs is typed here.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse as parseYaml } from "yaml";

/** A service's healthcheck: CMD (argv) or CMD-SHELL (one shell line). */
export interface Healthcheck {
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

/** One published port: `[host_ip:]host_port:container_port`. */
interface Published {
  hostIp: string;
  hostPort: number;
  containerPort: number;
}

/** A service as compose:local needs it. */
export interface Service {
  name: string;
  image: string | null;
  /** True when the service is built from the project's Dockerfile. */
  built: boolean;
  entrypoint: string[] | null;
  command: string[];
  environment: Record<string, string>;
  /** `source:target[:ro]`; source a named volume or a path relative to the compose file. */
  volumes: { source: string; target: string; named: boolean }[];
  ports: Published[];
  dependsOn: Record<string, "service_started" | "service_healthy" | "service_completed_successfully">;
  healthcheck: Healthcheck | null;
  restart: "no" | "always" | "unless-stopped" | "on-failure";
  replicas: number;
  profiles: string[];
}

/** The project as compose:local runs it. */
export interface ComposeProject {
  dir: string;
  services: Service[];
  volumes: string[];
}

/** A mistake in the compose file, named. */
export class ComposeError extends Error {
  override name = "ComposeError";
}

type Vars = Record<string, string | undefined>;

/** Reads `.env` beside the compose file: KEY=VALUE lines, `#` comments, optional quotes. */
function readDotEnv(path: string): Vars {
  if (!existsSync(path)) return {};
  const out: Vars = {};
  for (const raw of readFileSync(path, "utf8").split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    out[key] = value;
  }
  return out;
}

/** Compose's interpolation of one string: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $VAR and $$. */
export function interpolate(text: string, vars: Vars, where: string): string {
  return text.replace(/\$(\$|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g, (_all, what: string, braced?: string, bare?: string) => {
    if (what === "$") return "$";
    if (bare !== undefined) return vars[bare] ?? "";
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])(.*))?$/s.exec(braced ?? "");
    if (!m) throw new ComposeError(`${where}: invalid interpolation "\${${braced}}"`);
    const [, name, colon, op, arg] = m as unknown as [string, string, string | undefined, string | undefined, string | undefined];
    const value = vars[name];
    const missing = value === undefined || (colon === ":" && value === "");
    if (op === "-") return missing ? interpolate(arg ?? "", vars, where) : (value as string);
    if (op === "?" && missing) throw new ComposeError(`${where}: ${name} is required: ${arg ?? ""}`);
    return value ?? "";
  });
}

/** Every string in `value`, interpolated; `where` names the place for errors. */
function interpolateAll(value: unknown, vars: Vars, where: string): unknown {
  if (typeof value === "string") return interpolate(value, vars, where);
  if (Array.isArray(value)) return value.map((v, i) => interpolateAll(v, vars, `${where}[${i}]`));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateAll(v, vars, `${where}.${k}`)]));
  }
  return value;
}

/** "10s", "1m30s", "500ms" as milliseconds. */
function duration(text: unknown, fallbackMs: number): number {
  if (text === undefined || text === null) return fallbackMs;
  const s = String(text);
  let total = 0;
  let matched = "";
  for (const [part, n, unit] of s.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) {
    total += Number(n) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as Record<string, number>)[unit as string]!;
    matched += part;
  }
  if (matched !== s) throw new ComposeError(`invalid duration "${s}"`);
  return total;
}

const asStrings = (v: unknown, where: string): string[] => {
  if (v === undefined || v === null) return [];
  if (typeof v === "string") return v.split(/\s+/).filter(Boolean);
  if (Array.isArray(v)) return v.map(String);
  throw new ComposeError(`${where}: expected a string or a list`);
};

function environmentOf(v: unknown, where: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (Array.isArray(v)) {
    return Object.fromEntries(v.map((e) => String(e)).map((e) => [e.split("=")[0] as string, e.slice(e.indexOf("=") + 1)]));
  }
  if (typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, x === null ? "" : String(x)]));
  throw new ComposeError(`${where}: environment must be a map or a list`);
}

function portOf(spec: string, where: string): Published {
  const parts = spec.split(":");
  const [hostIp, hostPort, containerPort] =
    parts.length === 3 ? parts : parts.length === 2 ? ["0.0.0.0", ...parts] : ["0.0.0.0", spec, spec];
  const hp = Number(hostPort);
  const cp = Number(containerPort);
  if (!Number.isInteger(hp) || !Number.isInteger(cp)) throw new ComposeError(`${where}: cannot read port "${spec}"`);
  return { hostIp: hostIp as string, hostPort: hp, containerPort: cp };
}

function healthcheckOf(v: unknown, where: string): Healthcheck | null {
  if (!v || typeof v !== "object") return null;
  const h = v as Record<string, unknown>;
  if (h.disable === true) return null;
  const test = asStrings(h.test, `${where}.test`);
  if (test[0] !== "CMD" && test[0] !== "CMD-SHELL") throw new ComposeError(`${where}.test: must start with CMD or CMD-SHELL`);
  return {
    test,
    intervalMs: duration(h.interval, 30_000),
    timeoutMs: duration(h.timeout, 30_000),
    retries: Number(h.retries ?? 3),
    startPeriodMs: duration(h.start_period, 0),
  };
}

function dependsOnOf(v: unknown): Service["dependsOn"] {
  if (!v) return {};
  if (Array.isArray(v)) return Object.fromEntries(v.map((n) => [String(n), "service_started" as const]));
  return Object.fromEntries(
    Object.entries(v as Record<string, { condition?: string }>).map(([n, d]) => [
      n,
      (d?.condition ?? "service_started") as Service["dependsOn"][string],
    ]),
  );
}

/** Reads, interpolates and checks `file`; `profiles` adds the services of those profiles. */
export function loadCompose(file: string, env: Vars, profiles: string[] = []): ComposeProject {
  const dir = dirname(file);
  const vars: Vars = { ...readDotEnv(join(dir, ".env")), ...env };
  const doc = interpolateAll(parseYaml(readFileSync(file, "utf8"), { merge: true }), vars, "docker-compose.yml") as Record<string, unknown>;
  const volumes = Object.keys((doc.volumes as object | null) ?? {});
  const all = Object.entries((doc.services as Record<string, Record<string, unknown>> | undefined) ?? {});
  if (all.length === 0) throw new ComposeError(`${file}: no services`);
  const services: Service[] = all.map(([name, s]) => {
    const where = `services.${name}`;
    const volumeSpecs = asStrings(s.volumes, `${where}.volumes`).map((spec) => {
      const [source = "", target = ""] = spec.split(":");
      const named = !source.startsWith(".") && !source.startsWith("/");
      if (named && !volumes.includes(source)) throw new ComposeError(`${where}.volumes: volume "${source}" is not declared under volumes:`);
      return { source: named ? source : join(dir, source), target, named };
    });
    const deploy = (s.deploy as { replicas?: unknown } | undefined) ?? {};
    return {
      name,
      image: typeof s.image === "string" ? s.image : null,
      built: s.build !== undefined,
      entrypoint: s.entrypoint === undefined ? null : asStrings(s.entrypoint, `${where}.entrypoint`),
      command: asStrings(s.command, `${where}.command`),
      environment: environmentOf(s.environment, `${where}.environment`),
      volumes: volumeSpecs,
      ports: asStrings(s.ports, `${where}.ports`).map((p) => portOf(p, `${where}.ports`)),
      dependsOn: dependsOnOf(s.depends_on),
      healthcheck: healthcheckOf(s.healthcheck, `${where}.healthcheck`),
      restart: (String(s.restart ?? "no").split(":")[0] as Service["restart"]) ?? "no",
      replicas: Number(deploy.replicas ?? 1),
      profiles: asStrings(s.profiles, `${where}.profiles`),
    };
  });
  const active = services.filter((s) => s.profiles.length === 0 || s.profiles.some((p) => profiles.includes(p)));
  const names = new Set(active.map((s) => s.name));
  for (const s of active) {
    for (const dep of Object.keys(s.dependsOn)) {
      if (!names.has(dep)) throw new ComposeError(`services.${s.name}.depends_on: "${dep}" is not a service that runs`);
    }
    if (!Number.isInteger(s.replicas) || s.replicas < 0) throw new ComposeError(`services.${s.name}.deploy.replicas: not a count`);
  }
  return { dir, services: startOrder(active), volumes };
}

/** Services in an order that starts each after what it depends on (Compose's); a cycle is an error. */
function startOrder(services: Service[]): Service[] {
  const byName = new Map(services.map((s) => [s.name, s]));
  const out: Service[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (s: Service, path: string[]) => {
    if (state.get(s.name) === "done") return;
    if (state.get(s.name) === "visiting") throw new ComposeError(`depends_on cycle: ${[...path, s.name].join(" -> ")}`);
    state.set(s.name, "visiting");
    for (const dep of Object.keys(s.dependsOn)) visit(byName.get(dep) as Service, [...path, s.name]);
    state.set(s.name, "done");
    out.push(s);
  };
  for (const s of services) visit(s, []);
  return out;
}
