import Foundation
import SettledConfig

/// The package's root: three levels above this file.
func repositoryRoot() -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

/// A fresh directory of its own for one test; removed by `remove()`.
struct TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("settled-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
    }

    func write(_ name: String, _ contents: String) throws -> String {
        try write(name, Data(contents.utf8))
    }

    func write(_ name: String, _ contents: Data) throws -> String {
        let file = url.appendingPathComponent(name)
        try contents.write(to: file)
        return file.path
    }

    func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}

/// Loads `text` as a configuration file in a directory of its own: the configuration or the
/// problems found, with the file's path.
func load(_ text: String, resolveGroups: Bool = false, extraFiles: [String: String] = [:])
    throws -> (path: String, result: Result<SettledConfiguration, ConfigurationError>) {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    for (name, contents) in extraFiles { _ = try directory.write(name, contents) }
    let path = try directory.write("settled.conf", text)
    do {
        return (path, .success(try SettledConfiguration.load(path: path, resolveGroups: resolveGroups)))
    } catch {
        return (path, .failure(error))
    }
}

/// The problems of `text` (none when it loads).
func problems(_ text: String) throws -> [ConfigurationProblem] {
    switch try load(text).result {
    case .success: return []
    case .failure(let error): return error.problems
    }
}
