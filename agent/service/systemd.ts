/**
 * The agent as a systemd service (Linux): the unit file and the systemctl commands.
 * Pure functions: agent/service/install.ts writes the file and runs the commands.
 *
 * HARDENING. The agent must run as root: useradd, usermod, userdel, chpasswd, pkill and
 * loginctl act on every account of the machine. So the sandbox can only take away what those
 * tools never touch. What each option does to them:
 *
 * Kept (compatible):
 * - ProtectSystem=strict + ReadWritePaths: the whole file system is read-only except the
 *   places the account tools write: /etc (passwd, shadow, group, gshadow, subuid, subgid and
 *   their .lock files, written by rename), /home (useradd -m copies /etc/skel, userdel -r
 *   removes it), the mail spool (created with CREATE_MAIL_SPOOL, removed by userdel -r),
 *   lastlog/faillog (useradd resets the new uid's records), sssd's cache (flushed by
 *   useradd/userdel when sssd is installed), what purge clears of a deleted account (/tmp,
 *   /var/tmp, the cron and at spools, sudo's timestamps, systemd's linger flags; /dev/shm is
 *   not made read-only) and the agent's own state folder. Entries with a leading "-" may be
 *   missing. A site whose useradd HOME (/etc/default/useradd) is not /home must add it with a
 *   drop-in (systemctl edit jit-agent).
 * - PrivateDevices: /dev holds only null, zero, random, urandom…; nothing here needs more.
 * - CapabilityBoundingSet: root keeps only CAP_CHOWN, CAP_FOWNER, CAP_FSETID (useradd -m
 *   copying /etc/skel into a home owned by the new user), CAP_DAC_OVERRIDE and
 *   CAP_DAC_READ_SEARCH (userdel -r walking a home with the user's own modes), CAP_KILL
 *   (pkill of another uid; logind also accepts it for terminate-user), CAP_AUDIT_WRITE
 *   (shadow-utils aborts when it can't send its audit record), and CAP_SETUID + CAP_SETGID:
 *   purge removes a deleted account's System V IPC objects as that uid (setpriv), since root
 *   may only do so with CAP_SYS_ADMIN.
 * - ProtectKernelTunables/Modules/Logs, ProtectControlGroups, ProtectClock, ProtectHostname,
 *   RestrictRealtime, RestrictSUIDSGID, RestrictNamespaces, LockPersonality,
 *   SystemCallArchitectures=native, SystemCallFilter=@system-service (it includes @chown,
 *   @file-system, @process with kill/pidfd_send_signal, @setuid and @signal), and
 *   RestrictAddressFamilies: AF_INET/AF_INET6 for the server, AF_UNIX for logind's D-Bus
 *   and nscd, AF_NETLINK for the audit records.
 *
 * Left out on purpose (incompatible):
 * - PrivateTmp=: the agent would see a /tmp and /var/tmp of its own, not the ones the accounts'
 *   users share, and purge could not clear what a deleted account left there.
 * - User=/DynamicUser=/PrivateUsers=: not root, or root mapped away: no account can be made.
 * - ProtectHome=: hides /home, so useradd -m and userdel -r fail.
 * - ProtectProc=invisible / ProcSubset=pid: without CAP_SYS_PTRACE root no longer sees other
 *   users' processes, so pkill would find nothing *and exit 1 as "no process"*: a logged-in
 *   user would silently keep running. userdel's "user is logged in" check reads /proc too.
 * - MemoryDenyWriteExecute=: V8's JIT needs writable+executable memory; Node would crash.
 * - PrivateNetwork=/IPAddressDeny=: the agent must reach the server.
 * - NoNewPrivileges=: buys next to nothing for a root process with these capabilities, and on
 *   SELinux systems it blocks the domain transition into useradd_t (exec fails with EPERM).
 *
 * Only the syntax of this unit is checked here (systemd-analyze verify, in service.test.ts);
 * the sandbox's effect on the account tools was reasoned from their documentation and source,
 * not exercised under a running systemd.
 */
import path from 'node:path';

export const SYSTEMD_UNIT_NAME = 'jit-agent.service';
export const SYSTEMD_UNIT_PATH = `/etc/systemd/system/${SYSTEMD_UNIT_NAME}`;

export interface SystemdUnitOptions {
  /** The agent's command: an absolute program path, then its arguments. */
  argv: string[];
  /** Absolute: the runtime folder (node finds the agent's packages from dist/agent/main.js itself). */
  workingDirectory: string;
  /** Absolute path of the agent's state file; its folder must stay writable. */
  stateFile: string;
}

