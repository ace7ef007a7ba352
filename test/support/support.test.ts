import { expect, test } from "bun:test";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import postgres from "postgres";
import { eventually } from "./eventually";
import { startKafkaMock } from "./kafka-mock";
import { startPostgresCluster } from "./postgres-cluster";

const TIMEOUT_MS = 60_000;

/** Runs a command with optional stdin; returns stdout, throws on non-zero exit. */
async function run(cmd: string[], stdin?: string): Promise<string> {
  const proc = Bun.spawn(cmd, { stdin: stdin === undefined ? "ignore" : new Blob([stdin]), stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited with ${code}: ${err}`);
  return out;
}

test(
  "postgres cluster: query, restart, query again",
  async () => {
    const cluster = await startPostgresCluster({ name: "support-test" });
    const sql = postgres(cluster.url, { max: 2, onnotice: () => undefined });
    try {
      expect(cluster.url).toBe(`postgres://postgres@127.0.0.1:${cluster.port}/postgres`);
      expect([...(await sql`select 1 as one`)]).toEqual([{ one: 1 }]);

      await cluster.restart();

      // Same client: postgres.js drops the connections the server closed and reconnects.
      expect([...(await sql`select 2 as two`)]).toEqual([{ two: 2 }]);
      const fresh = postgres(cluster.url, { max: 1 });
      try {
        const [row] = await fresh`show server_encoding`;
        expect(row?.server_encoding).toBe("UTF8");
      } finally {
        await fresh.end();
      }
    } finally {
      await sql.end({ timeout: 5 });
      await cluster.stop();
    }
  },
  TIMEOUT_MS,
);

test(
  "kafka mock: kcat round trip",
  async () => {
    const kafka = await startKafkaMock(["t1", "t2"]);
    try {
      expect(kafka.brokers).toMatch(/^127\.0\.0\.1:\d+$/);
      await run(["kcat", "-b", kafka.brokers, "-P", "-t", "t1", "-k", "key1"], "hello\n");
      const out = await run(["kcat", "-b", kafka.brokers, "-C", "-t", "t1", "-o", "beginning", "-c", "1", "-e", "-f", "%k %s\\n"]);
      expect(out).toBe("key1 hello\n");
    } finally {
      await kafka.stop();
    }
  },
  TIMEOUT_MS,
);

test(
  "kafka mock: kafkajs producer and consumer group",
  async () => {
    const kafka = await startKafkaMock(["t1", "t2"]);
    const client = new Kafka({ clientId: "support-test", brokers: [kafka.brokers], logLevel: logLevel.ERROR });
    const producer = client.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    // Short fetch wait so disconnect() doesn't block on a 5 s long-poll; unique group per run
    // because the mock delays re-joins of a recently used group by sessionTimeout - 1 s.
    const consumer = client.consumer({ groupId: `support-test-${crypto.randomUUID()}`, maxWaitTimeInMs: 100 });
    const received: string[] = [];
    try {
      await producer.connect();
      await producer.send({ topic: "t2", messages: [{ key: "k", value: "from kafkajs" }] });

      await consumer.connect();
      await consumer.subscribe({ topic: "t2", fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          received.push(`${message.key?.toString()} ${message.value?.toString()}`);
        },
      });
      await eventually(() => expect(received[0]).toBe("k from kafkajs"));
    } finally {
      await consumer.disconnect();
      await producer.disconnect();
      await kafka.stop();
    }
  },
  TIMEOUT_MS,
);
