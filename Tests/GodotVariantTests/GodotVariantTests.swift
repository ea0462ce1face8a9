import Foundation
import GodotVariant
import JellyTestSupport
import Testing

/// Godot Variant decoding: Godot 3 vectors made by a real Godot 3.2.3 (`godot3-server`, installed
/// by scripts/test), Godot 4 vectors built from its documented layout, and malformed bytes.
@Suite struct GodotVariantTests {
    /// What each value of `godot3Script` decodes to.
    static let godot3Expected: [String: String] = [
        "null": "null", "true": "true", "int": "42", "negative": "-7", "big": "1099511627776",
        "float": "1.5", "double": "0.1", "string": "\"héllo\"",
        "vector2": #"{"Vector2":[1.5,-2.0]}"#, "rect2": #"{"Rect2":[1.0,2.0,3.0,4.0]}"#, "vector3": #"{"Vector3":[1.0,2.0,3.0]}"#,
        "transform2d": #"{"Transform2D":[1.0,0.0,0.0,1.0,5.0,6.0]}"#, "plane": #"{"Plane":[0.0,1.0,0.0,2.0]}"#,
        "quat": #"{"Quat":[0.0,0.0,0.0,1.0]}"#, "aabb": #"{"AABB":[1.0,2.0,3.0,4.0,5.0,6.0]}"#,
        "basis": #"{"Basis":[1.0,0.0,0.0,0.0,1.0,0.0,0.0,0.0,1.0]}"#,
        "transform": #"{"Transform":[1.0,0.0,0.0,0.0,1.0,0.0,0.0,0.0,1.0,0.0,0.0,0.0]}"#,
        "color": #"{"Color":[1.0,0.5,0.25,1.0]}"#, "nodepath": #"{"NodePath":"/root/Player:position"}"#,
        "dictionary": #"{"Dictionary":[["level",3],["name","ana"],[7,[1,2]]]}"#,
        "stringkeys": #"{"level":3,"pos":{"Vector2":[0.5,0.25]},"tags":["a","b"]}"#,
        "array": #"[1,"two",3.5,null]"#, "bytes": #"{"PoolByteArray":"AQIDBAU="}"#,
        "ints": #"{"PoolIntArray":[1,-2,3]}"#, "reals": #"{"PoolRealArray":[0.5,1.5]}"#,
        "strings": #"{"PoolStringArray":["a","bc"]}"#, "vectors2": #"{"PoolVector2Array":[[1.0,2.0]]}"#,
        "vectors3": #"{"PoolVector3Array":[[1.0,2.0,3.0]]}"#, "colors": #"{"PoolColorArray":[[1.0,0.0,0.0,1.0]]}"#,
    ]

    static let godot3Script = """
        extends SceneTree
        func _init():
            var cases = {
                "null": null, "true": true, "int": 42, "negative": -7, "big": 1099511627776, "float": 1.5, "double": 0.1,
                "string": "héllo", "vector2": Vector2(1.5, -2), "rect2": Rect2(1, 2, 3, 4), "vector3": Vector3(1, 2, 3),
                "transform2d": Transform2D(Vector2(1, 0), Vector2(0, 1), Vector2(5, 6)), "plane": Plane(0, 1, 0, 2),
                "quat": Quat(0, 0, 0, 1), "aabb": AABB(Vector3(1, 2, 3), Vector3(4, 5, 6)), "basis": Basis(),
                "transform": Transform(), "color": Color(1, 0.5, 0.25, 1), "nodepath": NodePath("/root/Player:position"),
                "dictionary": {"level": 3, "name": "ana", 7: [1, 2]},
                "stringkeys": {"level": 3, "pos": Vector2(0.5, 0.25), "tags": ["a", "b"]},
                "array": [1, "two", 3.5, null],
                "bytes": PoolByteArray([1, 2, 3, 4, 5]), "ints": PoolIntArray([1, -2, 3]), "reals": PoolRealArray([0.5, 1.5]),
                "strings": PoolStringArray(["a", "bc"]), "vectors2": PoolVector2Array([Vector2(1, 2)]),
                "vectors3": PoolVector3Array([Vector3(1, 2, 3)]), "colors": PoolColorArray([Color(1, 0, 0, 1)]),
            }
            for name in cases:
                print("VECTOR ", name, " ", var2bytes(cases[name]).hex_encode())
            print("PASS")
            quit(0)
        """

