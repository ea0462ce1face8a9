import ArgumentParser
import Foundation
import GodotVariant
import JellyCore
import JellyEngine

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Store a value (from VALUE, --file, or standard input).")
    @OptionGroup var store: StoreOptions
    @Argument var partition: String
    @Argument var key: String
    @Argument(help: "The value as text; omit to use --file or standard input.") var value: String?
    @Option(help: "Read the value from this file.") var file: String?
    @Option(name: .customLong("content-type")) var contentType: String?
    @Option(help: "The partition's lock token, when it is locked.") var token: UInt64?
    @Option(name: .customLong("if-version"), help: "Write only if the object is at this version.") var ifVersion: UInt64?
    @Flag(name: .customLong("if-absent"), help: "Write only if the object does not exist.") var ifAbsent = false

    func run() async throws {
        let bytes: [UInt8]
        if let value { bytes = Array(value.utf8) } else if let file { bytes = try readFile(file) } else { bytes = readStandardInput() }
        let condition: WriteCondition = ifAbsent ? .ifAbsent : ifVersion.map { .ifVersion($0) } ?? .none
        try await failing {
            let s = try store.open()
            do {
                let version = try await s.put(partition: partition, key: key, value: bytes, contentType: contentType, condition: condition, lockToken: token.map { LockToken($0) })
                print("version \(version)")
                try await s.close()
            } catch {
                try? await s.close()
                throw error
            }
        }
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a value to standard output (metadata to standard error).")
    @OptionGroup var store: StoreOptions
    @Argument var partition: String
    @Argument var key: String
    @Option(help: "Print the value as: raw (default, the bytes), godot (a Godot Variant from var_to_bytes / var2bytes, as JSON), json (pretty JSON), text (UTF-8) or hex.") var decode: ValueDecoding = .raw

    func run() async throws {
        let found = try await failing { () -> StoredObject? in
            let s = try store.open()
            defer { Task { try? await s.close() } }
            let object = try await s.get(partition: partition, key: key)
            try await s.close()
            return object
        }
        guard let found else {
            printError("not found: \(partition)/\(key)")
            throw ExitCode(3)
        }
        printError("version \(found.version), \(found.value.count) bytes, \(found.contentType)")
        if decode == .raw {
            writeStandardOutput(found.value)
            return
        }
        let text = try await failing { try decode.render(found.value, contentType: found.contentType) }
        print(text)
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete an object.")
    @OptionGroup var store: StoreOptions
    @Argument var partition: String
    @Argument var key: String
    @Option var token: UInt64?
    @Option(name: .customLong("if-version")) var ifVersion: UInt64?

    func run() async throws {
        let existed = try await failing { () -> Bool in
            let s = try store.open()
            do {
                let existed = try await s.delete(partition: partition, key: key, condition: ifVersion.map { .ifVersion($0) } ?? .none, lockToken: token.map { LockToken($0) })
                try await s.close()
                return existed
            } catch {
                try? await s.close()
                throw error
            }
        }
        if !existed {
            printError("not found: \(partition)/\(key)")
            throw ExitCode(3)
        }
        print("deleted")
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List a partition's objects: key, version, size, content type.")
    @OptionGroup var store: StoreOptions
    @Argument var partition: String
    @Option var after: String?
    @Option var limit: Int = 100

    func run() async throws {
        try await failing {
            let s = try store.open()
            do {
                let page = try await s.list(partition: partition, after: after, limit: limit)
                for o in page.objects { print("\(o.key)\t\(o.version)\t\(o.size)\t\(o.contentType)") }
                if let next = page.next { printError("more: --after \(next)") }
                try await s.close()
            } catch {
                try? await s.close()
                throw error
            }
        }
    }
}

struct Lock: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Acquire a partition's lock (session lease); prints the fencing token.")
    @OptionGroup var store: StoreOptions
    @Argument var partition: String
    @Option var owner: String
    @Option(name: .customLong("ttl-ms")) var ttlMilliseconds: Int64 = 30_000

    func run() async throws {
        try await failing {
            let s = try store.open()
            do {
                let lock = try await s.acquireLock(partition: partition, owner: owner, ttlMilliseconds: ttlMilliseconds)
                print("token \(lock.token) owner \(lock.owner) expires_at_ms \(lock.expiresAtMilliseconds)")
                try await s.close()
            } catch {
                try? await s.close()
                throw error
            }
        }
    }
}

struct Unlock: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Release a partition's lock with its token, or break it with --force.")
    @OptionGroup var store: StoreOptions
    @Argument var partition: String
    @Option var token: UInt64?
    @Flag(help: "Break the lock whoever holds it (administrative).") var force = false

    func validate() throws {
        if (token == nil) == !force { throw ValidationError("give either --token N or --force") }
    }

    func run() async throws {
        try await failing {
            let s = try store.open()
            do {
                if let token {
                    try await s.releaseLock(partition: partition, token: LockToken(token))
                    print("released")
                } else if let broken = try await s.breakLock(partition: partition) {
                    print("broke lock token \(broken.token) of \(broken.owner)")
                } else {
                    print("not locked")
                }
                try await s.close()
            } catch {
                try? await s.close()
                throw error
            }
        }
    }
}

/// How `jelly get --decode` shows a value (`ValuePreview` does the work).
enum ValueDecoding: String, ExpressibleByArgument, CaseIterable {
    case raw, godot, json, text, hex

    func render(_ value: [UInt8], contentType: String) throws -> String {
        switch self {
        case .raw: return String(decoding: value, as: UTF8.self)
        case .godot: return try ValuePreview.godot(value, contentType: contentType)
        case .json:
            guard let object = try? JSONSerialization.jsonObject(with: Data(value), options: [.fragmentsAllowed]),
                  let text = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]) else {
                throw ValuePreview.NotDecodable(description: "not JSON; try --decode text or hex")
            }
            return String(decoding: text, as: UTF8.self)
        case .text: return try ValuePreview.text(value)
        case .hex: return ValuePreview.hex(value)
        }
    }
}
