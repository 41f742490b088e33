import Glibc

/// Reads files named on the command line, never more than a stated limit.
enum Input {
    /// The most a file given to `--file` may hold: a JSON body (the daemon's own limit is 1 MiB by default).
    static let bodyFileBytesMax = 1 << 20
    /// The most a bulk file may hold (bills, write-off results): the daemon's default import limit.
    static let importFileBytesMax = 256 << 20
    static let readChunkBytes = 64 << 10

    /// The whole of `path` ("-": standard input), refused when larger than `bytesMax`.
    static func read(_ path: String, bytesMax: Int) throws(Failure) -> [UInt8] {
        let standardInput = path == "-"
        let name = standardInput ? "standard input" : path
        let descriptor = standardInput ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .input("\(name): \(String(cString: strerror(errno)))") }
        defer { if !standardInput { close(descriptor) } }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .input("\(name): \(String(cString: strerror(errno)))") }
        let kind = status.st_mode & S_IFMT
        if !standardInput && kind != S_IFREG { throw .input("\(name): not a regular file") }
        if kind == S_IFREG && status.st_size > bytesMax {
            throw .input("\(name): \(status.st_size) bytes, larger than the \(bytesMax) bytes allowed")
        }
        var bytes: [UInt8] = []
        if kind == S_IFREG { bytes.reserveCapacity(Int(status.st_size)) }
        var chunk = [UInt8](repeating: 0, count: readChunkBytes)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .input("\(name): \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            // Checked as it grows: a pipe or a file still being written is refused too.
            guard bytes.count + count <= bytesMax else {
                throw .input("\(name): larger than the \(bytesMax) bytes allowed")
            }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return bytes
    }
}
