// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "swift-nspawn",
    products: [
        .executable(name: "swift-nspawn", targets: ["swift-nspawn"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1")
    ],
    targets: [
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CCap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),
        .systemLibrary(name: "CBlkid", providers: [.apt(["libblkid-dev"])]),
        .target(name: "CNspawnShim"),
        .target(
            name: "NspawnCore",
            dependencies: [
                "CSystemd", "CCap", "CSeccomp", "CBlkid", "CNspawnShim",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
        .executableTarget(name: "swift-nspawn", dependencies: ["NspawnCore"]),
        .testTarget(name: "NspawnCoreTests", dependencies: ["NspawnCore"]),
        .testTarget(name: "IntegrationTests", dependencies: ["NspawnCore", "swift-nspawn"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
