/**
 * Notices a wall-clock gap: between two looks the wall clock moved by more than the monotonic
 * clock did. That is a resume from sleep (the monotonic clock stands still while the machine
 * sleeps on Linux and macOS ⚠️ Windows' may not, see below) or a clock set forward or back. The
 * daemon then re-checks every grant against the OS at once (membership, guard, accounts), not at
 * the next periodic check: an elevation that ended while the laptop slept is taken away first
 * thing at wake.
 *
 * Why a due end is not missed without this: the step timer never waits more than a second and
 * re-reads the wall clock (daemon.ts). What this adds is the look at everything else.
 * ⚠️ On Windows, Node's monotonic clock (QueryPerformanceCounter) may keep counting during
 * sleep; a resume is then not seen as a gap, and only the one-second re-read applies.
 */
export class ClockWatch {
  private last: { wall: number; mono: number };

  constructor(
    private readonly wall: () => number = Date.now,
    private readonly mono: () => number = () => performance.now(),
    /** Smaller gaps are timer and scheduling jitter. */
    private readonly thresholdMs = 5000,
  ) {
    this.last = { wall: wall(), mono: mono() };
  }

  /** The gap since the last look in ms (positive: the wall clock went further), or 0 under the threshold. */
  look(): number {
    const now = { wall: this.wall(), mono: this.mono() };
    const gap = now.wall - this.last.wall - (now.mono - this.last.mono);
    this.last = now;
    return Math.abs(gap) >= this.thresholdMs ? Math.round(gap) : 0;
  }
}
