#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Raises the soft limit on open files to the hard limit, as servers usually do (Go's runtime
/// does it at start). Every segment of a store stays open for reads and every connection takes
/// one too, so a 64 GiB store (1,000 segments) would not open under the usual soft limit of
/// 1,024. Returns the limits before and after.
func raiseOpenFileLimit() -> (before: UInt64, after: UInt64) {
    var limit = rlimit()
    #if canImport(Glibc)
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    let resource = RLIMIT_NOFILE
    #endif
    guard getrlimit(resource, &limit) == 0 else { return (0, 0) }
    let before = UInt64(limit.rlim_cur)
    // macOS refuses RLIM_INFINITY for files; OPEN_MAX is its ceiling.
    #if canImport(Darwin)
    let target = min(limit.rlim_max, rlim_t(OPEN_MAX))
    #else
    let target = limit.rlim_max
    #endif
    guard limit.rlim_cur < target else { return (before, before) }
    limit.rlim_cur = target
    guard setrlimit(resource, &limit) == 0 else { return (before, before) }
    return (before, UInt64(target))
}
