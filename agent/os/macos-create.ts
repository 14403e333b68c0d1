/**
 * Creating a macOS account so that a crash after ANY single command leaves nothing usable and
 * nothing the orphan sweep cannot find:
 *
 *   1. the name goes into jit-managed (dscl -append needs no user record);
 *   2. the record is born with its ownership tag: `dscl . -create /Users/N RealName TAG` makes
 *      the record and sets the key in one command (DSTools: createAndCd, then createKey), so from
 *      its first instant it carries both markers and lookup/listManaged call it ours. It has no
 *      UniqueID and no password: nothing can log in to it (isEnabled says so);
 *   3. AuthenticationAuthority ;DisabledUser; ;DisabledTags;SecureToken — before any uid or
 *      password exists;
 *   4. the granted group (our attribute), UniqueID (the uid we were handed), PrimaryGroupID 20,
 *      UserShell, NFSHomeDirectory;
 *   5. the password (dscl command mode, stdin), then the home (createhomedir), then admin, then
 *      the expiry backstop.
 *
 * Why not `sysadminctl -addUser`: without -password it leaves the account ENABLED with an EMPTY
 * password until the next command, and where nobody holds a Secure Token yet it may give the new
 * account one, which then blocks changing its password and deleting it (mkuser's notes, nix-darwin
 * #1117). dscl writes exactly what we ask for, in the order we choose.
 */
import { randomInt } from 'node:crypto';
import type { Group } from '../../protocol/groups.ts';
import { AccountError, assertValidName, GRANT_ID, MARKER_GROUP, ownershipTag, type CreateAccountSpec } from './backend.ts';
import { DISABLED_USER, GROUP_ATTR, isDisabled, MAC_BIN, NO_SECURE_TOKEN, type MacDirectory } from './macos-dir.ts';
import { assertMacPassword, writePassword } from './macos-password.ts';
import { expiryEpochSeconds } from './macos-plist.ts';

/**
 * Which macOS group stands for each wizard group. `staff` is every local user's primary group
 * (PrimaryGroupID 20), so "Users" means "staff and not admin".
 */
const MAC_GROUPS: Record<Group, 'admin' | 'staff' | null> = {
  Administrators: 'admin',
  'Power Users': null, // macOS has no such group; the server rejects it at request time
  Users: 'staff',
};

export function macGroup(group: Group): 'admin' | 'staff' {
  const g = MAC_GROUPS[group];
  if (!g) throw new AccountError('UNSUPPORTED_GROUP', `macOS has no ${group} group`);
  return g;
}

/** staff: what sysadminctl and System Settings give every local account. */
const STAFF_GID = '20';
const SHELL = '/bin/zsh';

/**
 * Runs the creation. On a failure after the record exists, `abandon` removes what was made (the
 * account is ours: it carries both markers). Leaves the final read-back to the caller.
 */
