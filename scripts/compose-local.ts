/**
 * `bun run compose:local`: runs what docker-compose.yml describes, on this machine, without a
 * container engine, so that the file's own wiring (commands, environment, volumes, the keys
 * script, health checks, start order, the gateway's nginx.conf) is exercised by CI.
 *
 * - Services built from the Dockerfile run as processes of this checkout: the Dockerfile's
 *   ENTRYPOINT (or the service's `entrypoint`) plus `command`, with the Dockerfile's ENV and the
 *   service's `environment` only (not this shell's), from the project directory.
 * - Each replica gets a loopback address of its own (127.0.10.x), its stand-in for a container's
 *   network: it listens there (HOST) on the container's port, and a resolver on loopback answers
 *   the service names as Docker's DNS would (nginx's `resolver`).
 * - Stand-ins for images: `apache/kafka` is librdkafka's mock broker (the services get
 *   KAFKA_MOCK_BROKER_QUIRKS=true, kafkajs's workarounds for it), `postgres` a throwaway
 *   cluster from Debian's binaries (the service's POSTGRES_* role and database made in it),
 *   `nginx` Debian's nginx with the mounted configuration. Any other image is refused by name.
 * - `name:port` in a service's environment, command and health check becomes the address that
 *   serves it; a named volume's mount point becomes a folder under the state directory, kept
 *   between runs (`--fresh` empties it), a bind mount its file in this checkout.
 * - Start order and waiting follow `depends_on` (service_started, service_healthy,
 *   service_completed_successfully); health checks run until healthy within start_period plus
 *   retries x interval (polled every second at most); `restart` policies restart a process that
 *   exits; published ports of the gateway bind their host address (0.0.0.0 taken as 127.0.0.1).
 *
 * Prints `compose:local: up` once everything is running and writes `<state>/services.json`
 * (processes, addresses, published ports); SIGINT or SIGTERM stops all in reverse order.
 */
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { Subprocess } from "bun";
import postgres from "postgres";
import { parse as parseYaml } from "yaml";
import { startKafkaMock } from "../test/support/kafka-mock";
import { startPostgresCluster } from "../test/support/postgres-cluster";
import { ComposeError, type Healthcheck, loadCompose, type Service } from "./compose-local/compose-file";
import { startLocalDns } from "./compose-local/dns";

