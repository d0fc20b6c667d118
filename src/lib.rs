//! sportello: the front desk of the Segretariato Sociale Diffuso of the Distretto
//! Sociale Est Milano. See ARCHITECTURE.md for the map of the modules.

pub mod app;
pub mod channels;
pub mod cli;
pub mod config;
pub mod diagnostics;
pub mod dialogue;
pub mod directory;
pub mod engine;
pub mod logging;
pub mod matching;
pub mod metrics;
pub mod store;
pub mod text;
pub mod yaml;
