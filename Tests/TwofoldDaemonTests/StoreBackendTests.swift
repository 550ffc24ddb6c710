import Foundation
import Testing
import TwofoldTestSupport

/// The daemon holds `any TwofoldStore`; one file chooses the backend from the configuration, so a
/// new backend is added there and nowhere else.
@Suite struct StoreBackendTests {
    @Test("only StoreFactory.swift names a store backend in the daemon's sources")
    func onlyTheFactoryNamesABackend() throws {
        var naming: [String] = []
        for directory in ["Sources/TwofoldDaemon", "Sources/twofoldd"] {
            let path = TestPaths.root + "/" + directory
            for file in try FileManager.default.contentsOfDirectory(atPath: path).sorted() where file.hasSuffix(".swift") {
                let text = try String(contentsOfFile: path + "/" + file, encoding: .utf8)
                if ["import TwofoldSQLite", "import GRDB", "SQLiteStore", "import TwofoldPostgres", "import PostgresNIO", "PostgresStore"].contains(where: text.contains) {
                    naming.append(directory + "/" + file)
                }
            }
        }
        #expect(naming == ["Sources/TwofoldDaemon/StoreFactory.swift"])
    }
}
