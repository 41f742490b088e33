import Foundation
import Glibc
import SettledHTTP
import Testing

/// A request body streamed from a file: sent whole with its size as Content-Length, a chunk
/// at a time, and a refusal before the end still read.
@Suite("UnixHTTPClient: a body from a file")
struct StreamedBodyTests {
    /// `bytes` written to a file in `directory`, opened for reading.
    func openFile(_ bytes: [UInt8], in directory: String) throws -> Int32 {
        let path = directory + "/body.bin"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let file = open(path, O_RDONLY | O_CLOEXEC)
        #expect(file >= 0)
        return file
    }

    @Test func aFileIsSentWholeWithProgressAfterEachChunk() throws {
        var limits = testLimits()
        limits.bodyBytesMax = 300 * 1024
        let server = try TestServer(limits: limits)
        defer { server.stop() }
        let bytes = garbage(count: 200_000, seed: 7)
        let file = try openFile(bytes, in: server.directory.path)
        defer { close(file) }
        let client = try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 5)
        defer { client.close() }
        #expect(try client.send(method: "GET", path: "/seq/1").status == 200)
        var seen: [Int64] = []
        let response = try client.send(method: "POST", path: "/mirror", bodyFile: file, length: Int64(bytes.count)) { seen.append($0) }
        #expect(response.status == 200)
        #expect(response.body == bytes)
        // 64 KiB reads: three whole chunks and the rest.
        #expect(seen == [65_536, 131_072, 196_608, 200_000])
        // A streamed body goes out on a connection of its own; the client goes on after it.
        #expect(try client.send(method: "GET", path: "/seq/2").body == Array("2".utf8))
        #expect(server.server.counters.connectionsAccepted == 2)
    }

    @Test func aRefusalBeforeTheEndOfTheFileIsRead() throws {
        var limits = testLimits()
        limits.lingerBytesMax = 64 * 1024
        let server = try TestServer(limits: limits)
        defer { server.stop() }
        let bytes = garbage(count: 4 << 20, seed: 8)
        let file = try openFile(bytes, in: server.directory.path)
        defer { close(file) }
        let client = try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 5)
        defer { client.close() }
        let response = try client.send(method: "POST", path: "/mirror", bodyFile: file, length: Int64(bytes.count))
        #expect(response.status == 413)
        #expect(try client.send(method: "GET", path: "/seq/1").status == 200)
    }

    @Test func aFileShorterThanItsLengthIsAnErrorNotAShortBody() throws {
        let server = try TestServer()
        defer { server.stop() }
        let file = try openFile(garbage(count: 1000, seed: 9), in: server.directory.path)
        defer { close(file) }
        let client = try UnixHTTPClient(socketPath: server.socketPath, timeoutSeconds: 5)
        defer { client.close() }
        #expect(throws: UnixHTTPClientError.self) {
            try client.send(method: "POST", path: "/mirror", bodyFile: file, length: 2000)
        }
        #expect(try client.send(method: "GET", path: "/seq/3").status == 200)
    }
}