    /// Runs the script under the real engine and returns each case's bytes.
    static func godot3Vectors() throws -> [String: [UInt8]] {
        let binary = "/usr/bin/godot3-server"
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw ConformanceFailure("godot3-server is not installed: run scripts/test (it installs it) or apt-get install godot3-server")
        }
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try godot3Script.write(toFile: dir.path + "/vectors.gd", atomically: true, encoding: .utf8)
        // Godot exits 0 on a parse error and can hang on a runtime error: a deadline, and the
        // PASS line is required.
        let (_, output) = try runToEnd("/usr/bin/timeout", ["30", binary, "--no-window", "-s", dir.path + "/vectors.gd"], currentDirectory: dir.path)
        guard output.contains("\nPASS") else { throw ConformanceFailure("godot3-server did not finish the script: \(output.suffix(2000))") }
        var vectors: [String: [UInt8]] = [:]
        for line in output.split(separator: "\n") where line.hasPrefix("VECTOR ") {
            let parts = line.split(separator: " ")
            guard parts.count == 3 else { continue }
            vectors[String(parts[1])] = hexBytes(String(parts[2]))
        }
        return vectors
    }

    @Test func godot3ValuesMadeByARealGodotDecode() throws {
        let vectors = try Self.godot3Vectors()
        #expect(Set(vectors.keys) == Set(Self.godot3Expected.keys), "cases: \(vectors.keys.sorted())")
        for (name, bytes) in vectors.sorted(by: { $0.key < $1.key }) {
            let value = try GodotVariant.decode(bytes, version: .godot3)
            #expect(value.jsonText() == Self.godot3Expected[name], "\(name): \(value.jsonText())")
            // Without the version: the bytes read as Godot 3 exactly (or as the same value in
            // Godot 4's numbering, for the types both number alike).
            let (any, _) = try GodotVariant.decodeAny(bytes)
            if ["null", "true", "int", "negative", "big", "float", "double", "string", "vector2", "array"].contains(name) {
                #expect(any == value, "\(name) auto-detected as \(any)")
            }
        }
        // The content type's version parameter picks the layout.
        let color = try #require(vectors["color"])
        #expect(try ValuePreview.godot(color, contentType: "application/x-godot-variant; version=3").contains("Color"))
    }

    @Test func godot4ValuesBuiltFromTheDocumentedLayout() throws {
        var e = Encoder4()
        e.header(6); e.i32(3); e.i32(-4)                              // Vector2i
        #expect(try GodotVariant.decode(e.bytes, version: .godot4).jsonText() == #"{"Vector2i":[3,-4]}"#)

        e = Encoder4(); e.header(9, flags: 1); e.f64(0.1); e.f64(2); e.f64(3)   // Vector3 of a double build
        #expect(try GodotVariant.decode(e.bytes, version: .godot4).jsonText() == #"{"Vector3":[0.1,2.0,3.0]}"#)

        e = Encoder4(); e.header(21); e.string("jump")              // StringName
        #expect(try GodotVariant.decode(e.bytes, version: .godot4).jsonText() == #"{"StringName":"jump"}"#)

        e = Encoder4(); e.header(31); e.i32(2); e.i64(-1); e.i64(1 << 40)   // PackedInt64Array
        #expect(try GodotVariant.decode(e.bytes, version: .godot4).jsonText() == #"{"PackedInt64Array":[-1,1099511627776]}"#)

        e = Encoder4(); e.header(33); e.i32(1); e.f64(0.25)           // PackedFloat64Array
        #expect(try GodotVariant.decode(e.bytes, version: .godot4).jsonText() == #"{"PackedFloat64Array":[0.25]}"#)

        e = Encoder4(); e.header(20); e.f32(1); e.f32(0); e.f32(0.5); e.f32(1)   // Color
        #expect(try GodotVariant.decode(e.bytes, version: .godot4).jsonText() == #"{"Color":[1.0,0.0,0.5,1.0]}"#)

        // A dictionary holding a typed array (4.3+: the element type after the header).
        e = Encoder4(); e.header(27); e.i32(1)
        e.header(4); e.string("scores")
        e.header(28, flags: 1); e.i32(2); e.i32(2); e.header(2); e.i32(10); e.header(2); e.i32(20)
        #expect(try GodotVariant.decode(e.bytes, version: .godot4).jsonText() == #"{"scores":[10,20]}"#)

        e = Encoder4(); e.header(22); e.i32(2 | Int32(bitPattern: 0x8000_0000)); e.i32(1); e.i32(0)   // NodePath, relative
        e.string("Player"); e.string("Sprite"); e.string("position")
        #expect(try GodotVariant.decode(e.bytes, version: .godot4).jsonText() == #"{"NodePath":"Player/Sprite:position"}"#)

        e = Encoder4(); e.header(24, flags: 1); e.i64(0)             // a null object (as id)
        #expect(try GodotVariant.decode(e.bytes, version: .godot4) == .null)
        e = Encoder4(); e.header(26); e.string("died"); e.i64(77)    // Signal
        #expect(try GodotVariant.decode(e.bytes, version: .godot4).jsonText() == #"{"Signal":"died of #77"}"#)
        e = Encoder4(); e.header(29); e.i32(3); e.raw([9, 8, 7, 0])   // PackedByteArray, padded
        #expect(try GodotVariant.decode(e.bytes, version: .godot4).jsonText() == #"{"PackedByteArray":"CQgH"}"#)
    }

    @Test func malformedBytesAreAClearErrorNeverACrash() throws {
        // Named failures.
        #expect(throws: GodotDecodingError.self) { try GodotVariant.decode([], version: .godot4) }
        do {
            _ = try GodotVariant.decode([4, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x7F], version: .godot4)
            Issue.record("a string of 2 GiB in 8 bytes decoded")
        } catch {
            #expect(error.offset == 4 && error.description.contains("left"), "\(error)")
        }
        do {
            _ = try GodotVariant.decode([99, 0, 0, 0], version: .godot3)
            Issue.record("type 99 decoded")
        } catch {
            #expect(error.description.contains("not a Godot 3 type"), "\(error)")
        }
        // Nesting: arrays of arrays, deeper than the limit.
        var deep: [UInt8] = []
        for _ in 0...(GodotVariant.depthMax + 1) { deep += [28, 0, 0, 0, 1, 0, 0, 0] }
        deep += [0, 0, 0, 0]
        #expect(throws: GodotDecodingError.self) { try GodotVariant.decode(deep, version: .godot4) }

        // Fuzz: every truncation and thousands of random byte changes of real values decode or
        // throw; a huge count never allocates its size first.
        var seeds = Array(try Self.godot3Vectors().values)
        var e = Encoder4(); e.header(27); e.i32(1); e.header(4); e.string("k"); e.header(35); e.i32(2); e.f32(1); e.f32(2); e.f32(3); e.f32(4)
        seeds.append(e.bytes)
        var rng = SystemRandomNumberGenerator()
        var decoded = 0, refused = 0
        for seed in seeds {
            for cut in 0..<seed.count {
                for v in GodotVersion.allCases {
                    if (try? GodotVariant.decode(Array(seed.prefix(cut)), version: v)) != nil { decoded += 1 } else { refused += 1 }
                }
            }
            for _ in 0..<400 {
                var b = seed
                for _ in 0..<Int.random(in: 1...3, using: &rng) where !b.isEmpty {
                    b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                for v in GodotVersion.allCases {
                    if (try? GodotVariant.decode(b, version: v)) != nil { decoded += 1 } else { refused += 1 }
                }
            }
        }
        #expect(refused > 0 && decoded > 0, "decoded \(decoded), refused \(refused)")
    }
}

/// Builds Godot 4 values byte by byte, as the documented layout says.
struct Encoder4 {
    var bytes: [UInt8] = []
    mutating func raw(_ b: [UInt8]) { bytes += b }
    mutating func u32(_ v: UInt32) { bytes += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)] }
    mutating func header(_ type: UInt32, flags: UInt32 = 0) { u32(type | flags << 16) }
    mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
    mutating func i64(_ v: Int64) { let u = UInt64(bitPattern: v); u32(UInt32(u & 0xFFFF_FFFF)); u32(UInt32(u >> 32)) }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func f64(_ v: Double) { i64(Int64(bitPattern: v.bitPattern)) }
    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        u32(UInt32(utf8.count))
        bytes += utf8 + [UInt8](repeating: 0, count: (4 - utf8.count % 4) % 4)
    }
}

func hexBytes(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var chars = Array(s.utf8)[...]
    while chars.count >= 2 {
        out.append(UInt8(String(decoding: chars.prefix(2), as: UTF8.self), radix: 16) ?? 0)
        chars = chars.dropFirst(2)
    }
    return out
}
