/**
 * CPU and memory of each component of the loopback stack, from /proc: every process below this one (the bench
 * starts them all) is sorted into a component by its command line, sampled every `intervalMs`.
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;
const PAGE_BYTES = 4096;

interface ProcessSample {
  readonly pid: number;
  readonly parent: number;
  readonly cpuSeconds: number;
  readonly rssBytes: number;
  readonly command: string;
}

function readProcesses(): Map<number, ProcessSample> {
  const processes = new Map<number, ProcessSample>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      processes.set(Number(entry), {
        pid: Number(entry),
        parent: Number(fields[1]),
        cpuSeconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND,
        rssBytes: Number(fields[21]) * PAGE_BYTES,
        command,
      });
    } catch {
      // ended while read
    }
  }
  return processes;
}

/** Which component a process is, by its command line (and whether its parent is the agent worker). */
export function componentOf(command: string, parentCommand: string): string | undefined {
  if (/kamailio/.test(command)) return 'Kamailio (edge)';
  if (/rtpengine/.test(command)) return 'RTPEngine (edge)';
  if (/redis-server/.test(command)) {
    return /topos|\.sock/.test(command) ? 'topos Redis (edge)' : 'Redis (LiveKit + sessions)';
  }
  if (/livekit-sip/.test(command)) return 'LiveKit SIP';
  if (/\/server\b.*--config/.test(command)) return 'LiveKit Server';
  if (/agent\/src\/main\.ts/.test(command)) return 'agent worker (main)';
  if (/agent\/src\/main\.ts/.test(parentCommand) || /job_proc|proc_lazy/.test(command)) return 'agent job processes';
  if (/mcp-server\/src\/main\.ts/.test(command)) return 'MCP server';
  if (/moto_server/.test(command)) return 'moto';
  if (/baresip/.test(command)) return 'baresip (caller)';
  if (/tshark|dumpcap/.test(command)) return 'tshark (capture)';
  return undefined;
}

export interface ComponentUsage {
  cpuSeconds: number;
  peakRssBytes: number;
}

/** Samples the process tree below `rootPid`; `stop()` returns CPU used and peak RSS per component meanwhile. */
export class UsageSampler {
  private readonly firstCpu = new Map<number, number>();
  private readonly lastCpu = new Map<number, { component: string; seconds: number }>();
  private readonly peakRss = new Map<string, number>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly rootPid = process.pid,
    private readonly intervalMs = 250,
  ) {}

  start(): void {
    this.sample(true);
    this.timer = setInterval(() => this.sample(false), this.intervalMs);
  }

  private sample(first: boolean): void {
    const processes = readProcesses();
    const below = new Set<number>([this.rootPid]);
    for (let grown = true; grown; ) {
      grown = false;
      for (const item of processes.values()) {
        if (!below.has(item.pid) && below.has(item.parent)) {
          below.add(item.pid);
          grown = true;
        }
      }
    }
    const rssNow = new Map<string, number>();
    for (const pid of below) {
      const item = processes.get(pid);
      if (!item || pid === this.rootPid) continue;
      const component = componentOf(item.command, processes.get(item.parent)?.command ?? '');
      if (!component) continue;
      // A process first seen after the start counts from zero: it was born during the measurement.
      if (!this.firstCpu.has(pid)) this.firstCpu.set(pid, first ? item.cpuSeconds : 0);
      this.lastCpu.set(pid, { component, seconds: item.cpuSeconds });
      rssNow.set(component, (rssNow.get(component) ?? 0) + item.rssBytes);
    }
    for (const [component, rss] of rssNow) this.peakRss.set(component, Math.max(this.peakRss.get(component) ?? 0, rss));
  }

  stop(): Map<string, ComponentUsage> {
    if (this.timer) clearInterval(this.timer);
    this.sample(false);
    const usage = new Map<string, ComponentUsage>();
    for (const [pid, { component, seconds }] of this.lastCpu) {
      const entry = usage.get(component) ?? { cpuSeconds: 0, peakRssBytes: this.peakRss.get(component) ?? 0 };
      entry.cpuSeconds += seconds - (this.firstCpu.get(pid) ?? seconds);
      usage.set(component, entry);
    }
    return usage;
  }
}
