import Foundation
import JellyTestSupport
import Testing

/// The tests' own process starter (JellyTestSupport's `Subprocess`): it must start children
/// while the test process holds thousands of descriptors (Foundation's `Process.run()` read
/// past a buffer's end there and killed a CI run), hand them none of those descriptors, and
/// report exits and signals.
@Suite struct SubprocessTests {
    @Test func startsWithThousandsOfOpenDescriptorsAndPassesNoneOfThem() throws {
        var opened: [Int32] = []
        defer { for fd in opened { close(fd) } }
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        let count = min(3_000, Int(limit.rlim_cur) - 200)
        try #require(count > 1_500, "the soft descriptor limit (\(limit.rlim_cur)) is too low for this test")
        for _ in 0..<count {
            let fd = open("/dev/null", O_RDONLY)
            try #require(fd >= 0)
            opened.append(fd)
        }
        for _ in 0..<20 {
            let result = try runToEnd("/bin/sh", ["-c", "ls /proc/self/fd | wc -l"])
            #expect(result.status == 0)
            // 0, 1, 2 and the descriptor `ls` reads /proc/self/fd through.
            let inherited = Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            #expect((3...5).contains(inherited), "the child got \(inherited) descriptors")
        }
    }

    @Test func reportsExitCodesSignalsInputAndDirectory() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        #expect(try runToEnd("/bin/sh", ["-c", "exit 7"]).status == 7)
        let pwd = try runToEnd("/bin/pwd", [], currentDirectory: dir.path)
        #expect(pwd.output.trimmingCharacters(in: .whitespacesAndNewlines) == URL(fileURLWithPath: dir.path).resolvingSymlinksInPath().path)

        let cat = try Subprocess("/bin/cat", [], input: true, output: .pipe)
        let output = OutputCollector(try #require(cat.standardOutput))
        cat.standardInput?.write(Data("through the pipe\n".utf8))
        try cat.standardInput?.close()
        #expect(cat.waitUntilExit() == 0)
        #expect(String(decoding: output.waitForEnd(seconds: 10), as: UTF8.self) == "through the pipe\n")

        let sleeper = try Subprocess("/bin/sleep", ["60"])
        #expect(sleeper.isRunning)
        sleeper.send(SIGKILL)
        #expect(sleeper.waitUntilExit() == SIGKILL)
        #expect(!sleeper.isRunning)
    }
}