const ROOT = resolve(import.meta.dir, "..");
const { values } = parseArgs({
  options: {
    file: { type: "string", default: join(ROOT, "docker-compose.yml") },
    "state-dir": { type: "string", default: join(ROOT, ".tmp", "compose-local") },
    profile: { type: "string", multiple: true, default: [] },
    fresh: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log("usage: bun run compose:local [--file docker-compose.yml] [--state-dir DIR] [--profile NAME]... [--fresh]");
  process.exit(0);
}
const stateDir = resolve(values["state-dir"] as string);
if (values.fresh) rmSync(stateDir, { recursive: true, force: true });
mkdirSync(stateDir, { recursive: true });

const say = (line: string) => console.log(`compose:local: ${line}`);

/** One process of a service (a replica), restarted by its policy. */
interface Replica {
  service: Service;
  index: number;
  ip: string;
  argv: string[];
  env: Record<string, string>;
  proc: Subprocess | null;
  restarts: number;
  exited: Promise<number>;
}

const replicas: Replica[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
let stopping = false;
/** service name -> container port -> the address serving it. */
const addressOf = new Map<string, { all: string; ips: string[] }>();

function dockerfile(): { entrypoint: string[]; env: Record<string, string> } {
  const text = readFileSync(join(ROOT, "Dockerfile"), "utf8");
  const stage = text.slice(text.lastIndexOf("\nFROM "));
  const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(stage);
  const env = Object.fromEntries(
    [...stage.matchAll(/^ENV\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)\s*$/gm)].map((m) => [m[1] as string, m[2] as string]),
  );
  return { entrypoint: entry ? (JSON.parse(entry[1] as string) as string[]) : [], env };
}

/** `text` with `name:port` of every known service replaced by its address, and mount points by their folders. */
function rewrite(text: string, mounts: [string, string][], self?: string): string {
  let out = text;
  for (const [target, source] of mounts) out = out.replaceAll(target, source);
  for (const [name, addr] of addressOf) {
    out = out.replace(new RegExp(`(?<![\\w.-])${name.replace(/[-]/g, "\\-")}:(\\d+)`, "g"), (_m, port: string) =>
      addr.all.includes(":") ? addr.all : `${addr.all}:${port}`,
    );
  }
  if (self) out = out.replace(/(?<![\w.])(127\.0\.0\.1|localhost):(\d+)/g, (_m, _h, port: string) => `${self}:${port}`);
  return out;
}

/** Host folders for a service's mounts: named volumes under the state directory, bind mounts as they are. */
function mountsOf(service: Service): [string, string][] {
  return service.volumes
    .map(({ source, target, named }): [string, string] => {
      const host = named ? join(stateDir, "volumes", source) : source;
      if (named) mkdirSync(host, { recursive: true });
      return [target, host];
    })
    .sort((a, b) => b[0].length - a[0].length);
}

/** A `chown` for scripts written for the image's `bun` user: that user is whoever runs this. */
function shimDir(): string {
  const dir = join(stateDir, "bin");
  mkdirSync(dir, { recursive: true });
  const real = Bun.which("chown") ?? "/bin/chown";
  const shim = join(dir, "chown");
  writeFileSync(
    shim,
    `#!/bin/sh\n# compose:local: the image's bun user is the user running compose:local\nfor a; do shift; case "$a" in bun:bun|bun) set -- "$@" "$(id -u):$(id -g)";; *) set -- "$@" "$a";; esac; done\nexec ${real} "$@"\n`,
  );
  chmodSync(shim, 0o755);
  return dir;
}

function baseEnv(): Record<string, string> {
  return {
    PATH: `${shimDir()}:${process.env.PATH ?? "/usr/bin:/bin"}`,
    HOME: process.env.HOME ?? "/root",
    TMPDIR: process.env.TMPDIR ?? "/tmp",
    LANG: "C.UTF-8",
  };
}

function spawn(r: Replica): void {
  const prefix = r.service.replicas > 1 ? `${r.service.name}-${r.index + 1}` : r.service.name;
  const proc = Bun.spawn(r.argv, { cwd: ROOT, env: r.env, stdout: "pipe", stderr: "pipe" });
  r.proc = proc;
  for (const stream of [proc.stdout, proc.stderr]) void pipeLines(stream, prefix);
  r.exited = proc.exited.then((code) => {
    if (!stopping && shouldRestart(r.service.restart, code)) {
      r.restarts += 1;
      say(`${prefix} exited (${proc.signalCode ?? `code ${code}`}); restarting (restart: ${r.service.restart})`);
      setTimeout(() => {
        if (!stopping) {
          spawn(r);
          writeState();
        }
      }, 1000);
    }
    return code;
  });
}

const shouldRestart = (policy: Service["restart"], code: number) =>
  policy === "always" || policy === "unless-stopped" || (policy === "on-failure" && code !== 0);

async function pipeLines(stream: ReadableStream<Uint8Array>, prefix: string): Promise<void> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of stream) {
    rest += decoder.decode(chunk, { stream: true });
    const lines = rest.split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) process.stdout.write(`${prefix} | ${line}\n`);
  }
  if (rest) process.stdout.write(`${prefix} | ${rest}\n`);
}

/** Runs the health check until it passes, or throws once start_period + retries x interval is spent. */
async function waitHealthy(
  name: string,
  check: Healthcheck,
  env: Record<string, string>,
  rewriteText: (t: string) => string,
): Promise<void> {
  const argv =
    check.test[0] === "CMD-SHELL" ? ["sh", "-c", rewriteText(check.test.slice(1).join(" "))] : check.test.slice(1).map(rewriteText);
  const deadline = Date.now() + check.startPeriodMs + check.retries * check.intervalMs + check.timeoutMs;
  let last = "";
  for (;;) {
    const proc = Bun.spawn(argv, { cwd: ROOT, env, stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => proc.kill("SIGKILL"), check.timeoutMs);
    const [code, out] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    clearTimeout(timer);
    if (code === 0) return;
    last = out.trim().split("\n").at(-1) ?? `exit ${code}`;
    if (Date.now() > deadline)
      throw new ComposeError(`${name} is unhealthy: its healthcheck (${argv.join(" ").slice(0, 200)}) kept failing: ${last}`);
    await Bun.sleep(Math.min(1000, check.intervalMs));
  }
}

/** Resolves once `host:port` takes a TCP connection (30 s at most). */
async function waitListening(name: string, host: string, port: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const socket = await Bun.connect({ hostname: host, port, socket: { data() {} } });
      socket.end();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new ComposeError(`${name} does not listen on ${host}:${port}: ${(err as Error).message}`);
      await Bun.sleep(200);
    }
  }
}

function writeState(): void {
  const services: Record<string, { pid: number | null; address: string; restarts: number }[]> = {};
  for (const r of replicas) (services[r.service.name] ??= []).push({ pid: r.proc?.pid ?? null, address: r.ip, restarts: r.restarts });
  writeFileSync(
    join(stateDir, "services.json"),
    `${JSON.stringify({ services, addresses: Object.fromEntries([...addressOf].map(([n, a]) => [n, a.all])), volumes: join(stateDir, "volumes") }, null, 2)}\n`,
  );
}

