/**
 * `npm run edge:local`: renders examples/loopback.json into edge-config/.local/loopback, starts RTPEngine, Kamailio
 * and two LiveKit SIP stand-ins on loopback, places one test call with RTP, and keeps running until Ctrl-C.
 * `npm run edge:local -- --down` ends whatever a previous run left behind.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EdgeHarness, endProcessesMentioning, runSippCaller, SCENARIO_DIR, StandIn } from './harness';

const EXAMPLE = resolve(__dirname, '..', 'examples', 'loopback.json');
const DIR = resolve(__dirname, '..', '.local', 'loopback');
const CALLER = '127.0.3.1';

async function main(): Promise<void> {
  if (process.argv.includes('--down')) {
    const ended = await endProcessesMentioning(`${DIR}/`);
    console.log(ended.length ? `ended ${ended.length} processes` : 'nothing running');
    return;
  }
  const edge = new EdgeHarness({ dir: DIR, input: JSON.parse(readFileSync(EXAMPLE, 'utf8')), probeFrom: CALLER });
  await edge.start();
  const standIns = edge.input.livekitSip.destinations.map(
    (destination, index) =>
      new StandIn({
        ip: destination.host,
        port: destination.port,
        mediaPort: 40000 + index * 100,
        runDir: edge.runDir,
      }),
  );
  for (const standIn of standIns) await standIn.start();
  const shutdown = async () => {
    for (const standIn of standIns) await standIn.stop();
    await edge.stop();
    process.exit(0);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);

  const { carrierSip } = edge.layout;
  console.log(
    `edge up: carrier side ${carrierSip.ip}:${carrierSip.port}, LiveKit side ${edge.layout.internalSip.ip}, stand-ins ${standIns.map((s) => s.options.ip).join(', ')}`,
  );
  console.log(`logs: ${edge.runDir}`);
  const result = await runSippCaller(
    { scenario: 'uac-call-rtp.xml', from: CALLER, to: carrierSip, durationMs: 3000 },
    join(edge.runDir, 'calls'),
  );
  const totals = await edge.rtpengineTotals();
  console.log(
    `test call with RTP from ${CALLER}: ${result.exitCode === 0 ? 'completed' : `FAILED (sipp exit ${result.exitCode})`}`,
  );
  console.log(`rtpengine relayed packets so far: ${totals['Total relayed packets'] ?? 'n/a'}`);
  console.log('\nplace more calls (as root, from the sample pcap directory):');
  console.log(
    `  cd /usr/share/sip-tester && sipp ${carrierSip.ip}:${carrierSip.port} -sf ${join(SCENARIO_DIR, 'uac-call-rtp.xml')} -i ${CALLER} -p 5070 -mi ${CALLER} -mp 36000 -s +15550100100 -m 5 -r 1 -d 3000`,
  );
  console.log('\nCtrl-C stops everything.');
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
