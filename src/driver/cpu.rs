//! What the CPU offers that changes how links are protected.

/// True if this CPU has AES and carry-less multiply instructions, so AES-256-GCM is both faster than
/// ChaCha20-Poly1305 and free of table lookups (see `core::link::cipher`). Detected at run time, so one
/// binary serves every CPU of its architecture.
pub(crate) fn has_aes_instructions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}
