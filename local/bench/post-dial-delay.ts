/**
 * Post-dial delay through the edge to the real LiveKit SIP, answered by a room member that publishes audio (not the
 * agent): what LiveKit SIP's "200 only once someone publishes audio" costs before any agent work.
 *
 *   npx tsx local/bench/post-dial-delay.ts [calls=20]     (as root: the run binds 127.0.0.x addresses and ports)
 *
 * Prints, over sequential calls, p50/p95/max of INVITE → 180 and INVITE → 200 at the caller, and of the member's
 * connect → audio published. The answerer finds rooms by polling the room API every 100 ms (an agent is dispatched
 * instead), so INVITE → 200 includes up to 100 ms of polling.
 */
import { resolve } from 'node:path';
import { dispose } from '@livekit/rtc-node';
import { runSippCaller } from '../../edge-config/harness/harness';
import { LiveKitStack } from '../src/stack/livekit';
import { callAnswererFor } from '../src/stack/room-member';
import { callTimelines } from '../src/stack/sip-trace';

const calls = Number(process.argv[2] ?? 20);
const runDir = resolve(__dirname, '..', '.local', 'bench-post-dial');

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summary(name: string, values: number[]): string {
  if (values.length === 0) return `${name.padEnd(34)} no samples`;
  const figures = [50, 95].map((p) => `p${p} ${percentile(values, p).toFixed(0).padStart(5)} ms`).join('  ');
  return `${name.padEnd(34)} ${figures}  max ${Math.max(...values)
    .toFixed(0)
    .padStart(5)} ms  (n=${values.length})`;
}

async function main(): Promise<void> {
  const stack = new LiveKitStack({ runDir });
  const answerer = callAnswererFor(stack);
  const ringing: number[] = [];
  const answered: number[] = [];
  let failed = 0;
  try {
    await stack.start();
    answerer.start();
    const edge = stack.edge;
    if (!edge) throw new Error('the bench needs the edge');
    for (let index = 0; index < calls; index += 1) {
      const result = await runSippCaller(
        {
          scenario: 'uac-call.xml',
          from: stack.carrierAddress,
          to: edge.layout.carrierSip,
          service: stack.numbers[0],
          durationMs: 300,
          timeoutSeconds: 60,
        },
        resolve(runDir, 'calls'),
      );
      const [timeline] = callTimelines(result.messages);
      if (result.exitCode !== 0 || timeline?.final?.status !== 200) {
        failed += 1;
        continue;
      }
      if (timeline.ringingAfterMs !== undefined) ringing.push(timeline.ringingAfterMs);
      answered.push(timeline.final.afterMs);
    }
    const joins = [...answerer.members.values()].map((member) => (member.publishedAt ?? Number.NaN) - member.joinedAt);
    console.log(`post-dial delay, ${calls} sequential calls through the edge (failed: ${failed})`);
    console.log(summary('INVITE → 180 Ringing', ringing));
    console.log(summary('INVITE → 200 OK', answered));
    console.log(summary('member connect → audio published', joins.filter(Number.isFinite)));
  } finally {
    await answerer.stop().catch(() => undefined);
    await stack.stop();
    await dispose();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
