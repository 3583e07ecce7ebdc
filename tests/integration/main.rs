//! Integration tests against real XMPP servers (Prosody, ejabberd) and a real
//! client (slixmpp), all started by the tests on 127.0.0.1. Needs the Debian
//! packages `scripts/install-deps.sh` installs.

use satellite_harness as support;

mod announce;
mod binary;
mod demo;
mod ejabberd;
mod harness;
mod in_process;
mod muc;
mod muc_ejabberd;
mod muc_flows;
mod muc_mam;
mod multi;
mod prosody;
mod proxy65;
mod recovery;
mod upload;
