//! Channels: the only code that names a platform's types. Each translates platform
//! updates into `engine::Input` (through `store::Store::process`) and delivers what the
//! outbox holds.

pub mod matrix;
pub mod telegram;
