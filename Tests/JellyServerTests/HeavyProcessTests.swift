import Testing

/// The suites that start the heaviest processes (a browser, a Godot, a filled tmpfs, servers
/// streaming frames, backups), one suite at a time: on two cores, all of them at once beside
/// the rest of the suite starved waits that are correct (a waiter woken after ten seconds), so
/// they run in turn while the rest runs in parallel.
@Suite(.serialized) struct HeavyProcessTests {}
