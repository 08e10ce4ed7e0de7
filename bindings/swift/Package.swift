// swift-tools-version:5.7
// The Swift package of the callback store. Sources/CallbackStore/CallbackStore.swift
// and the callback_storeFFI header and modulemap are generated (see README.md);
// the Rust library comes as CallbackStoreFFI.xcframework.
import PackageDescription

let package = Package(
    name: "CallbackStore",
    platforms: [.iOS(.v13), .macOS(.v10_15)],
    products: [
        .library(name: "CallbackStore", targets: ["CallbackStore"]),
    ],
    targets: [
        .binaryTarget(name: "callback_storeFFI", path: "CallbackStoreFFI.xcframework"),
        .target(name: "CallbackStore", dependencies: ["callback_storeFFI"]),
    ]
)
