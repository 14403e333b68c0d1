/**
 * The agent as a launchd daemon (macOS): the property list and the launchctl commands.
 * Pure functions: agent/service/install.ts writes the file and runs the commands.
 *
 * 📄 From launchd.plist(5) and launchctl(1); no Mac was available, so the commands are
 * checked by recording only and the plist by an XML parser (service.test.ts).
 * - A daemon in /Library/LaunchDaemons runs as root in the system domain.
 * - launchd ignores a plist that is not owned by root or is writable by group or others:
 *   install.ts writes it 0644 root:wheel.
 * - RunAtLoad starts it at boot, KeepAlive=true restarts it whenever it exits (launchd waits
 *   ThrottleInterval seconds between starts).
 * - ExitTimeOut: seconds between SIGTERM and SIGKILL on stop; the agent stops its loops on SIGTERM.
 */
import path from 'node:path';

export const LAUNCHD_LABEL = 'com.jit-access.agent';
export const LAUNCHD_PLIST_PATH = `/Library/LaunchDaemons/${LAUNCHD_LABEL}.plist`;
export const LAUNCHD_LOG_PATH = '/Library/Logs/jit-agent.log';
/** launchctl's name for the job in the system domain. */
export const LAUNCHD_TARGET = `system/${LAUNCHD_LABEL}`;
/** launchctl by absolute path (never from PATH). */
export const LAUNCHCTL = '/bin/launchctl';

export interface LaunchdPlistOptions {
  /** The agent's command: an absolute program path, then its arguments (no shell involved). */
  argv: string[];
  /** Absolute: the runtime folder (node finds the agent's packages from dist/agent/main.js itself). */
  workingDirectory: string;
  /** stdout and stderr of the agent (pino's JSON lines). */
  logFile?: string;
}

/** The plist's text. Throws on a value that XML 1.0 can't carry. */
export function renderLaunchdPlist(o: LaunchdPlistOptions): string {
  if (o.argv.length === 0 || !path.posix.isAbsolute(o.argv[0]!)) throw new Error('ProgramArguments needs an absolute program path');
  if (!path.posix.isAbsolute(o.workingDirectory)) throw new Error(`not an absolute path: ${JSON.stringify(o.workingDirectory)}`);
  const log = o.logFile ?? LAUNCHD_LOG_PATH;
  const str = (v: string): string => `<string>${xmlText(v)}</string>`;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    '<dict>',
    '  <key>Label</key>',
    `  ${str(LAUNCHD_LABEL)}`,
    '  <key>ProgramArguments</key>',
    '  <array>',
    ...o.argv.map((a) => `    ${str(a)}`),
    '  </array>',
    '  <key>WorkingDirectory</key>',
    `  ${str(o.workingDirectory)}`,
    '  <key>RunAtLoad</key>',
    '  <true/>',
    '  <key>KeepAlive</key>',
    '  <true/>',
    '  <key>ThrottleInterval</key>',
    '  <integer>10</integer>',
    '  <key>ExitTimeOut</key>',
    '  <integer>30</integer>',
    '  <key>StandardOutPath</key>',
    `  ${str(log)}`,
    '  <key>StandardErrorPath</key>',
    `  ${str(log)}`,
    '</dict>',
    '</plist>',
    '',
  ].join('\n');
}

/** Character data for XML 1.0: the five specials escaped, control characters refused. */
function xmlText(v: string): string {
  if (/[\u0000-\u001F\u007F\uFFFE\uFFFF]/.test(v)) throw new Error(`character not allowed in the plist: ${JSON.stringify(v)}`);
  return v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/**
 * After writing the plist: clear a "disabled" override (bootstrap refuses a disabled job),
 * then load and start it. When replacing a loaded one, it is booted out first.
 */
export function launchdInstallCommands(plistPath: string, replacing: boolean): string[][] {
  return [
    ...(replacing ? launchdStopCommands() : []),
    [LAUNCHCTL, 'enable', LAUNCHD_TARGET],
    [LAUNCHCTL, 'bootstrap', 'system', plistPath],
  ];
}

/** Stops the job and unloads it (KeepAlive no longer applies); the plist is removed after. */
export function launchdStopCommands(): string[][] {
  return [[LAUNCHCTL, 'bootout', LAUNCHD_TARGET]];
}
