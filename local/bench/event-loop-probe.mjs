// Loaded into every process of the agent worker by the production density benchmark (NODE_OPTIONS=--import …): each
// process appends its event-loop delay and memory to DENSITY_PROBE_DIR/<pid>.jsonl every PROBE_INTERVAL_MS. Plain
// JavaScript so plain node (the bundled worker) loads it; it does nothing without DENSITY_PROBE_DIR.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const dir = process.env.DENSITY_PROBE_DIR;
if (dir) {
  const file = join(dir, `${process.pid}.jsonl`);
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const ms = (ns) => Math.round(ns / 1e4) / 100;
  setInterval(
    () => {
      const memory = process.memoryUsage();
      const sample = {
        at: Date.now(),
        pid: process.pid,
        p50: ms(delay.percentile(50)),
        p99: ms(delay.percentile(99)),
        max: ms(delay.max),
        rss: memory.rss,
        heapUsed: memory.heapUsed,
      };
      delay.reset();
      try {
        appendFileSync(file, `${JSON.stringify(sample)}\n`);
      } catch {
        // the benchmark removed its directory: nothing left to report to
      }
    },
    Number(process.env.PROBE_INTERVAL_MS ?? 2000),
  ).unref();
}

// With DENSITY_CPU_PROFILE_MS, each process also records a CPU profile of its first that many milliseconds and
// writes it next to its samples (<pid>.cpuprofile, for Chrome DevTools): where a call process spends its time.
const profileMs = Number(process.env.DENSITY_CPU_PROFILE_MS ?? 0);
if (dir && profileMs > 0) {
  const { Session } = await import('node:inspector');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  session.post('Profiler.enable', () =>
    session.post('Profiler.start', () => {
      setTimeout(() => {
        session.post('Profiler.stop', (error, result) => {
          if (!error) writeFileSync(join(dir, `${process.pid}.cpuprofile`), JSON.stringify(result.profile));
          session.disconnect();
        });
      }, profileMs).unref();
    }),
  );
}
