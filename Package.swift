// swift-tools-version:6.1
import PackageDescription

/// Every module imports _StringProcessing implicitly, and the static binary then carries its regex
/// parser: we use none of it (see Sources/NspawnCore/System/String+Text.swift).
let withoutStringProcessing = SwiftSetting.unsafeFlags(["-Xfrontend", "-disable-implicit-string-processing-module-import"])

let package = Package(
    name: "swift-nspawn",
    products: [
        .executable(name: "swift-nspawn", targets: ["swift-nspawn"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1")
    ],
    targets: [
        // No pkgConfig: it would put the system's library directory before the release build's
        // static one (Makefile), and libsystemd is opened when needed, not linked (systemd_loader.c).
        .systemLibrary(name: "CSystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CSeccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CCap", providers: [.apt(["libcap-dev"])]),
        .systemLibrary(name: "CBlkid", providers: [.apt(["libblkid-dev"])]),
        .target(name: "CNspawnShim"),
        .target(
            name: "NspawnCore",
            dependencies: [
                "CSystemd", "CCap", "CSeccomp", "CBlkid", "CNspawnShim",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny"), withoutStringProcessing]
        ),
        .executableTarget(name: "swift-nspawn", dependencies: ["NspawnCore"], swiftSettings: [withoutStringProcessing]),
        .testTarget(name: "NspawnCoreTests", dependencies: ["NspawnCore"]),
        .testTarget(name: "IntegrationTests", dependencies: ["NspawnCore", "swift-nspawn"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
