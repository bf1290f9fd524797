/**
 * Where the LiveKit binaries come from. LiveKit Server is built from the Go module proxy; LiveKit SIP cannot be
 * (the proxy does not serve github.com/livekit/sip), so a build of its v1.11.0 sits next to the repository.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(__dirname, '..', '..', '..');

/** The LiveKit Server release the stack is proven with (README: the tested pair). */
export const LIVEKIT_SERVER_VERSION = 'v1.13.5';
export const LIVEKIT_SERVER_INSTALL = `go install github.com/livekit/livekit-server/cmd/server@${LIVEKIT_SERVER_VERSION}`;
export const LIVEKIT_SIP_BINARY = resolve(REPO_ROOT, '../shared/tools/livekit-sip/livekit-sip');

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Go's install directory: $GOBIN, else $(go env GOPATH)/bin, else ~/go/bin (Go's default GOPATH). */
function goBinDirs(): string[] {
  const dirs: string[] = [];
  if (process.env.GOBIN) dirs.push(process.env.GOBIN);
  try {
    const gobin = execFileSync('go', ['env', 'GOBIN'], { encoding: 'utf8', timeout: 10_000 }).trim();
    if (gobin) dirs.push(gobin);
    const gopath = execFileSync('go', ['env', 'GOPATH'], { encoding: 'utf8', timeout: 10_000 }).trim();
    for (const entry of gopath.split(':').filter(Boolean)) dirs.push(join(entry, 'bin'));
  } catch {
    // no Go toolchain: the binary may still sit in the default place
  }
  if (process.env.HOME) dirs.push(join(process.env.HOME, 'go', 'bin'));
  return [...new Set(dirs)];
}

/** `go install …/cmd/server` names the binary `server`; LIVEKIT_SERVER_BIN overrides the search. */
export function liveKitServerBinary(): string {
  const override = process.env.LIVEKIT_SERVER_BIN;
  if (override) {
    if (!executable(override)) throw new Error(`LIVEKIT_SERVER_BIN=${override} is not an executable file`);
    return override;
  }
  const candidates = goBinDirs().map((dir) => join(dir, 'server'));
  const found = candidates.find(executable);
  if (!found) {
    throw new Error(
      `LiveKit Server ${LIVEKIT_SERVER_VERSION} not found (looked for ${candidates.join(', ')}). ` +
        `Install it with: ${LIVEKIT_SERVER_INSTALL} (or point LIVEKIT_SERVER_BIN at a livekit-server binary)`,
    );
  }
  return found;
}

export function liveKitSipBinary(): string {
  const override = process.env.LIVEKIT_SIP_BIN;
  const path = override || LIVEKIT_SIP_BINARY;
  if (!executable(path)) {
    throw new Error(
      `LiveKit SIP not found at ${path}: it is expected at ../shared/tools/livekit-sip/livekit-sip next to the ` +
        'repository (a v1.11.0 build), or set LIVEKIT_SIP_BIN',
    );
  }
  return path;
}