/** Folders (and files) the account tools write; "-": may be missing. */
const ACCOUNT_TOOL_PATHS = [
  '/etc', '/home', '-/var/mail', '-/var/spool/mail', '-/var/log/lastlog', '-/var/log/faillog', '-/var/log/tallylog', '-/var/lib/sss',
  // purge (agent/os/linux-purge.ts)
  '/tmp', '-/var/tmp', '-/var/spool/cron', '-/var/spool/at', '-/run/sudo', '-/var/lib/systemd/linger',
];

const CAPABILITIES = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_AUDIT_WRITE', 'CAP_SETUID', 'CAP_SETGID'];

/** The unit file's text. Throws on a value that can't be written into a unit safely. */
export function renderSystemdUnit(o: SystemdUnitOptions): string {
  const [program, ...args] = o.argv;
  // Why so strict: systemd refuses "special characters" in the executable name itself.
  if (!program || !/^\/[A-Za-z0-9_+=:,./-]+$/.test(program)) throw new Error(`ExecStart needs an absolute, plain program path: ${JSON.stringify(program)}`);
  for (const p of [o.workingDirectory, o.stateFile]) {
    if (!path.posix.isAbsolute(p)) throw new Error(`not an absolute path: ${JSON.stringify(p)}`);
  }
  const stateDir = path.posix.dirname(o.stateFile);
  return [
    '# jit-access agent: written by `jit-agent install`, removed by `jit-agent uninstall`.',
    '[Unit]',
    'Description=jit-access agent (temporary local administrator accounts)',
    'Wants=network-online.target',
    'After=network-online.target',
    '# Never give up restarting: an agent that stays down leaves accounts past their end.',
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${[program, ...args.map(execWord)].join(' ')}`,
    `WorkingDirectory=${rawPath(o.workingDirectory)}`,
    'Restart=always',
    'RestartSec=5',
    '# The agent stops its loops on SIGTERM; its state file is written atomically anyway.',
    'TimeoutStopSec=30',
    '',
    '# Hardening compatible with useradd/usermod/userdel/chpasswd/pkill/loginctl as root',
    '# (agent/service/systemd.ts explains each choice and what is left out).',
    'ProtectSystem=strict',
    `ReadWritePaths=${[...ACCOUNT_TOOL_PATHS, listPath(stateDir)].join(' ')}`,
    'PrivateDevices=yes',
    `CapabilityBoundingSet=${CAPABILITIES.join(' ')}`,
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'RestrictRealtime=yes',
    'RestrictSUIDSGID=yes',
    'RestrictNamespaces=yes',
    'LockPersonality=yes',
    'SystemCallArchitectures=native',
    'SystemCallFilter=@system-service',
    'SystemCallErrorNumber=EPERM',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** Control characters are refused everywhere: a newline would start a new directive. */
function assertNoControl(value: string): void {
  if (/[\u0000-\u001F\u007F]/.test(value)) throw new Error(`control character in ${JSON.stringify(value)}`);
}

/**
 * One ExecStart argument: plain when it only has safe characters, else double-quoted with C
 * escapes. "%" (specifiers) and "$" (environment variables) are doubled either way.
 */
function execWord(word: string): string {
  assertNoControl(word);
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (/^[A-Za-z0-9_@%$+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** WorkingDirectory= takes the rest of the line as is (no unquoting): only "%" is special. */
function rawPath(p: string): string {
  assertNoControl(p);
  return p.replace(/%/g, '%%');
}

/**
 * One ReadWritePaths= entry: a space-separated list that unquotes "…" but whose escaping
 * rules differ between systemd versions, so quote and backslash characters are refused.
 */
function listPath(p: string): string {
  assertNoControl(p);
  if (/["'\\]/.test(p)) throw new Error(`quote or backslash in ${JSON.stringify(p)}: not supported in a unit file`);
  const escaped = p.replace(/%/g, '%%');
  return /\s/.test(escaped) ? `"${escaped}"` : escaped;
}

/** systemctl by absolute path: /usr/bin on every merged-/usr system, /bin on the older ones. */
export const SYSTEMCTL_PATHS = ['/usr/bin/systemctl', '/bin/systemctl'];

/** After writing the unit: load it, enable it at boot and start it (restart when replacing one). */
export function systemdInstallCommands(replacing: boolean, systemctl = SYSTEMCTL_PATHS[0]!): string[][] {
  const name = 'jit-agent';
  return replacing
    ? [[systemctl, 'daemon-reload'], [systemctl, 'enable', name], [systemctl, 'restart', name]]
    : [[systemctl, 'daemon-reload'], [systemctl, 'enable', '--now', name]];
}

/** Before removing the unit: stop it and drop it from boot. */
export function systemdStopCommands(systemctl = SYSTEMCTL_PATHS[0]!): string[][] {
  return [[systemctl, 'disable', '--now', 'jit-agent']];
}

/** After removing the unit file. */
export function systemdForgetCommands(systemctl = SYSTEMCTL_PATHS[0]!): string[][] {
  return [[systemctl, 'daemon-reload']];
}
