/**
 * The stack's process handling: every process ends with its group, a failed start leaves nothing behind (nor what a
 * crashed earlier run left), and a missing LiveKit binary is reported with how to install it. Uses addresses and
 * ports of its own (no edge), so it runs beside the edge suites.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { endProcessesMentioning, processesMentioning } from '../../edge-config/harness/harness';
import { LIVEKIT_SERVER_INSTALL, liveKitServerBinary } from '../src/stack/binaries';
import { LiveKitStack } from '../src/stack/livekit';
import { ManagedProcess } from '../src/stack/process';

const RUN_DIR = resolve(__dirname, '..', '.local', 'livekit-stack');
const scratch = mkdtempSync(join(tmpdir(), 'livekit-stack-'));
const savedEnv = { ...process.env };

afterEach(() => {
  process.env = { ...savedEnv };
});

afterAll(async () => {
  await endProcessesMentioning(`${RUN_DIR}/`);
  await endProcessesMentioning(`${scratch}/`);
  rmSync(scratch, { recursive: true, force: true });
});

/** Every process in process group `pgid` (from /proc). */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // stat: pid (comm) state ppid pgrp …; comm may hold spaces, so read after the last ')'.
      const fields = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ').pop()?.split(' ') ?? [];
      if (Number(fields[2]) === pgid) members.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return members;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

describe('a managed process', () => {
  for (const how of ['stop', 'kill'] as const) {
    it(`ends with everything it forked (${how})`, async () => {
      const child = new ManagedProcess({
        name: 'forker',
        command: 'sh',
        args: ['-c', 'sleep 300 & sleep 300 & echo started; wait'],
        logFile: join(scratch, `forker-${how}.log`),
      });
      child.start();
      await child.waitReady('output', 10_000, async () =>
        readFileSync(child.options.logFile, 'utf8').includes('started') ? true : undefined,
      );
      const pgid = child.pid as number;
      expect(groupMembers(pgid).length).toBe(3);
      await child[how]();
      expect(groupMembers(pgid)).toEqual([]);
      expect(child.running).toBe(false);
    });
  }
});

describe('a LiveKit stack that fails to start', () => {
  it('ends everything it started and what a crashed earlier run left, and says which process failed', async () => {
    // A LiveKit SIP that refuses to start, after Redis and the server came up.
    const fakeSip = join(scratch, 'livekit-sip');
    writeFileSync(fakeSip, '#!/bin/sh\necho "refusing to start" >&2\nexit 3\n');
    chmodSync(fakeSip, 0o755);
    process.env.LIVEKIT_SIP_BIN = fakeSip;
    // What a crashed earlier run in the same directory left behind.
    mkdirSync(RUN_DIR, { recursive: true });
    writeFileSync(join(RUN_DIR, 'leftover.log'), '');
    const leftover = spawn('tail', ['-f', join(RUN_DIR, 'leftover.log')], { stdio: 'ignore' });
    const leftoverExited = new Promise((done) => leftover.once('exit', done));

    const stack = new LiveKitStack({
      runDir: RUN_DIR,
      redisPort: 16395,
      apiPort: 17980,
      rtcTcpPort: 17981,
      rtcUdpPortRange: { min: 21200, max: 21299 },
      serverPrometheusPort: 17989,
      edge: false,
      sipNodes: [
        {
          ip: '127.0.2.9',
          port: 5099,
          rtpPortRange: { min: 22300, max: 22399 },
          healthPort: 18089,
          prometheusPort: 18099,
        },
      ],
      readyTimeoutMs: 60_000,
    });
    await expect(stack.start()).rejects.toThrow(/livekit-sip-1: health: exited \(3\)[\s\S]*refusing to start/);
    await leftoverExited;
    expect(processesMentioning(`${RUN_DIR}/`)).toEqual([]);
    expect(await portOpen(16395)).toBe(false);
    expect(await portOpen(17980)).toBe(false);
    // The configs it wrote came from our generator and stay for a look.
    expect(readFileSync(join(RUN_DIR, 'livekit-sip-1.yaml'), 'utf8')).toMatch(/^listen_ip: 127\.0\.2\.9$/m);
  });
});

describe('the LiveKit Server binary', () => {
  it('missing, is reported with the command that installs it', () => {
    const empty = mkdtempSync(join(scratch, 'empty-'));
    delete process.env.LIVEKIT_SERVER_BIN;
    Object.assign(process.env, { GOBIN: empty, GOPATH: empty, HOME: empty });
    expect(() => liveKitServerBinary()).toThrow(LIVEKIT_SERVER_INSTALL);
    expect(LIVEKIT_SERVER_INSTALL).toBe('go install github.com/livekit/livekit-server/cmd/server@v1.13.5');
  });

  it('named by LIVEKIT_SERVER_BIN, must be an executable', () => {
    process.env.LIVEKIT_SERVER_BIN = join(scratch, 'no-such-server');
    expect(() => liveKitServerBinary()).toThrow(/LIVEKIT_SERVER_BIN=.*no-such-server is not an executable file/);
  });
});