/** Images replaced by a program of this machine that listens where it likes (its address is learnt at start). */
const KAFKA = /^(docker\.io\/)?apache\/kafka[:@]/;
const POSTGRES = /^(docker\.io\/)?(library\/)?postgres[:@]/;
const STAND_INS = [KAFKA, POSTGRES];

/** The topic names config/<module>.yaml give (`topics:`), each once. */
function configuredTopics(): string[] {
  const names = new Set<string>();
  for (const file of new Bun.Glob("config/*.yaml").scanSync({ cwd: ROOT })) {
    const doc = parseYaml(readFileSync(join(ROOT, file), "utf8")) as { topics?: Record<string, string> } | null;
    for (const t of Object.values(doc?.topics ?? {})) names.add(t);
  }
  return [...names];
}

/** Starts one service: a stand-in for its image, or its processes. Resolves when its dependents may start. */
async function startService(service: Service, dnsPort: number): Promise<{ healthy: Promise<void>; completed: Promise<void> }> {
  const image = service.image ?? "";
  const env = service.environment;
  const ready = { healthy: Promise.resolve(), completed: Promise.resolve() };
  if (!service.built && KAFKA.test(image)) {
    // kafkajs cannot create topics on the mock (its metadata names no controller kafkajs finds):
    // the stand-in starts with the topics the modules' YAML names, partitions as the broker's default.
    const partitions = Number(env.KAFKA_NUM_PARTITIONS || 1);
    const mock = await startKafkaMock(configuredTopics().map((t) => `${t}:${partitions}`));
    cleanups.push(() => mock.stop());
    addressOf.set(service.name, { all: mock.brokers, ips: ["127.0.0.1"] });
    say(`${service.name}: librdkafka's mock broker at ${mock.brokers} (stands in for ${image}; healthy once it listens)`);
    return ready;
  }
  if (!service.built && POSTGRES.test(image)) {
    const cluster = await startPostgresCluster({ name: "compose-local" });
    cleanups.push(() => cluster.stop());
    const sql = postgres(cluster.url, { max: 1, onnotice: () => {} });
    const user = env.POSTGRES_USER || "postgres";
    const db = env.POSTGRES_DB || user;
    if (user !== "postgres")
      await sql.unsafe(
        `create role "${user.replace(/"/g, "")}" login superuser password '${(env.POSTGRES_PASSWORD ?? "").replace(/'/g, "''")}'`,
      );
    if (db !== "postgres") await sql.unsafe(`create database "${db.replace(/"/g, "")}" owner "${user.replace(/"/g, "")}"`);
    await sql.end();
    addressOf.set(service.name, { all: `127.0.0.1:${cluster.port}`, ips: ["127.0.0.1"] });
    say(
      `${service.name}: PostgreSQL from Debian's binaries at 127.0.0.1:${cluster.port}, role ${user}, database ${db} (stands in for ${image})`,
    );
    // The file's own health check, pointed at it (pg_isready reads PGHOST and PGPORT).
    const check = service.healthcheck;
    if (check)
      ready.healthy = waitHealthy(
        service.name,
        check,
        { ...baseEnv(), ...env, PGHOST: "127.0.0.1", PGPORT: String(cluster.port) },
        (t) => t,
      );
    return ready;
  }
  if (!service.built && /^(docker\.io\/)?(library\/)?nginx[:@]/.test(image)) {
    const conf = service.volumes.find((v) => v.target === "/etc/nginx/nginx.conf");
    if (!conf)
      throw new ComposeError(`services.${service.name}: an nginx without a mounted /etc/nginx/nginx.conf has nothing of ours to run`);
    const ip = (addressOf.get(service.name) as { all: string }).all;
    let text = readFileSync(conf.source, "utf8").replace(/resolver\s+127\.0\.0\.11\b/, `resolver 127.0.0.1:${dnsPort}`);
    text = text.replace(/listen\s+(\d+)\s*;/g, (_m, port: string) => {
      const published = service.ports.filter((p) => p.containerPort === Number(port));
      if (published.length === 0) return `listen ${ip}:${port};`;
      return published.map((p) => `listen ${p.hostIp === "0.0.0.0" ? "127.0.0.1" : p.hostIp}:${p.hostPort};`).join(" ");
    });
    const dir = join(stateDir, service.name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "nginx.conf"), `pid ${join(dir, "nginx.pid")};\n${text}`);
    const r: Replica = {
      service,
      index: 0,
      ip,
      env: baseEnv(),
      restarts: 0,
      proc: null,
      exited: Promise.resolve(0),
      argv: ["nginx", "-e", join(dir, "error.log"), "-p", dir, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"],
    };
    replicas.push(r);
    spawn(r);
    // No health check in the file: "up" waits until its published ports take connections.
    ready.healthy = Promise.all(
      service.ports.map((p) => waitListening(service.name, p.hostIp === "0.0.0.0" ? "127.0.0.1" : p.hostIp, p.hostPort)),
    ).then(() => undefined);
    say(
      `${service.name}: Debian's nginx with ${conf.source.slice(ROOT.length + 1)} (stands in for ${image}); published ${service.ports.map((p) => `${p.hostIp}:${p.hostPort}->${p.containerPort}`).join(", ")}`,
    );
    return ready;
  }
  if (!service.built) throw new ComposeError(`services.${service.name}: no stand-in for image ${image} on this machine`);

  const { entrypoint, env: imageEnv } = dockerfile();
  const mounts = mountsOf(service);
  const { ips } = addressOf.get(service.name) as { ips: string[] };
  const healthChecks: Promise<void>[] = [];
  const exits: Promise<number>[] = [];
  for (const [index, ip] of ips.entries()) {
    const env: Record<string, string> = { ...baseEnv(), ...imageEnv, HOST: ip };
    for (const [k, v] of Object.entries(service.environment)) env[k] = rewrite(v, mounts);
    // Kafka here is librdkafka's mock: the services' kafkajs works around it (patches/kafkajs@2.2.4.patch).
    if (env.KAFKA_BROKERS) env.KAFKA_MOCK_BROKER_QUIRKS = "true";
    const argv = [...(service.entrypoint ?? entrypoint), ...service.command].map((a) => rewrite(a, mounts));
    const r: Replica = { service, index, ip, argv, env, proc: null, restarts: 0, exited: Promise.resolve(0) };
    replicas.push(r);
    spawn(r);
    exits.push(r.exited);
    if (service.healthcheck)
      healthChecks.push(waitHealthy(`${service.name} (${ip})`, service.healthcheck, env, (t) => rewrite(t, mounts, ip)));
  }
  say(`${service.name}: ${ips.length} process(es) of this checkout at ${ips.join(", ")}`);
  ready.healthy = Promise.all(healthChecks).then(() => undefined);
  ready.completed = Promise.all(exits).then((codes) => {
    const bad = codes.find((c) => c !== 0);
    if (bad !== undefined) throw new ComposeError(`${service.name} exited with code ${bad}`);
  });
  // Awaited only by dependents that wait for them; a long-running service's exit at stop is no error.
  ready.completed.catch(() => {});
  ready.healthy.catch(() => {});
  return ready;
}

