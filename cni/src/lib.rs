//! The `smartnic` CNI plugin (CNI SPEC 1.1.0; answers 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0).
//!
//! ```text
//!   main: CNI_* env + stdin ─► CniEnv + NetConf ─► Plugin<KernelHost>::run ─► result / error JSON
//!                                                      │
//!            modes (sriov, macvlan, ipvlan, ovs) ◄─────┤  journal (store) written ahead of each step
//!            ovs: Switch (offload: OVSDB, overlay) ◄───┤
//!            IPAM: host-local, static in process; others delegated on CNI_PATH
//! ```
//!
//! Everything below `main` is a function of its inputs, of a [`host::Host`] and (mode ovs) of a
//! [`switch::Switch`]: the kernel and Open vSwitch in the binary, [`fake::FakeHost`] and
//! [`fake_switch::FakeSwitch`] in the tests of the journal, crashes and concurrency.

pub mod allocated;
pub mod allow;
// The crate's one module with `unsafe`: the binary's allocator (see its docs for why).
#[allow(unsafe_code)]
pub mod arena;
pub mod cidr;
pub mod config;
pub mod devinfo;
pub mod dra;
pub mod env;
pub mod error;
pub mod failpoint;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
#[cfg(any(test, feature = "test-util"))]
pub mod fake_switch;
pub mod host;
pub mod install;
pub mod ipam;
pub mod kernel;
mod kernel_rdma;
pub mod log;

pub mod lock;
pub mod ovs_switch;
pub mod plugin;
pub mod pools;
pub mod result;
pub mod small_file;
pub mod store;
pub mod switch;
pub mod validate;
pub mod version;
