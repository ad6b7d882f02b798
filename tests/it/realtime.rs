//! Real-time layer tests.