async function stopAll(): Promise<void> {
  stopping = true;
  for (const r of [...replicas].reverse()) {
    if (!r.proc || r.proc.exitCode !== null || r.proc.signalCode) continue;
    r.proc.kill("SIGTERM");
    const timer = setTimeout(() => r.proc?.kill("SIGKILL"), 20_000);
    await r.proc.exited;
    clearTimeout(timer);
  }
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
}

let exitCode = 0;
try {
  const project = loadCompose(resolve(values.file as string), process.env, values.profile as string[]);
  const dns = await startLocalDns((name) => addressOf.get(name)?.ips.filter((ip) => ip.startsWith("127.0.10.")) ?? []);
  cleanups.push(() => dns.stop());
  // Every container's address is known before any starts, as Docker's DNS knows every name.
  let next = 10;
  for (const service of project.services) {
    if (STAND_INS.some((re) => !service.built && re.test(service.image ?? ""))) continue;
    const ips = Array.from({ length: Math.max(1, service.replicas) }, () => `127.0.10.${next++}`);
    addressOf.set(service.name, { all: ips[0] as string, ips });
  }
  const started = new Map<string, { healthy: Promise<void>; completed: Promise<void> }>();
  for (const service of project.services) {
    for (const [dep, condition] of Object.entries(service.dependsOn)) {
      const d = started.get(dep);
      if (condition === "service_healthy") await d?.healthy;
      if (condition === "service_completed_successfully") await d?.completed;
    }
    started.set(service.name, await startService(service, dns.port));
  }
  await Promise.all([...started.values()].map((s) => s.healthy));
  writeState();
  say(`up (${project.services.map((s) => s.name).join(", ")}); state in ${stateDir}; Ctrl-C stops everything`);
  await new Promise<void>((resolveStop) => {
    process.once("SIGINT", resolveStop);
    process.once("SIGTERM", resolveStop);
  });
  say("stopping");
} catch (err) {
  exitCode = 1;
  console.error(
    `compose:local: ${err instanceof ComposeError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
  );
} finally {
  await stopAll();
  say("stopped");
}
process.exit(exitCode);
