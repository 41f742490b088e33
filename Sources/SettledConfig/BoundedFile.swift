#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Reads a whole regular file of at most `bytesMax` bytes.
/// Throws a message fit to follow the file's name ("No such file or directory", ...).
func readBoundedFile(path: String, bytesMax: Int) throws(FileReadFailure) -> [UInt8] {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw FileReadFailure(errno: errno) }
    defer { close(descriptor) }
    var status = stat()
    guard fstat(descriptor, &status) == 0 else { throw FileReadFailure(errno: errno) }
    guard (status.st_mode & S_IFMT) == S_IFREG else { throw FileReadFailure(message: "not a regular file") }
    guard status.st_size <= bytesMax else { throw FileReadFailure(message: "larger than \(bytesMax) bytes") }
    // Read one byte past the limit: a file that grew since fstat is refused too.
    var bytes = [UInt8](repeating: 0, count: bytesMax + 1)
    var count = 0
    while count < bytes.count {
        let result = bytes.withUnsafeMutableBytes { buffer in
            read(descriptor, buffer.baseAddress! + count, buffer.count - count)
        }
        if result < 0 {
            if errno == EINTR { continue }
            throw FileReadFailure(errno: errno)
        }
        if result == 0 { break }
        count += result
    }
    guard count <= bytesMax else { throw FileReadFailure(message: "larger than \(bytesMax) bytes") }
    bytes.removeSubrange(count...)
    return bytes
}

struct FileReadFailure: Error {
    var message: String

    init(message: String) { self.message = message }

    init(errno code: Int32) { self.message = String(cString: strerror(code)) }
}
