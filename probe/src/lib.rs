//! packetless: a packetless network-flow probe for Linux.
//!
//! eBPF programs (crate `packetless-ebpf`) follow TCP and UDP sockets in the kernel;
//! this crate loads them and runs the user-side pipeline, named after its stages:
//! [`loader`] (kernel side), [`source`] (ring buffer -> decoded events), [`flow`]
//! (events -> flow records), [`classify`] (direction), [`sink`] (output), wired by
//! [`app`]; [`cli`] and [`config`] turn the command line into validated settings.

pub mod app;
pub mod classify;
pub mod cli;
pub mod config;
pub mod flow;
pub mod loader;
pub mod sink;
pub mod source;
