import Glibc

/// Files the tests read whole: samples and fixtures kept in the repository.
public enum TestFiles {
    /// The bytes of the file at `path`; a missing file stops the test run, naming it.
    public static func bytes(atPath path: String) -> [UInt8] {
        guard let file = fopen(path, "rb") else { fatalError("no test file at \(path)") }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        return bytes
    }
}
