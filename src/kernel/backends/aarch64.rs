//! ARMv8 Cryptography Extensions backend (being written).
