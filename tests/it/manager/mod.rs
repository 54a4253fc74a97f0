//! The node agent's parts against a real kernel (links in throwaway network namespaces) and
//! a sysfs tree that behaves like the kernel's.

mod link_ops;
mod sysfs;
