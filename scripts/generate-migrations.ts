/** Regenerates each module's drizzle-kit migrations from its schema.ts into drizzle/<module>. */
import { MODULE_NAMES } from "../src/config";

for (const name of MODULE_NAMES) {
  const proc = Bun.spawnSync(
    [
      "bunx",
      "drizzle-kit",
      "generate",
      "--dialect",
      "postgresql",
      "--schema",
      `modules/${name}/schema.ts`,
      "--out",
      `drizzle/${name}`,
      "--name",
      process.argv[2] ?? name,
    ],
    { stdout: "inherit", stderr: "inherit" },
  );
  if (proc.exitCode !== 0) process.exit(proc.exitCode ?? 1);
}