export async function createMacAccount(
  dir: MacDirectory,
  spec: CreateAccountSpec,
  password: string,
  range: { min: number; max: number },
  abandon: (name: string) => Promise<void>,
): Promise<void> {
  const { name, group, grantId } = spec;
  assertValidName(name);
  assertMacPassword(password);
  if (!GRANT_ID.test(grantId)) throw new AccountError('COMMAND_FAILED', 'grant id unfit for the RealName tag');
  macGroup(group);
  expiryEpochSeconds(spec.expiresAt);
  if (spec.uid !== undefined && !(Number.isSafeInteger(spec.uid) && spec.uid >= range.min && spec.uid <= range.max)) {
    throw new AccountError('COMMAND_FAILED', `uid ${spec.uid} outside ${range.min}-${range.max}`);
  }
  if (await dir.readUser(name)) throw new AccountError('ALREADY_EXISTS', `${name} already exists`);
  const taken = new Set((await dir.uids()).map(([, uid]) => uid));
  const uid = String(spec.uid ?? pickUid(range, taken));
  if (taken.has(uid)) throw new AccountError('ID_TAKEN', `uid ${uid} is already used by a local account`);

  const markers = await ensureMarkerGroup(dir);
  const tag = ownershipTag(grantId);
  if (!markers.includes(name)) await dir.mustRun(MAC_BIN.dscl, ['.', '-append', `/Groups/${MARKER_GROUP}`, 'GroupMembership', name], `adding ${name} to ${MARKER_GROUP}`);
  try {
    await dir.setAttr(name, 'RealName', tag);
  } catch (e) {
    await dropMarkerEntry(dir, name);
    throw e;
  }
  const born = await dir.mustReadUser(name);
  if (born.realName !== tag || born.uid !== '' || born.authAuthority.length) {
    // Someone else's record appeared under this name after our check: dscl -create is an
    // upsert, so its RealName now reads as our tag. Take our marker entry back so it is never
    // treated as ours, and touch nothing else of it.
    await dropMarkerEntry(dir, name);
    throw new AccountError('ALREADY_EXISTS', `${name} appeared with another owner while being created (its RealName was overwritten)`);
  }

  try {
    await dir.setAttr(name, 'AuthenticationAuthority', DISABLED_USER, NO_SECURE_TOKEN);
    await dir.setAttr(name, GROUP_ATTR, group);
    await dir.setAttr(name, 'UniqueID', uid);
    await dir.setAttr(name, 'PrimaryGroupID', STAFF_GID);
    await dir.setAttr(name, 'UserShell', SHELL);
    await dir.setAttr(name, 'NFSHomeDirectory', `/Users/${name}`);
    const rec = await dir.mustReadUser(name);
    const a = rec.attrs;
    const asWritten = a.get('PrimaryGroupID') === STAFF_GID && a.get('UserShell') === SHELL && a.get('NFSHomeDirectory') === `/Users/${name}`;
    if (!asWritten || rec.uid !== uid || rec.realName !== tag || !isDisabled(rec) || rec.group !== group) {
      throw new AccountError('COMMAND_FAILED', `${name}: the record does not read back as written`);
    }

    await writePassword(dir, name, password);
    // In case setting the password rewrote AuthenticationAuthority ⚠️.
    if (!isDisabled(await dir.keepTokenless(name))) await dir.markDisabled(name);

    // ⚠️ createhomedir(8): "-c create home directories for local users", copying the template.
    await dir.mustRun(MAC_BIN.createhomedir, ['-c', '-u', name], `creating ${name}'s home`);
    const home = await dir.exec(MAC_BIN.stat, ['-f', '%u:%HT', `/Users/${name}`]);
    if (home.code !== 0 || home.stdout.trim() !== `${uid}:Directory`) {
      throw new AccountError('COMMAND_FAILED', `${name}: /Users/${name} is not a folder owned by ${uid} after createhomedir`);
    }
    await dir.applyGroup(name, group);
    await dir.setBackstop(name, spec.expiresAt);
  } catch (e) {
    await abandon(name).catch(() => {});
    throw e;
  }
}

/** jit-managed's members, the group made first if missing. */
async function ensureMarkerGroup(dir: MacDirectory): Promise<string[]> {
  const members = await dir.groupMembers(MARKER_GROUP);
  if (members) return members;
  await dir.mustRun(MAC_BIN.dseditgroup, ['-o', 'create', '-q', MARKER_GROUP], `creating group ${MARKER_GROUP}`);
  const made = await dir.groupMembers(MARKER_GROUP);
  if (!made) throw new AccountError('COMMAND_FAILED', `group ${MARKER_GROUP} was not created`);
  return made;
}

async function dropMarkerEntry(dir: MacDirectory, name: string): Promise<void> {
  await dir.exec(MAC_BIN.dscl, ['.', '-delete', `/Groups/${MARKER_GROUP}`, 'GroupMembership', name]);
}

/** A free uid from the range, when the policy layer handed none. */
function pickUid(range: { min: number; max: number }, taken: Set<string>): number {
  for (;;) {
    const uid = randomInt(range.min, range.max + 1);
    if (!taken.has(String(uid))) return uid;
  }
}
