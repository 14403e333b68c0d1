/**
 * The wizard's groups and which operating systems can honour them.
 *
 * Why a table: the server must reject at request time a grant whose group the
 * endpoint's OS cannot honour (macOS and Linux have no "Power Users"), rather
 * than let the agent fail at run time.
 */
export const GROUPS = ['Administrators', 'Power Users', 'Users'] as const;
export type Group = (typeof GROUPS)[number];

export const OPERATING_SYSTEMS = ['linux', 'windows', 'macos'] as const;
export type OperatingSystem = (typeof OPERATING_SYSTEMS)[number];

export const GROUPS_BY_OS: Record<OperatingSystem, readonly Group[]> = {
  windows: ['Administrators', 'Power Users', 'Users'],
  macos: ['Administrators', 'Users'],
  linux: ['Administrators', 'Users'],
};

/** Human name of an OS for error messages. */
export const OS_LABEL: Record<OperatingSystem, string> = { linux: 'Linux', windows: 'Windows', macos: 'macOS' };

export function osHonours(os: OperatingSystem, group: Group): boolean {
  return GROUPS_BY_OS[os].includes(group);
}
