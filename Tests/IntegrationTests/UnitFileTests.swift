import Foundation
import Testing

/// units/swift-nspawn@.service.in, as `make install` writes it, checked by systemd's own verifier.
@Suite struct UnitFileTests {
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze"), "needs systemd-analyze (package systemd)"))
    func installedUnitVerifies() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swift-nspawn-unit-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let template = try String(contentsOf: TestEnvironment.packageRoot.appendingPathComponent("units/swift-nspawn@.service.in"), encoding: .utf8)
        let binDirectory = URL(fileURLWithPath: TestEnvironment.binary).deletingLastPathComponent().path
        let unit = directory.appendingPathComponent("swift-nspawn@.service")
        try template.replacingOccurrences(of: "@bindir@", with: binDirectory).write(to: unit, atomically: false, encoding: .utf8)
        #expect(template.contains("Type=notify") && template.contains("RestartForceExitStatus=133") && template.contains("KillMode=mixed"))

        let verify = Process()
        verify.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-analyze")
        verify.arguments = ["verify", "--man=no", unit.path]
        let errors = Pipe()
        verify.standardError = errors
        verify.standardOutput = errors
        try verify.run()
        verify.waitUntilExit()
        let output = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(verify.terminationStatus == 0, "\(output)")
        #expect(output.isEmpty, "\(output)")
    }
}
