//! Build script: the WDK's linker setup for the shipping kernel-mode build, nothing elsewhere.

fn main() {
    // `cfg(windows)` here is the *host* the build script runs on. wdk-build only builds on
    // a Windows host with the WDK; the Linux builds (host tests, the cross-built .sys) skip it.
    #[cfg(all(windows, feature = "wdk"))]
    {
        if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows") {
            wdk_build::configure_wdk_binary_build()
                .expect("the WDK build configuration (is the WDK or eWDK installed?)");
        }
    }
}
