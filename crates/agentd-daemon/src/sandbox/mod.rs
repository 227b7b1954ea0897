//! Running agents in a bubblewrap sandbox: the network allow-list proxy and its
//! in-sandbox relay.

pub mod egress;
pub mod relay;
